"""Seeded synthetic long conversations for the context benchmarks (``bench/context.py``).

Each conversation has several sessions and hundreds of turns: chit-chat on varied topics,
personal facts introduced early (some phrased so that the later question shares few words
with them), facts updated later, assistant tool calls with large results (one of which holds
a fact), and questions asked later, each labelled with the turns that hold its current
answer (and the values it superseded). The assistant's reply to a question never repeats the answer, so the labels stay
exact. JSON out:

    python bench/context_data.py --seed 7 --conversations 5 --pairs 300 > data.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fact:
    key: str
    intro: list[str]
    questions: list[str]
    values: list[str]
    update: str | None = None


FACTS = [
    Fact(
        "pet",
        [
            "We adopted a puppy and named him {v}; he sleeps all day.",
            "Our new puppy {v} chewed through a cable again.",
        ],
        ["What is my dog called?", "Remind me of my dog's name."],
        ["Pico", "Bruno", "Tofu", "Mochi", "Rollo"],
        "Funny thing: the kids renamed the puppy, he only answers to {v} now.",
    ),
    Fact(
        "city",
        [
            "Greetings from {v}, where I have been living for two years.",
            "I live in {v} these days, near the old harbour.",
        ],
        ["Which city do I live in now?", "Where am I based?"],
        ["Lisbon", "Porto", "Ghent", "Tallinn", "Valencia", "Bergen"],
        "Big news: we moved house, I live in {v} now.",
    ),
    Fact(
        "locker",
        ["My gym locker code is {v}, I keep forgetting it."],
        ["What is my gym locker code?"],
        ["4417", "9032", "1186", "7750", "3021"],
        "The gym reset the lockers; my new code is {v}.",
    ),
    Fact(
        "employer",
        ["I started a new job at {v} as a data engineer."],
        ["Where do I work?", "Which company did I join?"],
        ["Quintal Labs", "Norrland Freight", "Aster Bio", "Kelp Systems", "Vireo Bank"],
        "I switched jobs again, I am at {v} now.",
    ),
    Fact(
        "sister",
        ["My sister {v} is visiting next week with her twins."],
        ["What is my sister's name?"],
        ["Mara", "Ilse", "Noor", "Greta", "Sanne"],
    ),
    Fact(
        "allergy",
        ["Please remember I am allergic to {v}, it is serious."],
        ["Which food must I avoid?", "What am I allergic to?"],
        ["peanuts", "shellfish", "sesame", "kiwi"],
    ),
    Fact(
        "flight",
        ["Booked it: flight {v} to Oslo, leaving at 7am on Friday."],
        ["What is my flight number?"],
        ["TP1342", "SK4410", "KL1205", "LH2291"],
        "The airline rebooked me onto flight {v}.",
    ),
    Fact(
        "codename",
        ["At work our secret project is codenamed {v}."],
        ["What is the project codename?"],
        ["BLUEFIN", "KESTREL", "MARLIN", "OSPREY"],
        "Leadership renamed the project to {v} this morning.",
    ),
    Fact(
        "car",
        ["I finally bought a car, a second-hand {v}."],
        ["What car do I drive?"],
        ["blue Fiat Panda", "grey Volvo V70", "red Mazda MX-5", "white Renault Zoe"],
    ),
    Fact(
        "tea",
        ["Nothing beats a cup of {v} in the afternoon."],
        ["Which tea do I like best?", "What is my favourite tea?"],
        ["genmaicha", "rooibos", "oolong", "earl grey"],
    ),
]

TOPICS = {
    "cooking": [
        "recipe",
        "oven",
        "garlic",
        "onion",
        "pasta",
        "risotto",
        "simmer",
        "basil",
        "lentils",
        "roast",
        "sauce",
        "pan",
        "butter",
    ],
    "travel": [
        "train",
        "hostel",
        "museum",
        "itinerary",
        "backpack",
        "beach",
        "ferry",
        "passport",
        "hike",
        "map",
        "castle",
        "market",
    ],
    "work": [
        "meeting",
        "deadline",
        "report",
        "spreadsheet",
        "manager",
        "slides",
        "budget",
        "review",
        "sprint",
        "client",
        "email",
    ],
    "garden": [
        "tomatoes",
        "compost",
        "seeds",
        "watering",
        "soil",
        "roses",
        "pruning",
        "shade",
        "mulch",
        "bees",
        "harvest",
        "shed",
    ],
    "music": [
        "guitar",
        "chords",
        "album",
        "concert",
        "playlist",
        "jazz",
        "piano",
        "rhythm",
        "vinyl",
        "lyrics",
        "band",
        "tempo",
    ],
    "fitness": [
        "running",
        "stretch",
        "squats",
        "marathon",
        "cycling",
        "yoga",
        "protein",
        "sleep",
        "recovery",
        "shoes",
        "pace",
    ],
    "books": [
        "novel",
        "chapter",
        "author",
        "library",
        "thriller",
        "poetry",
        "fantasy",
        "memoir",
        "plot",
        "character",
        "series",
    ],
}
ASKS = [
    "Can you help me with {a} and {b}?",
    "I was thinking about {a}, {b} and maybe {c}.",
    "Any tips on {a}? Also {b} has been on my mind.",
    "Quick one: what do you think about {a} with {b}?",
]
REPLIES = [
    "Sure. For {a}, start small and keep notes; {b} matters more than people think, and {c} helps too.",
    "Good question. I would look at {a} first, then {b}. Many people forget {c}.",
    "Here is an idea: combine {a} with {b}, and give {c} a try next week.",
]


@dataclass
class Conversation:
    id: str
    turns: list[dict[str, Any]] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)


def _chat(rng: random.Random) -> tuple[str, str]:
    words = TOPICS[rng.choice(sorted(TOPICS))]
    a, b, c = rng.sample(words, 3)
    extra = " ".join(rng.sample(words, 4))
    return rng.choice(ASKS).format(a=a, b=b, c=c) + f" ({extra})", rng.choice(REPLIES).format(
        a=a, b=b, c=c
    ) + " " + extra + "."


def generate(seed: int, index: int, pairs: int) -> Conversation:
    rng = random.Random(f"{seed}:{index}")
    conv = Conversation(id=f"conv-{seed}-{index}")
    facts = rng.sample(FACTS, 8)
    slots = sorted(rng.sample(range(2, int(pairs * 0.3)), len(facts)))
    state: dict[str, tuple[str, list[int]]] = {}  # fact -> (current value, evidence turns)
    old: dict[str, list[str]] = {}  # fact -> the values it had before
    events: dict[int, list[tuple[str, Fact]]] = {}
    for fact, at in zip(facts, slots, strict=True):
        events.setdefault(at, []).append(("intro", fact))
        if fact.update and rng.random() < 0.6:
            events.setdefault(rng.randrange(int(pairs * 0.35), int(pairs * 0.7)), []).append(
                ("update", fact)
            )
        for _ in range(2):
            events.setdefault(rng.randrange(at + 3, pairs), []).append(("ask", fact))
    order_at = rng.randrange(int(pairs * 0.2), int(pairs * 0.5))
    events.setdefault(order_at, []).append(("order", facts[0]))
    events.setdefault(rng.randrange(order_at + 5, pairs), []).append(("ask-order", facts[0]))
    tracking = f"TRK-{rng.randrange(10**7, 10**8)}"
    calls = 0
    sessions = 8
    for p in range(pairs):
        session = p * sessions // pairs
        for kind, fact in events.get(p, []):
            if kind in ("intro", "update"):
                values = [v for v in fact.values if v != state.get(fact.key, ("", []))[0]]
                value = rng.choice(values)
                text = rng.choice(fact.intro) if kind == "intro" else fact.update or ""
                _add(conv, session, "user", text.format(v=value))
                if fact.key in state:
                    old.setdefault(fact.key, []).append(state[fact.key][0])
                state[fact.key] = (value, [len(conv.turns) - 1])
                _add(conv, session, "assistant", "Noted, I will keep that in mind.")
            elif kind == "ask" and fact.key in state:
                value, evidence = state[fact.key]
                conv.questions.append(
                    {
                        "turn": len(conv.turns),
                        "question": rng.choice(fact.questions),
                        "answer": value,
                        "evidence": evidence,
                        "fact": fact.key,
                        "superseded": list(old.get(fact.key, [])),
                    }
                )
                _add(conv, session, "user", conv.questions[-1]["question"])
                _add(conv, session, "assistant", "Let me look back at what you told me.")
            elif kind == "order":
                calls += 1
                _add(conv, session, "user", "Can you check the status of my last order?")
                cid = f"call_{calls}"
                _add(
                    conv,
                    session,
                    "assistant",
                    "",
                    tool_calls=[{"id": cid, "name": "lookup_order", "arguments": {"latest": True}}],
                )
                lines = [
                    f"item {i}: {' '.join(rng.sample(TOPICS['garden'], 3))} qty {rng.randrange(1, 9)}"
                    for i in range(60)
                ]
                lines.insert(
                    rng.randrange(10, 50), f"shipping: tracking number {tracking}, carrier PostNord"
                )
                _add(conv, session, "tool", "\n".join(lines), tool_call_id=cid, name="lookup_order")
                state["order"] = (tracking, [len(conv.turns) - 1])
                _add(conv, session, "assistant", "Your order has shipped.")
            elif kind == "ask-order":
                conv.questions.append(
                    {
                        "turn": len(conv.turns),
                        "question": "What was the tracking number of my order?",
                        "answer": tracking,
                        "evidence": state["order"][1],
                        "fact": "order",
                        "superseded": [],
                    }
                )
                _add(conv, session, "user", conv.questions[-1]["question"])
                _add(conv, session, "assistant", "Let me look back at what you told me.")
        if rng.random() < 0.08:  # a tool call with a large result that holds no fact
            calls += 1
            cid = f"call_{calls}"
            topic = rng.choice(sorted(TOPICS))
            _add(conv, session, "user", f"Search the docs about {topic} for me.")
            _add(
                conv,
                session,
                "assistant",
                "",
                tool_calls=[{"id": cid, "name": "search_docs", "arguments": {"q": topic}}],
            )
            body = "\n".join(
                " ".join(rng.choices(TOPICS[topic], k=12)) for _ in range(rng.randrange(30, 80))
            )
            _add(conv, session, "tool", body, tool_call_id=cid, name="search_docs")
            _add(conv, session, "assistant", f"I found several documents about {topic}.")
        user, reply = _chat(rng)
        _add(conv, session, "user", user)
        _add(conv, session, "assistant", reply)
    return conv


def _add(conv: Conversation, session: int, role: str, content: str, **extra: Any) -> None:
    conv.turns.append(
        {"i": len(conv.turns), "session": session, "role": role, "content": content, **extra}
    )


def dataset(seed: int = 7, conversations: int = 5, pairs: int = 300) -> dict[str, Any]:
    convs = [generate(seed, i, pairs) for i in range(conversations)]
    return {
        "seed": seed,
        "conversations": [{"id": c.id, "turns": c.turns, "questions": c.questions} for c in convs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--conversations", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=300)
    args = parser.parse_args()
    json.dump(dataset(args.seed, args.conversations, args.pairs), sys.stdout, indent=1)


if __name__ == "__main__":
    main()
