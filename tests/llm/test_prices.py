"""The price table: one source for a local model's context window (issue 9 #15)."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from tether import ConfigurationError, llm
from tether.llm.call import _start
from tether.llm.providers.llamacpp import MODELS


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_local_models_window_is_the_n_ctx_it_runs_with(name: str) -> None:
    n_ctx = MODELS[name].n_ctx
    info = llm.default_prices().lookup("local", name)
    assert info is not None and info.context_window == n_ctx
    assert llm.default_prices().context_window("local", name) == n_ctx
    # a table built from scratch reports it too: the number is not in the data
    assert llm.PriceTable({}).context_window("local", name) == n_ctx


def test_the_bundled_table_does_not_repeat_local_windows() -> None:
    data = json.loads(resources.files("tether.llm").joinpath("prices.json").read_text("utf-8"))
    local = {k: v for k, v in data["models"].items() if k.startswith("local:")}
    assert local and all("context_window" not in v for v in local.values())


def test_a_conflicting_local_window_is_refused_and_changes_nothing() -> None:
    table = llm.PriceTable({"local:gemma-3-270m": {"input": 0.0, "output": 0.0}})
    with pytest.raises(ConfigurationError, match=r"local:gemma-3-270m runs with .* 8192"):
        table.update({"local:gemma-3-270m": {"input": 1.0, "context_window": 32768}})
    info = table.lookup("local", "gemma-3-270m")
    assert info is not None and info.input == 0.0 and info.context_window == 8192
    table.update({"local:gemma-3-270m": {"input": 0.0, "context_window": 8192}})  # agrees: fine


def test_the_window_a_call_budgets_with_is_the_models_n_ctx() -> None:
    pytest.importorskip("llama_cpp")
    state = _start("local:gemma-3-270m", {})
    assert state.routes[0].context_window == MODELS["gemma-3-270m"].n_ctx
