"""The run audit on the dashboard: ``GET /api/audit`` (both stores, behind the token, in
the OpenAPI document, redacted) and the ``/audit`` page in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

import tether
from tether import audit
from tether.dashboard import create_app

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
CHROMIUM = os.environ.get("TETHER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def _app(th: tether.Harness) -> None:
    seen: list[int] = []

    def flaky() -> str:
        seen.append(1)
        if len(seen) == 1:
            raise ConnectionError("refused for alice@example.com")
        return "ok"

    @th.function(id="triage", retries=tether.Retry(max_attempts=2, initial=0.01, jitter=False))
    def triage(ctx: tether.SyncContext) -> str:
        return str(ctx.step.run("fetch", flaky))

    th.run(triage)


@pytest.fixture
def dash(store_url: str) -> Iterator[tether.Harness]:
    th = tether.Harness(store_url)
    _app(th)
    yield th
    th.close()


@BOTH
def test_api_audit_is_the_cli_report_redacted(dash: tether.Harness) -> None:
    with TestClient(create_app(dash, token="s3cret-token")) as client:
        assert client.get("/api/audit").status_code == 401
        auth = {"Authorization": "Bearer s3cret-token"}
        doc = client.get("/api/audit?since=7d&function=triage", headers=auth).json()
        direct = audit.runs(dash, since="7d", function="triage").to_dict()
        assert doc["runs"] == direct["runs"] == 1
        assert doc["retries_absorbed"] == direct["retries_absorbed"] == 1
        assert doc["tax_by_cause"] == direct["tax_by_cause"]
        (failure,) = doc["failures"]
        assert "alice@example.com" not in failure["message"] and "[REDACTED]" in failure["message"]
        bad = client.get("/api/audit?since=whenever", headers=auth)
        assert bad.status_code == 400 and "since" in bad.json()["error"]
        spec = client.get("/api/openapi.json", headers=auth).json()
        params = {p["name"] for p in spec["paths"]["/api/audit"]["get"]["parameters"]}
        assert params == {"since", "function"}


def test_audit_page_in_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium browser (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.dashboard.conftest import serving

    th = tether.Harness(f"sqlite:///{tmp_path / 'dash.db'}")
    _app(th)
    try:
        with serving(th, worker=False) as server, sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--headless", "--disable-gpu"]
            )
            page: Any = browser.new_page(viewport={"width": 1280, "height": 1200})
            page.goto(f"{server.url}/runs")
            page.click("text=Audit")
            page.wait_for_url("**/audit")
            sync_api.expect(page.locator("#headline")).to_contain_text("retries absorbed")
            for chart in ("#tax-chart", "#errors-chart", "#latency-chart"):
                sync_api.expect(page.locator(chart)).to_be_visible()
            assert page.locator("#tax-chart rect.cause-failed_attempts").count() >= 1
            sync_api.expect(page.locator("#audit-steps")).to_contain_text("fetch")
            sync_api.expect(page.locator("#audit-failures")).to_contain_text("[REDACTED]")
            page.fill("input[name=since]", "soon")
            page.click("form.filters button")
            sync_api.expect(page.locator("#audit-error")).to_contain_text("since")
            page.select_option("select[name=function]", "triage")
            page.fill("input[name=since]", "1d")
            page.click("form.filters button")
            sync_api.expect(page.locator("#audit-functions")).to_contain_text("triage")
            artifacts = Path(os.environ.get("TETHER_TEST_ARTIFACTS", "test-artifacts"))
            artifacts.mkdir(exist_ok=True)
            page.screenshot(path=str(artifacts / "audit-page.png"), full_page=True)
            browser.close()
    finally:
        th.close()
