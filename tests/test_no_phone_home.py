"""No phone home: the real ``kubeweir hub`` and ``kubeweir sniff`` run in a network namespace
of their own, and nothing leaves that namespace but what the test itself allows.

One test pod ("kubeweir/kubeweir") holds every program as a process: the emulated
Kubernetes API (``sniffer.testing.kube_server``), the hub over TLS with its own DuckDB file,
the sniffer (afpacket on every interface of the namespace, shipping to the hub over TLS with
the shared token), and an HTTP server and client on the pod's own address for the sniffer to
capture. All of them talk over the namespace's loopback, so the hub and the API server, the
only peers the programs may have (no IdP here), are inside it.

tcpdump records every frame on the host side of the pod's veth for the whole run: its only
way out (the namespace has just ``lo`` and ``eth0``). The pod resolves names through the
node's bridge address, so a name lookup would show as a datagram too. Afterwards every TCP
SYN and UDP datagram the namespace sent (and every other IP packet, but the kernel's IPv6
neighbour discovery) is listed by peer: only one deliberate connection to the bridge address,
the positive control that proves the capture sees what leaves, may appear.

The dashboard check fetches ``/`` from the running hub and every asset it references and
rejects any absolute URL to another host that the browser would load.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from sniffer.testing.cluster import wait_for
from sniffer.testing.hub import make_tls
from sniffer.testing.node import Pod, TestNode, cleanup_leftovers, require_root

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[1]
NODE = "node-a"
HUB_PORT = 8443
METRICS = "127.0.0.1:9090"
INGEST = "nph-ingest-token"
ADMIN = "nph-admin-token"
CALLS = 40
RUN_SECONDS = 10.0
"""How long hub and sniffer run (from the sniffer's start) before everything stops."""

# Absolute URLs that appear in the bundled JavaScript as identifiers or message text and are
# never fetched: XML namespace URIs (DOM createElementNS) and React's error-decoder link.
NOT_FETCHED = ("http://www.w3.org/", "https://react.dev/errors/")
# ICMPv6 the kernel itself sends on a fresh link (router/neighbour solicitation and
# advertisement, MLD): link-local housekeeping, not a program's traffic.
ND_TYPES = {"130", "131", "132", "133", "135", "136", "143"}


def _terminate(procs: list[subprocess.Popen[bytes]], sig: int = signal.SIGTERM) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)


