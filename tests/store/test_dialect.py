"""The shared statements' spelling, as each backend receives it (``store/dialect.py``)."""

from __future__ import annotations

from tether.store.dialect import POSTGRES, SQLITE


def test_sqlite_keeps_the_spelling_and_drops_casts_and_locks() -> None:
    sql = "SELECT ?::text, x FROM runs WHERE id=? AND a {same} ?{share}"
    assert SQLITE.q(sql) == "SELECT ?, x FROM runs WHERE id=? AND a IS ?"
    assert SQLITE.q("UPDATE runs SET lease_token={next_token}") == (
        "UPDATE runs SET lease_token=lease_token + 1"
    )
    assert SQLITE.q("SELECT :now + 1, '::' ") == "SELECT :now + 1, '::' "


def test_postgres_markers_named_parameters_and_percent_signs() -> None:
    sql = "SELECT ?::text WHERE a {same} ? AND b LIKE '%x' AND c=:now AND d::float8 > ?{lock}"
    assert POSTGRES.q(sql) == (
        "SELECT %s::text WHERE a IS NOT DISTINCT FROM %s AND b LIKE '%%x' AND c=%(now)s "
        "AND d::float8 > %s FOR NO KEY UPDATE"
    )
    assert "clock_timestamp()" in POSTGRES.q("{first_token}")
    assert POSTGRES.q("SELECT ':' || k") == "SELECT ':' || k"


def test_lists_and_unindexed_columns() -> None:
    assert SQLITE.in_("id", ["a", "b"]) == ("id IN (?,?)", ["a", "b"])
    assert POSTGRES.in_("id", ("a", "b")) == ("id = ANY(?)", [["a", "b"]])
    assert SQLITE.unindexed("function_id") == "+function_id"
    assert POSTGRES.unindexed("function_id") == "(function_id || '')"


def test_schema_types() -> None:
    text = "CREATE TABLE t (seq {seq}, at {float}, n {bigint}, spec {json}){rowid};"
    assert SQLITE.schema(text) == (
        "CREATE TABLE t (seq INTEGER PRIMARY KEY, at REAL, n INTEGER, spec TEXT) WITHOUT ROWID;"
    )
    assert POSTGRES.schema(text) == (
        "CREATE TABLE t (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "at DOUBLE PRECISION, n BIGINT, spec JSONB);"
    )
