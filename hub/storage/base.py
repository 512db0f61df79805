"""The storage interface: what the routes need from a back end, nothing dialect-specific.

Filters arrive as SQLAlchemy Core expressions over ``hub.storage.schema.entries_table``
(built by the CEL compiler and the viewer scope); a back end compiles them for its own
dialect and owns its bulk-append path, its maps and JSON operators.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from hub.storage.rows import batch_to_arrow
from hub.storage.schema import entries_table
from kubeweir.entry import Entry

__all__ = ["IngestResult", "Storage", "StorageError"]


class StorageError(RuntimeError):
    """The back end failed (not the caller's input)."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int
    new_ids: frozenset[str] = field(default_factory=frozenset)


class Storage(abc.ABC):
    """A store of entries; thread-safe: one writer at a time, readers alongside."""

    table: sa.Table = entries_table

    def ingest(self, entries: Sequence[Entry]) -> IngestResult:
        """Store a batch all-or-nothing, skipping ids already stored (idempotent).
        Raises ``hub.storage.rows.BatchError`` when the batch cannot be stored as sent."""
        if not entries:
            return IngestResult(0, 0)
        return self.ingest_arrow(*batch_to_arrow(entries))

    @abc.abstractmethod
    def ingest_arrow(self, table: pa.Table, total: int) -> IngestResult:
        """``ingest`` of a batch already in the storage columns by
        ``hub.storage.rows.batch_to_arrow`` (ids distinct; ``total`` entries were sent)."""

    @abc.abstractmethod
    def page(
        self,
        where: ColumnElement[bool],
        limit: int,
        after: tuple[datetime, str] | None = None,
        *,
        with_bodies: bool = False,
    ) -> list[dict[str, Any]]:
        """Newest first, up to ``limit`` rows strictly older than ``after`` = (ts, id).
        Rows are column name -> value."""

    @abc.abstractmethod
    def get(self, entry_id: str, where: ColumnElement[bool]) -> dict[str, Any] | None:
        """One row with its bodies, when it exists and matches ``where``."""

    @abc.abstractmethod
    def iter_rows(
        self, where: ColumnElement[bool], limit: int, *, with_bodies: bool
    ) -> Iterator[dict[str, Any]]:
        """Matching rows oldest first (exports)."""

    @abc.abstractmethod
    def count(self, where: ColumnElement[bool] | None = None) -> int: ...

    @abc.abstractmethod
    def stats(self, where: ColumnElement[bool]) -> dict[str, Any]:
        """``total``, ``by_proto``, ``by_status_class``, ``by_namespace``."""

    @abc.abstractmethod
    def servicemap(self, where: ColumnElement[bool]) -> list[dict[str, Any]]:
        """Workload edges: source/target namespace+workload, count, errors, p50/p95/p99,
        first and last ts."""

    @abc.abstractmethod
    def size_bytes(self) -> int: ...

    @abc.abstractmethod
    def enforce_retention(self, now: datetime) -> int:
        """Delete what is past the age and size limits; returns rows deleted."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start background work (retention)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def ready(self) -> bool: ...

    @abc.abstractmethod
    def sql_engine(self) -> sa.engine.Engine:
        """An SQLAlchemy engine on the same database, for the hub's small tables
        (API tokens, the audit log) that are written row by row."""
