"""``ctx.subject(id)`` inside durable functions: blocking methods in a plain ``def``,
coroutines in an ``async def`` (preferences through ``AsyncPreferences``), the memory the
replay-safe ``ctx.memory(id)``; the run's own subject is readable from the export."""

from __future__ import annotations

from typing import Any

import tether
from tests.subjects.conftest import BOTH_STORES


@BOTH_STORES
def test_a_sync_function_reads_and_writes_its_subject(sth: tether.Harness) -> None:
    @sth.function(id="greet", subject="event.data.user")
    def greet(ctx: tether.SyncContext) -> dict[str, Any]:
        user = ctx.subject(ctx.event.data["user"])
        user.preferences["greeted"] = True
        user.memory.add("was greeted")
        doc = user.export()
        return {
            "prefs": doc["preferences"],
            "memories": [m["text"] for m in doc["memories"]],
            "runs": [r["function_id"] for r in doc["runs"]],
            "windows": user.windows(),
        }

    out = sth.run("greet", {"user": "user:1"})
    assert out == {
        "prefs": {"greeted": True},
        "memories": ["was greeted"],
        "runs": ["greet"],
        "windows": [],
    }
    # A replay of the run adds no second memory (ctx.memory's writes are keyed by run).
    run = sth.list_runs("greet")[0]
    sth.replay(run.id)
    with sth.worker():
        from tether.testing import poll

        poll(lambda: all(r.status.value == "completed" for r in sth.list_runs("greet")))
    assert [m.text for m in sth.memory("user:1").list()] == ["was greeted"]


@BOTH_STORES
def test_an_async_function_awaits_its_subject(sth: tether.Harness) -> None:
    @sth.function(id="agreet", subject="event.data.user")
    async def agreet(ctx: tether.Context) -> dict[str, Any]:
        user = ctx.subject(ctx.event.data["user"])
        await user.preferences.set("lang", "fr")
        await user.preferences.update(tone="warm")
        await user.memory.add("speaks French")
        lang = await user.preferences.get("lang")
        doc = await user.export()
        return {
            "lang": lang,
            "prefs": await user.preferences.load(),
            "memories": [m["text"] for m in doc["memories"]],
            "kept": await user.kept(),
            "windows": await user.windows(),
        }

    out = sth.run("agreet", {"user": "user:2"})
    assert out == {
        "lang": "fr",
        "prefs": {"lang": "fr", "tone": "warm"},
        "memories": ["speaks French"],
        "kept": True,
        "windows": [],
    }
    assert sth.subjects() == ["user:2"]
