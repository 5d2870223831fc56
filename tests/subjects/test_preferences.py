"""``Subject.preferences``: a live mapping persisted on every assignment, JSON values only
(anything else raises ``InvalidPreference`` and writes nothing), on both stores."""

from __future__ import annotations

import asyncio
import datetime
import math
from typing import Any

import pytest

import tether
from tests.subjects.conftest import BOTH_STORES


@BOTH_STORES
def test_preferences_persist_on_each_assignment_and_are_seen_by_another_process(
    store_url: str,
) -> None:
    one, two = tether.Harness(store_url), tether.Harness(store_url)
    try:
        prefs = one.subject("user:42").preferences
        assert dict(prefs) == {} and len(prefs) == 0
        prefs["memory"] = False
        prefs["model"] = "openai:gpt-4.1-mini"
        prefs["tones"] = {"formal": True, "emoji": [1, 2.5, None, "x"]}
        seen = two.subject("user:42").preferences
        assert seen["memory"] is False and seen["model"] == "openai:gpt-4.1-mini"
        assert seen == {
            "memory": False,
            "model": "openai:gpt-4.1-mini",
            "tones": {"formal": True, "emoji": [1, 2.5, None, "x"]},
        }
        del seen["model"]
        assert "model" not in prefs and set(prefs) == {"memory", "tones"}
        prefs.update({"a": 1}, b=2)
        assert prefs.load() == {"memory": False, "tones": seen["tones"], "a": 1, "b": 2}
        assert two.subject("user:43").preferences.load() == {}  # subjects are apart
    finally:
        one.close()
        two.close()


@BOTH_STORES
@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2024, 1, 1),
        {1, 2},
        (1, 2),
        {1: "int key"},
        math.nan,
        math.inf,
        object(),
        b"bytes",
    ],
    ids=["datetime", "set", "tuple", "int-key", "nan", "inf", "object", "bytes"],
)
def test_a_non_json_preference_raises_and_writes_nothing(th: tether.Harness, value: Any) -> None:
    prefs = th.subject("user:1").preferences
    prefs["kept"] = "yes"
    with pytest.raises(tether.InvalidPreference, match="not a JSON value"):
        prefs["bad"] = value
    with pytest.raises(tether.InvalidPreference):
        prefs.update({"fine": 1, "bad": value})
    with pytest.raises(tether.InvalidPreference):
        prefs.replace({"bad": value})
    assert th.subject("user:1").preferences.load() == {"kept": "yes"}


def test_a_bad_name_or_oversized_preferences_write_nothing(tmp_path: Any) -> None:
    th = tether.Harness(f"sqlite:///{tmp_path / 't.db'}")
    prefs = th.subject("user:1").preferences
    with pytest.raises(tether.InvalidPreference, match="names are non-empty strings"):
        prefs[""] = 1
    with pytest.raises(tether.InvalidPreference, match="over the limit"):
        prefs["essay"] = "x" * (70 * 1024)
    assert prefs.load() == {}
    th.close()


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 257, "tab\there", 42])
def test_a_subject_id_that_is_not_valid_is_refused(tmp_path: Any, bad: Any) -> None:
    th = tether.Harness(f"sqlite:///{tmp_path / 't.db'}")
    with pytest.raises(tether.ConfigurationError, match="is not a subject id"):
        th.subject(bad)
    assert th.subjects() == []
    th.close()


@BOTH_STORES
def test_async_twins(th: tether.Harness) -> None:
    async def main() -> dict[str, Any]:
        subject = await th.asubject("user:5")
        await subject.preferences.aset("memory", False)
        await subject.preferences.aupdate(lang="fr")
        assert await subject.preferences.aget("lang") == "fr"
        await subject.preferences.adelete("lang")
        with pytest.raises(tether.InvalidPreference):
            await subject.preferences.aset("when", datetime.date.today())
        assert await th.asubjects() == ["user:5"]
        return await subject.preferences.aload()

    assert asyncio.run(main()) == {"memory": False}
