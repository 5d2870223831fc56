"""Subjects fixtures: the tests here run on both stores where they say so with
``BOTH_STORES`` (SQLite file under tmp_path, PostgreSQL schema of its own)."""

from __future__ import annotations

import pytest

BOTH_STORES = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
