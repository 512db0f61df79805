"""POST /api/v1/ingest: good batches, and every bad one gets a clear error and loses nothing."""

from __future__ import annotations

import gzip
import zlib

import msgspec
import pytest
import zstandard
from fastapi.testclient import TestClient

from hub.core.config import Settings
from hub.main import create_app
from hub.storage.duckdb import DuckDBStorage
from kubeweir.entry import SCHEMA_VERSION, Batch, encode_batch
from kubeweir.testing import make_entry, make_http_entry
from tests.hub.conftest import ADMIN, INGEST, hub_settings, ingest


@pytest.fixture(params=[0, 1], ids=["in-process", "worker"], scope="module")
def workers(request: pytest.FixtureRequest) -> int:
    """Each test runs with batches converted in the hub process and in a worker process
    (``hub.ingest.ConversionPool``): every answer must be the same."""
    n: int = request.param
    return n


@pytest.fixture
def settings(workers: int) -> Settings:
    return hub_settings(ingest_workers=workers)


def _count(client: TestClient) -> int:
    r = client.get("/api/v1/stats", headers=ADMIN)
    assert r.status_code == 200
    total: int = r.json()["total"]
    return total


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    ingest(client, [make_http_entry() for _ in range(10)])
    return client


def test_ingest_plain_gzip_zstd_and_idempotent(client: TestClient) -> None:
    es = [make_http_entry() for _ in range(30)]
    raw = encode_batch(es[:10], sniffer="n1")
    r = client.post("/api/v1/ingest", content=raw, headers=INGEST)
    assert r.json() == {"accepted": 10, "duplicates": 0}
    r = client.post(
        "/api/v1/ingest",
        content=gzip.compress(encode_batch(es[10:20])),
        headers={**INGEST, "Content-Encoding": "gzip"},
    )
    assert r.json() == {"accepted": 10, "duplicates": 0}
    r = client.post(
        "/api/v1/ingest",
        content=zstandard.ZstdCompressor().compress(encode_batch(es[20:])),
        headers={**INGEST, "Content-Encoding": "zstd"},
    )
    assert r.json() == {"accepted": 10, "duplicates": 0}
    r = client.post("/api/v1/ingest", content=encode_batch(es), headers=INGEST)
    assert r.json() == {"accepted": 0, "duplicates": 30}
    assert _count(client) == 30
    status = client.get("/api/v1/status", headers=ADMIN).json()["sniffers"]
    assert {s["node"]: s["entries"] for s in status}["n1"] == 10


def _refused(client: TestClient, body: bytes, code: int, reason: str, **headers: str) -> None:
    before = _count(client)
    r = client.post("/api/v1/ingest", content=body, headers={**INGEST, **headers})
    assert r.status_code == code, r.text
    assert reason in r.json()["detail"]
    assert _count(client) == before  # nothing lost, nothing half-stored


def test_malformed_msgpack(seeded: TestClient) -> None:
    _refused(seeded, b"\xc1\xff\x00garbage", 400, "malformed msgpack")
    _refused(seeded, b"", 400, "malformed msgpack")
    valid = encode_batch([make_http_entry()])
    _refused(seeded, valid[:-3], 400, "malformed msgpack")


def test_schema_mismatch(seeded: TestClient) -> None:
    bad = msgspec.msgpack.encode({"v": SCHEMA_VERSION, "entries": [{"id": 1}]})
    _refused(seeded, bad, 400, "does not match the entry schema")


def test_wrong_schema_version_names_both(seeded: TestClient) -> None:
    batch = Batch(v=SCHEMA_VERSION + 1, entries=[make_http_entry()])
    body = msgspec.msgpack.encode(batch)
    before = _count(seeded)
    r = seeded.post("/api/v1/ingest", content=body, headers=INGEST)
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert f"version {SCHEMA_VERSION + 1}" in detail and f"version {SCHEMA_VERSION}" in detail
    # a future version whose entries no longer validate still gets the version answer
    future = msgspec.msgpack.encode({"v": 99, "entries": [{"new": "shape"}]})
    r = seeded.post("/api/v1/ingest", content=future, headers=INGEST)
    assert r.status_code == 400 and "version 99" in r.json()["detail"]
    assert _count(seeded) == before


def test_bad_entry_values_refuse_the_whole_batch(seeded: TestClient) -> None:
    body = encode_batch([make_http_entry(), make_http_entry(ts=float("inf"))])
    _refused(seeded, body, 400, "ts")
    # the last minutes of 9999: refused with the reason, not a 500 from the dedupe window
    # (which the sniffer would retry forever)
    end_of_9999 = 253402300799.0 - 60
    _refused(seeded, encode_batch([make_http_entry(ts=end_of_9999)]), 400, "ts")


