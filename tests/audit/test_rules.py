"""Each rule on small programs: the shapes it must find and the ones it must leave alone."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import tether.audit
from tether.audit import CodeAudit


def scan(tmp_path: Path, files: dict[str, str]) -> CodeAudit:
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return tether.audit.code(tmp_path, root=tmp_path)


def rules(audit: CodeAudit) -> list[tuple[str, int, str]]:
    return [(f.path, f.line, f.rule) for f in audit.findings]


def test_import_aliases_and_client_tracking(tmp_path: Path) -> None:
    audit = scan(
        tmp_path,
        {
            "svc.py": """
            import logging
            import openai as oa
            from openai import AsyncOpenAI as AO
            log = logging.getLogger(__name__)
            module_client = oa.OpenAI(timeout=10)

            class Service:
                def __init__(self):
                    self.client = AO()

                async def ask(self, q):
                    log.info("asking")
                    return await self.client.chat.completions.create(model="m", messages=[])

            def local():
                c = oa.OpenAI()
                log.info("x")
                return c.with_options(timeout=5).responses.create(model="m", input="hi")

            def module_level():
                log.info("x")
                return module_client.chat.completions.create(model="m", messages=[])
            """
        },
    )
    assert rules(audit) == [
        ("svc.py", 14, "TH101"),
        ("svc.py", 14, "TH304"),  # self.client = AsyncOpenAI() has no timeout
        ("svc.py", 19, "TH101"),  # with_options(timeout=5) sets one
        ("svc.py", 23, "TH101"),
    ]
    assert audit.model_calls == 3


def test_a_function_only_called_from_steps_is_durable_across_modules(tmp_path: Path) -> None:
    audit = scan(
        tmp_path,
        {
            "app/llm.py": """
            from openai import OpenAI
            client = OpenAI(timeout=30, max_retries=0)

            def summarize(text):
                return _call(text)

            def _call(text):
                return client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
            """,
            "app/main.py": """
            import tether
            from app.llm import summarize
            th = tether.Harness()

            @th.function()
            async def job(ctx):
                return await ctx.step.run("sum", summarize, ctx.event.data["text"])
            """,
        },
    )
    assert rules(audit) == []


def test_a_function_also_called_outside_steps_is_not_durable(tmp_path: Path) -> None:
    audit = scan(
        tmp_path,
        {
            "app.py": """
            import tether
            from openai import OpenAI
            th = tether.Harness()
            client = OpenAI(timeout=30, max_retries=0)

            def summarize(text):
                return client.chat.completions.create(model="m", messages=[])  # tether: ignore[TH401]

            @th.function()
            def job(ctx):
                return ctx.step.run("sum", summarize, "x")

            def endpoint():
                return summarize("direct")
            """
        },
    )
    assert rules(audit) == [("app.py", 8, "TH101")]
    assert audit.suppressed == 1


def test_model_call_in_a_durable_body_outside_a_step(tmp_path: Path) -> None:
    audit = scan(
        tmp_path,
        {
            "app.py": """
            import tether
            import anthropic
            th = tether.Harness()
            claude = anthropic.Anthropic(timeout=20)

            @th.function()
            def job(ctx):
                r = claude.messages.create(model="m", max_tokens=10, messages=[])
                return ctx.step.run("after", lambda: r.content[0].text)
            """
        },
    )
    [f] = audit.findings
    assert (f.rule, f.line) == ("TH101", 9)
    assert "runs again on every resume" in f.message


def test_stacked_retries_need_sdk_retries_left_on(tmp_path: Path) -> None:
    audit = scan(
        tmp_path,
        {
            "w.py": """
            import logging
            from openai import OpenAI
            from tenacity import retry, stop_after_attempt, retry_if_exception_type
            from openai import RateLimitError, APITimeoutError
            log = logging.getLogger(__name__)
            default = OpenAI(timeout=30)
            off = OpenAI(timeout=30, max_retries=0)

            @retry(retry=retry_if_exception_type((RateLimitError, APITimeoutError)), stop=stop_after_attempt(3))
            def stacked():
                log.info("x")
                return default.chat.completions.create(model="m", messages=[])

            @retry(retry=retry_if_exception_type((RateLimitError, APITimeoutError)), stop=stop_after_attempt(3))
            def single():
                log.info("x")
                return off.chat.completions.create(model="m", messages=[])

            @retry(retry=retry_if_exception_type(RateLimitError), stop=stop_after_attempt(3))
            def per_call():
                log.info("x")
                return default.with_options(max_retries=0).chat.completions.create(model="m", messages=[])
            """
        },
    )
    assert [r for r in rules(audit) if r[2] != "TH101"] == [("w.py", 13, "TH306")]


def test_retry_loop_with_a_status_filter_does_not_retry_non_retriable(tmp_path: Path) -> None:
    audit = scan(
        tmp_path,
        {
            "r.py": """
            import logging, time
            import openai
            log = logging.getLogger(__name__)
            client = openai.OpenAI(timeout=10, max_retries=0)

            def ask(q):
                for attempt in range(3):
                    try:
                        return client.chat.completions.create(model="m", messages=[])
                    except openai.APIStatusError as e:
                        if e.status_code < 500:
                            raise
                        log.warning("retrying")
                        time.sleep(2 ** attempt)
            """
        },
    )
    assert sorted(r[2] for r in rules(audit)) == ["TH101", "TH301", "TH302"]


def test_polling_and_work_loops_are_not_retries(tmp_path: Path) -> None:
    audit = scan(
        tmp_path,
        {
            "p.py": """
            import logging, time
            from openai import OpenAI
            log = logging.getLogger(__name__)
            client = OpenAI(timeout=10)

            def wait(batch_id):
                while True:
                    b = client.batches.retrieve(batch_id)
                    if b.status == "completed":
                        return b
                    time.sleep(30)

            def each(items):
                for item in items:
                    try:
                        log.info("item")
                        client.chat.completions.create(model="m", messages=[{"role": "user", "content": item}])
                    except Exception:
                        log.exception("item failed")
            """
        },
    )
    assert sorted({r[2] for r in rules(audit)}) == ["TH101", "TH103"]  # a batch, not a retry


@pytest.mark.parametrize(
    ("call", "finding"),
    [
        ('requests.post("https://x.example/hook", json={})', "TH305"),
        ('requests.post("https://x.example/hook", json={}, timeout=5)', None),
        ('httpx.post("https://x.example/hook", json={})', None),
        ('httpx.post("https://x.example/hook", json={}, timeout=None)', "TH305"),
        ('requests.post("https://x.example/hook", **opts)', None),
    ],
)
def test_http_timeouts(tmp_path: Path, call: str, finding: str | None) -> None:
    audit = scan(tmp_path, {"h.py": f"import requests, httpx\nopts = {{}}\ndef f():\n    {call}\n"})
    assert [f.rule for f in audit.findings] == ([finding] if finding else [])


def test_timeouts_per_provider(tmp_path: Path) -> None:
    audit = scan(
        tmp_path,
        {
            "t.py": """
            import logging
            import litellm
            from google import genai
            from google.genai import types
            from langchain_openai import ChatOpenAI
            log = logging.getLogger(__name__)
            g_none = genai.Client()
            g_set = genai.Client(http_options=types.HttpOptions(timeout=30_000))
            lc_none = ChatOpenAI(model="m")
            lc_set = ChatOpenAI(model="m", timeout=20)

            def calls():
                log.info("x")
                g_none.models.generate_content(model="m", contents="x")
                g_set.models.generate_content(model="m", contents="x")
                lc_none.invoke("x")
                lc_set.invoke("x")
                litellm.completion(model="m", messages=[])
                litellm.completion(model="m", messages=[], timeout=10)
            """
        },
    )
    assert [r[1] for r in rules(audit) if r[2] == "TH304"] == [15, 17, 19]


def test_context_rules(tmp_path: Path) -> None:
    audit = scan(
        tmp_path,
        {
            "c.py": """
            import logging
            from openai import OpenAI
            log = logging.getLogger(__name__)
            client = OpenAI(timeout=10, max_retries=0)
            HISTORY = []

            def loop_grows(q):
                msgs = [{"role": "user", "content": q}]
                for _ in range(5):
                    log.info("turn")
                    r = client.chat.completions.create(model="m", messages=msgs)
                    msgs.append(r.choices[0].message)

            def loop_trimmed(q):
                msgs = []
                while True:
                    log.info("turn")
                    msgs.append({"role": "user", "content": q})
                    r = client.chat.completions.create(model="m", messages=trim_to_budget(msgs, 8000))
                    if r:
                        break

            def rebuilt(items):
                for item in items:
                    msgs = [{"role": "user", "content": item}]
                    msgs.append({"role": "user", "content": "be brief"})
                    log.info("item")
                    client.chat.completions.create(model="m", messages=msgs)

            def chat(text):
                HISTORY.append({"role": "user", "content": text})
                log.info("chat")
                return client.chat.completions.create(model="m", messages=HISTORY)

            def trim_to_budget(m, n):
                return m[-10:]
            """
        },
    )
    assert [(r[1], r[2]) for r in rules(audit) if r[2].startswith("TH2")] == [
        (13, "TH201"),
        (32, "TH202"),
    ]


def test_silent_and_bare_handlers(tmp_path: Path) -> None:
    audit = scan(
        tmp_path,
        {
            "e.py": """
            import logging
            from openai import OpenAI
            log = logging.getLogger(__name__)
            client = OpenAI(timeout=10)

            def a():
                try:
                    client.chat.completions.create(model="m", messages=[])
                except Exception:
                    return None

            def b():
                try:
                    client.chat.completions.create(model="m", messages=[])
                except Exception:
                    log.exception("failed")
                    return None

            def c():
                try:
                    client.chat.completions.create(model="m", messages=[])
                except:
                    raise

            def not_ai():
                try:
                    open("x").read()
                except Exception:
                    pass
                log.info("x")
            """
        },
    )
    assert [(r[1], r[2]) for r in rules(audit) if r[2] in ("TH307", "TH308")] == [
        (10, "TH308"),
        (23, "TH307"),
    ]


def test_ignore_comments(tmp_path: Path) -> None:
    source = """
    from openai import OpenAI
    client = OpenAI()
    def f():
        return client.chat.completions.create(model="m", messages=[])  {mark}
    """
    counts = {}
    for mark in (
        "",
        "# tether: ignore",
        "# tether: ignore[TH101, TH304]",
        "# tether: ignore[TH999]",
    ):
        sub = tmp_path / str(len(counts))
        sub.mkdir()
        audit = scan(sub, {"f.py": source.format(mark=mark)})
        counts[mark] = sorted(f.rule for f in audit.findings)
    assert counts[""] == ["TH101", "TH304", "TH401"]
    assert counts["# tether: ignore"] == []
    assert counts["# tether: ignore[TH101, TH304]"] == ["TH401"]
    assert counts["# tether: ignore[TH999]"] == counts[""]


def test_a_file_that_does_not_parse_is_skipped_not_fatal(tmp_path: Path) -> None:
    audit = scan(
        tmp_path,
        {
            "broken.py": "def f(:\n    pass\n",
            "ok.py": "import requests\ndef f():\n    requests.get('https://x.example')\n",
        },
    )
    (tmp_path / "latin.py").write_bytes(b"x = '\xe9'\n")
    audit = tether.audit.code(tmp_path, root=tmp_path)
    assert [s.path for s in audit.skipped] == ["broken.py", "latin.py"]
    assert audit.skipped[0].line == 1 and "not parsed" in audit.skipped[0].message
    assert rules(audit) == [("ok.py", 3, "TH305")]
    assert audit.files == 3


def test_missing_path_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(tether.ConfigurationError, match="does not exist"):
        tether.audit.code(tmp_path / "nope")


def test_scores_follow_the_documented_formula(tmp_path: Path) -> None:
    empty = scan(tmp_path / "a", {"x.py": "print('no model here')\n"})
    assert empty.scores == dict.fromkeys(tether.audit.AREAS, 100) and empty.overall == 100
    audit = scan(
        tmp_path / "b",
        {
            "y.py": """
            import logging
            from openai import OpenAI
            log = logging.getLogger(__name__)
            client = OpenAI()
            def one():
                log.info("x")
                return client.chat.completions.create(model="m", messages=[])
            def two():
                log.info("x")
                return client.chat.completions.create(model="m", messages=[], timeout=5)
            """
        },
    )
    # 2 model-call sites; orchestration: 2 errors (TH101, weight 1) -> 100 * (1 - 2/2) = 0;
    # retry: one TH304 warning (0.5) -> 100 * (1 - 0.5/2) = 75; the others have no finding.
    assert audit.scores == {"orchestration": 0, "context": 100, "retry": 75, "observability": 100}
    assert audit.overall == 69
    assert audit.passes(0) and not audit.passes(70)
