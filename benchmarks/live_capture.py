"""Live capture: wrk between two pods, with nothing / tcpdump -w / the kubeweir sniffer.

    sudo .venv/bin/python -m benchmarks.live_capture [--duration 5] [--connections 1,2,4,8]

A test node (netns pods on a bridge) runs Debian's nginx-light in one pod and wrk in
another. For fixed-length runs at rising connection counts it measures the workload's own
rate with no capture, with ``tcpdump -w`` on ``any`` (same filter), and with
``kubeweir sniff`` for each capture source; for the sniffer it counts the entries the hub
stored for the run (after the sniffer caught up) against wrk's count of completed
requests, the kernel drops, and the sniffer's CPU. A separate part drives 100,000
concurrent open flows (synthetic SYNs) through the Pipeline to measure RSS with the flow
cap enforced. Prints a markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
CLK = os.sysconf("SC_CLK_TCK")
RING_MB = 256


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_WRK_REQ = re.compile(r"(\d+) requests in ([\d.]+)(\w+)")


def wrk(client: Any, url: str, conns: int, duration: int) -> tuple[int, float]:
    """(completed requests, requests/s) of one wrk run."""
    out = client.exec("wrk", "-t1", f"-c{conns}", f"-d{duration}s", url,
                      timeout=duration + 30).stdout  # fmt: skip
    m = _WRK_REQ.search(out)
    if m is None:
        raise RuntimeError(f"unexpected wrk output: {out}")
    n = int(m.group(1))
    secs = float(m.group(2)) * {"s": 1, "ms": 1e-3, "m": 60}.get(m.group(3), 1)
    return n, n / secs


def tcpdump_run(client: Any, server: Any, url: str, conns: int, duration: int,
                tmp: Path) -> tuple[int, float, int]:  # fmt: skip
    """wrk with ``tcpdump -w`` on any: (requests, rate, packets dropped by kernel)."""
    pcap = tmp / "tcpdump.pcap"
    proc = subprocess.Popen(
        ["tcpdump", "-i", "any", "-w", str(pcap), "-B", str(64 * 1024), "-s", "0",
         f"host {server.ip}"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)
    n, rate = wrk(client, url, conns, duration)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    m = re.search(rb"(\d+) packets dropped by kernel", err)
    pcap.unlink(missing_ok=True)
    return n, rate, int(m.group(1)) if m else -1


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([\d.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


class Sniffer:
    """``kubeweir sniff`` as a process of its own (its CPU measured apart)."""

    def __init__(self, cluster: Any, capture: str, port: int, workers: int = 1) -> None:
        from sniffer.testing.hub import INGEST_TOKEN

        self.listen = f"127.0.0.1:{port}"
        env = dict(os.environ, PYTHONPATH=str(REPO), KUBEWEIR_SNIFFER_TOKEN=INGEST_TOKEN,
                   KUBEWEIR_SNIFFER_RING_MB=str(RING_MB),
                   KUBEWEIR_SNIFFER_BATCH_ENTRIES="5000")  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubeweir", "sniff", "--hub", cluster.hub.url,
             "--ca-file", str(cluster.hub.ca), "--node", "node-a",
             "--targeting", str(cluster.rules), "--capture", capture,
             "--spool-dir", str(cluster.tmp / f"spool-{capture}"),
             "--kubeconfig", str(cluster.kubeconfig), "--listen", self.listen,
             "--log-level", "warning", "--workers", str(workers)],
            env=env, cwd=str(REPO),
            stdout=subprocess.DEVNULL,
            stderr=open(cluster.tmp / f"sniffer-{capture}-{workers}.log", "wb"),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{self.listen}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("sniffer did not become ready")
        time.sleep(1.0)

    def metrics(self) -> str:
        return httpx.get(f"http://{self.listen}/metrics", timeout=5).text

    def _pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        kids = children.read_text().split() if children.exists() else []
        return [self.proc.pid, *(int(k) for k in kids)]

    def rss(self) -> float:
        """MiB resident in the agent and its worker processes."""
        total = 0.0
        for pid in self._pids():
            try:
                total += _rss_mib(pid)
            except OSError:
                pass
        return total

    def cpu(self) -> float:
        """CPU seconds of the agent and its worker processes."""
        total = _cpu_seconds(self.proc.pid)
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        for pid in children.read_text().split() if children.exists() else ():
            try:
                total += _cpu_seconds(int(pid))
            except OSError:
                pass
        return total

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def sniffer_runs(cluster: Any, client: Any, url: str, capture: str, conns_list: list[int],
                 duration: int, port: int, workers: int = 1) -> list[dict[str, Any]]:  # fmt: skip
    snf = Sniffer(cluster, capture, port, workers)
    if workers > 1:
        capture = f"{capture} ×{workers}"
    rows = []
    try:
        for conns in conns_list:
            before = cluster.hub.total()
            m0 = snf.metrics()
            cpu0 = snf.cpu()
            t0 = time.monotonic()
            n, rate = wrk(client, url, conns, duration)
            run_secs = time.monotonic() - t0
            cpu_run = snf.cpu() - cpu0
            # let the sniffer drain its ring and the shipper its spool
            stored = 0
            last: tuple[float, int] = (-1.0, -1)
            stable = 0
            parsed_at: float | None = None
            entries0 = _metric(m0, "kubeweir_sniffer_entries_total")
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if parsed_at is None:
                    made = _metric(snf.metrics(), "kubeweir_sniffer_entries_total") - entries0
                    if made >= n:
                        parsed_at = time.monotonic() - t0
                stored = cluster.hub.total() - before
                if stored >= n:
                    time.sleep(2.0)  # stragglers: requests wrk had in flight at the end
                    stored = cluster.hub.total() - before
                    break
                text = snf.metrics()
                now = (_metric(text, "kubeweir_sniffer_packets_total"), stored)
                idle = _metric(text, "kubeweir_sniffer_spool_batches") == 0
                stable = stable + 1 if now == last and idle else 0
                if stable >= 8:  # nothing captured, parsed or shipped for 4 s: done
                    break
                last = now
                time.sleep(0.5)
            catch_up = time.monotonic() - t0 - run_secs
            cpu_total = snf.cpu() - cpu0
            m1 = snf.metrics()
            drops = _metric(m1, "kubeweir_sniffer_kernel_drops_total") - _metric(
                m0, "kubeweir_sniffer_kernel_drops_total")  # fmt: skip
            rows.append({
                "capture": capture, "conns": conns, "wrk": n, "rate": rate, "stored": stored,
                "complete": stored >= n, "kernel_drops": int(drops),
                "cpu": cpu_run, "cpu_total": cpu_total,
                "cpu_per_krps": cpu_total / max(1, stored) * 1000,
                "sustained": stored / (run_secs + max(0.0, catch_up)),
                "parse_rate": n / parsed_at if parsed_at else 0.0,
                "catch_up": max(0.0, catch_up), "rss": snf.rss(),
                "load": os.getloadavg()[0],
            })  # fmt: skip
            print(f"  {capture} c={conns}: wrk {n} ({rate:,.0f}/s) stored {stored} "
                  f"drops {int(drops)} cpu {cpu_run:.1f}s catch-up {catch_up:.1f}s",
                  file=sys.stderr, flush=True)  # fmt: skip
    finally:
        snf.stop()
    return rows


def replay_profile(client: Any, server: Any, url: str, duration: int = 2) -> dict[str, Any]:
    """Where the sniffer's time goes: frames of a wrk run captured once (AF_PACKET ring),
    then replayed through the Pipeline with and without redaction, and profiled."""
    import cProfile
    import pstats

    from sniffer.pipeline import Pipeline, PipelineSettings
    from sniffer.sources.afpacket import AfPacketSource

    src = AfPacketSource()
    frames: list[tuple[float, int, bytes]] = []
    try:
        src.set_targets([server.ip])
        proc = client.popen("wrk", "-t1", "-c4", f"-d{duration}s", url)
        end = time.monotonic() + duration + 1.5
        while time.monotonic() < end:
            src.dispatch(lambda ts, lt, fr: frames.append((ts, lt, fr)), 0.1)
        proc.wait(timeout=30)
    finally:
        src.close()
    import redaction

    info = {"pod": "nginx", "namespace": "bench", "labels": {"app": "nginx"}}
    out: dict[str, Any] = {"frames": len(frames)}
    for label, redact in (("plain", None), ("redacted", redaction.default_engine().apply)):
        pipe = Pipeline(PipelineSettings(redact=redact, endpoint_info=lambda ip: info))
        t0 = time.perf_counter()
        for ts, lt, fr in frames:
            pipe.feed(ts, lt, fr)
        pipe.close()
        n = len(pipe.take())
        dt = time.perf_counter() - t0
        out[label] = {"entries": n, "entries_s": n / dt, "frames_s": len(frames) / dt}
    pipe = Pipeline(PipelineSettings(redact=redaction.default_engine().apply,
                                     endpoint_info=lambda ip: info))  # fmt: skip
    prof = cProfile.Profile()
    prof.enable()
    for ts, lt, fr in frames:
        pipe.feed(ts, lt, fr)
    prof.disable()
    by_area: dict[str, float] = {}
    total = 0.0
    for (file, _, _), (_, _, tt, _, _) in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
        total += tt
        rel = file.split("/work/main/")[-1] if "/work/main/" in file else file
        area = ("redaction" if rel.startswith("redaction/") else
                "parsers" if rel.startswith("sniffer/parsers/") else
                "reassembly" if rel.startswith("sniffer/reassembly") else
                "decode" if rel.startswith("sniffer/capture/") else
                "pipeline (entries)" if rel.startswith("sniffer/pipeline") else
                "entry model" if rel.startswith("kubeweir/") else "builtins / other")  # fmt: skip
        by_area[area] = by_area.get(area, 0.0) + tt
    out["profile"] = {k: v / total for k, v in sorted(by_area.items(), key=lambda kv: -kv[1])}
    return out


def flows_rss(n: int = 100_000, extra: int = 20_000) -> dict[str, Any]:
    """RSS of a Pipeline holding ``n`` open TCP flows (SYNs), then ``extra`` more past
    the cap (``max_flows = n``): the cap holds and is counted."""
    from sniffer.pipeline import Pipeline, PipelineSettings

    pipe = Pipeline(PipelineSettings(max_flows=n))
    base = _rss_mib(os.getpid())
    hdr = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
    t = time.time()
    t0 = time.perf_counter()
    for i in range(n + extra):
        src = bytes([10, 244, 200 + (i >> 16) % 50, (i >> 8) & 0xFF])
        frame = hdr.pack(0x45, 0, 40, 0, 0, 64, 6, 0, src, bytes([10, 244, 199, 1]),
                         1024 + (i & 0xFF), 80, i * 7919, 0, 0x50, 0x02, 65535, 0, 0)  # fmt: skip
        pipe.feed(t + i * 1e-6, 101, frame)
    elapsed = time.perf_counter() - t0
    rss = _rss_mib(os.getpid())
    c = pipe.counters
    tcp = getattr(pipe, "_tcp", None)
    open_flows = len(getattr(tcp, "conns", ()))
    return {"flows": n, "extra": extra, "open": open_flows, "rss": rss, "base": base,
            "bound_flows": c.get("bound_flows", 0), "evicted": c.get("closed_evicted", 0),
            "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "syn_rate": (n + extra) / elapsed}  # fmt: skip


def flows_in_fresh_process() -> dict[str, Any]:
    """``flows_rss`` in a new interpreter, so its RSS is the Pipeline's and nothing else."""
    import json

    code = (
        "import json; from benchmarks.live_capture import flows_rss; print(json.dumps(flows_rss()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(REPO)).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", default="1,2,4,8,16")
    ap.add_argument("--sources", default="afpacket,ebpf")
    ap.add_argument("--skip-flows", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="capture worker processes")
    ap.add_argument("--only-flows", action="store_true", help="just the 100k-flow RSS part")
    args = ap.parse_args()
    conns_list = [int(c) for c in args.connections.split(",")]
    if args.only_flows:
        f = flows_in_fresh_process()
        print(_flows_line(f))
        return
    from sniffer.testing.cluster import Cluster
    from sniffer.testing.hub import HubProcess
    from sniffer.testing.kube import KubeAPI
    from sniffer.testing.node import TestNode, cleanup_leftovers, require_root

    reason = require_root()
    if reason:
        print(f"## Live capture: wrk between two pods (benchmarks/live_capture.py)\n\n"
              f"Skipped: it {reason}.\n")  # fmt: skip
        return
    cleanup_leftovers()
    load = os.getloadavg()
    baseline: dict[int, float] = {}
    with_tcpdump: dict[int, tuple[int, float, int]] = {}
    rows: list[dict[str, Any]] = []
    with TemporaryDirectory() as td, TestNode("node-a") as node, KubeAPI() as kube:
        tmp = Path(td)
        hub = HubProcess(tmp / "hub").start()
        try:
            cluster = Cluster(node, kube, hub, tmp)
            server = cluster.pod("nginx", "bench", app="nginx")
            client = cluster.pod("wrk", "bench", app="wrk")
            server.nginx(80)
            url = f"http://{server.ip}/"
            cluster.set_rules(namespaces=["bench"])
            for conns in conns_list:
                baseline[conns] = wrk(client, url, conns, args.duration)[1]
                with_tcpdump[conns] = tcpdump_run(client, server, url, conns, args.duration, tmp)
                print(f"  c={conns}: alone {baseline[conns]:,.0f}/s, tcpdump "
                      f"{with_tcpdump[conns][1]:,.0f}/s drops {with_tcpdump[conns][2]}",
                      file=sys.stderr, flush=True)  # fmt: skip
            profile = replay_profile(client, server, url)
            for i, src in enumerate(args.sources.split(",")):
                rows += sniffer_runs(cluster, client, url, src, conns_list, args.duration,
                                     19400 + i, args.workers)  # fmt: skip
        finally:
            hub.kill()
    flows = None if args.skip_flows else flows_in_fresh_process()
    report(args, load, baseline, with_tcpdump, rows, flows, profile)


