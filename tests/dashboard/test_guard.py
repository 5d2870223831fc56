"""What every dashboard request passes (dashboard/guard.py): the token on every route and
API endpoint, loopback only without one (and no DNS rebinding), cross-site state changes
refused, request bodies capped, and no secret (the dashboard token, the encryption key)
in any response or log line."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

import tether
from tests.dashboard.conftest import build
from tether.dashboard import create_app
from tether.dashboard.guard import COOKIE
from tether.testing import temporary_harness

TOKEN = "dash-token-Zk93xQ"


@pytest.fixture
def dash() -> Iterator[tether.Harness]:
    with temporary_harness() as th:
        build(th)
        th.run("triage", {"id": "seed"}, run_id="seed")
        yield th


def _paths(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route, path parameters filled in."""
    out = []
    for route in app.routes:
        assert isinstance(route, Route)
        path = re.sub(r"\{[^}]+\}", "seed", route.path)
        for method in sorted(route.methods or {"GET"}):
            if method != "HEAD":
                out.append((method, path))
    return out


class Answer:
    def __init__(self, response: httpx.Response, text: str) -> None:
        self.status_code, self.headers, self.text = response.status_code, response.headers, text


def _call(client: TestClient, method: str, path: str, **kw: Any) -> Answer:
    if path == "/api/stream":  # an endless stream: its status and first line are enough
        kw.setdefault("params", {"seen": "x"})
        with client.stream(method, path, **kw) as response:
            return Answer(response, next(response.iter_text(), ""))
    response = client.request(method, path, **kw)
    return Answer(response, response.text)


def test_every_route_needs_the_token(dash: tether.Harness) -> None:
    app = create_app(dash, token=TOKEN)
    routes = _paths(app)
    assert len(routes) >= 15 and ("POST", "/api/events") in routes
    with TestClient(app, follow_redirects=False) as client:
        for method, path in routes:
            if path == "/login":
                continue
            response = _call(client, method, path)
            assert response.status_code == 401, (method, path, response.status_code)
            wrong = _call(client, method, path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401, (method, path)
        for method, path in routes:
            if path in ("/api/stream", "/login"):
                continue
            ok = _call(client, method, path, headers={"Authorization": f"Bearer {TOKEN}"}, json={})
            assert ok.status_code not in (401, 403), (method, path, ok.text[:200])
        # Signing in sets a cookie that is not the token, and the cookie works.
        assert client.post("/login", data={"token": "nope"}).status_code == 401
        login = client.post("/login", data={"token": TOKEN})
        assert login.status_code == 303
        cookie = login.cookies[COOKIE]
        assert TOKEN not in cookie
        assert "httponly" in login.headers["set-cookie"].lower()
        assert "samesite=strict" in login.headers["set-cookie"].lower()
        client.cookies.clear()
        assert client.get("/api/runs").status_code == 401
        client.cookies.set(COOKIE, cookie)
        assert client.get("/api/runs").status_code == 200


def test_without_a_token_only_loopback_is_served(dash: tether.Harness) -> None:
    app = create_app(dash, token="")
    with TestClient(app, client=("203.0.113.7", 4242)) as remote:
        refused = remote.get("/api/runs")
        assert refused.status_code == 403
        assert "TETHER_DASHBOARD_TOKEN" in refused.json()["error"]
        assert remote.get("/runs").status_code == 403
    with TestClient(app, client=("127.0.0.1", 4242), base_url="http://127.0.0.1:8288") as local:
        assert local.get("/api/runs").status_code == 200
        # A page of another site that resolves its name to 127.0.0.1 (DNS rebinding).
        rebound = local.get("/api/runs", headers={"Host": "attacker.example:8288"})
        assert rebound.status_code == 403 and "loopback names" in rebound.json()["error"]
        assert local.get("/api/runs", headers={"Host": "localhost:8288"}).status_code == 200
        assert local.get("/api/runs", headers={"Host": "[::1]:8288"}).status_code == 200
    # With a token, any address may connect (and must authenticate).
    with TestClient(create_app(dash, token=TOKEN), client=("203.0.113.7", 1)) as remote:
        assert remote.get("/api/runs").status_code == 401
        ok = remote.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://attacker.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:9999"},
    ],
)
def test_cross_site_state_changes_are_refused(
    dash: tether.Harness, headers: dict[str, str]
) -> None:
    queued = dash.enqueue("sleeper").run_id
    with TestClient(create_app(dash, token=TOKEN), base_url="http://127.0.0.1:8288") as client:
        client.get("/login", params={"token": TOKEN})  # a browser with a session
        for path, body in (
            (f"/api/runs/{queued}/cancel", None),
            ("/api/runs/seed/replay", {}),
            ("/api/events", {"name": "ticket.created", "data": {}}),
        ):
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 403, (path, response.text)
            assert "cross-site" in response.json()["error"]
        assert dash.get_run(queued).status is tether.RunStatus.QUEUED
        assert [r.id for r in dash.list_runs("triage")] == ["seed"]
        # The pages' own same-origin fetches go through.
        same = {"Origin": "http://127.0.0.1:8288", "Sec-Fetch-Site": "same-origin"}
        assert client.post(f"/api/runs/{queued}/cancel", headers=same).status_code == 200
        # Reads are not state changes: a cross-site GET is answered (and needs the session).
        assert client.get("/api/runs", headers=headers).status_code == 200


