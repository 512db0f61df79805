"""Hub ingest: entries/s through POST /api/v1/ingest next to a bare DuckDB Arrow append of
the same rows, in one run.

Rich rows: two 6-key header maps and a 300-byte body each. The hub runs as its own
process (``kubeweir hub``, file database); the client posts pre-encoded zstd msgpack
batches so the number is the hub's. The bare append inserts the same rows, already in
the storage columns as an Arrow table, into a fresh DuckDB file.

    .venv/bin/python -m benchmarks.hub_ingest [--entries 100000] [--batch 1000] [--senders 4]

The hub runs with its default ``ingest_workers`` (none on two CPUs); set
``KUBEWEIR_HUB_INGEST_WORKERS=N`` in the environment to measure N worker processes.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import httpx
import zstandard

from benchmarks import child_pids, wait_for_hub
from hub.storage.duckdb import MIGRATIONS, migrate
from hub.storage.rows import entries_to_arrow
from kubeweir.entry import Endpoint, Entry, encode_batch

BAR = 0.5


def rich_entries(n: int, first: int = 0) -> list[Entry]:
    body = ('{"order": 7, "items": [1, 2, 3], "note": "' + "x" * 250 + '"}')[:300]
    out = []
    for i in range(first, first + n):
        req_h = {
            "host": "orders.shop.svc",
            "user-agent": "curl/8.5",
            "accept": "application/json",
            "content-type": "application/json",
            "x-request-id": f"{i:016x}",
            "authorization": "[REDACTED]",
        }
        resp_h = {
            "content-type": "application/json",
            "content-length": "300",
            "date": "Mon, 23 Nov 2026 22:00:00 GMT",
            "server": "nginx",
            "x-trace": f"t{i}",
            "cache-control": "no-store",
        }
        out.append(
            Entry(
                id=f"{i:024x}",
                ts=1_700_000_000.0 + i * 0.001,
                proto="http",
                src=Endpoint(ip="10.1.0.5", port=40000 + i % 20000, pod="web-1", namespace="shop"),
                dst=Endpoint(ip="10.1.0.6", port=8080, pod="orders-1", namespace="shop"),
                elapsed=0.002 + (i % 50) * 0.001,
                request={
                    "method": "POST",
                    "path": f"/api/orders/{i % 1000}",
                    "query": "",
                    "version": "HTTP/1.1",
                    "headers": req_h,
                    "body": body,
                    "body_size": 300,
                },
                response={
                    "status": 200 if i % 20 else 503,
                    "reason": "OK",
                    "version": "HTTP/1.1",
                    "headers": resp_h,
                    "body": body,
                    "body_size": 300,
                },
                summary=f"POST /api/orders/{i % 1000} → 200",
                stream=f"s{i // 10}",
                index=i % 10,
                node="node-1",
            )
        )
    return out


CHECKPOINT_THRESHOLD = "256MB"
MEMORY_LIMIT = "1GiB"
"""Both sides: the hub's defaults, set explicitly in its config and on the bare side."""


def bare_append(entries: list[Entry], path: str) -> tuple[float, float]:
    """Seconds to append the rows (already as storage columns in Arrow) to a fresh file,
    in one INSERT (committed), with the hub's DuckDB settings, and the CPU seconds it took
    (this process runs nothing else meanwhile). Neither side's timing holds a final
    CHECKPOINT: the hub's WAL stays under the threshold during the run too."""
    con = duckdb.connect(
        path, config={"checkpoint_threshold": CHECKPOINT_THRESHOLD, "memory_limit": MEMORY_LIMIT}
    )
    migrate(con, MIGRATIONS)
    columns = entries_to_arrow(entries)  # the storage columns, built outside the timing
    con.register("cols", columns)
    t, cpu = time.perf_counter(), time.process_time()
    con.execute("INSERT INTO entries SELECT * FROM cols")
    elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    n = con.execute("SELECT count(*) FROM entries").fetchone()
    assert n is not None and n[0] == len(entries)
    con.close()
    return elapsed, cpu


def _cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds of a process (or of one of its threads)."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    stat = Path(path).read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _workers_cpu(pid: int) -> float:
    return sum(_cpu_seconds(c) for c in child_pids(pid))


