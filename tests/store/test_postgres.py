"""What only the PostgreSQL store has to get right: concurrent writers on one database.

Fencing under READ COMMITTED, concurrency keys under racing claimers, wake-ups through
LISTEN/NOTIFY, migrations raced by several processes, and the errors a user sees for an
unreachable server, a missing database or role, a newer schema and a missing extra.
Each test works in a schema of its own in the ``test`` database.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import tether
from tests.conftest import drop_schema, pg_schema_url, require_postgres
from tether.errors import ConfigurationError, SchemaVersionError, StoreCorrupt, StoreError
from tether.store import migrations, open_store
from tether.store.base import FlowPlan, NewRun, StepWrite
from tether.store.dialect import SQLITE

LATEST = migrations.scripts(SQLITE)[-1][0]  # the schema version a new store gets

pytestmark = pytest.mark.postgres


@pytest.fixture
def schema() -> Iterator[str]:
    require_postgres()
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    drop_schema(name)


def _raw(schema: str) -> Any:
    import psycopg

    conn = psycopg.connect(require_postgres(), autocommit=True)
    conn.execute(f'SET search_path TO "{schema}"')
    return conn


def _run(rid: str, flow: FlowPlan | None = None, due: float = 0.0) -> NewRun:
    return NewRun(rid, "f", "e", "{}", None, 0.0, due, flow=flow)


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    limit = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < limit, "timed out"
        time.sleep(0.01)


def test_a_worker_whose_lease_moves_mid_write_commits_nothing(schema: str) -> None:
    """The takeover's claim is in flight (row updated, not committed) when the old owner
    checkpoints: the checkpoint waits for the claim, re-reads the row and is fenced."""
    url = pg_schema_url(schema)
    store = open_store(url)
    raw = _raw(schema)
    try:
        _, _, claim = store.create_run(_run("r1"), now=1.0, owner="old", ttl=30)
        assert claim is not None and claim.token > 1_000_000_000_000
        raw.execute("BEGIN")
        raw.execute("UPDATE runs SET lease_token=lease_token+1, lease_owner='new' WHERE id='r1'")
        outcome: list[BaseException | bool] = []

        def checkpoint() -> None:
            try:
                step = StepWrite("s1", 0, "run", "completed", 1.0, 2.0, output="1")
                outcome.append(store.save_step("r1", claim.token, step))
            except BaseException as exc:
                outcome.append(exc)

        writer = threading.Thread(target=checkpoint)
        writer.start()
        with _raw(schema) as watch:  # the checkpoint is waiting on the run's row lock

            def blocked() -> bool:
                rows = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type='Lock' "
                    "AND query LIKE '%%INSERT INTO steps%%'"
                ).fetchone()
                return bool(rows[0])

            _wait(blocked)
        raw.execute("COMMIT")
        writer.join(10)
        assert len(outcome) == 1 and type(outcome[0]).__name__ == "Fenced"
        assert raw.execute("SELECT count(*) FROM steps").fetchone() == (0,)
        # The new owner's token writes; the old one stays fenced.
        assert (
            store.save_step(
                "r1", claim.token + 1, StepWrite("s1", 0, "run", "completed", 1, 2, "1")
            )
            is False
        )
        with pytest.raises(Exception, match="r1") as info:
            store.finish("r1", claim.token, "completed", "1", None, 3.0)
        assert type(info.value).__name__ == "Fenced"
    finally:
        raw.close()
        store.close()


def _race(stores: list[Any], fn: Any) -> None:
    start = threading.Barrier(len(stores))

    def one(k: int) -> None:
        start.wait()
        fn(k, stores[k])

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


@pytest.mark.parametrize("round_", range(3))
def test_racing_keyed_claims_never_exceed_the_limit(schema: str, round_: int) -> None:
    """Six processes' worth of stores claim at the same instant: the key allows two."""
    url = pg_schema_url(schema)
    stores = [open_store(url) for _ in range(6)]
    try:
        for i in range(20):
            stores[0].create_run(_run(f"r{i}", FlowPlan(concurrency=[("k", 2)])), now=1.0)
        claimed: list[str] = []

        def claim(k: int, store: Any) -> None:
            got = store.claim(f"w{k}", 5, ["f"], 2.0, 30.0, keyed=True)
            claimed.extend(c.run_id for c in got)

        _race(stores, claim)
        with _raw(schema) as raw:
            (running,) = raw.execute("SELECT count(*) FROM runs WHERE status='running'").fetchone()
        assert len(claimed) == running == 2
    finally:
        for s in stores:
            s.close()


