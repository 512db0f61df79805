"""DuckDB back end: one writer connection, reader cursors, Arrow bulk append.

Everything DuckDB-specific lives here: the DDL (``MAP``, ``JSON``), the versioned
migrations, the JSON-to-columns ingest statement, quantiles, size accounting and the
background retention thread. Filters come in as SQLAlchemy Core expressions and are
compiled with the duckdb-engine dialect into ``?`` placeholders and bound values.
"""

from __future__ import annotations

import logging
import operator
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from typing import Any, cast

import duckdb
import pyarrow as pa
import sqlalchemy as sa
from duckdb_engine import Dialect as _DuckDBDialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from hub.storage.base import IngestResult, Storage, StorageError
from hub.storage.recent import RecentIds
from hub.storage.rows import BatchError
from hub.storage.schema import COLUMNS, entries_table

__all__ = ["MIGRATIONS", "DuckDBStorage", "migrate"]

log = logging.getLogger(__name__)

Migration = Callable[[duckdb.DuckDBPyConnection], None]

_ENDPOINT_DDL = """
    {s}_ip VARCHAR, {s}_port INTEGER, {s}_pod VARCHAR, {s}_namespace VARCHAR,
    {s}_workload VARCHAR, {s}_service VARCHAR, {s}_node VARCHAR,
    {s}_labels MAP(VARCHAR, VARCHAR),"""


