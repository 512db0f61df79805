"""`kubeweir read` against tshark on a generated keep-alive HTTP/1.1 capture.

    python -m benchmarks.read_vs_tshark                 # 50,000 exchanges, both tools
    python -m benchmarks.read_vs_tshark --big           # ≥ 1 GB capture: kubeweir's peak RSS

Both tools run in the same run on the same file, under GNU time (wall clock, CPU, peak
RSS). kubeweir writes NDJSON to /dev/null; tshark runs
`tshark -r FILE -Y http.request -T fields -e http.request.method -e http.request.uri`.
kubeweir is timed six ways: as shipped (`--jobs auto`, default redaction rules applied to
every entry), `--jobs 1` (one process: the single-core cost), `--jobs N` (N = the CPUs, at
most 4, whatever the load), and the three again with `--no-redact` (capture +
reassembly + HTTP parsing + entries + JSON only, which is what tshark does). The bar is
on exchanges/s: ≥ 3× tshark (goal 5×). tshark is single-threaded; kubeweir's CPU seconds
are those of all its processes, and for `--jobs` > 1 its peak RSS is the sum over the
parent and every worker (each one's own peak, as `kubeweir read` reports it), not the
largest one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from kubeweir.pcapgen import write_http_benchmark

TIME = "/usr/bin/time"


class Run(NamedTuple):
    wall: float
    """seconds on the wall clock"""
    cpu: float
    """user + system CPU seconds of the process and its workers"""
    rss: int
    """peak resident set, KiB (for several processes: the sum of each one's peak)"""
    n: int
    """exchanges the tool reported"""
    jobs: int = 1
    """processes that parsed (kubeweir --jobs)"""


def _timed(cmd: list[str], stdout: int | None) -> tuple[float, float, int, str, str]:
    """(wall s, cpu s, peak RSS KiB, stdout, stderr) of one run under GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        p = subprocess.run(
            [TIME, "-o", tf.name, "-f", "%e %U %S %M", *cmd],
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if p.returncode:
            raise RuntimeError(f"{cmd[0]} failed ({p.returncode}): {p.stderr[-2000:]}")
        wall, user, sys_, rss = tf.read().split()[-4:]
    return float(wall), float(user) + float(sys_), int(rss), p.stdout or "", p.stderr


def _kubeweir(path: Path, *extra: str) -> Run:
    cmd = [sys.executable, "-m", "kubeweir", "read", str(path), *extra]
    wall, cpu, rss, _, err = _timed(cmd, subprocess.DEVNULL)
    m = re.search(r"entries (\d+)", err)
    jobs = re.search(r"jobs (\d+), peak RSS summed over the processes (\d+) MiB", err)
    if jobs:  # GNU time's %M is the largest process's peak; report the sum
        return Run(wall, cpu, int(jobs.group(2)) * 1024, int(m.group(1)) if m else -1,
                   int(jobs.group(1)))  # fmt: skip
    return Run(wall, cpu, rss, int(m.group(1)) if m else -1)


def _tshark(path: Path) -> Run:
    cmd = [
        "tshark", "-r", str(path), "-Y", "http.request", "-T", "fields",
        "-e", "http.request.method", "-e", "http.request.uri",
    ]  # fmt: skip
    wall, cpu, rss, out, _ = _timed(cmd, None)
    return Run(wall, cpu, rss, out.count("\n"))


def _row(name: str, r: Run, base: Run | None) -> str:
    cpu_rate = r.n / r.cpu if r.cpu else 0.0
    wall_rate = r.n / r.wall if r.wall else 0.0
    if base is None:
        ratio = "1.00× | 1.00×"
    else:
        ratio = (
            f"**{wall_rate / (base.n / base.wall):.2f}×** | {cpu_rate / (base.n / base.cpu):.2f}×"
        )
    return (
        f"| {name} | {r.jobs} | {r.n:,} | {r.wall:.2f} | {r.cpu:.2f} | {wall_rate:,.0f} | "
        f"{cpu_rate:,.0f} | {ratio} | {r.rss / 1024:.0f} |"
    )


def run_standard(tmp: Path, exchanges: int, repeat: int) -> str:
    path = tmp / "keepalive.pcap"
    t = time.perf_counter()
    write_http_benchmark(path, exchanges)
    gen = time.perf_counter() - t
    size = path.stat().st_size

    def best(f: Callable[..., Run], *a: str) -> Run:
        return min((f(path, *a) for _ in range(repeat)), key=lambda r: r.wall)

    load0 = os.getloadavg()[0]
    n = str(min(len(os.sched_getaffinity(0)), 4))
    ts = best(_tshark)
    kw = best(_kubeweir)
    k1 = best(_kubeweir, "--jobs", "1")
    kj = best(_kubeweir, "--jobs", n)
    kn = best(_kubeweir, "--no-redact")
    kn1 = best(_kubeweir, "--no-redact", "--jobs", "1")
    knj = best(_kubeweir, "--no-redact", "--jobs", n)
    load = os.getloadavg()[0]
    lines = [
        "## `kubeweir read` vs tshark (keep-alive HTTP/1.1)",
        "",
        f"Capture: {exchanges:,} exchanges over 8 keep-alive connections, "
        f"{size / 1e6:.1f} MB, written by `kubeweir.pcapgen.write_http_benchmark` "
        f"in {gen:.1f} s. Best of {repeat} by wall clock; {os.cpu_count()} CPUs shared with "
        f"other work (load average {load0:.1f} at the start, {load:.1f} at the end). "
        "Throughput is exchanges per wall-clock second (what a user waits for; tshark is "
        "single-threaded, `kubeweir read --jobs auto` uses the CPUs that are idle when it "
        "starts); exchanges per CPU second (all processes) beside it. Peak RSS for "
        "jobs > 1: the sum over the processes.",
        "",
        "| tool | jobs | exchanges | wall s | CPU s | exch/s (wall) | exch/s (CPU) "
        "| vs tshark (wall) | vs tshark (CPU) | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        _row("tshark -Y http.request -T fields", ts, None),
        _row("kubeweir read (as shipped: --jobs auto, default redaction)", kw, ts),
        _row("kubeweir read --jobs 1 (default redaction)", k1, ts),
        _row(f"kubeweir read --jobs {n} (default redaction)", kj, ts),
        _row("kubeweir read --no-redact (--jobs auto)", kn, ts),
        _row("kubeweir read --no-redact --jobs 1", kn1, ts),
        _row(f"kubeweir read --no-redact --jobs {n}", knj, ts),
        "",
        "Reproduce: `flock /tmp/kw-bench.lock .venv/bin/python -m benchmarks.read_vs_tshark"
        + (f" --exchanges {exchanges}" if exchanges != 50000 else "")
        + f" --repeat {repeat}`",
        "",
    ]
    return "\n".join(lines)


def run_big(tmp: Path, target_bytes: int) -> str:
    path = tmp / "big.pcap"
    body = 16000
    exchanges = max(1, target_bytes // (body + 1300))
    t = time.perf_counter()
    write_http_benchmark(path, exchanges, body_size=body, connections=64)
    gen = time.perf_counter() - t
    size = path.stat().st_size
    kw = _kubeweir(path)
    lines = [
        "## `kubeweir read` peak memory on a large capture",
        "",
        f"Capture: {size / 2**30:.2f} GiB ({size:,} bytes), {exchanges:,} exchanges with "
        f"{body:,}-byte bodies over 64 keep-alive connections (generated in {gen:.0f} s). "
        "kubeweir as shipped (`--jobs auto`, default redaction); for jobs > 1 the peak RSS "
        "is the sum over the parent and the workers.",
        "",
        "| tool | jobs | exchanges | CPU s | wall s | MB/s (wall) | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| kubeweir read | {kw.jobs} | {kw.n:,} | {kw.cpu:.1f} | {kw.wall:.1f} | "
        f"{size / 1e6 / kw.wall:.0f} | {kw.rss / 1024:.0f} |",
        "",
        "Bar: peak RSS < 200 MiB. Reproduce: "
        "`flock /tmp/kw-bench.lock .venv/bin/python -m benchmarks.read_vs_tshark --big`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exchanges", type=int, default=50000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--big", action="store_true", help="≥ 1 GB capture, kubeweir peak RSS")
    ap.add_argument("--big-bytes", type=int, default=1_100_000_000)
    ap.add_argument("--tmp", help="directory for the capture (default: a temp dir)")
    a = ap.parse_args(argv)
    if shutil.which("tshark") is None and not a.big:
        print("tshark not found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(dir=a.tmp, prefix="kubeweir-bench-") as d:
        tmp = Path(d)
        out = run_big(tmp, a.big_bytes) if a.big else run_standard(tmp, a.exchanges, a.repeat)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
