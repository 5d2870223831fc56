# ruff: noqa: RUF001  (the non-English texts are meant to be in their own scripts)
"""A varied corpus for measuring token-count estimates against real tokenizers.

Five kinds of text: English prose, code, JSON, numbers and non-English prose. The prose
and the non-English paragraphs are written for this file; code and more prose come from
tether's own sources and docs; JSON and numbers are generated from a fixed seed, so every
run measures the same texts.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROSE = [
    """The harbour was quiet when the ferry finally came in, an hour late and listing slightly
to port. Nobody on the pier seemed surprised. The fishermen kept mending their nets, the
woman at the ticket window went on with her crossword, and a dog asleep in the shade of a
stack of crates did not even lift its head. Delays were part of the island's rhythm, like
the tides and the afternoon wind that rattled every shutter in the village.""",
    """When you design a system that must survive crashes, the first question is not how fast
it runs but what it promises. A step that was acknowledged must never be lost; a step that
was not acknowledged may be retried, and so it must be safe to run twice. Everything else,
from the layout of the tables to the choice of locks, follows from those two sentences.""",
    """Quarterly revenue rose modestly, driven mainly by subscription renewals in the
mid-market segment, while hardware sales continued their slow decline. Management
reiterated its guidance for the full year, citing a healthy pipeline and improved
retention, but cautioned that currency movements could weigh on reported results.""",
    """My grandmother never wrote her recipes down. She measured flour with a chipped teacup,
salt with the palm of her hand, and time by the smell coming from the oven. When we asked
her how long the bread needed, she would shrug and say, "Until it is ready," which was
true, and entirely useless to anyone who was not her.""",
    """Photosynthesis converts light energy into chemical energy stored in glucose. In the
light-dependent reactions, water molecules are split, releasing oxygen as a by-product,
while the Calvin cycle uses carbon dioxide and the energy carriers ATP and NADPH to
assemble sugars. Chlorophyll absorbs mostly blue and red wavelengths, reflecting green.""",
    """Dear support team, I was charged twice for my March subscription (order #A-20931) and
I would like one of the payments refunded. I have attached both receipts. Could you also
confirm that my plan will renew at the discounted rate we agreed on last year? Thanks in
advance for your help, and sorry for the long message.""",
]

NON_ENGLISH = {
    "fr": """Le matin, la ville s'éveille lentement : les boulangers ouvrent leurs volets, les
cafés installent leurs terrasses et les premiers cyclistes traversent les ponts encore
humides de rosée. On entend le grincement d'un tramway, le rire d'un enfant, puis le
carillon de l'église qui rappelle à chacun qu'il est déjà huit heures et qu'il faut se hâter.""",
    "de": """Die Bibliothek unserer Stadt ist in einem alten Bahnhofsgebäude untergebracht.
Wo früher Fahrkarten verkauft wurden, stehen heute Regale voller Romane, Reiseführer und
Kinderbücher. Besonders beliebt ist der Lesesaal unter der gläsernen Kuppel, in dem man an
regnerischen Nachmittagen kaum einen freien Platz findet.""",
    "es": """Cuando llegamos al pueblo, la fiesta ya había comenzado. Las calles estaban
adornadas con guirnaldas de papel de colores, la banda tocaba en la plaza y los vecinos
habían sacado mesas largas llenas de tortillas, empanadas y jarras de limonada. Nadie nos
preguntó quiénes éramos; simplemente nos ofrecieron un plato y una silla.""",
    "pt": """A viagem de comboio pelo vale do Douro é uma das mais bonitas do país. A linha
acompanha o rio durante horas, entre socalcos de vinha que sobem as encostas como degraus
de uma escada gigante. Em cada estação pequena há alguém à espera, uma cesta de fruta ou
um cão que corre ao lado das carruagens até ao fim do cais.""",
    "ru": """Зима в этом году пришла рано. Уже в начале ноября выпал первый снег, и дети
с радостью достали санки, а взрослые ворчали, отыскивая в кладовках тёплые ботинки.
По вечерам в окнах домов зажигались жёлтые огни, на кухнях шумели чайники, и казалось,
что весь город собрался у плиты, чтобы согреться и поговорить о прошедшем дне.""",
    "el": """Το μικρό νησί έχει μόνο ένα λιμάνι και δύο χωριά. Το καλοκαίρι γεμίζει
επισκέπτες που έρχονται για τις ήσυχες παραλίες και το φρέσκο ψάρι, ενώ τον χειμώνα
μένουν λίγες οικογένειες, ένας γιατρός και ο δάσκαλος του σχολείου, που διδάσκει όλες
τις τάξεις στην ίδια αίθουσα.""",
    "ar": """في صباح يوم الجمعة يزدحم السوق القديم بالناس. يعرض التجار التوابل والأقمشة
والفواكه الطازجة، وتفوح رائحة القهوة من المقاهي الصغيرة على جانبي الطريق. يتجول الأطفال
بين الأكشاك بحثاً عن الحلوى، بينما يتبادل الكبار الأخبار ويتفاوضون على الأسعار.""",
    "hi": """हर साल गर्मियों की छुट्टियों में हम अपने दादा-दादी के गाँव जाते थे। वहाँ
आम के बड़े-बड़े पेड़ थे, एक पुराना कुआँ था और शाम को सब लोग आँगन में बैठकर कहानियाँ
सुनाते थे। बिजली अक्सर चली जाती थी, लेकिन किसी को इसकी परवाह नहीं थी।""",
    "zh": """我们公司的新系统上线已经一个月了。刚开始的时候，大家都不太习惯，常常找不到
需要的功能，客服电话也比平时多了很多。后来技术部门组织了几次培训，又根据用户的反馈修改了
界面，现在大部分同事都觉得比以前的系统方便多了，处理订单的速度也明显提高了。""",
    "ja": """駅前の小さな本屋は、創業からもう五十年以上になる。店主のおじいさんは毎朝
七時に店を開け、新聞を並べながら常連客と天気の話をする。最近は電子書籍に押されて客が
減ったと言うが、子どもたちが絵本を選ぶ姿を見るのが何よりの楽しみだそうだ。""",
    "ko": """우리 동네에는 오래된 시장이 하나 있다. 아침 일찍부터 상인들이 채소와 생선을
진열하고, 점심때가 되면 떡볶이와 김밥을 파는 가게 앞에 줄이 길게 늘어선다. 요즘은 큰
마트가 많이 생겼지만, 이 시장의 정겨운 분위기를 좋아하는 사람들이 여전히 많다.""",
    "vi": """Mỗi buổi sáng, bà tôi dậy từ rất sớm để nấu một nồi cháo nóng cho cả nhà.
Mùi gừng và hành phi thơm lừng khắp căn bếp nhỏ. Sau bữa sáng, bà ra vườn tưới rau,
nhổ cỏ và nói chuyện với những cây cà chua như thể chúng là những người bạn cũ.""",
}

