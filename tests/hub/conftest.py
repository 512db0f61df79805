"""Hub test set-up: an app on in-memory DuckDB with a sniffer token and three viewers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hub.core.config import Settings
from hub.main import create_app
from hub.storage.duckdb import DuckDBStorage
from kubeweir.entry import Entry, encode_batch

INGEST = {"Authorization": "Bearer ingest-secret"}
ADMIN = {"Authorization": "Bearer admin-token"}
ALICE = {"Authorization": "Bearer alice-token"}  # payments* only, may view bodies
BOB = {"Authorization": "Bearer bob-token"}  # shop only, may export but not view bodies


def hub_settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "db": ":memory:",
        "ingest_token": "ingest-secret",
        "secret_key": "test-secret-key",
        "cookie_secure": False,
        "retention_max_age": None,
        "retention_max_bytes": None,
        "ingest_workers": 0,  # in process: tests/hub/test_ingest_pool.py has the workers
        "ingest_pool_min_concurrent": 1,  # a test that asks for workers gets every batch there
        "viewer_tokens": {
            "admin-token": {"name": "admin", "namespaces": ["*"], "permissions": ["admin"]},
            "alice-token": {
                "name": "alice",
                "namespaces": ["payments*"],
                "permissions": ["view-bodies", "export"],
            },
            "bob-token": {"name": "bob", "namespaces": ["shop"], "permissions": ["export"]},
        },
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def settings() -> Settings:
    return hub_settings()


@pytest.fixture
def storage() -> Iterator[DuckDBStorage]:
    s = DuckDBStorage(":memory:")
    yield s
    s.close()


@pytest.fixture
def app(settings: Settings, storage: DuckDBStorage) -> FastAPI:
    return create_app(settings, storage=storage)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def ingest(client: TestClient, entries: list[Entry], **headers: str) -> dict[str, int]:
    r = client.post(
        "/api/v1/ingest", content=encode_batch(entries, sniffer="node-a"), headers=INGEST
    )
    assert r.status_code == 200, r.text
    out: dict[str, int] = r.json()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve(app: FastAPI) -> Iterator[str]:
    """Run the app on a real uvicorn server on loopback; yields ``host:port``."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=10)


@contextmanager
def hub_process(tmp_path: Path, config: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``kubeweir hub`` as its own process with this YAML config and a DuckDB file in
    ``tmp_path``; yields the process and its base URL once ``/readyz`` answers 200, and
    stops it at the end (if the test has not)."""
    port = _free_port()
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(config)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubeweir", "hub", "--config", str(cfg), "--port", str(port),
         "--db", str(tmp_path / "h.duckdb"), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "hub did not start"
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=20)