def _batches_per_write(c: httpx.Client) -> float:
    """Batches per storage write so far, from the hub's metrics (group commit)."""
    values = {}
    for line in c.get("/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("kubeweir_ingest_writes", "kubeweir_ingest_written_batches"):
            values[name] = float(value)
    return values["kubeweir_ingest_written_batches"] / max(1.0, values["kubeweir_ingest_writes"])


def stage_cpu(bodies: list[bytes], path: str) -> dict[str, float]:
    """Where a hub entry's CPU goes, stage by stage: the route's own steps run in this
    process on the same zstd batches, one at a time (no HTTP, no concurrency), into a
    fresh storage with the hub's settings. CPU seconds per stage, summed over the batches.
    Decoding and the columns are one stage: the hub does them a chunk of entries at a time
    (``hub.ingest.to_table``)."""
    from hub.ingest import decompress, to_table
    from hub.storage.duckdb import DuckDBStorage

    store = DuckDBStorage(
        path, checkpoint_threshold=CHECKPOINT_THRESHOLD, memory_limit=MEMORY_LIMIT
    )
    out = dict.fromkeys(("zstd", "decode + columns (Arrow)", "DuckDB write"), 0.0)
    clock = time.process_time
    try:
        for body in bodies:
            t0 = clock()
            data = decompress(body, "zstd", 1 << 30)
            t1 = clock()
            _, table, total, _ = to_table(data, "", 1 << 30, 1 << 30)
            t2 = clock()
            store.ingest_arrow(table, total)
            t3 = clock()
            for key, dt in zip(out, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                out[key] += dt
    finally:
        store.close()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _read_pages(url: str, stop: threading.Event, out: list[float]) -> None:
    """A viewer paging the newest entries in a loop (latency of each page)."""
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer reader"}, timeout=60) as c:
        while not stop.is_set():
            t = time.perf_counter()
            c.get("/api/v1/entries", params={"limit": 100}).raise_for_status()
            out.append(time.perf_counter() - t)


def http_ingest(
    entries: list[Entry],
    batch: int,
    senders: int,
    tmp: Path,
    reads: dict[str, list[float]],
    more: list[Entry],
    cpu: dict[str, float],
    stages: dict[str, float],
) -> tuple[float, float, int]:
    """Seconds to POST every batch to a hub process (nothing else talking to it), then
    seconds to POST ``more`` while a viewer pages, and the hub's peak RSS (KiB). Fills
    ``cpu`` with the hub process's CPU seconds over the timed ingest (all threads, and its
    event loop's thread), and ``stages`` with ``stage_cpu`` on the same batches."""
    port = _free_port()
    cfg = tmp / "hub.yaml"
    cfg.write_text(
        "ingest_token: bench\nretention_max_age: null\nretention_max_bytes: null\n"
        f"db_checkpoint_threshold: {CHECKPOINT_THRESHOLD}\ndb_memory_limit: {MEMORY_LIMIT}\n"
        "viewer_tokens:\n  reader: {name: reader, namespaces: ['*']}\n"
    )
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubeweir", "hub", "--config", str(cfg), "--port", str(port),
         "--db", str(tmp / "hub.duckdb"), "--log-level", "warning"],
        env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    zc = zstandard.ZstdCompressor(level=3)
    # encoded and compressed before any timing: the senders only post bytes
    bodies, more_bodies = (
        [zc.compress(encode_batch(es[i : i + batch], "bench")) for i in range(0, len(es), batch)]
        for es in (entries, more)
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_hub(url, proc, 60)
        headers = {"Authorization": "Bearer bench", "Content-Encoding": "zstd"}
        with httpx.Client(base_url=url, timeout=120) as c:

            def post(b: bytes) -> int:
                r = c.post("/api/v1/ingest", content=b, headers=headers)
                r.raise_for_status()
                n: int = r.json()["accepted"]
                return n

            with ThreadPoolExecutor(senders) as pool:  # sniffers on several nodes at once
                cpu0, loop0 = _cpu_seconds(proc.pid), _cpu_seconds(proc.pid, proc.pid)
                workers0 = _workers_cpu(proc.pid)
                t = time.perf_counter()
                accepted = sum(pool.map(post, bodies))
                elapsed = time.perf_counter() - t
                cpu["hub"] = _cpu_seconds(proc.pid) - cpu0
                cpu["event loop"] = _cpu_seconds(proc.pid, proc.pid) - loop0
                cpu["workers"] = _workers_cpu(proc.pid) - workers0
                cpu["worker count"] = len(child_pids(proc.pid, workers_only=True))
                cpu["batches per write"] = _batches_per_write(c)
                # then more rows while a viewer pages (timed apart: the reader shares the CPUs)
                stop = threading.Event()
                during: list[float] = []
                reader = threading.Thread(target=_read_pages, args=(url, stop, during))
                reader.start()
                t = time.perf_counter()
                accepted += sum(pool.map(post, more_bodies))
                elapsed_more = time.perf_counter() - t
            stop.set()
            reader.join()
            idle: list[float] = []
            idle_stop = threading.Event()
            threading.Timer(3.0, idle_stop.set).start()
            _read_pages(url, idle_stop, idle)
            reads.update(during=during, idle=idle)
        assert accepted == len(entries) + len(more), accepted
        rss = _rss_kib(proc.pid) + sum(map(_rss_kib, child_pids(proc.pid)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    stages.update(stage_cpu(bodies, str(tmp / "stages.duckdb")))
    return elapsed, elapsed_more, rss


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--senders", type=int, default=4, help="concurrent senders (sniffers)")
    args = ap.parse_args()
    entries = rich_entries(args.entries)
    more = rich_entries(args.entries // 2, first=args.entries)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bare, bare_cpu = bare_append(entries, str(tmp / "bare.duckdb"))
        reads: dict[str, list[float]] = {}
        cpu: dict[str, float] = {}
        stages: dict[str, float] = {}
        http, http_more, rss = http_ingest(
            entries, args.batch, args.senders, tmp, reads, more, cpu, stages
        )
    n = len(entries)
    bare_rate, http_rate = n / bare, n / http
    ratio = http_rate / bare_rate
    verdict = "meets" if ratio >= BAR else "MISSES"
    print("## Hub ingest (HTTP vs bare DuckDB Arrow append)\n")
    print(
        f"`.venv/bin/python -m benchmarks.hub_ingest --entries {n} --batch {args.batch} "
        f"--senders {args.senders}`\n"
    )
    print("Rich rows: two 6-key header maps and a 300-byte body per entry; hub in its own")
    print("process on a DuckDB file; client posts pre-encoded zstd msgpack batches. Both")
    print(f"sides: checkpoint_threshold {CHECKPOINT_THRESHOLD}, memory_limit {MEMORY_LIMIT},")
    print("no final CHECKPOINT timed.\n")
    print("| path | entries | seconds | entries/s |")
    print("|---|---:|---:|---:|")
    print(f"| bare DuckDB Arrow append (same rows, storage columns) | {n} | {bare:.2f} | "
          f"{bare_rate:,.0f} |")  # fmt: skip
    print(f"| `POST /api/v1/ingest` ({args.batch}/batch, zstd, {args.senders} senders) | {n} | "
          f"{http:.2f} | "
          f"{http_rate:,.0f} |")  # fmt: skip
    print(f"\nRatio HTTP / bare: **{ratio:.2f}** (bar ≥ {BAR}: {verdict}). "
          f"Hub peak RSS {rss / 1024:.0f} MiB (with its workers'). {os.cpu_count()} CPUs, "
          f"load average "
          f"{os.getloadavg()[0]:.1f} (shared machine).\n")  # fmt: skip
    us = 1e6 / n
    print(f"CPU per entry: bare INSERT {bare_cpu * us:.1f} µs ({bare_cpu / bare:.2f} cores); "
          f"hub process {cpu['hub'] * us:.1f} µs ({cpu['hub'] / http:.2f} cores), of which "
          f"its event loop (HTTP, FastAPI) {cpu['event loop'] * us:.1f} µs; its "
          f"{cpu['worker count']:.0f} ingest workers {cpu['workers'] * us:.1f} µs "
          f"({cpu['workers'] / http:.2f} cores). Batches per storage write (group commit) "
          f"{cpu['batches per write']:.2f}.\n")  # fmt: skip
    print(f"The hub's steps one batch at a time in one process (CPU µs per entry, "
          f"{args.batch}-entry batches): "
          + ", ".join(f"{k} {v * us:.1f}" for k, v in stages.items())
          + f"; sum {sum(stages.values()) * us:.1f}.\n")  # fmt: skip
    dur, idle = sorted(reads["during"]), sorted(reads["idle"])
    nm = len(more)
    if dur and idle:
        print(f"Then {nm} more entries in {http_more:.2f} s ({nm / http_more:,.0f}/s) while a "
              f"viewer paged the newest 100 entries: {len(dur)} pages during that ingest, "
              f"p50 {dur[len(dur) // 2] * 1000:.0f} ms, p95 "
              f"{dur[int(len(dur) * 0.95)] * 1000:.0f} ms; idle afterwards p50 "
              f"{idle[len(idle) // 2] * 1000:.0f} ms ({len(idle)} pages).\n")  # fmt: skip


if __name__ == "__main__":
    main()
