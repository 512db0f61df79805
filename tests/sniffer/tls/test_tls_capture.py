"""TLS plaintext through uprobes on OpenSSL, end to end on the test node: uvicorn
(SSL_read_ex/SSL_write_ex on memory BIOs) and curl (SSL_read/SSL_write on a socket BIO)
in separate pods."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import redaction
from sniffer.pipeline import PipelineSettings
from sniffer.testing.cluster import wait_for
from sniffer.testing.node import Pod, TestNode
from sniffer.tls.capture import TlsCapture
from tests.sniffer.tls.tlshelp import PORT, Sink, https_server

SECRET = "s3cr3t-t0ken-v4lue-for-tls"


def perf_fds() -> int:
    """perf event fds of this process (each attached uprobe holds one)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "perf_event" in os.readlink(f"/proc/self/fd/{fd}"):
                n += 1
        except OSError:
            pass
    return n


def info_of(pods: list[Pod]) -> Any:
    table = {p.ip: {"pod": p.name, "namespace": p.namespace, "node": "node-a"} for p in pods}
    return lambda ip: table.get(ip, {})


@pytest.fixture
def capture(node: TestNode) -> Iterator[tuple[TlsCapture, Sink, list[Pod]]]:
    pods = [node.add_pod(n, "shop") for n in ("srv", "cli", "srv2", "cli2")]
    sink = Sink()
    settings = PipelineSettings(
        node="node-a",
        redact=redaction.default_engine().apply,
        endpoint_info=info_of(pods),
    )
    cap = TlsCapture(settings, sink)
    try:
        yield cap, sink, pods
    finally:
        cap.stop()


def test_https_both_ends_redacted_same_ids_untargeted_never(
    capture: tuple[TlsCapture, Sink, list[Pod]], tmp_path: Path
) -> None:
    cap, sink, (srv, cli, srv2, cli2) = capture
    https_server(srv, tmp_path)
    https_server(srv2, tmp_path)
    base_fds = perf_fds()
    cap.start()
    cap.set_targets([srv.ip, cli.ip])
    wait_for(lambda: cap.probes is not None and cap.probes.libs, 10, "libssl attached")
    assert perf_fds() > base_fds

    for i in range(3):
        out = cli.curl(f"https://{srv.ip}:{PORT}/api/orders/{i}?x=1", "-k",
                       "-H", f"Authorization: Bearer {SECRET}")  # fmt: skip
        assert json.loads(out)["path"] == f"/api/orders/{i}"
    cli.curl(f"https://{srv.ip}:{PORT}/status/404", "-k")
    # untargeted pods talking TLS to each other: never read
    for _ in range(3):
        cli2.curl(f"https://{srv2.ip}:{PORT}/untargeted/1", "-k")

    got = wait_for(lambda: len(sink.by_path("/api/orders/")) >= 6 and sink.by_path("/api/"),
                   10, "client- and server-side entries")  # fmt: skip
    assert len(got) == 6
    by_id: dict[str, list[dict[str, Any]]] = {}
    for e in got:
        assert e["proto"] == "http" and e["tls"] is True
        assert e["response"]["status"] == 200
        assert e["request"]["method"] == "GET" and e["request"]["query"] == "x=1"
        assert e["src"]["pod"] == "cli" and e["src"]["ip"] == cli.ip
        assert e["dst"]["pod"] == "srv" and e["dst"]["ip"] == srv.ip and e["dst"]["port"] == PORT
        assert e.get("index", 0) == 0 and e["stream"]
        assert SECRET not in json.dumps(e)
        assert "request.headers.authorization" in e["redacted"]
        by_id.setdefault(e["id"], []).append(e)
    # the client's capture (curl) and the server's (uvicorn) name each call alike
    assert len(by_id) == 3 and all(len(v) == 2 for v in by_id.values())
    for same in by_id.values():
        assert same[0]["request"]["path"] == same[1]["request"]["path"]
        assert same[0]["src"]["port"] == same[1]["src"]["port"]
    four = wait_for(lambda: sink.by_path("/status/404"), 10, "the 404")
    assert {e["response"]["status"] for e in four} == {404}
    assert not sink.by_path("/untargeted/")
    c = cap.counters
    assert c["kernel_ring_full"] == 0 and c["entries"] >= 8

    # the pods stop being targeted: the probes come off the library, nothing more is read
    with_probes = perf_fds()
    cap.set_targets([])
    wait_for(lambda: not cap.probes.libs and not cap.probes.map_pids(), 5, "probes detached")
    assert perf_fds() < with_probes
    before = len(sink.entries)
    cli.curl(f"https://{srv.ip}:{PORT}/api/after-untarget", "-k")
    time.sleep(0.5)
    assert len(sink.entries) == before

    cap.stop()
    assert perf_fds() == base_fds  # every uprobe and tracepoint is gone
    assert "libssl" not in Path("/sys/kernel/tracing/uprobe_events").read_text()


HANGING_CLIENT = """
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection((sys.argv[1], int(sys.argv[2]))))
s.sendall(b"GET /hanging HTTP/1.1\\r\\nHost: x\\r\\n")  # no blank line: no answer comes
print("sent", flush=True)
s.recv(100)  # blocks inside SSL_read until killed
"""


def test_exit_mid_call_and_process_without_libssl_do_not_disturb(
    capture: tuple[TlsCapture, Sink, list[Pod]], tmp_path: Path
) -> None:
    cap, sink, (srv, cli, _srv2, _cli2) = capture
    https_server(srv, tmp_path)
    idle = cli.popen("sleep", "60")  # a targeted process without libssl
    cap.start()
    cap.set_targets([srv.ip, cli.ip])
    wait_for(lambda: cap.probes is not None and idle.pid in cap.probes.map_pids(), 10,
             "the libssl-less process targeted")  # fmt: skip
    hang = cli.popen(sys.executable, "-c", HANGING_CLIENT, srv.ip, str(PORT),
                     stdout=subprocess.PIPE)  # fmt: skip
    assert hang.stdout is not None and hang.stdout.readline().strip() == b"sent"
    time.sleep(0.3)
    assert cap.probes is not None
    inflight = cap.probes.bpf[b"inflight"]
    wait_for(lambda: list(inflight.keys()), 5, "a call in flight")
    os.killpg(hang.pid, signal.SIGKILL)  # the process dies inside SSL_read
    hang.wait(timeout=5)
    wait_for(lambda: not list(inflight.keys()), 5, "the dead call forgotten")

    for i in range(2):
        cli.curl(f"https://{srv.ip}:{PORT}/after/{i}", "-k")
    got = wait_for(lambda: len(sink.by_path("/after/")) >= 4 and sink.by_path("/after/"), 10,
                   "calls after the exit")  # fmt: skip
    assert sorted(e["request"]["path"] for e in got) == ["/after/0"] * 2 + ["/after/1"] * 2
    assert all(e["response"]["status"] == 200 and e["tls"] for e in got)
    # the dead client's half request: kept on the server side as a request without answer
    # once its socket closed; never mixed into the later calls
    cap.stop()
    hanging = sink.by_path("/hanging")
    assert all(not e.get("response") for e in hanging)
    assert cap.c["scans"] >= 1
