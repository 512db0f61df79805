"""Ingest batches converted in worker processes (``hub.ingest.ConversionPool``): stored
exactly as the hub process stores them, refusals carried back whole, a dead worker costs
a resend (503) and never an entry, and enrichment of the columns equals the entries'."""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgspec
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from hub.enrich import ClusterIndex, Enricher
from hub.ingest import CHUNK, ConversionPool, Refused, cpu_budget, default_workers, to_table
from hub.main import create_app
from hub.storage.duckdb import DuckDBStorage
from hub.storage.rows import batch_to_arrow, entries_to_arrow
from kubeweir.entry import SCHEMA_VERSION, Entry, decode_batch, encode_batch
from kubeweir.testing import make_endpoint, make_entry, make_http_entry
from tests.hub.conftest import ADMIN, INGEST, hub_process, hub_settings, ingest, serve


@pytest.fixture
def pooled() -> Iterator[tuple[TestClient, FastAPI]]:
    store = DuckDBStorage()
    app = create_app(hub_settings(ingest_workers=1), storage=store)
    with TestClient(app) as c:
        yield c, app
    store.close()


def _varied() -> list[Entry]:
    labelled = make_endpoint(ip="10.0.0.9", pod="api-1", namespace="shop")
    labelled.labels = {"app": "api", "tier": "front"}
    return [
        make_http_entry(request_body='{"q": "ünïcode ✓"}', response_body="x" * 3000),
        make_http_entry(method="POST", path="/a?b=c", status=503, src=labelled),
        make_entry(proto="dns", request={"name": "api.shop.svc", "type": "A"}),
        make_entry(
            proto="tcp",
            request={"body": "AAEC/w==", "body_encoding": "base64"},
            redacted=["request.body"],
            error="reset",
            gaps=2,
        ),
    ]


def _stored(client: TestClient, ids: list[str]) -> list[dict[str, object]]:
    out = []
    for i in ids:
        r = client.get(f"/api/v1/entries/{i}", headers=ADMIN)
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def test_a_worker_stores_what_the_hub_process_stores(
    pooled: tuple[TestClient, FastAPI], client: TestClient
) -> None:
    c, app = pooled
    entries = _varied()
    assert ingest(c, entries) == {"accepted": 4, "duplicates": 0}
    pool = app.state.ingest_pool
    assert isinstance(pool, ConversionPool) and len(pool.pids()) == 1  # really a worker
    assert ingest(client, entries) == {"accepted": 4, "duplicates": 0}  # in the hub process
    ids = [e.id for e in entries]
    assert _stored(c, ids) == _stored(client, ids)
    assert ingest(c, entries) == {"accepted": 0, "duplicates": 4}


def test_a_dead_worker_costs_a_resend_not_an_entry(pooled: tuple[TestClient, FastAPI]) -> None:
    c, app = pooled
    pool: ConversionPool = app.state.ingest_pool
    first = [make_http_entry() for _ in range(5)]
    ingest(c, first)
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)
    batch = [make_http_entry() for _ in range(5)]
    body = encode_batch(batch, sniffer="node-a")
    answers = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # as a sniffer does: resend until stored
        r = c.post("/api/v1/ingest", content=body, headers=INGEST)
        answers.append(r.status_code)
        if r.status_code == 200:
            break
        assert r.status_code == 503, r.text
        assert "send it again" in r.json()["detail"] and r.headers["retry-after"] == "1"
        time.sleep(0.2)
    assert answers[-1] == 200 and 503 in answers, answers
    assert pool.restarts == 1 and pool.pids() != [pid]
    total = c.get("/api/v1/stats", headers=ADMIN).json()["total"]
    assert total == 10  # the first batch kept, the resent one stored once
    metrics = c.get("/metrics", headers=ADMIN).text
    assert 'kubeweir_ingest_rejected_total{reason="worker"}' in metrics


