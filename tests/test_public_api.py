"""The public names users program against (DESIGN.md section 1)."""

import tether
import tether.testing

#: the errors of section 3 (LLM calls), part of the one tree
LLM_ERRORS = [
    "LLMError",
    "ProviderError",
    "LLMCallFailed",
    "ContextLengthExceeded",
    "ContentFiltered",
    "InvalidOutput",
    "LLMDeadlineExceeded",
    "CostLimitExceeded",
    "StreamInterrupted",
    "MissingExtra",
    "MissingAPIKey",
    "UnknownProvider",
]


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
        *LLM_ERRORS,
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


def test_llm_errors_are_one_tree_importable_from_tether_and_tether_llm() -> None:
    import tether.errors
    import tether.llm

    for name in LLM_ERRORS:
        cls = getattr(tether, name)
        assert cls is getattr(tether.errors, name) is getattr(tether.llm, name), name
        assert issubclass(cls, tether.TetherError)
        assert name in (tether.errors.__doc__ or ""), f"{name} is missing from the errors map"
    assert issubclass(tether.LLMCallFailed, tether.NonRetriableError)
    assert issubclass(tether.LLMDeadlineExceeded, TimeoutError)
    assert issubclass(tether.ContextLengthExceeded, tether.LLMCallFailed)
    assert issubclass(tether.MissingAPIKey, tether.ConfigurationError)
    assert issubclass(tether.ProviderError, tether.LLMError)


def test_testing_is_a_package_with_the_fake_server_and_poll() -> None:
    import importlib.util

    for name in [
        "FakeLLMServer",
        "Fault",
        "Reply",
        "FAULT_KINDS",
        "RecordedRequest",
        "VirtualClock",
        "temporary_harness",
        "temporary_store_url",
        "poll",
        "apoll",
    ]:
        assert name in tether.testing.__all__ and hasattr(tether.testing, name), name
    assert list(tether.testing.__all__) == sorted(tether.testing.__all__)
    assert tether.testing.__path__  # a package: fake_server, fake_wire, fake_script, poll
    # tether.llm holds providers and call policy only
    for module in ("tether.llm.fake_server", "tether.llm.fake_wire"):
        assert importlib.util.find_spec(module) is None, module