@pytest.mark.parametrize("control", ["rate", "throttle", "singleton"])
def test_racing_creators_decide_one_after_the_other(schema: str, control: str) -> None:
    """Four processes' worth of stores create runs for one key at the same instant."""
    url = pg_schema_url(schema)
    stores = [open_store(url) for _ in range(4)]
    plan = {
        "rate": FlowPlan(rate=("k", 5, 60.0)),
        "throttle": FlowPlan(throttle=("k", 3, 60.0)),
        "singleton": FlowPlan(singleton=("k", "skip")),
    }[control]
    try:
        _race(
            stores,
            lambda k, store: [store.create_run(_run(f"r{k}-{i}", plan), now=1.0) for i in range(6)],
        )
        with _raw(schema) as raw:
            rows = raw.execute("SELECT status, due_at FROM runs ORDER BY due_at").fetchall()
        assert len(rows) == 24
        live = [due for status, due in rows if status != "skipped"]
        if control == "rate":
            assert len(live) == 5
        elif control == "singleton":
            assert len(live) == 1
        else:  # no 60 s window holds more than three starts
            assert all(
                later - earlier >= 60 for earlier, later in zip(live, live[3:], strict=False)
            )
    finally:
        for s in stores:
            s.close()


def test_plain_claims_never_hand_one_run_to_two_workers(schema: str) -> None:
    url = pg_schema_url(schema)
    stores = [open_store(url) for _ in range(4)]
    try:
        for i in range(200):
            stores[0].create_run(_run(f"r{i}"), now=1.0)
        claimed: list[str] = []

        def claim(k: int, store: Any) -> None:
            while got := store.claim(f"w{k}", 7, ["f"], 2.0, 30.0):
                claimed.extend(c.run_id for c in got)

        _race(stores, claim)
        assert sorted(claimed) == sorted(f"r{i}" for i in range(200))
    finally:
        for s in stores:
            s.close()


def test_another_process_is_woken_by_notify_not_by_polling(schema: str) -> None:
    url = pg_schema_url(schema)
    sender, listener = open_store(url), open_store(url)
    woken = threading.Event()
    try:
        listener.add_listener(woken.set)
        _wait(lambda: woken.is_set())  # the listener announces itself once connected
        woken.clear()
        started = time.monotonic()
        sender.create_run(_run("r1"), now=1.0)
        assert woken.wait(5)
        print(f"\nNOTIFY wake-up across stores: {(time.monotonic() - started) * 1000:.1f} ms")
    finally:
        sender.close()
        listener.close()


def test_racing_migrations_apply_once(schema: str) -> None:
    url = pg_schema_url(schema)
    versions: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            store = open_store(url)
            versions.append(store.migrate())
            store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [] and versions == [LATEST] * 4


def test_a_newer_schema_is_refused_with_the_fix(schema: str) -> None:
    url = pg_schema_url(schema)
    open_store(url).close()
    with _raw(schema) as raw:
        raw.execute("UPDATE tether_meta SET value='999' WHERE key='schema_version'")
    with pytest.raises(SchemaVersionError, match=r"schema version 999.*pip install -U tether"):
        open_store(url)


def test_another_apps_tables_are_not_touched(schema: str) -> None:
    with _raw(schema) as raw:
        raw.execute(f'CREATE SCHEMA "{schema}"')
        raw.execute("CREATE TABLE runs (x int)")
    with pytest.raises(StoreCorrupt, match=r"\?schema=tether"):
        open_store(pg_schema_url(schema))


def test_unreachable_server_names_the_url_without_the_password() -> None:
    url = "postgresql://tether:s3cret@127.0.0.1:1/db"
    with pytest.raises(StoreError) as info:
        tether.Harness(url).store  # noqa: B018
    text = str(info.value)
    assert "s3cret" not in text and "postgresql://tether:***@127.0.0.1:1/db" in text
    assert "pg_isready" in text