CODE_EXTRA = [
    """export async function fetchOrders(customerId, { limit = 20, cursor } = {}) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (cursor) params.set("cursor", cursor);
  const res = await fetch(`/api/customers/${customerId}/orders?${params}`);
  if (!res.ok) throw new Error(`orders: HTTP ${res.status}`);
  const { items, next } = await res.json();
  return { items: items.map((o) => ({ ...o, total: Number(o.total) })), next };
}""",
    """SELECT c.id, c.name, COUNT(o.id) AS orders, SUM(o.total_cents) / 100.0 AS revenue
FROM customers AS c
LEFT JOIN orders AS o ON o.customer_id = c.id AND o.created_at >= DATE '2025-01-01'
WHERE c.region IN ('EU', 'UK')
GROUP BY c.id, c.name
HAVING COUNT(o.id) > 3
ORDER BY revenue DESC
LIMIT 50;""",
    """#!/usr/bin/env bash
set -euo pipefail
for f in logs/*.log; do
  n=$(grep -c "ERROR" "$f" || true)
  if [[ "$n" -gt 0 ]]; then
    printf '%-40s %6d\\n' "$(basename "$f")" "$n"
  fi
done | sort -k2 -nr | head -n 10""",
]


def _repo_files(pattern: str, limit: int, chunk: int) -> list[str]:
    """Pieces of ``chunk`` characters from the repository's own files (sorted, so stable)."""
    out: list[str] = []
    for path in sorted(ROOT.glob(pattern)):
        text = path.read_text("utf-8")
        for i in range(0, min(len(text), 4 * chunk), chunk):
            piece = text[i : i + chunk]
            if len(piece) > chunk // 2:
                out.append(piece)
        if len(out) >= limit:
            break
    return out[:limit]


def _json_texts(rng: random.Random) -> list[str]:
    first = ["Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances"]
    last = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie"]
    out = []
    for n in range(12):
        records = []
        for i in range(rng.randint(2, 5)):
            f, s = rng.choice(first), rng.choice(last)
            records.append(
                {
                    "id": f"cus_{rng.getrandbits(48):012x}",
                    "name": f"{f} {s}",
                    "email": f"{f.lower()}.{s.lower()}@example.com",
                    "active": rng.random() > 0.3,
                    "balance": round(rng.uniform(-500, 5000), 2),
                    "tags": rng.sample(["vip", "beta", "churn-risk", "eu", "annual"], 2),
                    "address": {"city": rng.choice(["Lyon", "Porto", "Osaka"]), "zip": str(i)},
                    "orders": [rng.randint(1000, 99999) for _ in range(rng.randint(0, 4))],
                }
            )
        indent = 2 if n % 2 else None
        out.append(json.dumps({"page": n, "results": records}, indent=indent))
    tool = {
        "type": "function",
        "function": {
            "name": "search_orders",
            "description": "Search a customer's orders by status and date range.",
            "parameters": {
                "type": "object",
                "properties": {
                    "customer_id": {"type": "string", "description": "the customer"},
                    "status": {"type": "string", "enum": ["open", "shipped", "refunded"]},
                    "since": {"type": "string", "format": "date"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                },
                "required": ["customer_id"],
            },
        },
    }
    out.append(json.dumps(tool))
    out.append((ROOT / "src/tether/llm/prices.json").read_text("utf-8")[:3000])
    return out


def _number_texts(rng: random.Random) -> list[str]:
    out = []
    for _ in range(6):
        rows = ["date,sku,qty,unit_price,total"]
        for _ in range(rng.randint(10, 25)):
            qty = rng.randint(1, 500)
            price = round(rng.uniform(0.5, 999.99), 2)
            day = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            rows.append(f"{day},{rng.randint(10000, 99999)},{qty},{price},{qty * price:.2f}")
        out.append("\n".join(rows))
    out.append(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 12))) for _ in range(150)))
    out.append(
        "\n".join(
            f"{rng.getrandbits(128):032x}  {rng.uniform(-1e6, 1e6):.6e}  +1-555-{rng.randint(0, 9999):04d}"
            for _ in range(25)
        )
    )
    return out


def corpus() -> dict[str, list[str]]:
    """kind -> texts: prose, code, json, numbers, non_english."""
    rng = random.Random(20260501)
    return {
        "prose": PROSE + _repo_files("docs/*.md", 12, 1500) + _repo_files("README.md", 4, 1500),
        "code": CODE_EXTRA + _repo_files("src/tether/llm/*.py", 16, 1500),
        "json": _json_texts(rng),
        "numbers": _number_texts(rng),
        "non_english": list(NON_ENGLISH.values()),
    }