def test_workers_take_batches_only_in_a_burst() -> None:
    """With the default ``ingest_pool_min_concurrent`` (2), a batch alone is converted in
    the hub process; batches sent at once go to the workers; every one is stored."""
    store = DuckDBStorage()
    app = create_app(hub_settings(ingest_workers=1, ingest_pool_min_concurrent=2), storage=store)
    url = ""

    def post(body: bytes) -> int:
        r = httpx.post(f"{url}/api/v1/ingest", content=body, headers=INGEST, timeout=60)
        assert r.status_code == 200, r.text
        n: int = r.json()["accepted"]
        return n

    def batch(n: int) -> bytes:
        return encode_batch([make_http_entry() for _ in range(n)], sniffer="node-a")

    for host in serve(app):  # a real server (its lifespan starts the pool)
        url = f"http://{host}"
        pool: ConversionPool = app.state.ingest_pool
        assert sum(post(batch(20)) for _ in range(3)) == 60  # one at a time
        assert pool.converted == 0 and pool.active == 0
        with ThreadPoolExecutor(6) as senders:  # a burst
            assert sum(senders.map(post, [batch(300) for _ in range(24)])) == 24 * 300
        assert 0 < pool.converted <= 24 and pool.active == 0
        stats = httpx.get(f"{url}/api/v1/stats", headers=ADMIN, timeout=60).json()
        assert stats["total"] == 60 + 24 * 300
    store.close()


def test_a_batch_is_converted_a_chunk_at_a_time_as_a_whole_would_be() -> None:
    """``to_table`` decodes and converts ``CHUNK`` entries at a time: the same table as
    the whole batch at once, an id repeated across chunks kept from its first entry, and
    a bad entry refused with its index."""
    entries = [make_http_entry(response_body=f"r{i}") for i in range(2 * CHUNK + 500)]
    first_of_dup = entries[10]
    dup = make_http_entry(response_body="the later copy")
    dup.id = first_of_dup.id
    entries[CHUNK + 700] = dup
    body = encode_batch(entries, sniffer="node-a")
    sniffer, table, total, kept = to_table(body, "", 1 << 30, 50_000, keep_entries=True)
    assert (sniffer, total) == ("node-a", len(entries))
    whole, _ = batch_to_arrow(decode_batch(body).entries)
    assert table.num_rows == len(entries) - 1 and table.equals(whole)
    assert [e.id for e in kept] == [e.id for e in entries if e is not dup]
    empty = to_table(encode_batch([]), "", 1 << 30, 50_000)[1]
    assert empty.num_rows == 0 and empty.schema.equals(whole.schema)
    bad = msgspec.msgpack.encode(
        {"v": SCHEMA_VERSION, "entries": [*entries[:1500], {"id": 7}], "sniffer": "x"}
    )
    with pytest.raises(Refused, match=r"does not match the entry schema.*\(entry 1500\)"):
        to_table(bad, "", 1 << 30, 50_000)


def test_workers_exit_when_the_hub_is_killed(tmp_path: Path) -> None:
    """A hub killed outright (OOM, SIGKILL) leaves no worker behind."""
    with hub_process(tmp_path, "ingest_token: t\ningest_workers: 2\n") as (hub, _):
        children = [
            int(c)
            for task in Path(f"/proc/{hub.pid}/task").iterdir()
            for c in (task / "children").read_text().split()
        ]
        assert len(children) >= 2  # the two workers (and multiprocessing's tracker)
        hub.kill()
        hub.wait()

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 15
    while any(map(alive, children)):
        assert time.monotonic() < deadline, f"left behind: {list(filter(alive, children))}"
        time.sleep(0.2)


def test_refusals_cross_the_process_boundary_whole() -> None:
    exc = pickle.loads(pickle.dumps(Refused(413, "too big", "size")))
    assert (exc.code, exc.reason, exc.label, str(exc)) == (413, "too big", "size", "too big")


