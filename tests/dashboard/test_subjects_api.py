"""The subjects API (DESIGN 4b) through an HTTP client, on both stores: list, show
(redacted), export (whole), forget, delete one memory, replace preferences; unknown
subjects and items are 404, malformed ids and non-JSON preferences 400 with nothing
written; the token guards every endpoint; the OpenAPI document lists them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

import tether
from tests.dashboard.conftest import BOTH_STORES
from tether.dashboard import create_app


@pytest.fixture
def app_th(store_url: str) -> Iterator[tether.Harness]:
    th = tether.Harness(store_url, embedder=None)

    @th.function(id="chat", subject="event.data.user")
    def chat(ctx: tether.SyncContext) -> str:
        return str(ctx.step.run("hear", lambda: ctx.event.data["text"]))

    th.run("chat", {"user": "user:42", "text": "my card is 4242"})
    s = th.subject("user:42")
    s.preferences["memory"] = True
    s.memory.add("lives in Lyon, mail ada@example.com")
    th.subject("user:7").memory.add("likes tea")
    yield th
    th.close()


@pytest.fixture
def client(app_th: tether.Harness) -> Iterator[TestClient]:
    with TestClient(create_app(app_th, token="")) as c:
        yield c


@BOTH_STORES
def test_list_show_export_and_forget(app_th: tether.Harness, client: TestClient) -> None:
    assert client.get("/api/subjects").json() == {"subjects": ["user:42", "user:7"]}
    shown = client.get("/api/subjects/user:42").json()
    assert shown["subject"] == "user:42" and shown["preferences"] == {"memory": True}
    (memory,) = shown["memories"]
    assert "Lyon" in memory["text"] and "ada@example.com" not in memory["text"]  # redacted
    assert [r["function_id"] for r in shown["runs"]] == ["chat"]
    run = client.get(f"/api/runs/{shown['runs'][0]['id']}").json()
    assert run["subject"] == "user:42"
    page = client.get(f"/runs/{shown['runs'][0]['id']}").text
    assert 'href="/subjects/user%3A42"' in page

    exported = client.get("/api/subjects/user%3A42/export")
    assert exported.status_code == 200
    doc = exported.json()
    assert "ada@example.com" in json.dumps(doc)  # the subject's own data, whole
    assert doc["runs"][0]["output"] == "my card is 4242"

    gone = client.delete("/api/subjects/user:42")
    assert gone.status_code == 200, gone.text
    body = gone.json()
    assert body["forgotten"]["memories"] == 1 and body["forgotten"]["runs"] == 1
    assert body["erased"] is True and body["residue"] is None
    assert client.get("/api/subjects/user:42").status_code == 404
    assert client.get("/api/subjects").json() == {"subjects": ["user:7"]}
    assert app_th.list_runs() == []


@BOTH_STORES
def test_delete_one_memory_and_replace_preferences(
    app_th: tether.Harness, client: TestClient
) -> None:
    (item,) = app_th.memory("user:42").list()
    wrong = client.delete(f"/api/subjects/user:7/memory/{item.id}")  # another's item
    assert wrong.status_code == 404
    assert client.delete("/api/subjects/user:42/memory/nope").status_code == 404
    done = client.delete(f"/api/subjects/user:42/memory/{item.id}")
    assert done.status_code == 200 and done.json()["deleted"] == item.id
    assert app_th.memory("user:42").list() == []
    assert client.delete(f"/api/subjects/user:42/memory/{item.id}").status_code == 404

    put = client.put("/api/subjects/user:42/preferences", json={"memory": False, "lang": "fr"})
    assert put.status_code == 200 and put.json()["preferences"] == {"memory": False, "lang": "fr"}
    assert app_th.subject("user:42").preferences.load() == {"memory": False, "lang": "fr"}


@BOTH_STORES
@pytest.mark.parametrize(
    "body",
    ['{"when": NaN}', "[1, 2]", '"text"', "not json", '{"x": Infinity}'],
)
def test_a_non_json_preference_body_is_400_and_writes_nothing(
    app_th: tether.Harness, client: TestClient, body: str
) -> None:
    response = client.put(
        "/api/subjects/user:42/preferences",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]
    assert app_th.subject("user:42").preferences.load() == {"memory": True}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/subjects/{s}"),
        ("GET", "/api/subjects/{s}/export"),
        ("DELETE", "/api/subjects/{s}"),
        ("DELETE", "/api/subjects/{s}/memory/m1"),
        ("PUT", "/api/subjects/{s}/preferences"),
    ],
)
def test_unknown_subjects_are_404_and_bad_ids_400_creating_nothing(
    app_th: tether.Harness, client: TestClient, method: str, path: str
) -> None:
    kwargs: dict[str, Any] = {"json": {"a": 1}} if method == "PUT" else {}
    missing = client.request(method, path.format(s="user:nobody"), **kwargs)
    assert missing.status_code == 404 and "user:nobody" in missing.json()["error"]
    bad = client.request(method, path.format(s="x" * 300), **kwargs)
    assert bad.status_code == 400 and "at most 256" in bad.json()["error"]
    assert app_th.subjects() == ["user:42", "user:7"]


def test_the_token_guards_the_subject_endpoints_and_openapi_lists_them(
    app_th: tether.Harness,
) -> None:
    with TestClient(create_app(app_th, token="s3cret")) as c:
        assert c.get("/api/subjects").status_code == 401
        assert c.delete("/api/subjects/user:42").status_code == 401
        assert c.put("/api/subjects/user:42/preferences", json={}).status_code == 401
        assert app_th.subject("user:42").preferences.load() == {"memory": True}
        auth = {"Authorization": "Bearer s3cret"}
        assert c.get("/api/subjects", headers=auth).status_code == 200
        paths = c.get("/api/openapi.json", headers=auth).json()["paths"]
    assert set(paths["/api/subjects/{subject}"]) == {"get", "delete"}
    assert "put" in paths["/api/subjects/{subject}/preferences"]
    assert "delete" in paths["/api/subjects/{subject}/memory/{item}"]
    assert "get" in paths["/api/subjects/{subject}/export"]
