"""Hostile source for the code audit's parser (audit/scan.py): any file content, valid
Python or not, is audited or reported in ``skipped``; ``tether.audit.code`` never raises
for what a file holds, and never runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tether.audit import code
from tether.audit.scan import ignores

FAST = settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

FRAGMENTS = [
    "import tether\n",
    "from tether import llm\n",
    "@th.function()\n",
    "def f(ctx):\n",
    "async def g(ctx):\n",
    "    ",
    "ctx.step.run('s', lambda: 1)\n",
    "await ctx.step.llm('x', model='m')\n",
    "try:\n",
    "except Exception:\n",
    "    pass\n",
    "while True:\n",
    "for x in y:\n",
    "return\n",
    "# tether: ignore[",
    "# tether: ignore\n",
    "]\n",
    "llm.complete(model='openai:x', messages=m)\n",
    "raise\n",
    "lambda: (",
    ")\n",
    "class C:\n",
    "x = ",
    "'''",
    '"',
    "\\\n",
    "\t",
    "\x00",
    "\ufeff",
]
sources = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=10), max_size=20).map("".join)


@FAST
@given(source=sources)
@example(source="1+" * 100_000 + "1")
@example(source="x = " + "[" * 150 + "]" * 150)
@example(source="x = a" + ".b" * 20_000)
@example(
    source="def f(ctx):\n"
    + "".join("    " * (i + 1) + "if x:\n" for i in range(99))
    + "    " * 100
    + "pass\n"
)
@example(source="f(" * 180 + ")" * 180)
@example(source="x = 'a' + " * 5000 + "'b'")
@example(source="import os\nos.system('touch /tmp/tether-audit-ran')\n")
def test_any_source_is_audited_or_skipped(tmp_path: Path, source: str) -> None:
    path = tmp_path / "app.py"
    path.write_text(source, encoding="utf-8", errors="surrogatepass")
    report = code(path, root=tmp_path)
    assert report.files == 1
    assert len(report.skipped) <= 1
    for finding in report.findings:
        assert finding.path == "app.py" and finding.line >= 0
    ignores(source)
    assert not Path("/tmp/tether-audit-ran").exists()


@FAST
@given(data=st.binary(max_size=120))
@example(data=b"\xff\xfe")
def test_any_bytes_are_audited_or_skipped(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "app.py"
    path.write_bytes(data)
    report = code(path, root=tmp_path)
    assert report.files == 1


def test_a_missing_path_is_a_configuration_error(tmp_path: Path) -> None:
    from tether import ConfigurationError

    with pytest.raises(ConfigurationError, match="does not exist"):
        code(tmp_path / "nope.py")