def _v1_entries(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE entries (id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, elapsed DOUBLE,"
        " proto VARCHAR NOT NULL,"
        + _ENDPOINT_DDL.format(s="src")
        + _ENDPOINT_DDL.format(s="dst")
        + " method VARCHAR, path VARCHAR, status INTEGER, summary VARCHAR, error VARCHAR,"
        " tls BOOLEAN, node VARCHAR, stream VARCHAR, idx INTEGER, gaps INTEGER,"
        " redacted VARCHAR[], request JSON, response JSON, req_body BLOB, resp_body BLOB)"
    )


MIGRATIONS: tuple[Migration, ...] = (_v1_entries,)
"""Ordered; migration ``i`` (from 0) brings the schema to version ``i + 1``. Append only."""


def migrate(con: duckdb.DuckDBPyConnection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database to the newest schema version; returns that version."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    # fetchall: a half-read result would block the next register() on this connection
    rows = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
    current = int(rows[0][0]) if rows else 0
    if current > len(migrations):
        raise StorageError(
            f"the database is at schema version {current}, newer than this hub "
            f"({len(migrations)}); upgrade the hub"
        )
    for version in range(current + 1, len(migrations) + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            migrations[version - 1](con)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        log.info("storage migrated to schema version %d", version)
    return len(migrations)


_COLS = ", ".join(COLUMNS)
# Rows the in-memory index (``RecentIds``) has already de-duplicated, sorted by ts: the
# same statement as a bare append.
_APPEND_SQL = f"INSERT INTO entries ({_COLS}) SELECT {_COLS} FROM _kw_batch"

# Windows the index does not cover (a late batch): skip ids already stored near the
# batch's time range (the ``ts`` filter lets DuckDB skip row groups by their min/max),
# append the rest in time order.
_INSERT_SQL = f"""
INSERT INTO entries ({_COLS})
SELECT {_COLS} FROM _kw_batch AS b
WHERE NOT EXISTS (
  SELECT 1 FROM entries AS o WHERE o.id = b.id AND o.ts BETWEEN ? AND ?
)
ORDER BY b.ts
RETURNING id
"""

# The same for a group of batches: each row carries its own batch's window.
_GROUP_INSERT_SQL = f"""
INSERT INTO entries ({_COLS})
SELECT {_COLS} FROM _kw_batch AS b
WHERE NOT EXISTS (
  SELECT 1 FROM entries AS o
  WHERE o.id = b.id AND o.ts BETWEEN ? AND ? AND o.ts BETWEEN b._lo AND b._hi
)
ORDER BY b.ts
RETURNING id
"""
_TS = pa.timestamp("us")


@dataclass(eq=False, slots=True)
class _Pending:
    """A batch waiting for the write lock, and what became of it. ``table`` holds the
    batch's distinct ids sorted by ts; ``ids``/``ts`` are its id and ts (µs) columns;
    ``start``/``end`` its dedupe window (µs)."""

    table: pa.Table
    ids: list[str]
    ts: list[int]
    start: int
    end: int
    total: int
    result: IngestResult | None = None
    error: Exception | None = None

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None


_LIST_COLUMNS = tuple(c for c in COLUMNS if c not in ("req_body", "resp_body"))


class DuckDBStorage(Storage):
    """Entries in a DuckDB file (or ``:memory:``)."""

    def __init__(
        self,
        path: str = ":memory:",
        *,
        dedupe_window: float = 300.0,
        retention_max_age: float | None = None,
        retention_max_bytes: int | None = None,
        retention_interval: float = 30.0,
        retention_chunk: int = 100_000,
        page_window: float = 60.0,
        memory_limit: str | None = None,
        checkpoint_threshold: str | None = None,
        migrations: Sequence[Migration] = MIGRATIONS,
        recent_ids: int = 2_000_000,
        recent_slack: float = 120.0,
    ) -> None:
        """``recent_ids`` bounds the in-memory dedupe index (~150 bytes an id); it keeps
        the ids of the newest ``dedupe_window + recent_slack`` seconds of rows, so a batch
        up to ``recent_slack`` seconds behind the newest is de-duplicated without a scan
        (older ones, or all of them once the cap is reached, by an anti-join in SQL)."""
        self.path = path
        self.table = entries_table
        config: dict[str, Any] = {"memory_limit": memory_limit} if memory_limit else {}
        if checkpoint_threshold:
            # fewer, larger checkpoints: measured here, the per-batch commit cost halves
            # from DuckDB's default 16MB to 256MB
            config["checkpoint_threshold"] = checkpoint_threshold
        self._con = duckdb.connect(path, config=config)
        self._write_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._dialect = _DuckDBDialect(paramstyle="qmark")
        self.dedupe_window = timedelta(seconds=dedupe_window)
        self._window_us = round(dedupe_window * 1e6)
        self._recent = RecentIds(round((dedupe_window + recent_slack) * 1e6), recent_ids)
        self.retention_max_age = retention_max_age
        self.retention_max_bytes = retention_max_bytes
        self.retention_interval = retention_interval
        self.retention_chunk = retention_chunk
        self.retention_deleted = 0
        self.writes = 0
        """Ingest statements (each one INSERT and its commit) so far."""
        self.written_batches = 0
        """Batches those statements stored (group commit: several per statement)."""
        self.page_window = timedelta(seconds=page_window)
        self.schema_version = migrate(self._con, migrations)
        self._load_recent()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._bounds: tuple[datetime, datetime] | None = None
        self._engine: sa.engine.Engine | None = None

    # -- plumbing ---------------------------------------------------------------------

    def compile(self, stmt: sa.ClauseElement) -> tuple[str, list[Any]]:
        """SQL text with ``?`` placeholders and the bound values, in order."""
        c = cast(
            SQLCompiler,
            stmt.compile(dialect=self._dialect, compile_kwargs={"render_postcompile": True}),
        )
        params: list[Any] = []
        for name in c.positiontup or ():
            value = c.params[name]
            bind = c.binds.get(name)
            if bind is None:  # an expanded IN list: name_1, name_2 ...
                bind = c.binds.get(name.rsplit("_", 1)[0])
            proc = bind.type._cached_bind_processor(self._dialect) if bind is not None else None
            params.append(proc(value) if proc is not None else value)
        return str(c), params

    @contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._closed:
            raise StorageError("storage is closed")
        cur = self._con.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def _query(self, stmt: sa.ClauseElement) -> tuple[list[str], list[tuple[Any, ...]]]:
        sql, params = self.compile(stmt)
        with self._reader() as cur:
            res = cur.execute(sql, params)
            names = [d[0] for d in res.description or ()]
            return names, res.fetchall()

    # -- writes -----------------------------------------------------------------------

    def ingest_arrow(self, table: pa.Table, total: int) -> IngestResult:
        """Group commit: batches that arrive while another batch holds the write lock are
        written together by whichever thread gets the lock next, in one INSERT and one
        COMMIT (each keeps its own dedupe window and its own result; a group that fails
        is retried batch by batch, so a bad batch fails alone). Duplicates are found in
        the in-memory index of recent ids (``RecentIds``) when it covers the batches'
        windows, so the INSERT is a plain append; otherwise by an anti-join in SQL."""
        if not table.num_rows:
            return IngestResult(0, total)
        ts: list[int] = table.column("ts").cast(pa.int64()).to_pylist()
        if not all(map(operator.le, ts, islice(ts, 1, None))):
            table = table.sort_by("ts")  # appended in time order
            ts.sort()
        ids: list[str] = table.column("id").to_pylist()
        w = self._window_us
        item = _Pending(table, ids, ts, ts[0] - w, ts[-1] + w, total)
        with self._pending_lock:
            self._pending.append(item)
        with self._write_lock:
            if not item.done:
                with self._pending_lock:
                    group, self._pending = self._pending, []
                self._write_group(group)
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _write_group(self, group: list[_Pending]) -> None:
        """Under the write lock: store every pending batch, setting its result or error."""
        if len(group) > 1:
            try:
                self._write(group)
                return
            except Exception:  # noqa: BLE001 - a bad batch: retry each alone, it fails alone
                pass
        for item in group:
            try:
                self._write([item])
            except Exception as exc:
                item.error = exc

    def _write(self, group: list[_Pending]) -> None:
        """One INSERT and one COMMIT for the group; then each batch's result. An id sent
        twice within the group is kept from the earliest batch."""
        recent = self._recent
        if all(recent.covers(item.start) for item in group):
            kept = self._append_new(group)
        else:
            kept = self._insert_checked(group)
        # committed: remember the new rows, then answer each batch
        self.writes += 1
        self.written_batches += len(group)
        new_ids = [i for ids, _ in kept for i in ids]
        recent.add(new_ids, [t for _, ts in kept for t in ts])
        for item, (ids, ts) in zip(group, kept, strict=True):
            if ids and self._bounds is not None:
                lo, hi = _EPOCH + ts[0] * _US, _EPOCH + ts[-1] * _US
                self._bounds = (min(self._bounds[0], lo), max(self._bounds[1], hi))
            item.result = IngestResult(len(ids), item.total - len(ids), frozenset(ids))

    def _append_new(self, group: list[_Pending]) -> list[tuple[list[str], list[int]]]:
        """The index covers every batch's window: drop the stored ids, append the rest
        (sorted by ts) with a plain INSERT. Returns each batch's new ids and their ts."""
        recent = self._recent
        stored = recent.stored
        seen: set[str] = set()
        kept: list[tuple[list[str], list[int]]] = []
        parts: list[tuple[int, int, pa.Table]] = []
        for item in group:
            start, end, ids, ts = item.start, item.end, item.ids, item.ts
            # a batch of only new ids (the usual case) is checked in two C-level passes
            if seen.isdisjoint(ids) and not recent.any_known(ids):
                mask = []
            else:
                mask = [not (i in seen or stored(i, start, end)) for i in ids]
            seen.update(ids)
            table = item.table
            if not all(mask):
                table = table.filter(pa.array(mask, pa.bool_()))
                ids = [i for i, m in zip(ids, mask, strict=True) if m]
                ts = [t for t, m in zip(ts, mask, strict=True) if m]
            kept.append((ids, ts))
            if ids:
                parts.append((ts[0], ts[-1], table))
        if parts:
            parts.sort(key=lambda p: p[0])
            table = pa.concat_tables([p[2] for p in parts]) if len(parts) > 1 else parts[0][2]
            if any(a[1] > b[0] for a, b in pairwise(parts)):  # overlapping batches
                table = table.sort_by("ts")
            self._insert(table, _APPEND_SQL, [])
        return kept

    def _insert_checked(self, group: list[_Pending]) -> list[tuple[list[str], list[int]]]:
        """A window the index does not cover: the anti-join against the table in SQL.
        One statement for the group; each row is checked in its own batch's window."""
        seen: set[str] = set()
        tables = []
        for item in group:
            table = item.table
            if not seen.isdisjoint(item.ids):
                table = table.filter(pa.array([i not in seen for i in item.ids], pa.bool_()))
            seen.update(item.ids)
            tables.append(table)
        if len(group) == 1:
            rows = self._insert(tables[0], _INSERT_SQL, [_dt(group[0].start), _dt(group[0].end)])
        else:
            for k, (item, table) in enumerate(zip(group, tables, strict=True)):
                n = table.num_rows
                lo = pa.array([item.start] * n, pa.int64()).cast(_TS)
                hi = pa.array([item.end] * n, pa.int64()).cast(_TS)
                tables[k] = table.append_column("_lo", lo).append_column("_hi", hi)
            start = min(item.start for item in group)
            end = max(item.end for item in group)
            rows = self._insert(pa.concat_tables(tables), _GROUP_INSERT_SQL, [_dt(start), _dt(end)])
        new = {r[0] for r in rows}
        kept: list[tuple[list[str], list[int]]] = []
        for item in group:
            pairs = [(i, t) for i, t in zip(item.ids, item.ts, strict=True) if i in new]
            new.difference_update(p[0] for p in pairs)  # an id once, from its first batch
            kept.append(([p[0] for p in pairs], [p[1] for p in pairs]))
        return kept

    def _insert(self, table: pa.Table, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """One statement, so one transaction (autocommit): all of ``table`` or nothing.
        ``sql`` reads the table as ``_kw_batch`` through DuckDB's replacement scan of this
        frame's locals: registering it as a view and dropping the view again were two
        catalog changes per write (measured here: ~1.3 ms of a 1000-row batch's ~14 ms),
        and an explicit BEGIN/COMMIT two more statements."""
        _kw_batch = table  # noqa: F841 - read by the SQL text through the replacement scan
        try:
            return self._con.execute(sql, params).fetchall()
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.ConversionException | duckdb.InvalidInputException):
                raise BatchError(f"entries do not fit the storage columns: {exc}") from exc
            raise StorageError(str(exc)) from exc

    def _load_recent(self) -> None:
        """At start: the ids of the newest ``horizon`` of stored rows into the index."""
        recent = self._recent
        # fetchall: a half-read result would block the next register() on this connection
        newest = self._con.execute("SELECT epoch_us(max(ts)) FROM entries").fetchall()
        if not newest or newest[0][0] is None:
            return  # empty: the index covers everything
        lo = int(newest[0][0]) - recent.horizon_us
        rows = self._con.execute(
            "SELECT id, epoch_us(ts) FROM entries WHERE ts >= ? ORDER BY ts DESC LIMIT ?",
            [_dt(lo), recent.max_ids + 1],
        ).fetchall()
        if len(rows) > recent.max_ids:  # capped: cover from just above the oldest left out
            lo = rows[-1][1] + 1
            rows = [r for r in rows if r[1] >= lo]
        recent.cover_lo = lo
        rows.reverse()
        recent.add([r[0] for r in rows], [r[1] for r in rows])

    # -- reads ------------------------------------------------------------------------

    def page(
        self,
        where: ColumnElement[bool],
        limit: int,
        after: tuple[datetime, str] | None = None,
        *,
        with_bodies: bool = False,
    ) -> list[dict[str, Any]]:
        """Newest first. Entries are appended in ts order, so the newest matches are found
        by scanning back from the newest ts in growing windows (DuckDB skips the row groups
        outside each window by their ts min/max) rather than sorting every match."""
        t = self.table
        cond = where
        if after is not None:
            ts, eid = after
            cond = sa.and_(cond, sa.or_(t.c.ts < ts, sa.and_(t.c.ts == ts, t.c.id < eid)))
        bounds = self._ts_bounds()
        if bounds is None:
            return []
        oldest, newest = bounds
        if after is not None:
            newest = min(newest, after[0])
        window = self.page_window
        while True:
            start = newest - window
            windowed = cond if start <= oldest else sa.and_(cond, t.c.ts >= start)
            ids_stmt = (
                sa.select(t.c.id, t.c.ts)
                .where(windowed)
                .order_by(t.c.ts.desc(), t.c.id.desc())
                .limit(limit)
            )
            _, keys = self._query(ids_stmt)
            if len(keys) >= limit or start <= oldest:
                break
            window *= 8
        if not keys:
            return []
        return self._fetch(keys, with_bodies=with_bodies)

    def _ts_bounds(self) -> tuple[datetime, datetime] | None:
        """Oldest and newest ts; kept in memory (ingest widens it, retention forgets it).
        A stale value only moves where the windows start, never what a page holds."""
        bounds = self._bounds
        if bounds is None:
            with self._reader() as cur:
                row = cur.execute("SELECT min(ts), max(ts) FROM entries").fetchone()
            if row is None or row[0] is None:
                return None
            bounds = self._bounds = (row[0], row[1])
        return bounds

    def _fetch(self, keys: Sequence[tuple[Any, ...]], *, with_bodies: bool) -> list[dict[str, Any]]:
        """The heavy columns of the rows with these (id, ts), in the given order."""
        t = self.table
        names = COLUMNS if with_bodies else _LIST_COLUMNS
        lo = min(k[1] for k in keys)
        hi = max(k[1] for k in keys)
        stmt = sa.select(*[t.c[n] for n in names]).where(
            t.c.ts.between(lo, hi), t.c.id.in_([k[0] for k in keys])
        )
        cols, rows = self._query(stmt)
        by_key = {(r[0], r[1]): dict(zip(cols, r, strict=True)) for r in rows}
        return [by_key[(k[0], k[1])] for k in keys if (k[0], k[1]) in by_key]

    def get(self, entry_id: str, where: ColumnElement[bool]) -> dict[str, Any] | None:
        t = self.table
        stmt = sa.select(*t.c).where(t.c.id == entry_id, where).order_by(t.c.ts).limit(1)
        cols, rows = self._query(stmt)
        return dict(zip(cols, rows[0], strict=True)) if rows else None

    def iter_rows(
        self, where: ColumnElement[bool], limit: int, *, with_bodies: bool
    ) -> Iterator[dict[str, Any]]:
        t = self.table
        ids_stmt = sa.select(t.c.id, t.c.ts).where(where).order_by(t.c.ts, t.c.id).limit(limit)
        _, keys = self._query(ids_stmt)
        for i in range(0, len(keys), 500):
            yield from self._fetch(keys[i : i + 500], with_bodies=with_bodies)

    def count(self, where: ColumnElement[bool] | None = None) -> int:
        stmt = sa.select(sa.func.count()).select_from(self.table)
        if where is not None:
            stmt = stmt.where(where)
        _, rows = self._query(stmt)
        return int(rows[0][0])

    def _filtered(self, where: ColumnElement[bool], *cols: str) -> tuple[str, list[Any]]:
        t = self.table
        return self.compile(sa.select(*[t.c[c] for c in cols]).where(where))

    def stats_sql(self, where: ColumnElement[bool]) -> tuple[str, list[Any]]:
        """The statistics query (one scan, grouping sets) and its parameters."""
        sub, params = self._filtered(where, "proto", "status", "src_namespace", "dst_namespace")
        sql = f"""
        SELECT grouping(proto) = 0 AS g_proto, grouping(sc) = 0 AS g_sc,
               grouping(ns) = 0 AS g_ns, proto, sc, ns, count(*)
        FROM (
          SELECT proto,
                 CASE WHEN status IS NULL THEN 'none'
                      ELSE CAST(status // 100 AS VARCHAR) || 'xx' END AS sc,
                 coalesce(nullif(dst_namespace, ''), src_namespace, '') AS ns
          FROM ({sub})
        )
        GROUP BY GROUPING SETS ((proto), (sc), (ns), ())
        """
        return sql, params

    def stats(self, where: ColumnElement[bool]) -> dict[str, Any]:
        sql, params = self.stats_sql(where)
        out: dict[str, Any] = {
            "total": 0,
            "by_proto": {},
            "by_status_class": {},
            "by_namespace": {},
        }
        with self._reader() as cur:
            rows = cur.execute(sql, params).fetchall()
        for g_proto, g_sc, g_ns, proto, sc, ns, n in rows:
            if g_proto:
                out["by_proto"][proto] = n
            elif g_sc:
                out["by_status_class"][sc] = n
            elif g_ns:
                out["by_namespace"][ns] = n
            else:
                out["total"] = n
        return out

    def servicemap_sql(self, where: ColumnElement[bool]) -> tuple[str, list[Any]]:
        """The service-map query (edges with quantiles) and its parameters."""
        sub, params = self._filtered(
            where,
            "ts",
            "elapsed",
            "status",
            "error",
            "src_namespace",
            "src_workload",
            "src_pod",
            "src_service",
            "src_ip",
            "dst_namespace",
            "dst_workload",
            "dst_pod",
            "dst_service",
            "dst_ip",
        )
        sql = f"""
        SELECT coalesce(src_namespace, '') AS sns,
               coalesce(nullif(src_workload, ''), nullif(src_pod, ''),
                        nullif(src_service, ''), src_ip, '') AS swl,
               coalesce(dst_namespace, '') AS dns,
               coalesce(nullif(dst_workload, ''), nullif(dst_service, ''),
                        nullif(dst_pod, ''), dst_ip, '') AS dwl,
               count(*) AS n,
               count(*) FILTER (WHERE status >= 500 OR coalesce(error, '') <> '') AS errors,
               quantile_cont(elapsed, [0.5, 0.95, 0.99]) AS q,
               min(ts) AS first, max(ts) AS last
        FROM ({sub})
        GROUP BY ALL
        ORDER BY n DESC
        """
        return sql, params

    def servicemap(self, where: ColumnElement[bool]) -> list[dict[str, Any]]:
        sql, params = self.servicemap_sql(where)
        with self._reader() as cur:
            rows = cur.execute(sql, params).fetchall()
        out = []
        for sns, swl, dns, dwl, n, errors, q, first, last in rows:
            p50, p95, p99 = q if q is not None else (None, None, None)
            out.append(
                {
                    "source_namespace": sns,
                    "source_workload": swl,
                    "target_namespace": dns,
                    "target_workload": dwl,
                    "count": n,
                    "errors": errors,
                    "p50": p50,
                    "p95": p95,
                    "p99": p99,
                    "first": first,
                    "last": last,
                }
            )
        return out

    # -- size and retention -----------------------------------------------------------

    def size_bytes(self) -> int:
        with self._reader() as cur:
            if self.path == ":memory:":
                row = cur.execute(
                    "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()"
                ).fetchone()
                return int(row[0]) if row else 0
            row = cur.execute(
                "SELECT block_size * used_blocks FROM pragma_database_size()"
            ).fetchone()
            return int(row[0]) if row else 0

    def _delete_before(self, cutoff: datetime) -> int:
        """Delete rows older than ``cutoff`` in chunks, each under the write lock briefly."""
        deleted = 0
        while not self._closed:
            with self._reader() as cur:
                row = cur.execute(
                    "SELECT ts FROM entries WHERE ts < ? ORDER BY ts LIMIT 1 OFFSET ?",
                    [cutoff, self.retention_chunk],
                ).fetchone()
            bound = row[0] if row else cutoff
            with self._write_lock:
                res = self._con.execute("DELETE FROM entries WHERE ts < ?", [bound]).fetchone()
                self._bounds = None
                self._recent.forget_before(_us(bound))
            deleted += int(res[0]) if res else 0
            if bound >= cutoff:
                break
        return deleted

    def enforce_retention(self, now: datetime) -> int:
        now = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
        deleted = 0
        if self.retention_max_age is not None:
            deleted += self._delete_before(now - timedelta(seconds=self.retention_max_age))
        if self.retention_max_bytes is not None:
            size = self.size_bytes()
            if size > self.retention_max_bytes:
                total = self.count()
                # delete the oldest share that brings the size 10% under the limit
                share = 1.0 - (0.9 * self.retention_max_bytes) / size
                k = min(total, max(1, int(total * share)))
                with self._reader() as cur:
                    row = cur.execute(
                        "SELECT ts FROM entries ORDER BY ts LIMIT 1 OFFSET ?", [k]
                    ).fetchone()
                cutoff = row[0] if row else datetime.max
                deleted += self._delete_before(cutoff)
                if deleted and self.path != ":memory:":
                    with self._write_lock:
                        self._con.execute("CHECKPOINT")
        self.retention_deleted += deleted
        return deleted

    def _retention_loop(self) -> None:
        while not self._stop.wait(self.retention_interval):
            try:
                self.enforce_retention(datetime.now(UTC))
            except Exception:  # keep enforcing on the next round; never kill the hub
                log.exception("retention round failed")

    def start(self) -> None:
        if self._thread is None and (
            self.retention_max_age is not None or self.retention_max_bytes is not None
        ):
            self._thread = threading.Thread(
                target=self._retention_loop, name="kubeweir-retention", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._write_lock:
            if not self._closed:
                self._closed = True
                if self._engine is not None:
                    self._engine.dispose()
                self._con.close()

    def sql_engine(self) -> sa.engine.Engine:
        if self._engine is None:
            from duckdb_engine import ConnectionWrapper

            # Each pooled connection is a cursor of this process's one DuckDB instance.
            self._engine = sa.create_engine(
                "duckdb:///:memory:", creator=lambda: ConnectionWrapper(self._con.cursor())
            )
        return self._engine

    def ready(self) -> bool:
        if self._closed:
            return False
        try:
            with self._reader() as cur:
                cur.execute("SELECT 1").fetchone()
        except duckdb.Error:
            return False
        return True


_EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)


def _dt(us: int) -> datetime:
    """µs since the epoch as a naive UTC datetime (the ``ts`` column's type)."""
    return _EPOCH + us * _US


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // _US
