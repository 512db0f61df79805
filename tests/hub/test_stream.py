"""WS /api/v1/stream: live entries by filter and scope; slow clients miss, ingest never waits."""
# TestClient.websocket_connect adds keys to the headers dict it is given: pass copies.

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from websockets.sync.client import connect

from hub.core.config import Settings
from hub.main import create_app
from kubeweir.entry import encode_batch
from kubeweir.testing import make_http_entry
from tests.hub.conftest import ADMIN, BOB, INGEST, hub_settings, ingest, serve


@pytest.fixture(params=[0, 1], ids=["in-process", "worker"])
def settings(request: pytest.FixtureRequest) -> Settings:
    """Batches converted in the hub process, or in a worker (the stream's entries are
    then decoded again in the hub): viewers see the same either way."""
    return hub_settings(ingest_workers=request.param)


def test_stream_filters_by_query_and_scope(client: TestClient) -> None:
    with (
        client.websocket_connect(
            "/api/v1/stream?q=response.status%20%3E%3D%20500", headers=dict(ADMIN)
        ) as admin_ws,
        client.websocket_connect("/api/v1/stream", headers=dict(BOB)) as bob_ws,
    ):
        es = [
            make_http_entry(status=500, src_ns="payments", dst_ns="payments"),
            make_http_entry(status=200, src_ns="shop", dst_ns="shop"),
            make_http_entry(status=503, src_ns="shop", dst_ns="shop", request_body="secret"),
        ]
        ingest(client, es)
        got_admin = [admin_ws.receive_json(), admin_ws.receive_json()]
        assert [m["entry"]["id"] for m in got_admin] == [es[0].id, es[2].id]
        got_bob = [bob_ws.receive_json(), bob_ws.receive_json()]
        assert [m["entry"]["id"] for m in got_bob] == [es[1].id, es[2].id]
        # no bodies on the stream; no headers without view-bodies
        assert "body" not in got_bob[1]["entry"]["request"]
        assert "headers" not in got_bob[1]["entry"]["request"]
        assert "headers" in got_admin[1]["entry"]["request"]
        # a resent batch is not streamed again
        ingest(client, es)
        ingest(client, [make_http_entry(status=501, src_ns="shop", dst_ns="shop")])
        assert admin_ws.receive_json()["entry"]["response"]["status"] == 501


def test_stream_bad_query_gets_error_message(client: TestClient) -> None:
    with client.websocket_connect(
        "/api/v1/stream?q=nosuch%20%3D%3D%201", headers=dict(ADMIN)
    ) as ws:
        msg = ws.receive_json()
    assert msg["type"] == "error" and msg["detail"]["message"].startswith("unknown field")


@pytest.fixture
def live_hub() -> Iterator[str]:
    yield from serve(create_app(hub_settings(stream_queue=20)))


def test_slow_client_is_told_what_it_missed_and_ingest_never_waits(live_hub: str) -> None:
    n_batches, per_batch = 10, 200
    with connect(
        f"ws://{live_hub}/api/v1/stream",
        additional_headers=ADMIN,
        max_size=None,
        open_timeout=10,
    ) as ws:
        _slow_client_run(ws, live_hub, n_batches, per_batch)


def _slow_client_run(ws: Any, live_hub: str, n_batches: int, per_batch: int) -> None:
    total = n_batches * per_batch
    try:
        time.sleep(0.2)  # subscribed
        big = {"x-pad": "p" * 4000}  # ~4 KB per message: the socket buffers fill up
        started = time.perf_counter()
        with httpx.Client(base_url=f"http://{live_hub}", timeout=30) as http:
            for _ in range(n_batches):
                es = [make_http_entry(request_headers=big) for _ in range(per_batch)]
                r = http.post("/api/v1/ingest", content=encode_batch(es), headers=INGEST)
                assert r.json()["accepted"] == per_batch
        ingest_seconds = time.perf_counter() - started
        # the client has read nothing so far; now it catches up
        entries = missed = 0
        deadline = time.monotonic() + 30
        while entries + missed < total and time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=10))
            if msg["type"] == "entry":
                entries += 1
            elif msg["type"] == "missed":
                missed += msg["count"]
        assert entries + missed == total
        assert missed > 0 and entries >= 20
        assert ingest_seconds < 30
    finally:
        ws.close()