def report(args: Any, load: tuple[float, float, float], baseline: dict[int, float],
           with_tcpdump: dict[int, tuple[int, float, int]], rows: list[dict[str, Any]],
           flows: dict[str, Any] | None, profile: dict[str, Any]) -> None:  # fmt: skip
    print("## Live capture: wrk between two pods (benchmarks/live_capture.py)\n")
    print(f"`sudo .venv/bin/python -m benchmarks.live_capture --duration {args.duration} "
          f"--connections {args.connections} --sources {args.sources} "
          f"--workers {args.workers}` — {os.cpu_count()} cores shared with the other "
          f"engineers (load average at start {load[0]:.1f}); nginx-light in one pod, wrk "
          "(-t1, keep-alive) in another, kubeweir sniffer and hub as separate processes, "
          "capture on `any` filtered to the nginx pod.\n")  # fmt: skip
    print(
        "| conns | wrk alone req/s | with `tcpdump -w` req/s (kernel drops) | "
        + " | ".join(f"with kubeweir {s} req/s" for s in args.sources.split(","))
        + " |"
    )
    print("|---:|---:|---:|" + "---:|" * len(args.sources.split(",")))
    for conns, rate in baseline.items():
        cells = [f"{conns}", f"{rate:,.0f}",
                 f"{with_tcpdump[conns][1]:,.0f} ({with_tcpdump[conns][2]})"]  # fmt: skip
        for s in args.sources.split(","):
            s = s if args.workers == 1 else f"{s} ×{args.workers}"
            r = next((x for x in rows if x["capture"] == s and x["conns"] == conns), None)
            cells.append(f"{r['rate']:,.0f}" if r else "-")
        print("| " + " | ".join(cells) + " |")
    print(
        "\nRecorded by kubeweir (entries stored in the hub for the run vs wrk's completed "
        "requests; a run is complete when nothing is missing, stored ≥ wrk's count: the "
        "hub also holds the few requests wrk had in flight when it stopped counting, and "
        "entry ids are unique, so nothing is stored twice):\n"
    )
    print("| source | conns | wrk requests | req/s | stored | complete | kernel drops | "
          "catch-up s | sustained entries/s (parsed by the sniffer / stored by the hub) | "
          "sniffer CPU s (run / total) | "
          "cores per 1k req/s | sniffer RSS MiB | load avg |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['capture']} | {r['conns']} | {r['wrk']:,} | {r['rate']:,.0f} | "
              f"{r['stored']:,} | {'yes' if r['complete'] else '**no**'} | {r['kernel_drops']:,} "
              f"| {r['catch_up']:.1f} | {r['parse_rate']:,.0f} / {r['sustained']:,.0f} | "
              f"{r['cpu']:.1f} / "
              f"{r['cpu_total']:.1f} | {r['cpu_per_krps']:.2f} | {r['rss']:.0f} | "
              f"{r['load']:.1f} |")  # fmt: skip
    for s in args.sources.split(","):
        s = s if args.workers == 1 else f"{s} ×{args.workers}"
        ok = [r["rate"] for r in rows if r["capture"] == s and r["complete"]]
        best = max(ok) if ok else 0.0
        print(f"\nHighest rate recorded completely with {s}: **{best:,.0f} req/s**.", end="")
    print("\n")
    p, r = profile["plain"], profile["redacted"]
    print(
        f"Where the time goes: {profile['frames']:,} frames of a 2 s wrk run captured once, "
        f"replayed through one Pipeline (one core): **{p['entries_s']:,.0f} entries/s** "
        f"({p['frames_s']:,.0f} frames/s) without redaction, **{r['entries_s']:,.0f} "
        f"entries/s** with the default redaction rules. Profile with redaction, share "
        "of CPU by area: "
        + ", ".join(f"{k} {v:.0%}" for k, v in profile["profile"].items())
        + ".\n"
    )
    if flows:
        print(_flows_line(flows))


def _flows_line(flows: dict[str, Any]) -> str:
    return (f"Open flows (a fresh process): {flows['flows']:,} SYNs of distinct connections fed "
            f"to a Pipeline with `max_flows={flows['flows']:,}`, then {flows['extra']:,} more: "
            f"{flows['open']:,} open at the end, RSS **{flows['rss']:.0f} MiB** (peak "
            f"{flows['maxrss']:.0f} MiB; {flows['base']:.0f} MiB before the flows), cap hits "
            f"counted `bound_flows={flows['bound_flows']:,}`, evicted {flows['evicted']:,}; "
            f"{flows['syn_rate']:,.0f} SYNs/s.\n")  # fmt: skip


if __name__ == "__main__":
    main()
