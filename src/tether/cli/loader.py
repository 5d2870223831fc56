"""Load an APP reference (``module:harness``, ``path/to/app.py`` or ``app.py:th``)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from tether.cli.stores import store_url
from tether.errors import ConfigurationError
from tether.harness import Harness


def _import(target: str) -> ModuleType:
    if target.endswith(".py") or os.sep in target:
        path = Path(target).resolve()
        if not path.exists():
            raise ConfigurationError(f"APP file {target} does not exist")
        sys.path.insert(0, str(path.parent))
        name = path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigurationError(f"cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"cannot import APP module {target!r} ({exc}); pass module:harness with the "
            "module on PYTHONPATH, or a path to a .py file"
        ) from None


def load_app(ref: str, store: str | None = None) -> Harness:
    """Import APP and return its Harness; ``store`` overrides the harness's store URL."""
    module_ref, _, attr = ref.partition(":")
    if ref.count(":") == 1 and len(module_ref) == 1:  # a Windows drive letter
        module_ref, attr = ref, ""
    if store:
        os.environ["TETHER_STORE"] = store
    module = _import(module_ref)
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Harness):
            raise ConfigurationError(f"{module_ref}:{attr} is not a tether.Harness")
        harness = found
    else:
        harnesses = [v for v in vars(module).values() if isinstance(v, Harness)]
        if len(harnesses) != 1:
            raise ConfigurationError(
                f"{module_ref} defines {len(harnesses)} tether.Harness objects; name one: "
                f"{module_ref}:<variable>"
            )
        harness = harnesses[0]
    if store and harness._store is None:
        harness._store_arg = store
    return harness


def raw_store_url(harness: Harness) -> str | None:
    """The URL ``harness`` opens its store from (password included), or None when it was
    given a ``Store`` object."""
    arg = harness._store_arg
    if arg is not None and not isinstance(arg, str):
        return None
    return store_url(arg)