def test_oversized_raw_and_entries(workers: int) -> None:
    s = hub_settings(max_batch_bytes=3000, max_batch_entries=5, ingest_workers=workers)
    store = DuckDBStorage()
    with TestClient(create_app(s, storage=store)) as c:
        ingest(c, [make_http_entry()])
        big = encode_batch([make_http_entry(request_body="x" * 5000)])
        _refused(c, big, 413, "over the limit")
        many = encode_batch([make_entry() for _ in range(6)])
        _refused(c, many, 413, "6 entries")
    store.close()


def test_decompression_bombs(workers: int) -> None:
    s = hub_settings(max_decompressed_bytes=100_000, ingest_workers=workers)
    store = DuckDBStorage()
    with TestClient(create_app(s, storage=store)) as c:
        ingest(c, [make_http_entry()])
        zeros = b"\x00" * 50_000_000
        _refused(c, gzip.compress(zeros), 413, "decompressed", **{"Content-Encoding": "gzip"})
        zbomb = zstandard.ZstdCompressor().compress(zeros)
        _refused(c, zbomb, 413, "decompressed", **{"Content-Encoding": "zstd"})
        # a zstd frame that doesn't declare its size
        cobj = zstandard.ZstdCompressor().compressobj()
        streamed = cobj.compress(zeros) + cobj.flush()
        _refused(c, streamed, 413, "decompressed", **{"Content-Encoding": "zstd"})
        _refused(c, b"not gzip", 400, "malformed gzip", **{"Content-Encoding": "gzip"})
        _refused(c, b"not zstd", 400, "malformed zstd", **{"Content-Encoding": "zstd"})
        truncated = gzip.compress(encode_batch([make_http_entry()]))[:-10]
        _refused(c, truncated, 400, "gzip", **{"Content-Encoding": "gzip"})
        _refused(c, zlib.compress(b"x"), 415, "Content-Encoding", **{"Content-Encoding": "br"})
    store.close()


def test_credentials(seeded: TestClient) -> None:
    body = encode_batch([make_http_entry()])
    assert seeded.post("/api/v1/ingest", content=body).status_code == 401
    r = seeded.post("/api/v1/ingest", content=body, headers={"Authorization": "Bearer nope"})
    assert r.status_code in (401, 403)  # the contract allows either
    # a viewer token is not a sniffer credential
    assert seeded.post("/api/v1/ingest", content=body, headers=ADMIN).status_code in (401, 403)
    assert _count(seeded) == 10


def test_non_utf8_header_bytes(seeded: TestClient) -> None:
    body = encode_batch([make_http_entry()])
    raw_headers = [(b"authorization", b"Bearer \xff\xfe\x80"), (b"content-encoding", b"\xff")]
    r = seeded.post("/api/v1/ingest", content=body, headers=raw_headers)  # type: ignore[arg-type]
    assert r.status_code in (401, 403)
    r = seeded.post(
        "/api/v1/ingest",
        content=body,
        headers=[(b"authorization", b"Bearer ingest-secret"), (b"content-encoding", b"\xffz")],  # type: ignore[arg-type]
    )
    assert r.status_code == 415
    r = seeded.get("/api/v1/entries", headers=[(b"authorization", b"Bearer \xc3\x28")])  # type: ignore[arg-type]
    assert r.status_code == 401
    assert _count(seeded) == 10


def test_heartbeat(client: TestClient) -> None:
    hb = {"node": "node-b", "drops": 3, "spool_bytes": 1024, "targets": 7}
    assert client.post("/api/v1/sniffers/heartbeat", json=hb).status_code == 401
    r = client.post("/api/v1/sniffers/heartbeat", json=hb, headers=INGEST)
    assert r.status_code == 200
    bad = client.post("/api/v1/sniffers/heartbeat", json={"drops": -1}, headers=INGEST)
    assert bad.status_code == 422
    sn = client.get("/api/v1/status", headers=ADMIN).json()["sniffers"]
    assert [s for s in sn if s["node"] == "node-b"][0]["targets"] == 7


def test_settings_override_via_dependency(settings: Settings) -> None:
    assert settings.ingest_token is not None


def test_ingest_honours_a_settings_override(settings: Settings) -> None:
    """The ingest route reads its settings through ``get_settings`` overrides too."""
    from hub.core.config import get_settings

    app = create_app(settings)
    app.dependency_overrides[get_settings] = lambda: hub_settings(max_batch_entries=2)
    with TestClient(app) as c:
        es = [make_http_entry() for _ in range(3)]
        r = c.post("/api/v1/ingest", content=encode_batch(es), headers=INGEST)
        assert r.status_code == 413 and "over the limit of 2" in r.text
        assert ingest(c, es[:2])["accepted"] == 2
