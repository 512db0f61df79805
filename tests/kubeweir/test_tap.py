"""``kubeweir tap``: the one-time link, capabilities, the certificate, and end to end
``kubeweir tap --demo`` as a subprocess (real pods, real servers, real capture, real hub)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Query
from fastapi.responses import PlainTextResponse
from starlette.testclient import TestClient

from kubeweir.demo import DEMO_PROTOCOLS
from kubeweir.demo.services import CARDS, PAYMENTS_TOKEN
from kubeweir.tap import (
    HUB_TOKEN_LOGIN,
    LINK_PATH,
    OneTimeLogin,
    TapTargeting,
    cidr_hosts,
    ensure_certificate,
    missing_capabilities,
)
from sniffer.targeting import PodInfo
from sniffer.testing.node import require_root

REPO = Path(__file__).resolve().parents[2]
LINK_RX = re.compile(r"https://127\.0\.0\.1:\d+/tap/login\?token=\S+")


# --- units -------------------------------------------------------------------------------
def test_missing_capabilities_names_each_one() -> None:
    none = "Name:\tx\nCapEff:\t0000000000000000\n"
    assert [n for n, _ in missing_capabilities(False, none)] == ["CAP_NET_RAW"]
    names = [n for n, _ in missing_capabilities(True, none)]
    assert names == [
        "CAP_NET_RAW",
        "CAP_NET_ADMIN",
        "CAP_SYS_ADMIN",
        "CAP_SETUID",
        "CAP_DAC_OVERRIDE",
    ]
    raw_only = f"CapEff:\t{1 << 13:016x}\n"
    assert [n for n, _ in missing_capabilities(True, raw_only)][0] == "CAP_NET_ADMIN"
    full = "CapEff:\t000001ffffffffff\n"
    assert missing_capabilities(True, full) == []


def test_cidr_hosts_bounded() -> None:
    assert cidr_hosts(["10.1.2.0/30"]) == ["10.1.2.1", "10.1.2.2"]
    assert cidr_hosts(["10.1.2.3", "10.1.2.3/32"]) == ["10.1.2.3"]
    assert len(cidr_hosts(["10.9.0.0/24"])) == 254
    import click

    with pytest.raises(click.BadParameter, match="at most 256"):
        cidr_hosts(["10.0.0.0/16"])
    with pytest.raises(click.BadParameter, match="10.0.0.300"):
        cidr_hosts(["10.0.0.300/24"])


def test_certificate_made_once_then_reused(tmp_path: Path) -> None:
    cert, key, fp = ensure_certificate(tmp_path / "tls")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    again = ensure_certificate(tmp_path / "tls")
    assert again == (cert, key, fp)
    from cryptography import x509

    c = x509.load_pem_x509_certificate(cert.read_bytes())
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def test_tap_targeting_registry_services_and_reverse_names() -> None:
    pod = PodInfo(
        uid="u1", name="orders-1", namespace="shop", ips=("10.9.0.2",),
        labels={"app": "orders"}, node="n", workload="Deployment/orders",
    )  # fmt: skip
    t = TapTargeting(
        "n", [pod], ["10.9.1.1"], reverse_lookups=False, services={"10.9.0.2": "orders"}
    )
    assert t.targets == {"10.9.0.2", "10.9.1.1"}
    info = t.endpoint_info("10.9.0.2")
    assert (info["pod"], info["namespace"], info["service"]) == ("orders-1", "shop", "orders")
    assert info["workload"] == "Deployment/orders" and info["labels"] == {"app": "orders"}
    assert t.endpoint_info("10.9.0.2") is info  # merged once, not per entry
    assert not t.endpoint_info("10.9.1.1").get("pod")
    # an address no pod names gets its reverse DNS name (here from /etc/hosts), off-thread
    r = TapTargeting("n", [], ["127.0.0.1"])
    deadline = time.monotonic() + 5
    while not r.endpoint_info("127.0.0.1").get("workload") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.endpoint_info("127.0.0.1")["workload"] == socket.gethostbyaddr("127.0.0.1")[0]


def _login_app() -> FastAPI:
    app = FastAPI()

    @app.get(HUB_TOKEN_LOGIN)
    def token_login(token: str = Query(), next: str = Query("/")) -> PlainTextResponse:
        return PlainTextResponse(f"session for {token} then {next}")

    return app


def test_one_time_link_works_once() -> None:
    # A sync client (its own thread): the browser tests' Playwright keeps an event loop
    # running in the main thread for the whole session.
    login = OneTimeLogin(_login_app(), viewer_token="secret-viewer")
    with TestClient(login, base_url="https://t", follow_redirects=False) as c:
        # the hub's own token route is closed: only the link logs in
        r = c.get(HUB_TOKEN_LOGIN, params={"token": "secret-viewer"})
        assert r.status_code == 403
        r = c.get(LINK_PATH, params={"token": "guess"})
        assert r.status_code == 403 and "not printed" in r.text
        assert not login.used
        r = c.get(login.link("https://t").removeprefix("https://t"))
        assert r.status_code == 200 and r.text == "session for secret-viewer then /"
        r = c.get(login.link("https://t").removeprefix("https://t"))
        assert r.status_code == 410 and "already used" in r.text
        assert "secret-viewer" not in r.text


# --- end to end ----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _sessions_alive(pids: list[int]) -> list[str]:
    """Processes still alive that are, or were started in the session of, one of ``pids``
    (every demo process is started in a session of its own)."""
    wanted = set(pids)
    alive = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, sid = fields[0], int(fields[3])
        if state != "Z" and (int(d.name) in wanted or sid in wanted):
            alive.append(f"{d.name} {stat[:60]}")
    return alive


class _Tap:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubeweir", "tap", "--demo", "--data-dir", str(data_dir),
             "--port", str(self.port), "--capture", "afpacket", "--rate", "5",
             "--no-reverse-lookup"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        )  # fmt: skip
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.link_seen = threading.Event()
        threading.Thread(
            target=self._read, args=(self.proc.stdout, self.stdout), daemon=True
        ).start()
        threading.Thread(
            target=self._read, args=(self.proc.stderr, self.stderr), daemon=True
        ).start()

    def _read(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            if LINK_RX.search(line):
                self.link_seen.set()

    @property
    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)

    def link(self, timeout: float) -> str:
        if not self.link_seen.wait(timeout):
            raise AssertionError(f"no login link within {timeout}s:\n{self.output}")
        m = LINK_RX.search("".join(self.stdout))
        assert m is not None
        return m.group(0)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture
def tap_run(tmp_path: Path) -> Iterator[_Tap]:
    reason = require_root()
    if reason:
        pytest.skip(f"kubeweir tap --demo {reason}")
    run = _Tap(tmp_path / "data")
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait(timeout=10)
            from sniffer.testing.node import cleanup_leftovers

            cleanup_leftovers()


def _entries(client: httpx.Client, base: str, q: str, limit: int = 50) -> list[dict[str, Any]]:
    r = client.get(f"{base}/api/v1/entries", params={"q": q, "limit": limit})
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()["entries"]
    return out


@pytest.mark.netns
def test_tap_demo_end_to_end(tap_run: _Tap) -> None:
    link = tap_run.link(timeout=60)
    startup = time.monotonic() - tap_run.started
    base = link.split(LINK_PATH)[0]
    state = json.loads((tap_run.data_dir / "tap.json").read_text())
    demo = state["demo"]
    pods = {line.split()[0] for line in demo["pods"]}  # namespace/name
    cert = ssl.create_default_context(cafile=tap_run.data_dir / "tls" / "hub.pem")

    with httpx.Client(verify=cert, timeout=10) as anon:
        r = anon.get(f"{base}/api/v1/entries")
        assert r.status_code == 401
        assert anon.get(f"{base}/api/v1/stats").status_code == 401
        assert anon.get(f"{base}/healthz").status_code == 200
        # the hub's token login is closed; only the printed link logs in
        assert anon.get(f"{base}{HUB_TOKEN_LOGIN}", params={"token": "x"}).status_code == 403

    with httpx.Client(verify=cert, timeout=10) as browser:
        r = browser.get(link)
        assert r.status_code == 303, r.text
        assert "kubeweir_session" in r.headers.get("set-cookie", "")
        assert browser.get(f"{base}/api/v1/whoami").status_code == 200
        with httpx.Client(verify=cert, timeout=10) as other:
            r = other.get(link)
            assert r.status_code == 410 and "already used" in r.text
            assert other.get(f"{base}/api/v1/entries").status_code == 401

        # every demo protocol, with the demo's pod names and namespaces on both ends
        deadline = tap_run.started + 30 + startup  # 30 s of traffic after start-up
        seen: dict[str, list[dict[str, Any]]] = {}
        while time.monotonic() < deadline and len(seen) < len(DEMO_PROTOCOLS):
            for proto in DEMO_PROTOCOLS:
                if proto not in seen:
                    found = _entries(browser, base, f'proto == "{proto}"', 20)
                    if found:
                        seen[proto] = found
            time.sleep(0.5)
        missing = set(DEMO_PROTOCOLS) - set(seen)
        assert not missing, f"no {sorted(missing)} entries after 30 s:\n{tap_run.output}"
        traffic = time.monotonic() - tap_run.started - startup
        for proto, entries in seen.items():
            for e in entries:
                for end in ("src", "dst"):
                    ep = e[end]
                    assert f"{ep.get('namespace')}/{ep.get('pod')}" in pods, (proto, end, ep)
                assert e["dst"]["namespace"] in ("shop", "payments", "kube-system")
        workloads = {e["dst"]["workload"] for es in seen.values() for e in es}
        assert "Deployment/inventory" in workloads or "StatefulSet/redis" in workloads
        services = {e["dst"].get("service") for es in seen.values() for e in es}
        assert {"kube-dns", "postgres"} <= services, services

        # secrets are redacted before they reach the hub
        # POSTs are a share of the demo's few calls a second: wait for some (loaded CI).
        deadline = time.monotonic() + 30
        posts: list[dict[str, Any]] = []
        while not posts and time.monotonic() < deadline:
            posts = _entries(browser, base, 'proto == "http" && request.method == "POST"', 10)
            if not posts:
                time.sleep(0.5)
        assert posts, "no POST entries within 30 s"
        for e in posts[:5]:
            full = browser.get(f"{base}/api/v1/entries/{e['id']}").text
            assert PAYMENTS_TOKEN not in full and not any(card in full for card in CARDS)

    sys.stderr.write(f"tap: start-up {startup:.1f}s, every protocol after {traffic:.1f}s\n")
    t0 = time.monotonic()
    assert tap_run.stop() == 0, tap_run.output
    sys.stderr.write(f"tap: stopped in {time.monotonic() - t0:.1f}s\n")

    _assert_gone(demo)
    assert not (tap_run.data_dir / "tap.json").exists()


def _assert_gone(demo: dict[str, Any]) -> None:
    """No namespace, veth, bridge, file or process of a demo run is left."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [ns for ns in demo["netns"] if ns in netns.split()]
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True).stdout or "[]")
    names = {link.get("ifname") for link in links}
    assert not names & set(demo["links"]), names & set(demo["links"])
    assert not [n for n in names if n and n.startswith(f"kwt{demo['tag']}")]
    assert not [ns for ns in demo["netns"] if Path("/etc/netns", ns).exists()]
    assert not Path("/run/kubeweir-testnode", demo["tag"]).exists()
    assert _sessions_alive(demo["pids"]) == []


@pytest.mark.netns
def test_tap_after_a_crash_cleans_up_and_starts(tap_run: _Tap, tmp_path: Path) -> None:
    tap_run.link(timeout=60)
    demo = json.loads((tap_run.data_dir / "tap.json").read_text())["demo"]
    tap_run.proc.kill()  # a crash: no teardown; the demo's processes live on
    tap_run.proc.wait(timeout=10)
    assert _sessions_alive(demo["pids"])
    second = _Tap(tap_run.data_dir)  # same data dir: DuckDB, certificate, spool reused
    try:
        second.link(timeout=60)
        assert "removed leftovers of an earlier run" in second.output
        assert all(ns in second.output for ns in demo["netns"])
        _assert_gone(demo)
        again = json.loads((tap_run.data_dir / "tap.json").read_text())["demo"]
        assert second.stop() == 0, second.output
        _assert_gone(again)
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
