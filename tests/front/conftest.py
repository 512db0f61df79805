"""Browser tests of the dashboard: a real hub (in-memory DuckDB, uvicorn on loopback in a
thread) serving the built ``front/dist``, fed through its ingest API, driven by Debian's
Chromium through Playwright. Never runs ``playwright install``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubeweir.entry import Entry, encode_batch

REPO = Path(__file__).resolve().parents[2]
FRONT = REPO / "front"
DIST = FRONT / "dist"
ARTIFACTS = REPO / "test-artifacts" / "front"

CHROMIUM = "/usr/bin/chromium"
INGEST_TOKEN = "ingest-secret-for-tests"
VIEWERS: dict[str, dict[str, Any]] = {
    # token -> viewer (as the hub's config has them)
    "tok-alice": {
        "name": "alice",
        "namespaces": ["*"],
        "permissions": ["view-bodies", "download-pcap", "export"],
    },
    "tok-bob": {"name": "bob", "namespaces": ["shop"], "permissions": ["view-bodies", "export"]},
    "tok-carol": {"name": "carol", "namespaces": [], "permissions": []},
    "tok-dave": {"name": "dave", "namespaces": ["shop"], "permissions": []},
    "tok-erin": {"name": "erin", "namespaces": ["*"], "permissions": ["admin"]},
}


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    """Debian's Chromium, never a downloaded one; no network beyond loopback."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt package chromium)")
    return {
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1280, "height": 720}}


def _sources_newer_than(stamp: Path) -> bool:
    t = stamp.stat().st_mtime
    files = [FRONT / "index.html", FRONT / "package.json", FRONT / "vite.config.ts"]
    files += list((FRONT / "src").rglob("*"))
    return any(f.is_file() and f.stat().st_mtime > t for f in files)


@pytest.fixture(scope="session")
def front_dist() -> Path:
    """The built dashboard; built here when missing or older than its sources
    (``make test`` builds it first, so this only helps running pytest alone)."""
    index = DIST / "index.html"
    if not index.is_file() or _sources_newer_than(index):
        if not (FRONT / "node_modules").is_dir() or shutil.which("npm") is None:
            pytest.fail("front/dist is missing or stale and npm packages are absent: `make front`")
        subprocess.run(["npm", "run", "--silent", "build"], cwd=FRONT, check=True, timeout=300)
    return DIST


@dataclass
class Hub:
    url: str

    def ingest(self, entries: list[Entry], sniffer: str = "node-1") -> dict[str, Any]:
        r = httpx.post(
            f"{self.url}/api/v1/ingest",
            content=encode_batch(entries, sniffer=sniffer),
            headers={
                "Authorization": f"Bearer {INGEST_TOKEN}",
                "Content-Type": "application/msgpack",
            },
            timeout=30,
        )
        r.raise_for_status()
        out: dict[str, Any] = r.json()
        assert out["accepted"] == len(entries), out
        return out

    def heartbeat(self, node: str, **fields: int) -> None:
        r = httpx.post(
            f"{self.url}/api/v1/sniffers/heartbeat",
            json={"node": node, **fields},
            headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            timeout=10,
        )
        r.raise_for_status()

    def login_url(self, token: str = "tok-alice", next_path: str = "/") -> str:
        q = httpx.QueryParams({"token": token, "next": next_path})
        return f"{self.url}/auth/token-login?{q}"


@pytest.fixture
def hub_settings_overrides() -> dict[str, Any]:
    """Extra hub settings; a test overrides it with ``@pytest.mark.parametrize``."""
    return {}


@pytest.fixture
def hub(front_dist: Path, hub_settings_overrides: dict[str, Any]) -> Iterator[Hub]:
    """A real hub on a free loopback port, fresh (empty) for each test."""
    import uvicorn

    from hub.core.config import Settings
    from hub.main import create_app

    settings = Settings(
        db=":memory:",
        ingest_token=INGEST_TOKEN,
        viewer_tokens=VIEWERS,
        cookie_secure=False,
        front_dist=front_dist,
        enrich=False,
        **hub_settings_overrides,
    )
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", ws_ping_interval=None)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the hub did not start")
        time.sleep(0.02)
    try:
        yield Hub(url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


Shot = Callable[[Any, str], Path]


@pytest.fixture
def shot() -> Shot:
    """``shot(page, "name")`` saves a screenshot to test-artifacts/front/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return take


@pytest.fixture(autouse=True)
def _no_uncaught_page_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every browser test also fails on an uncaught exception in the page."""
    if "page" not in request.fixturenames:
        yield
        return
    page = request.getfixturevalue("page")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield
    assert not errors, errors
