"""The ``entries`` table as a dialect-neutral SQLAlchemy Core ``Table``.

This is what the CEL compiler builds expressions over (``table.c.<column>``). Back ends
create the physical table themselves (DuckDB: ``hub.storage.duckdb``) with the same
columns; dialect details (MAP, JSON operators, Arrow append) live there.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import UserDefinedType

__all__ = ["COLUMNS", "ENDPOINT_FIELDS", "StringMap", "entries_table", "metadata"]


class StringMap(UserDefinedType[dict[str, str]]):
    """A string -> string map (pod labels). DuckDB: ``MAP(VARCHAR, VARCHAR)``;
    another back end may store it as JSON or ``Map(String, String)``."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "MAP(VARCHAR, VARCHAR)"


ENDPOINT_FIELDS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("ip", sa.String()),
    ("port", sa.Integer()),
    ("pod", sa.String()),
    ("namespace", sa.String()),
    ("workload", sa.String()),
    ("service", sa.String()),
    ("node", sa.String()),
    ("labels", StringMap()),
)

metadata = sa.MetaData()


def _columns() -> list[sa.Column[Any]]:
    cols: list[sa.Column[Any]] = [
        sa.Column("id", sa.String(), nullable=False, doc="dedupe key"),
        sa.Column("ts", sa.DateTime(), nullable=False, doc="request start, UTC, µs"),
        sa.Column("elapsed", sa.Float(), doc="seconds; NULL without a response"),
        sa.Column("proto", sa.String(), nullable=False),
    ]
    for side in ("src", "dst"):
        for name, typ in ENDPOINT_FIELDS:
            cols.append(sa.Column(f"{side}_{name}", typ))
    cols += [
        sa.Column("method", sa.String(), doc="request.method"),
        sa.Column("path", sa.String(), doc="request.path, or the DNS name"),
        sa.Column("status", sa.Integer(), doc="response.status"),
        sa.Column("summary", sa.String()),
        sa.Column("error", sa.String()),
        sa.Column("tls", sa.Boolean()),
        sa.Column("node", sa.String()),
        sa.Column("stream", sa.String()),
        sa.Column("idx", sa.Integer()),
        sa.Column("gaps", sa.Integer()),
        sa.Column("redacted", sa.ARRAY(sa.String())),
        sa.Column("request", sa.JSON(), doc="request map without its body"),
        sa.Column("response", sa.JSON(), doc="response map without its body"),
        sa.Column("req_body", sa.LargeBinary()),
        sa.Column("resp_body", sa.LargeBinary()),
    ]
    return cols


entries_table = sa.Table("entries", metadata, *_columns())
"""The one table of entries, appended in ``ts`` order."""

COLUMNS: tuple[str, ...] = tuple(c.name for c in entries_table.columns)
