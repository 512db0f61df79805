"""Nothing lost, nothing twice: the hub killed under load, the sniffer killed mid-spool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sniffer.spool import Spool
from sniffer.testing.cluster import NODE, Cluster, wait_for
from sniffer.testing.hub import INGEST_TOKEN

REPO = Path(__file__).resolve().parents[3]


def test_hub_killed_during_steady_load(cluster: Cluster) -> None:
    web = cluster.pod("web", "shop", app="web")
    cli = cluster.pod("cli", "shop", app="cli")
    web.http_server(8080)
    agent = cluster.agent("afpacket")
    wait_for(lambda: web.ip in agent.targeting.targets)
    calls = 400
    load = cli.http_calls_start(f"http://{web.ip}:8080/k", calls, connections=2, rate=80)
    time.sleep(1.5)
    cluster.hub.kill()  # SIGKILL mid-load
    wait_for(lambda: agent.shipper.send_errors > 0, 10, "ship failures while the hub is down")
    time.sleep(1.5)
    cluster.hub.start()
    out, _ = load.communicate(timeout=30)
    import json

    tally = json.loads(out)
    assert tally["ok"] == calls and tally["errors"] == 0
    got = wait_for(lambda: len(cluster.entries("/k/")) >= calls and cluster.entries("/k/"),
                   30, "every call stored")  # fmt: skip
    paths = Counter(e["request"]["path"] for e in got)
    ids = Counter(e["id"] for e in got)
    assert len(got) == calls
    assert set(paths) == {f"/k/call/{i}" for i in range(calls)}
    assert max(paths.values()) == 1 and max(ids.values()) == 1  # no duplicates
    assert agent.shipper.send_errors > 0  # the outage really happened


def _sniffer(cluster: Cluster, listen: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO), KUBEWEIR_SNIFFER_TOKEN=INGEST_TOKEN,
               KUBEWEIR_SNIFFER_BATCH_AGE="0.2")  # fmt: skip
    args = [
        sys.executable, "-m", "kubeweir", "sniff", "--hub", cluster.hub.url,
        "--ca-file", str(cluster.hub.ca), "--node", NODE, "--targeting", str(cluster.rules),
        "--capture", "afpacket", "--spool-dir", str(cluster.tmp / "spool"),
        "--kubeconfig", str(cluster.kubeconfig), "--listen", listen,
    ]  # fmt: skip
    log = open(cluster.tmp / "sniffer.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(args, env=env, stdout=log, stderr=log, cwd=str(REPO))


def _ready(listen: str) -> bool:
    import httpx

    try:
        return httpx.get(f"http://{listen}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_sniffer_restart_resumes_its_spool(cluster: Cluster) -> None:
    web = cluster.pod("web", "shop", app="web")
    cli = cluster.pod("cli", "shop", app="cli")
    web.http_server(8080)
    cluster.hub.kill()  # the hub is down: batches pile up in the spool
    listen = "127.0.0.1:19391"
    proc = _sniffer(cluster, listen)
    try:
        wait_for(lambda: _ready(listen), 20, "sniffer ready")
        time.sleep(0.5)  # the filter is attached once the pods are listed
        assert cli.http_calls(f"http://{web.ip}:8080/s", 50)["ok"] == 50
        spool_dir = cluster.tmp / "spool"
        wait_for(lambda: Spool(spool_dir).pending_entries >= 50, 15, "50 entries spooled")
        proc.send_signal(signal.SIGKILL)  # a crash: only what is on disk survives
        proc.wait(timeout=10)
        cluster.hub.start()
        proc = _sniffer(cluster, listen)
        got = wait_for(lambda: len(cluster.entries("/s/")) >= 50 and cluster.entries("/s/"),
                       30, "spooled entries shipped after restart")  # fmt: skip
        assert sorted(e["request"]["path"] for e in got) == sorted(
            f"/s/call/{i}" for i in range(50)
        )
        wait_for(lambda: Spool(spool_dir).pending_entries == 0, 10, "spool emptied")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_stop_flushes_unanswered_calls(cluster: Cluster) -> None:
    """SIGTERM/stop: exchanges still open in the pipeline (a request with no response yet)
    are flushed as entries with an error, sealed and shipped — not lost with the process."""
    slow = cluster.pod("slow", "shop", app="slow")
    cli = cluster.pod("cli", "shop", app="cli")
    never_answers = (
        "import socket, time\n"
        "s = socket.socket(); s.bind(('0.0.0.0', 9000)); s.listen(8)\n"
        "c, _ = s.accept(); time.sleep(60)"
    )
    slow.popen(sys.executable, "-c", never_answers)
    slow.wait_port(9000)
    agent = cluster.agent("afpacket")
    wait_for(lambda: slow.ip in agent.targeting.targets)
    hang = cli.popen("curl", "-s", "--max-time", "30", f"http://{slow.ip}:9000/hang/1")
    wait_for(lambda: agent.pipeline.counters.get("packets", 0) >= 4, 10, "the request captured")
    agent.stop(drain_timeout=5)
    cluster.agents.remove(agent)
    hang.kill()
    got = wait_for(lambda: cluster.entries("/hang/"), 10, "the unanswered call in the hub")
    assert len(got) == 1 and got[0]["error"] and not got[0].get("response", {}).get("status")
