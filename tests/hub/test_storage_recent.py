"""The in-memory index of recent ids (``RecentIds``) and the storage's dedupe through it:
exactly the answers of the SQL anti-join, whatever the index covers, caps or forgets."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hub.storage.base import IngestResult
from hub.storage.duckdb import DuckDBStorage
from hub.storage.recent import NEVER, RecentIds
from kubeweir.testing import make_http_entry

S = 1_000_000  # µs in a second


def test_index_answers_within_the_window_only() -> None:
    r = RecentIds(horizon_us=100 * S, max_ids=1000)
    r.add(["a", "b"], [10 * S, 20 * S])
    assert r.covers(NEVER)
    assert r.stored("a", 0, 10 * S) and r.stored("b", 15 * S, 25 * S)
    assert not r.stored("a", 11 * S, 30 * S)
    assert not r.stored("c", 0, 100 * S)
    # the same id stored again far away: both are known
    r.add(["a"], [50 * S])
    assert r.stored("a", 0, 10 * S) and r.stored("a", 45 * S, 55 * S)
    assert not r.stored("a", 11 * S, 49 * S)
    assert len(r) == 3


def test_eviction_raises_cover_and_keeps_the_rest() -> None:
    r = RecentIds(horizon_us=100 * S, max_ids=1000)
    r.add(["a"], [10 * S])
    r.add(["b"], [50 * S])
    r.add(["c"], [150 * S])  # newest 150 s: rows older than 50 s are let go
    assert not r.stored("a", 0, 200 * S)
    assert r.cover_lo == 10 * S + 1
    assert not r.covers(10 * S) and r.covers(10 * S + 1)
    assert r.stored("b", 0, 200 * S) and r.stored("c", 0, 200 * S)
    # rows older than the cover are not kept (nothing may ask about them)
    r.add(["old"], [5 * S])
    assert len(r) == 2


def test_cap_evicts_oldest_added_and_repeated_ids_shrink_back() -> None:
    r = RecentIds(horizon_us=10**6 * S, max_ids=3)
    r.add(["a", "b"], [1 * S, 2 * S])
    r.add(["a"], [3 * S])
    assert r.stored("a", 0, 1 * S) and r.stored("a", 3 * S, 3 * S)
    r.add(["c", "d"], [4 * S, 5 * S])  # 5 > 3: the first chunk goes
    assert len(r) == 3
    assert r.cover_lo == 2 * S + 1
    assert r.stored("a", 3 * S, 3 * S) and not r.stored("a", 0, 2 * S)
    assert not r.stored("b", 0, 10 * S)


def test_forgotten_rows_are_not_duplicates() -> None:
    r = RecentIds(horizon_us=1000 * S, max_ids=1000)
    r.add(["a", "b"], [10 * S, 20 * S])
    r.forget_before(15 * S)  # retention deleted everything before 15 s
    assert not r.stored("a", 0, 100 * S)
    assert r.stored("b", 0, 100 * S)


class _Model:
    """What the storage must answer: a row is a duplicate when its id was sent earlier in
    the batch, or is stored with its ts within [batch start - window, batch end + window]."""

    def __init__(self, window: float) -> None:
        self.window = round(window * S)
        self.rows: list[tuple[str, int]] = []

    def ingest(self, batch: list[tuple[str, float]]) -> tuple[int, int, set[str]]:
        firsts: dict[str, int] = {}
        for i, ts in batch:
            firsts.setdefault(i, round(ts * S))
        lo = min(firsts.values()) - self.window
        hi = max(firsts.values()) + self.window
        new = [
            (i, t)
            for i, t in firsts.items()
            if not any(j == i and lo <= u <= hi for j, u in self.rows)
        ]
        self.rows += new
        return len(new), len(batch) - len(new), {i for i, _ in new}

    def delete_before(self, bound: int) -> None:
        self.rows = [r for r in self.rows if r[1] >= bound]


_EPOCH = datetime(1970, 1, 1)


@pytest.mark.parametrize(
    ("seed", "recent_ids", "slack"),
    [(1, 2_000_000, 120.0), (2, 7, 0.0), (3, 40, 3.0), (4, 1, 0.0), (5, 25, 1.0)],
)
def test_dedupe_matches_the_model_whatever_the_index_holds(
    seed: int, recent_ids: int, slack: float
) -> None:
    """Random batches (repeats inside a batch, ids resent near and far in time, late
    batches, retention deletes) against a storage whose index is capped or short: every
    batch's accepted/duplicates/new ids, and the stored rows, are the model's."""
    rnd = random.Random(seed)
    window = 5.0
    storage = DuckDBStorage(":memory:", dedupe_window=window, recent_ids=recent_ids,
                            recent_slack=slack)  # fmt: skip
    model = _Model(window)
    base = 1_700_000_000.0
    now = base
    pool: list[str] = []
    try:
        for step in range(70):
            if step % 23 == 22:  # retention: drop the oldest stretch
                bound = round((now - 30.0) * S)
                storage._delete_before(_EPOCH + timedelta(microseconds=bound))
                model.delete_before(bound)
                continue
            now += rnd.uniform(0.0, 4.0)
            late = rnd.random() < 0.2
            start = now - (rnd.uniform(10.0, 60.0) if late else 0.0)
            batch: list[tuple[str, float]] = []
            for _ in range(rnd.randint(1, 12)):
                if pool and rnd.random() < 0.45:
                    eid = rnd.choice(pool)  # resent: near or far from its first ts
                else:
                    eid = f"{rnd.getrandbits(48):012x}"
                    pool.append(eid)
                batch.append((eid, start + rnd.uniform(0.0, 3.0)))
            if rnd.random() < 0.2:
                batch.append(batch[0])  # a repeat inside the batch
            entries = [make_http_entry(id=i, ts=t) for i, t in batch]
            got = storage.ingest(entries)
            accepted, duplicates, new_ids = model.ingest(batch)
            assert isinstance(got, IngestResult)
            assert (got.accepted, got.duplicates, set(got.new_ids)) == (
                accepted,
                duplicates,
                new_ids,
            ), f"step {step}"
        with storage._reader() as cur:
            stored = cur.execute("SELECT id, epoch_us(ts) FROM entries").fetchall()
        assert sorted(stored) == sorted(model.rows)
    finally:
        storage.close()


def test_reopened_database_still_dedupes(tmp_path: Path) -> None:
    path = str(tmp_path / "kw.duckdb")
    es = [make_http_entry() for _ in range(30)]
    first = DuckDBStorage(path)
    assert first.ingest(es).accepted == 30
    first.close()
    # a fresh process: the index is loaded from the table (the second time capped below
    # the number of rows, so the oldest are asked of the table)
    for n, cap in enumerate((1000, 10), start=1):
        again = DuckDBStorage(path, recent_ids=cap)
        try:
            r = again.ingest(es[5:] + [make_http_entry(ts=es[-1].ts + n)])
            assert (r.accepted, r.duplicates) == (1, 25)
            assert again.count() == 30 + n
        finally:
            again.close()


def test_group_with_a_late_batch_is_checked_in_sql() -> None:
    """A group whose batches the index does not all cover goes through the anti-join,
    with each batch's own window, and the index learns its new rows."""
    from tests.hub.test_storage_group import _ingest_as_group

    storage = DuckDBStorage(":memory:", dedupe_window=5.0, recent_slack=0.0)
    try:
        old = make_http_entry(ts=1_700_000_000.0)
        storage.ingest([old])
        storage.ingest([make_http_entry(ts=old.ts + 100.0)])  # the index lets `old` go
        assert not storage._recent.covers(round((old.ts - 5.0) * S))
        late = [make_http_entry(id=old.id, ts=old.ts + 1.0), make_http_entry(ts=old.ts + 2)]
        fresh = [make_http_entry(ts=old.ts + 101.0), late[1]]
        r_late, r_fresh = _ingest_as_group(storage, [late, fresh])
        assert isinstance(r_late, IngestResult) and isinstance(r_fresh, IngestResult)
        assert (r_late.accepted, r_late.duplicates) == (1, 1)
        assert (r_fresh.accepted, r_fresh.duplicates) == (1, 1)  # late[1]: earlier batch
        assert storage.count() == 4
        again = storage.ingest(fresh)  # now known to the index
        assert (again.accepted, again.duplicates) == (0, 2)
    finally:
        storage.close()


def test_batch_older_than_retention_resent_is_a_duplicate() -> None:
    """A late batch below the retention bound is stored (until the next round deletes
    it); sent again (its ack lost), it is a duplicate, not stored twice."""
    storage = DuckDBStorage(":memory:", dedupe_window=5.0)
    try:
        base = 1_700_000_000.0
        storage.ingest([make_http_entry(ts=base + 3600.0)])  # fresh rows in the index
        storage._delete_before(_EPOCH + timedelta(seconds=base + 1800.0))
        late = [make_http_entry(ts=base + 10.0), make_http_entry(ts=base + 11.0)]
        assert storage.ingest(late).accepted == 2
        again = storage.ingest(late)
        assert (again.accepted, again.duplicates) == (0, 2)
        assert storage.count() == 3
    finally:
        storage.close()