def test_missing_database_and_role_say_what_to_create() -> None:
    base = require_postgres().rsplit("/", 1)[0]
    with pytest.raises(StoreError, match="createdb"):
        open_store(f"{base}/no_such_db_{uuid.uuid4().hex[:6]}")
    with pytest.raises(StoreError, match="user name and password"):
        open_store("postgresql://no_such_role:pw@127.0.0.1:5432/test")


def test_an_unknown_url_parameter_is_named_with_the_fix() -> None:
    with pytest.raises(StoreError, match=r'"timeout".*remove or correct the URL query'):
        open_store(f"{require_postgres()}?timeout=3")


def test_the_listener_reconnects_after_losing_its_connection(schema: str) -> None:
    url = pg_schema_url(schema)
    sender, listener = open_store(url), open_store(url)
    woken = threading.Event()
    try:
        listener.add_listener(woken.set)
        _wait(lambda: woken.is_set())
        woken.clear()
        with _raw(schema) as raw:
            (killed,) = raw.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%%' AND application_name = %s",
                (f"tether/{schema}",),
            ).fetchone()
        assert killed == 1
        _wait(lambda: woken.is_set())  # reconnected: it catches up with one wake-up
        woken.clear()
        sender.create_run(_run("r1"), now=1.0)
        assert woken.wait(5)
    finally:
        sender.close()
        listener.close()


@pytest.mark.parametrize(
    ("query", "problem"),
    [("schema=My-Schema", "lowercase identifier"), ("pool_size=many", "pool_size must be")],
)
def test_bad_url_options_are_configuration_errors(query: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        open_store(f"{require_postgres()}?{query}")


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigurationError, match=r'pip install "tether\[postgres\]"'):
        open_store("postgresql://postgres@127.0.0.1/test")


def test_durability_modes_set_synchronous_commit(schema: str) -> None:
    for mode, expected in (("process", "off"), ("power", "on")):
        store = open_store(pg_schema_url(schema), durability=mode)
        try:
            with store._db.pool.connection() as conn:  # type: ignore[attr-defined]
                assert conn.execute("SHOW synchronous_commit").fetchone() == (expected,)
        finally:
            store.close()


def test_concurrent_checkpoints_share_transactions(schema: str) -> None:
    th = tether.Harness(pg_schema_url(schema), durability="power")
    try:

        @th.function()
        def five(ctx: tether.SyncContext) -> int:
            return sum(ctx.step.run(f"s{i}", lambda i=i: i) for i in range(5))

        handles = [th.enqueue(five) for _ in range(40)]
        store: Any = th.store
        before_ops, before_commits = store.operations, store.commits
        with th.worker(concurrency=8):
            assert [h.result(timeout=60) for h in handles] == [10] * 40
        ops, commits = store.operations - before_ops, store.commits - before_commits
        print(f"\n{ops} writes in {commits} PostgreSQL transactions")
        assert ops >= 40 * 6 and ops / commits >= 1.5
    finally:
        th.close()


def test_a_connection_killed_mid_step_loses_no_step_result(schema: str) -> None:
    """The server drops tether's connections while a step runs: the checkpoint is retried
    on a new connection and the step is not executed again."""
    calls: list[str] = []
    th = tether.Harness(pg_schema_url(schema))

    def kill_connections() -> int:
        calls.append("cut")
        with _raw(schema) as raw:
            raw.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (f"tether/{schema}",),
            )
        return 7

    @th.function()
    def cut(ctx: tether.SyncContext) -> int:
        first = ctx.step.run("cut", kill_connections)
        return first + ctx.step.run("after", lambda: 1)

    try:
        assert th.run(cut, timeout=30) == 8
        assert calls == ["cut"]
        run = th.list_runs("cut")[0]
        assert run.status == "completed"
    finally:
        th.close()


def test_tether_migrate_on_postgres_names_the_store_without_its_password(schema: str) -> None:
    from typer.testing import CliRunner

    from tether.cli import app

    url = pg_schema_url(schema).replace("postgres@", "postgres:s3cret@", 1)
    result = CliRunner().invoke(app, ["migrate", "--store", url])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert f"schema version {LATEST}" in output and "s3cret" not in output and ":***@" in output
    with _raw(schema) as raw:
        assert raw.execute("SELECT value FROM tether_meta").fetchone() == (str(LATEST),)
