"""DuckDB storage: dedupe, all-or-nothing, migrations, retention, readers during ingest."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from hub.storage.base import StorageError
from hub.storage.duckdb import MIGRATIONS, DuckDBStorage, migrate
from hub.storage.rows import BatchError, row_to_entry
from kubeweir.entry import Endpoint
from kubeweir.testing import make_entry, make_http_entry


def test_ingest_roundtrip_keeps_every_field(storage: DuckDBStorage) -> None:
    e = make_http_entry(
        "POST",
        "/api/orders?x=1",
        503,
        request_body='{"a": 1}',
        response_body="oops",
        request_headers={"x-id": "7", "authorization": "[REDACTED]"},
        redacted=["request.headers.authorization"],
        tls=True,
        gaps=3,
        stream="s1",
        index=2,
        node="node-a",
        error="gap",
    )
    e.src.labels = {"app": "web"}
    e.dst.workload = "Deployment/orders"
    assert storage.ingest([e]).accepted == 1
    row = storage.get(e.id, sa.true())
    assert row is not None
    assert row["method"] == "POST" and row["path"] == "/api/orders" and row["status"] == 503
    assert row["req_body"] == b'{"a": 1}' and row["resp_body"] == b"oops"
    back = row_to_entry(row, with_bodies=True)
    from hub.stream import entry_dict

    assert back == entry_dict(e)


def test_base64_body_stored_as_bytes(storage: DuckDBStorage) -> None:
    e = make_http_entry(response_body="AAEC/w==")
    e.response["body_encoding"] = "base64"
    storage.ingest([e])
    row = storage.get(e.id, sa.true())
    assert row is not None and row["resp_body"] == b"\x00\x01\x02\xff"
    assert row_to_entry(row, with_bodies=True)["response"]["body"] == "AAEC/w=="


def test_dns_name_is_the_path(storage: DuckDBStorage) -> None:
    e = make_entry(proto="dns", request={"name": "example.com", "type": "A"})
    storage.ingest([e])
    assert storage.get(e.id, sa.true())["path"] == "example.com"  # type: ignore[index]


def test_dedupe_is_idempotent_and_exact(storage: DuckDBStorage) -> None:
    batch = [make_http_entry() for _ in range(50)]
    first = storage.ingest(batch)
    assert (first.accepted, first.duplicates) == (50, 0)
    again = storage.ingest(batch)
    assert (again.accepted, again.duplicates) == (0, 50)
    # half old, half new, plus a repeat inside the batch
    fresh = [make_http_entry() for _ in range(10)]
    mixed = batch[:10] + fresh + fresh[:2]
    r = storage.ingest(mixed)
    assert (r.accepted, r.duplicates) == (10, 12)
    assert r.new_ids == {e.id for e in fresh}
    assert storage.count() == 60


def test_duplicate_from_another_node_with_clock_skew(storage: DuckDBStorage) -> None:
    e = make_http_entry()
    storage.ingest([e])
    skewed = make_http_entry(id=e.id, ts=e.ts + 2.5, node="other")
    assert storage.ingest([skewed]).duplicates == 1
    assert storage.count() == 1


def test_batch_is_all_or_nothing(storage: DuckDBStorage) -> None:
    good = [make_http_entry() for _ in range(5)]
    storage.ingest(good)
    bad = [make_http_entry() for _ in range(5)] + [make_http_entry(ts=1e300)]
    with pytest.raises(BatchError, match="ts"):
        storage.ingest(bad)
    assert storage.count() == 5
    # the good part of the refused batch can still come later
    assert storage.ingest(bad[:5]).accepted == 5


def test_out_of_range_numbers_are_nulled_not_fatal(storage: DuckDBStorage) -> None:
    e = make_http_entry(status=200)
    e.response["status"] = 10**30
    e.src = Endpoint(ip="10.0.0.9", port=10**12)
    assert storage.ingest([e]).accepted == 1
    row = storage.get(e.id, sa.true())
    assert row is not None and row["status"] is None and row["src_port"] == 0


def test_entries_appended_in_time_order(storage: DuckDBStorage) -> None:
    es = [make_http_entry() for _ in range(20)]
    storage.ingest(list(reversed(es)))
    with storage._reader() as cur:
        stored = [r[0] for r in cur.execute("SELECT id FROM entries").fetchall()]
    assert stored == [e.id for e in es]


def test_page_keyset_newest_first(storage: DuckDBStorage) -> None:
    es = [make_http_entry() for _ in range(25)]
    same_ts = [make_http_entry(ts=es[10].ts) for _ in range(3)]
    storage.ingest(es + same_ts)
    seen: list[str] = []
    after = None
    while True:
        page = storage.page(sa.true(), 7, after)
        seen += [r["id"] for r in page]
        if len(page) < 7:
            break
        after = (page[-1]["ts"], page[-1]["id"])
    assert len(seen) == len(set(seen)) == 28
    ts = [storage.get(i, sa.true())["ts"] for i in seen]  # type: ignore[index]
    assert ts == sorted(ts, reverse=True)


def test_migrations_versioned_and_resumable(tmp_path: Path) -> None:
    db = str(tmp_path / "m.duckdb")
    con = duckdb.connect(db)
    assert migrate(con) == len(MIGRATIONS)
    calls: list[int] = []

    def v2(c: duckdb.DuckDBPyConnection) -> None:
        calls.append(2)
        c.execute("ALTER TABLE entries ADD COLUMN extra VARCHAR")

    assert migrate(con, (*MIGRATIONS, v2)) == len(MIGRATIONS) + 1
    assert migrate(con, (*MIGRATIONS, v2)) == len(MIGRATIONS) + 1  # not applied twice
    assert calls == [2]
    rows = con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    versions = [r[0] for r in rows]
    assert versions == list(range(1, len(MIGRATIONS) + 2))
    # an older hub refuses a newer database instead of writing into it
    with pytest.raises(StorageError, match="newer"):
        migrate(con, MIGRATIONS)
    con.close()


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "f.duckdb"))
    migrate(con)

    def broken(c: duckdb.DuckDBPyConnection) -> None:
        c.execute("ALTER TABLE entries ADD COLUMN half VARCHAR")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        migrate(con, (*MIGRATIONS, broken))
    cols = [r[0] for r in con.execute("DESCRIBE entries").fetchall()]
    assert "half" not in cols
    assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (len(MIGRATIONS),)


def test_file_database_survives_reopen(tmp_path: Path) -> None:
    db = str(tmp_path / "k.duckdb")
    s = DuckDBStorage(db)
    s.ingest([make_http_entry() for _ in range(3)])
    s.close()
    s2 = DuckDBStorage(db)
    assert s2.count() == 3
    s2.close()


def test_retention_by_age(storage: DuckDBStorage) -> None:
    now = datetime(2023, 11, 15, tzinfo=UTC)
    old = [make_http_entry(ts=now.timestamp() - 7200 - i) for i in range(30)]
    new = [make_http_entry(ts=now.timestamp() - 60 - i) for i in range(10)]
    storage.ingest(old + new)
    storage.retention_max_age = 3600
    storage.retention_chunk = 7  # several short deletes, not one long one
    assert storage.enforce_retention(now) == 30
    assert storage.count() == 10


def test_retention_by_size(tmp_path: Path) -> None:
    s = DuckDBStorage(str(tmp_path / "r.duckdb"), retention_chunk=5000)
    body = "x" * 2000
    for _ in range(6):
        s.ingest([make_http_entry(response_body=body + str(i)) for i in range(5000)])
    with s._write_lock:
        s._con.execute("CHECKPOINT")
    size = s.size_bytes()
    s.retention_max_bytes = size // 2
    newest = s.page(sa.true(), 1)[0]["id"]
    deleted = s.enforce_retention(datetime.now(UTC))
    assert deleted > 0 and s.count() == 30000 - deleted
    # the oldest share that brings the size 10% under the limit: ~55% of the rows
    assert 0.5 * 30000 <= deleted <= 0.6 * 30000
    assert s.get(newest, sa.true()) is not None  # the oldest go first
    s.close()


def test_background_retention_thread(storage: DuckDBStorage) -> None:
    storage.ingest([make_http_entry(ts=1_000_000.0 + i) for i in range(10)])
    storage.retention_max_age = 3600
    storage.retention_interval = 0.05
    storage.start()
    deadline = time.monotonic() + 5
    while storage.count() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert storage.count() == 0


def test_readers_keep_working_while_writer_ingests(storage: DuckDBStorage) -> None:
    storage.ingest([make_http_entry() for _ in range(2000)])
    stop = threading.Event()
    errors: list[BaseException] = []
    reads: list[float] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                t = time.perf_counter()
                assert len(storage.page(sa.true(), 50)) == 50
                storage.stats(sa.true())
                reads.append(time.perf_counter() - t)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(10):
            storage.ingest([make_http_entry(response_body="y" * 300) for _ in range(2000)])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert len(reads) >= 4  # readers made progress during the writes
    assert storage.count() == 22000


def test_page_finds_old_matches_past_the_first_window(storage: DuckDBStorage) -> None:
    base = 1_700_000_000.0
    old = [make_http_entry(status=500, ts=base + i) for i in range(10)]  # a day before
    new = [make_http_entry(status=200, ts=base + 86_400 + i) for i in range(50)]
    storage.ingest(old + new)
    storage.page_window = timedelta(seconds=5)
    t = storage.table
    page = storage.page(t.c.status == 500, 4)
    assert [r["id"] for r in page] == [e.id for e in reversed(old)][:4]
    rest = storage.page(t.c.status == 500, 100, (page[-1]["ts"], page[-1]["id"]))
    assert [r["id"] for r in rest] == [e.id for e in reversed(old)][4:]
    assert storage.page(t.c.status == 404, 10) == []
    assert DuckDBStorage().page(sa.true(), 10) == []  # empty store


def test_non_int_status_and_ports_are_not_truncated(storage: DuckDBStorage) -> None:
    odd = [make_http_entry() for _ in range(4)]
    odd[0].response["status"] = 0.5
    odd[1].response["status"] = True
    odd[2].response["status"] = "200"
    odd[3].response["status"] = 404
    storage.ingest(odd)
    got = [storage.get(e.id, sa.true())["status"] for e in odd]  # type: ignore[index]
    assert got == [None, None, None, 404]


def test_page_after_late_batches_and_retention(storage: DuckDBStorage) -> None:
    base = 1_700_000_000.0
    storage.page_window = timedelta(seconds=1)
    storage.ingest([make_http_entry(ts=base + 1000 + i) for i in range(5)])
    assert len(storage.page(sa.true(), 100)) == 5  # bounds now cached
    late = [make_http_entry(status=404, ts=base + i) for i in range(3)]  # older, arrives later
    newer = [make_http_entry(ts=base + 5000 + i) for i in range(2)]
    storage.ingest(late + newer)
    assert [r["id"] for r in storage.page(storage.table.c.status == 404, 10)] == [
        e.id for e in reversed(late)
    ]
    assert storage.page(sa.true(), 1)[0]["id"] == newer[-1].id
    storage.retention_max_age = 3000
    storage.enforce_retention(datetime.fromtimestamp(base + 5002, UTC))
    assert [r["id"] for r in storage.page(sa.true(), 10)] == [e.id for e in reversed(newer)]


def test_insert_reads_the_batch_from_its_frame_not_a_table(storage: DuckDBStorage) -> None:
    """The batch reaches the INSERT through DuckDB's replacement scan: nothing is left
    registered on the connection, and a failed batch leaves no rows behind."""
    a, b = make_http_entry(), make_http_entry()
    assert storage.ingest([a, b]).accepted == 2
    names = {
        r[0] for r in storage._con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    }
    views = {
        r[0]
        for r in storage._con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
    }
    assert "_kw_batch" not in names | views
    assert storage.count() == 2
