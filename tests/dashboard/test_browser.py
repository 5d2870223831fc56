"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright):
the runs list, a run with a failed-then-retried step, cancel and rerun-from-step."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import tether
from tests.dashboard.conftest import HOSTILE_STEP, Server, wait_for

CHROMIUM = os.environ.get("TETHER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("TETHER_TEST_ARTIFACTS", "test-artifacts"))

if not Path(CHROMIUM).exists():
    pytest.skip(
        "no chromium browser (apt-get install -y chromium; .ci/run installs it)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--headless",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def test_runs_list_run_page_rerun_from_step_and_cancel(live_server: Server, page: Any) -> None:
    th = live_server.harness
    th.send(tether.Event("ticket.created", {"id": "T-1", "email": "carol@example.com"}))
    first = wait_for(
        lambda: next(
            (r for r in th.list_runs("triage") if r.status is tether.RunStatus.COMPLETED), None
        ),
        what="the triage run to complete",
    )

    page.goto(f"{live_server.url}/runs")
    row = page.locator("#runs tr", has_text=first.id)
    sync_api.expect(row).to_contain_text("completed")
    sync_api.expect(row).to_contain_text("triage")
    page.select_option("select[name=status]", "completed")
    page.click("form.filters button")
    sync_api.expect(page.locator("#runs")).to_contain_text(first.id)

    page.click(f"text={first.id}")
    page.wait_for_url(f"**/runs/{first.id}")
    fetch = page.locator("tr.step[data-step=fetch]")
    sync_api.expect(fetch).to_contain_text("1 failed attempt")
    sync_api.expect(page.locator(".attempt").first).to_contain_text("ConnectionError")
    sync_api.expect(fetch.locator(".bar span.err")).to_have_count(1)
    body = page.content()
    assert "carol@example.com" not in body and "alice@example.com" not in body
    assert "sk-live" not in body
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-run.png"), full_page=True)

    # Rerun from the "label" step: a new run reusing "fetch", linked to the first.
    page.locator("tr.step[data-step=label] button.rerun").click()
    page.wait_for_url(lambda url: first.id not in url.split("/runs/")[-1])
    new_id = page.url.rsplit("/", 1)[-1]
    sync_api.expect(page.locator("body")).to_contain_text(f"replay of {first.id}")
    sync_api.expect(page.locator("#run-status")).to_have_text("completed")  # live reload
    rerun = th.get_run(new_id)
    assert rerun.replay_of == first.id and rerun.status is tether.RunStatus.COMPLETED

    # Cancel a sleeping run from its page.
    handle = th.enqueue("sleeper")
    wait_for(lambda: handle.status() is tether.RunStatus.SLEEPING, what="the run to sleep")
    page.goto(f"{live_server.url}/runs/{handle.run_id}")
    sync_api.expect(page.locator("#run-status")).to_have_text("sleeping")
    page.click("#cancel")
    sync_api.expect(page.locator("#run-status")).to_have_text("cancelled")
    assert handle.status() is tether.RunStatus.CANCELLED


def test_send_a_test_event_from_the_events_page(live_server: Server, page: Any) -> None:
    th = live_server.harness
    page.goto(f"{live_server.url}/events")
    page.fill("#send input[name=name]", "ticket.created")
    page.fill("#send input[name=data]", '{"id": "T-9"}')
    page.click("#send button")
    sync_api.expect(page.locator("#sent")).to_contain_text("run_ids")
    wait_for(lambda: th.list_runs("triage"), what="the event's run")
    page.goto(f"{live_server.url}/events")
    sync_api.expect(page.locator("#events")).to_contain_text("ticket.created")
    sync_api.expect(page.locator("#events")).to_contain_text("triage")
    received = page.locator("#events time").first  # a date and time, not epoch seconds
    sync_api.expect(received).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    sync_api.expect(received).to_have_attribute("title", re.compile(r"\(epoch \d+(\.\d+)?\)$"))
    page.goto(f"{live_server.url}/functions")
    sync_api.expect(page.locator("#functions")).to_contain_text("triage")


def test_ids_with_quotes_and_markup_stay_data(live_server: Server, page: Any) -> None:
    th = live_server.harness
    run_id = "o'brien\"<i>"
    th.run("quoted", run_id=run_id)
    page.goto(f"{live_server.url}/runs/{quote(run_id, safe='')}")
    sync_api.expect(page.locator("#run-status")).to_have_text("completed")
    step = page.locator("tr.step").first
    sync_api.expect(step).to_contain_text(HOSTILE_STEP)  # shown as text, not markup
    step.locator("button.rerun").click()
    page.wait_for_url(lambda url: "brien" not in url)
    sync_api.expect(page.locator("#run-status")).to_have_text("completed")
    assert page.title() != "pwned"
    rerun = th.get_run(page.url.rsplit("/", 1)[-1])
    assert rerun.replay_of == run_id


def test_window_page_and_a_runs_context_report(live_server: Server, page: Any) -> None:
    from tests.dashboard.test_windows import windowed_run
    from tether.testing import FakeLLMServer

    with FakeLLMServer() as server:
        run_id = windowed_run(live_server.harness, server)
    page.goto(f"{live_server.url}/windows")
    page.click("text=support/1")
    page.wait_for_url("**/windows/support/1")
    sync_api.expect(page.locator("#pins")).to_contain_text("ACC-7781")
    sync_api.expect(page.locator("#artifacts tr.artifact")).to_have_count(1)
    sync_api.expect(page.locator("#items tr.item")).to_have_count(5)
    sync_api.expect(page.locator("#items .report").last).to_contain_text("tool_results")
    page.goto(f"{live_server.url}/runs/{run_id}")
    row = page.locator("tr.step[data-step=answer]")
    row.locator("xpath=following-sibling::tr[1]").locator("summary").click()
    report = page.locator(".context-report").last
    sync_api.expect(report).to_be_visible()
    sync_api.expect(report).to_contain_text("stubbed 1")
    report.locator("a").click()
    page.wait_for_url("**/windows/support/1")


def test_a_subjects_page_deletes_memories_saves_preferences_exports_and_forgets(
    tmp_path: Path, page: Any
) -> None:
    from tests.dashboard.conftest import serving

    th = tether.Harness(f"sqlite:///{tmp_path / 'subjects.db'}", embedder=None)
    subject = th.subject("user:42")
    hostile = "<img src=x onerror=\"document.title='pwned'\"> likes tea"
    first = subject.memory.add(hostile)
    subject.memory.add("lives in Lyon")
    subject.preferences["memory"] = True
    with serving(th, worker=False) as server:
        page.goto(f"{server.url}/subjects")
        page.click("#subjects a:text('user:42')")
        page.wait_for_url("**/subjects/user*42")
        rows = page.locator("#memories tr[data-id]")
        sync_api.expect(rows).to_have_count(2)
        sync_api.expect(rows.first.locator(".text")).to_have_text(hostile)  # text, not markup
        assert page.title() != "pwned"

        page.locator(f"button.delete-memory[data-id='{first.id}']").click()
        sync_api.expect(rows).to_have_count(1)
        sync_api.expect(page.locator("#flash")).to_contain_text(f"deleted memory {first.id}")
        assert [m.text for m in th.memory("user:42").list()] == ["lives in Lyon"]

        prefs = page.locator("#preferences textarea")
        prefs.fill("{nope")
        page.click("#preferences button")
        sync_api.expect(page.locator("#prefs-result")).to_contain_text("error: not JSON")
        prefs.fill('{"memory": false, "lang": "fr"}')
        page.click("#preferences button")
        sync_api.expect(page.locator("#prefs-result")).to_contain_text("saved")
        assert th.subject("user:42").preferences.load() == {"memory": False, "lang": "fr"}

        href = page.locator("#export").get_attribute("href")
        exported = page.request.get(server.url + str(href)).json()
        assert exported["subject"] == "user:42"
        assert [m["text"] for m in exported["memories"]] == ["lives in Lyon"]  # deleted is gone
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-subject.png"), full_page=True)

        page.on("dialog", lambda dialog: dialog.accept())
        page.click("#forget")
        sync_api.expect(page.locator("#flash")).to_contain_text("forgotten")
        assert th.subjects() == []
        page.goto(f"{server.url}/subjects/user:42")
        sync_api.expect(page.locator("h2")).to_have_text("Subject not found")
    th.close()