def test_request_bodies_are_capped(dash: tether.Harness) -> None:
    app = create_app(dash, token="", max_body_bytes=2048)
    with TestClient(app) as client:
        big = {"name": "ticket.created", "data": {"text": "x" * 4000}}
        declared = client.post("/api/events", json=big)
        assert declared.status_code == 413 and "2048 bytes" in declared.json()["error"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: caught while reading
            yield b'{"name": "ticket.created", "data": {"text": "'
            for _ in range(10):
                yield b"x" * 500
            yield b'"}}'

        streamed = client.post("/api/events", content=chunks())
        assert streamed.status_code == 413
        assert [r.id for r in dash.list_runs("triage")] == ["seed"]  # nothing was accepted
        small = client.post("/api/events", json={"name": "ticket.created", "data": {"id": "s"}})
        assert small.status_code == 200


def test_security_headers_on_every_response(dash: tether.Harness) -> None:
    with TestClient(create_app(dash, token=TOKEN)) as client:
        for response in (client.get("/runs"), client.get("/api/runs"), client.get("/login")):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"


def test_no_secret_in_any_response_or_log(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("cryptography")
    from tether.store.encryption import generate_key

    key = generate_key()
    monkeypatch.setenv("TETHER_ENCRYPTION_KEY", key)
    monkeypatch.setenv("TETHER_DASHBOARD_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    th = tether.Harness(f"sqlite:///{tmp_path / 'secret.db'}")
    try:
        build(th)
        th.run("triage", {"id": "seed"}, run_id="seed")
        app = create_app(th)  # the token from the variable
        with TestClient(app, follow_redirects=False) as client:
            for auth in (
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": f"Bearer {TOKEN}"},
            ):
                for method, path in _paths(app):
                    for body in (
                        None,
                        {"name": "ticket.created", "data": {"id": "x"}},
                        {"from_step": 1},
                    ):
                        r = _call(client, method, path, headers=auth, json=body)
                        seen.append(f"{r.status_code} {r.headers!r} {r.text}")
            for given in ("", "wrong", TOKEN):  # the form posts the token: no URL holds it
                r = client.post("/login", data={"token": given})
                seen.append(f"{r.status_code} {r.headers!r} {r.text}")
            assert r.status_code == 303 and COOKIE in r.cookies
            r = client.get("/login")
            assert "type='password'" in r.text
            seen.append(r.text)
        # An error path that names keys: a store opened with the wrong one.
        with pytest.raises(tether.EncryptionKeyError) as info:
            _ = tether.Harness(
                f"sqlite:///{tmp_path / 'secret.db'}", encryption_key=generate_key()
            ).store
        seen.append(str(info.value))
        seen.append(repr(th.store.codec))
    finally:
        th.close()
    logs = "\n".join(
        [r.getMessage() for r in caplog.records] + [str(r.exc_info) for r in caplog.records]
    )
    assert len(seen) > 50
    for secret in (TOKEN, key):
        for text in seen:
            assert secret not in text, text[:300]
        assert secret not in logs


def test_text_search_over_encrypted_payloads_matches_run_ids_only(tmp_path: Any) -> None:
    pytest.importorskip("cryptography")
    from tether.store.encryption import generate_key

    th = tether.Harness(f"sqlite:///{tmp_path / 'enc.db'}", encryption_key=generate_key())
    try:
        build(th)
        th.run("triage", {"id": "findme-word"}, run_id="run-abc123")
        with TestClient(create_app(th, token="")) as client:
            page = client.get("/runs")
            assert "payloads are encrypted" in page.text
            assert client.get("/api/runs", params={"q": "findme"}).json()["runs"] == []
            found = client.get("/api/runs", params={"q": "abc12"}).json()["runs"]
            assert [r["id"] for r in found] == ["run-abc123"]
            shown = client.get("/api/runs/run-abc123").json()  # decrypted for display
            assert "findme-word" in json.dumps(shown)
    finally:
        th.close()