def test_cpu_budget_honours_a_pod_cpu_limit(tmp_path: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    f = tmp_path / "cpu.max"
    for text, want in [
        ("max 100000\n", cpus),
        ("150000 100000\n", min(cpus, 2)),  # 1.5 CPUs: two may run at once
        ("50000 100000\n", 1),
        ("garbage\n", cpus),
    ]:
        f.write_text(text)
        assert cpu_budget(f) == want, text
    assert cpu_budget(tmp_path / "absent") == cpus


def test_pool_sizes() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        ConversionPool(0)
    assert [default_workers(n) for n in (1, 2, 3, 64)] == [0, 2, 3, 4]
    pool = ConversionPool(1)
    assert pool.pids() == [] and not pool.ready()  # nothing started before start()
    pool.start()
    deadline = time.monotonic() + 30
    while not pool.ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.ready() and len(pool.pids()) == 1
    pool.close()
    assert not pool.ready()


def _wait_ready(pool: ConversionPool) -> None:
    deadline = time.monotonic() + 60
    while not pool.ready():
        assert time.monotonic() < deadline, "the ingest workers did not come up"
        time.sleep(0.05)


def test_readyz_waits_for_the_ingest_workers() -> None:
    store = DuckDBStorage()
    app = create_app(hub_settings(ingest_workers=2), storage=store)
    with TestClient(app) as c:
        pool: ConversionPool = app.state.ingest_pool
        r = c.get("/readyz")  # the workers take ~1 s to import: not ready yet
        assert (r.status_code, r.json()["status"]) == (503, "ingest workers starting")
        _wait_ready(pool)
        assert c.get("/readyz").json()["status"] == "ready"
        assert len(pool.pids()) == 2 == len(pool._up)  # both workers answered
    store.close()


def test_a_worker_dead_at_start_up_is_replaced_without_any_batch() -> None:
    """A hub that is not ready gets no traffic: the pool must recover on its own."""
    pool = ConversionPool(1)
    pool.start()
    deadline = time.monotonic() + 30
    while not pool.pids():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(pool.pids()[0], signal.SIGKILL)  # dies while importing
    deadline = time.monotonic() + 30
    while pool.restarts == 0:  # what /readyz asks, polled
        assert not pool.ready() and time.monotonic() < deadline
        time.sleep(0.05)
    _wait_ready(pool)
    assert pool.restarts == 1
    pool.close()


def test_a_worker_dead_while_idle_is_replaced_by_readiness() -> None:
    pool = ConversionPool(1)
    pool.start()
    _wait_ready(pool)
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pool.restarts == 0:
        assert time.monotonic() < deadline, "a broken pool was taken for ready"
        pool.ready()
        time.sleep(0.05)
    _wait_ready(pool)
    assert pool.pids() != [pid]
    pool.close()


def _index() -> ClusterIndex:
    """A pod with a workload, labels, a node and a service; a service's ClusterIP."""
    index = ClusterIndex()
    index.apply(
        "Pod",
        "ADDED",
        {
            "metadata": {
                "name": "web-1",
                "namespace": "shop",
                "labels": {"app": "web"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f"}],
            },
            "spec": {"nodeName": "node-a"},
            "status": {"podIP": "10.0.0.1"},
        },
    )
    index.apply(
        "EndpointSlice",
        "ADDED",
        {
            "metadata": {
                "name": "web-x",
                "namespace": "shop",
                "labels": {"kubernetes.io/service-name": "web-svc"},
            },
            "endpoints": [
                {"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod", "name": "web-1"}}
            ],
        },
    )
    index.apply(
        "Service",
        "ADDED",
        {"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "10.0.0.2"}},
    )
    return index


_ips = st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
_text = st.sampled_from(["", "given"])


@st.composite
def _entries(draw: st.DrawFn) -> list[Entry]:
    out = []
    for _ in range(draw(st.integers(1, 6))):
        sides = []
        for _side in range(2):
            ep = make_endpoint(
                ip=draw(_ips), pod=draw(_text), namespace=draw(_text), workload=draw(_text)
            )
            ep.service, ep.node = draw(_text), draw(_text)
            ep.labels = draw(st.sampled_from([{}, {"own": "label"}]))
            sides.append(ep)
        out.append(make_http_entry(src=sides[0], dst=sides[1]))
    return out


@given(_entries())
def test_enriching_columns_equals_enriching_entries(entries: list[Entry]) -> None:
    enricher = Enricher(_index())
    table = enricher.enrich_table(entries_to_arrow(entries))
    for e in entries:
        enricher.enrich(e)
    assert table.equals(entries_to_arrow(entries))


def test_the_index_fills_what_enrichment_is_tested_with() -> None:
    index = _index()
    web, db = index.lookup("10.0.0.1"), index.lookup("10.0.0.2")
    assert web is not None and db is not None
    assert (web.pod, web.workload, web.service, web.node) == (
        "web-1",
        "Deployment/web",
        "web-svc",
        "node-a",
    )
    assert (db.pod, db.namespace, db.service) == ("", "shop", "db")
