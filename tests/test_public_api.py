"""The public names users program against (DESIGN.md section 1)."""

import tether
import tether.testing


def test_all_is_sorted_and_importable() -> None:
    assert list(tether.__all__) == sorted(tether.__all__)
    for name in tether.__all__:
        assert hasattr(tether, name), name


def test_design_names_exist() -> None:
    for name in [
        "Harness",
        "Context",
        "SyncContext",
        "Event",
        "Retry",
        "RunHandle",
        "RunStatus",
        "Run",
        "Step",
        "Attempt",
        "TetherError",
        "StepFailed",
        "RunFailed",
        "RunCancelled",
        "RunTimeout",
        "NonRetriableError",
        "RetryAfterError",
        "NonDeterminismError",
        "on_event",
    ]:
        assert name in tether.__all__, name
    assert issubclass(tether.RunTimeout, TimeoutError)
    for err in (
        tether.StepFailed,
        tether.RunFailed,
        tether.RunCancelled,
        tether.RunTimeout,
        tether.NonRetriableError,
        tether.RetryAfterError,
        tether.NonDeterminismError,
    ):
        assert issubclass(err, tether.TetherError)
    assert [s.value for s in tether.RunStatus] == [
        "queued",
        "running",
        "sleeping",
        "waiting",
        "completed",
        "failed",
        "cancelled",
        "skipped",
    ]
    assert tether.RunStatus("completed") == "completed"
    assert tether.testing.VirtualClock is tether.VirtualClock