@contextlib.contextmanager
def _tcpdump(interface: str, out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Record every frame on ``interface`` into ``out`` until the block ends."""
    log = out.with_suffix(".log")
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            ["tcpdump", "-i", interface, "-n", "-U", "-s", "256", "-w", str(out)],
            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: proc.poll() is not None or b"listening on" in log.read_bytes(), 10,
              "tcpdump listening")  # fmt: skip
        assert proc.poll() is None, f"tcpdump exited: {log.read_text()}"
        yield proc
    finally:
        _terminate([proc], signal.SIGINT)  # SIGINT: tcpdump flushes and closes the file


def _frames(pcap: Path) -> list[dict[str, str]]:
    fields = ["frame.number", "eth.src", "arp.opcode", "ip.dst", "ipv6.dst", "ip.proto",
              "ipv6.nxt", "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack", "udp.dstport",
              "icmpv6.type"]  # fmt: skip
    cmd = ["tshark", "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=|",
           "-E", "occurrence=f"]  # fmt: skip
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]


def _true(v: str) -> bool:
    return v in ("1", "True", "true")


def _outbound(frames: list[dict[str, str]], mac: str) -> tuple[set[tuple[str, str, str]], int]:
    """Peers ``(proto, address, port)`` of everything IP the namespace sent, and the number of
    frames seen from it. TCP counts by its SYNs and by any other segment (a connection made
    before the capture started would show that way); UDP by every datagram."""
    peers: set[tuple[str, str, str]] = set()
    sent = 0
    for f in frames:
        if f["eth.src"].lower() != mac:
            continue
        sent += 1
        if f["arp.opcode"]:
            continue
        dst = f["ip.dst"] or f["ipv6.dst"]
        if f["icmpv6.type"] in ND_TYPES and dst.startswith(("fe80:", "ff02:")):
            continue
        if f["tcp.dstport"]:
            kind = (
                "tcp-syn" if _true(f["tcp.flags.syn"]) and not _true(f["tcp.flags.ack"]) else "tcp"
            )
            peers.add((kind, dst, f["tcp.dstport"]))
        elif f["udp.dstport"]:
            peers.add(("udp", dst, f["udp.dstport"]))
        else:
            peers.add((f"ip-proto-{f['ip.proto'] or f['ipv6.nxt']}", dst, ""))
    return peers, sent


def _links(pod: Pod) -> list[str]:
    links = json.loads(pod.exec("ip", "-j", "link", "show").stdout)
    return sorted(link["ifname"] for link in links)


class _InPod:
    """HTTPS requests to the hub from inside the pod (it listens on the pod's loopback)."""

    def __init__(self, pod: Pod, ca: Path) -> None:
        self.pod, self.ca = pod, ca

    def get(self, path: str, token: str | None = ADMIN) -> tuple[int, str]:
        args = ["curl", "-sS", "--max-time", "10", "--cacert", str(self.ca),
                "-o", "-", "-w", "\n%{http_code}"]  # fmt: skip
        if token:
            args += ["-H", f"Authorization: Bearer {token}"]
        out = self.pod.exec(*args, f"https://127.0.0.1:{HUB_PORT}{path}", timeout=20).stdout
        body, _, code = out.rpartition("\n")
        return int(code), body

    def json(self, path: str) -> Any:
        code, body = self.get(path)
        assert code == 200, f"GET {path}: {code} {body[:500]}"
        return json.loads(body)


def _absolute_urls(text: str) -> set[str]:
    return set(re.findall(r"https?://[^\s\"'`()<>]+", text))


def _external(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host not in ("127.0.0.1", "localhost")


def _check_dashboard(hub: _InPod) -> int:
    """Fetch ``/`` and every asset it references; return how many files were checked."""
    code, index = hub.get("/", token=None)
    assert code == 200 and "<html" in index.lower(), index[:300]
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", index)
    assert refs, "index.html references no assets"
    bad = [r for r in refs if re.match(r"(?i)(https?:)?//", r) and _external(r)]
    assert bad == [], f"index.html loads from other hosts: {bad}"
    assets = [r for r in refs if r.startswith("/") and not r.startswith("//")]
    assert assets, f"no local assets among {refs}"
    for path in assets:
        code, text = hub.get(path, token=None)
        assert code == 200, f"GET {path}: {code}"
        if path.endswith(".css"):
            loaded = re.findall(r"""(?:url\(\s*["']?|@import\s+["'])([^"')\s]+)""", text)
            ext = [u for u in loaded if re.match(r"(?i)(https?:)?//", u) and _external(u)]
            assert ext == [], f"{path} loads from other hosts: {ext}"
        # JavaScript and CSS alike: any absolute URL to another host must be a known
        # identifier that is never fetched.
        ext = sorted(u for u in _absolute_urls(text) if _external(u))
        fetched = [u for u in ext if not u.startswith(NOT_FETCHED)]
        assert fetched == [], f"{path} references other hosts: {fetched}"
    return 1 + len(assets)


def test_hub_and_sniffer_talk_only_to_each_other_and_the_api(tmp_path: Path) -> None:
    reason = require_root()
    if reason:
        pytest.skip(f"the no-phone-home test {reason}")
    cleanup_leftovers()
    tmp_path.chmod(0o755)
    with TestNode(NODE) as node:
        pod = node.add_pod("kubeweir", "kubeweir", {"app": "kubeweir"})
        pod.resolver(node.host_ip)  # a name lookup would have to leave the namespace
        assert _links(pod) == ["eth0", "lo"]  # the veth is the only way out
        mac = json.loads(pod.exec("ip", "-j", "link", "show", "eth0").stdout)[0]["address"]

        ca, cert, key = make_tls(tmp_path / "tls")
        (tmp_path / "pods.yaml").write_text(yaml.safe_dump(node.pod_object(pod)))
        (tmp_path / "hub.yaml").write_text(yaml.safe_dump({
            "ingest_token": INGEST,
            "secret_key": "nph-secret",
            "retention_max_age": None,
            "retention_max_bytes": None,
            "viewer_tokens": {ADMIN: {"name": "admin", "namespaces": ["*"],
                                      "permissions": ["admin"]}},
        }))  # fmt: skip
        rules = tmp_path / "targeting.yaml"
        rules.write_text(yaml.safe_dump({"namespaces": ["kubeweir"]}))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        env.pop("KUBECONFIG", None)

        def program(name: str, *args: str, **extra_env: str) -> subprocess.Popen[bytes]:
            log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - child owns it
            with log:
                return pod.popen(sys.executable, *args, cwd=str(REPO), env={**env, **extra_env},
                                 stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

        def logs() -> str:
            return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}"
                             for p in sorted(tmp_path.glob("*.log")))  # fmt: skip

        with _tcpdump(pod.host_if, tmp_path / "veth.pcap"):
            started = time.monotonic()
            api = program("kube", "-m", "sniffer.testing.kube_server",
                          "--pods", str(tmp_path / "pods.yaml"),
                          "--kubeconfig", str(tmp_path / "kubeconfig"),
                          "--url-file", str(tmp_path / "api-url"))  # fmt: skip
            hub = program("hub", "-m", "kubeweir", "hub", "--config", str(tmp_path / "hub.yaml"),
                          "--host", "127.0.0.1", "--port", str(HUB_PORT),
                          "--tls-cert", str(cert), "--tls-key", str(key),
                          "--db", str(tmp_path / "hub.duckdb"),
                          "--log-level", "warning")  # fmt: skip
            try:
                wait_for(lambda: (tmp_path / "api-url").exists() or api.poll() is not None, 20,
                      "the API server")  # fmt: skip
                assert api.poll() is None, logs()
                api_url = urlsplit((tmp_path / "api-url").read_text().strip())
                pod.wait_port(HUB_PORT, timeout=30)
                sniff = program("sniffer", "-m", "kubeweir", "sniff",
                                "--hub", f"https://127.0.0.1:{HUB_PORT}", "--ca-file", str(ca),
                                "--node", NODE, "--targeting", str(rules), "--capture", "afpacket",
                                "--interface", "any", "--spool-dir", str(tmp_path / "spool"),
                                "--kubeconfig", str(tmp_path / "kubeconfig"), "--listen", METRICS,
                                "--log-level", "warning",
                                KUBEWEIR_SNIFFER_TOKEN=INGEST, KUBEWEIR_SNIFFER_BATCH_AGE="0.2",
                                KUBEWEIR_SNIFFER_HEARTBEAT_INTERVAL="1")  # fmt: skip
                sniff_started = time.monotonic()
                wait_for(lambda: sniff.poll() is not None or pod.exec(
                    "curl", "-sf", "--max-time", "2", f"http://{METRICS}/readyz", check=False
                ).returncode == 0, 20, "the sniffer ready")  # fmt: skip
                assert sniff.poll() is None, logs()

                # real traffic for the sniffer: a server and a client on the pod's own address
                pod.http_server(8080)
                load = pod.http_calls_start(f"http://{pod.ip}:8080/nph", CALLS, rate=8)

                # positive control: one deliberate connection out, to the bridge address
                with socket.create_server((node.host_ip, 0)) as control:
                    control.settimeout(10)
                    ctl_port = control.getsockname()[1]
                    pod.exec(sys.executable, "-c",
                             "import socket,sys; socket.create_connection("
                             "(sys.argv[1], int(sys.argv[2])), timeout=5).close()",
                             node.host_ip, str(ctl_port))  # fmt: skip
                    conn, peer = control.accept()
                    conn.close()
                assert peer[0] == pod.ip

                tally = json.loads(load.communicate(timeout=30)[0])
                assert tally["ok"] == CALLS, tally
                inpod = _InPod(pod, ca)

                def shipped() -> list[dict[str, Any]]:
                    got = inpod.json("/api/v1/entries?limit=1000&from=0")["entries"]
                    return [e for e in got if e.get("proto") == "http"
                            and str(e["request"]["path"]).startswith("/nph/")]  # fmt: skip

                got = wait_for(lambda: len(shipped()) >= CALLS and shipped(), 20,
                            f"{CALLS} entries in the hub")  # fmt: skip
                assert sorted(e["request"]["path"] for e in got) == sorted(
                    f"/nph/call/{i}" for i in range(CALLS)
                )
                # the sniffer knew the pod from the API server (kmock in the namespace)
                assert {(e["dst"]["pod"], e["dst"]["namespace"]) for e in got} == {
                    ("kubeweir", "kubeweir")
                }
                sniffers = wait_for(lambda: inpod.json("/api/v1/status")["sniffers"], 10,
                                 "a sniffer heartbeat at the hub")  # fmt: skip
                assert [s["node"] for s in sniffers] == [NODE]

                if (REPO / "front" / "dist" / "index.html").is_file():
                    assert _check_dashboard(inpod) >= 2

                # let hub and sniffer run on: heartbeats, pod watches, retention passes
                time.sleep(max(0.0, RUN_SECONDS - (time.monotonic() - sniff_started)))
                assert sniff.poll() is None and hub.poll() is None and api.poll() is None, logs()
                assert _links(pod) == ["eth0", "lo"]
            finally:
                # graceful stops: whatever the programs send on the way out is captured too
                _terminate([p for p in pod.procs if p not in (hub, api)])
                _terminate([hub])
                _terminate([api])
            ran = time.monotonic() - started
        pcap_frames = _frames(tmp_path / "veth.pcap")

    peers, sent = _outbound(pcap_frames, mac.lower())
    control_peer = ("tcp-syn", node.host_ip, str(ctl_port))
    assert control_peer in peers, f"the capture missed the control connection: {peers}"
    allowed = {
        ("127.0.0.1", str(HUB_PORT)),  # the hub
        (str(api_url.hostname), str(api_url.port)),  # the API server
    }  # no IdP here: SAML is not configured
    control_conn = {("tcp-syn", node.host_ip, str(ctl_port)), ("tcp", node.host_ip, str(ctl_port))}
    unexpected = sorted(p for p in peers - control_conn if (p[1], p[2]) not in allowed)
    assert unexpected == [], (
        f"traffic left the namespace in {ran:.0f}s of hub and sniffer: {unexpected}\n{logs()}"
    )
    assert sent >= 3  # at least the control's SYN, ACK and FIN
