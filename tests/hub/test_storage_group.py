"""DuckDB storage group commit: batches that wait for the write lock are written together,
each with its own result, dedupe window and failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from hub.storage.base import IngestResult, StorageError
from hub.storage.duckdb import DuckDBStorage
from kubeweir.entry import Entry
from kubeweir.testing import make_http_entry


def _ingest_as_group(storage: DuckDBStorage, batches: list[list[Entry]]) -> list[Any]:
    """Hold the write lock until every batch is queued, so one thread writes them all."""
    out: list[Any] = [None] * len(batches)

    def run(i: int) -> None:
        try:
            out[i] = storage.ingest(batches[i])
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(batches))]
    with storage._write_lock:
        for t in threads:
            t.start()
            # queue in order: batch i is pending before batch i + 1 starts
            deadline = time.monotonic() + 10
            while len(storage._pending) < threads.index(t) + 1:
                assert time.monotonic() < deadline
                time.sleep(0.001)
    for t in threads:
        t.join(timeout=30)
    return out


def _spy_groups(storage: DuckDBStorage) -> list[int]:
    sizes: list[int] = []
    write: Callable[..., None] = storage._write_group

    def spy(group: list[Any]) -> None:
        sizes.append(len(group))
        write(group)

    storage._write_group = spy  # type: ignore[method-assign]
    return sizes


def test_waiting_batches_are_written_together_with_their_own_results(
    storage: DuckDBStorage,
) -> None:
    sizes = _spy_groups(storage)
    a = [make_http_entry() for _ in range(10)]
    b = a[:4] + [make_http_entry() for _ in range(6)]  # 4 already in a (same group)
    stored = make_http_entry()
    storage.ingest([stored])
    c = [stored, *[make_http_entry() for _ in range(3)]]  # 1 already stored
    ra, rb, rc = _ingest_as_group(storage, [a, b, c])
    assert sizes == [1, 3]
    assert isinstance(ra, IngestResult) and (ra.accepted, ra.duplicates) == (10, 0)
    assert ra.new_ids == {e.id for e in a}
    assert isinstance(rb, IngestResult) and (rb.accepted, rb.duplicates) == (6, 4)
    assert rb.new_ids == {e.id for e in b[4:]}
    assert isinstance(rc, IngestResult) and (rc.accepted, rc.duplicates) == (3, 1)
    assert storage.count() == 1 + 10 + 6 + 3
    # appended in ts order across the group
    rows = storage._con.execute("SELECT ts FROM entries WHERE id <> ?", [stored.id]).fetchall()
    ts = [r[0] for r in rows]
    assert len(ts) == 19 and ts == sorted(ts)


def test_each_batch_keeps_its_own_dedupe_window(storage: DuckDBStorage) -> None:
    old = make_http_entry(ts=1_000_000.0)
    storage.ingest([old])
    window = storage.dedupe_window.total_seconds()
    # same id, far outside its own batch's window: stored again, as when sent alone
    late = make_http_entry(id=old.id, ts=old.ts + 3 * window)
    # another batch whose window does cover the old row
    near = [make_http_entry(ts=old.ts + 1.0)]
    r_near, r_late = _ingest_as_group(storage, [near, [late]])
    assert isinstance(r_late, IngestResult) and r_late.accepted == 1
    assert isinstance(r_near, IngestResult) and r_near.accepted == 1
    assert storage.count() == 3


def test_a_failing_group_is_retried_batch_by_batch(
    storage: DuckDBStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    insert = storage._insert

    def flaky(table: Any, sql: str, params: list[Any]) -> Any:
        calls.append(table.num_rows)
        if table.num_rows > 5 or table.num_rows == 3:  # the group, and batch c alone
            raise StorageError("disk full")
        return insert(table, sql, params)

    monkeypatch.setattr(storage, "_insert", flaky)
    a = [make_http_entry() for _ in range(2)]
    b = [make_http_entry() for _ in range(4)]
    c = [make_http_entry() for _ in range(3)]
    ra, rb, rc = _ingest_as_group(storage, [a, b, c])
    assert calls == [9, 2, 4, 3]
    assert isinstance(ra, IngestResult) and ra.accepted == 2
    assert isinstance(rb, IngestResult) and rb.accepted == 4
    assert isinstance(rc, StorageError)
    assert storage.count() == 6
