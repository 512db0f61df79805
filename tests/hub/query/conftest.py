"""A real in-memory DuckDB (through duckdb-engine) holding entries stored the way the hub
stores them, and a helper that runs a query on both back ends."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from hub.query import compile_query
from hub.storage.duckdb import migrate
from hub.storage.rows import entries_to_arrow
from hub.storage.schema import COLUMNS, entries_table
from kubeweir.entry import Entry, entry_to_builtins

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

_DEFAULTS: dict[str, str] = {
    **{
        f"{side}_{name}": default
        for side in ("src", "dst")
        for name, default in (
            ("port", "0"), ("pod", "''"), ("namespace", "''"), ("workload", "''"),
            ("service", "''"), ("node", "''"), ("labels", "MAP {}"),
        )
    },
    "summary": "''", "error": "''", "tls": "false", "node": "''", "stream": "''",
    "idx": "0", "gaps": "0", "redacted": "[]", "req_body": "''::BLOB",
    "resp_body": "''::BLOB",
}  # fmt: skip


class Both:
    """Entries loaded into DuckDB and kept as dicts; ``run`` answers with both back ends."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.raw = conn.connection.driver_connection
        self.dicts: dict[str, dict[str, Any]] = {}

    def load(self, entries: Sequence[Entry], *, defaults_as_null: bool = False) -> None:
        """Store ``entries``; with ``defaults_as_null`` the struct defaults ("" , 0, false,
        empty map/list) are stored as NULL, as another store might keep them."""
        self.raw.execute("DELETE FROM entries")
        self.dicts = {e.id: entry_to_builtins(e) for e in entries}
        if not entries:
            return
        batch = entries_to_arrow(list(entries))  # the hub's own row conversion
        self.raw.register("_q_batch", batch)
        cols = ", ".join(COLUMNS)
        source = "_q_batch"
        if batch.column_names == ["e"]:  # JSON text per entry, turned into columns by SQL
            from hub.storage import duckdb as hub_duckdb

            source = f"({hub_duckdb.batch_to_columns_sql('_q_batch')})"  # type: ignore[attr-defined]
        self.raw.execute(f"INSERT INTO entries ({cols}) SELECT {cols} FROM {source}")
        self.raw.unregister("_q_batch")
        if defaults_as_null:
            for col, default in _DEFAULTS.items():
                self.raw.execute(
                    f"UPDATE entries SET {col} = NULL WHERE {col} IS NOT DISTINCT FROM {default}"
                )

    def sql_ids(self, text: str, now: datetime = NOW) -> set[str]:
        where = compile_query(text).where(entries_table, now)
        rows = self.conn.execute(sa.select(entries_table.c.id).where(where))
        return {r[0] for r in rows}

    def py_ids(self, text: str, now: datetime = NOW) -> set[str]:
        q = compile_query(text)
        return {i for i, d in self.dicts.items() if q.matches(d, now)}

    def run(self, text: str, now: datetime = NOW) -> set[str]:
        """The matching ids; fails when the two back ends disagree."""
        sql, py = self.sql_ids(text, now), self.py_ids(text, now)
        assert sql == py, f"{text!r}: SQL {sorted(sql)} != Python {sorted(py)}"
        return sql


@pytest.fixture(scope="module")
def engine() -> Iterator[sa.Engine]:
    eng = sa.create_engine("duckdb:///:memory:", poolclass=sa.pool.StaticPool)
    with eng.connect() as conn:
        migrate(conn.connection.driver_connection)
    yield eng
    eng.dispose()


@pytest.fixture
def both(engine: sa.Engine) -> Iterator[Both]:
    with engine.connect() as conn:
        yield Both(conn)
