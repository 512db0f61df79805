"""Hub queries on 10 million synthetic entries: a filtered first page, a count by status
and the service map over the whole range, through the hub's HTTP API, next to the same
SQL run on bare DuckDB, with the hub's memory.

The rows are generated vectorised inside DuckDB (``range()`` and hashes, no Python
loop), in time order as the hub appends them, into a DuckDB file at the hub's schema.

    .venv/bin/python -m benchmarks.hub_query [--rows 10000000] [--runs 20] [--db PATH]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks import child_pids, wait_for_hub
from hub.api.deps import compile_filter
from hub.scope import Viewer
from hub.storage.duckdb import DuckDBStorage

PAGE_Q = 'http && response.status >= 500 && dst.namespace == "ns-3"'
STATS_Q = "http"
BARS = {"page_p50_ms": 100.0, "servicemap_s": 1.0, "rss_gib": 2.0}

_GEN = """
INSERT INTO entries
SELECT
  printf('%024x', i) AS id,
  make_timestamp(1700000000000000 + i * 8640) AS ts,
  CASE WHEN h % 97 = 0 THEN NULL ELSE (h % 2000) / 10000.0 + 0.0005 END AS elapsed,
  CASE WHEN i % 10 = 0 THEN 'dns' WHEN i % 10 = 1 THEN 'redis' ELSE 'http' END AS proto,
  '10.1.' || (s % 250) || '.' || (s % 200) AS src_ip, 30000 + (i % 30000) AS src_port,
  'wl-' || s || '-abc' AS src_pod, 'ns-' || (s % 10) AS src_namespace,
  'Deployment/wl-' || s AS src_workload, '' AS src_service, 'node-' || (s % 8) AS src_node,
  MAP {'app': 'wl-' || s} AS src_labels,
  '10.2.' || (d % 250) || '.' || (d % 200) AS dst_ip, 8080 AS dst_port,
  'wl-' || d || '-xyz' AS dst_pod, 'ns-' || (d % 10) AS dst_namespace,
  'Deployment/wl-' || d AS dst_workload, 'svc-' || d AS dst_service,
  'node-' || (d % 8) AS dst_node, MAP {'app': 'wl-' || d} AS dst_labels,
  CASE WHEN i % 10 = 0 THEN NULL WHEN i % 10 = 1 THEN 'GET' ELSE
    CASE WHEN h % 5 = 0 THEN 'POST' ELSE 'GET' END END AS method,
  '/api/items/' || (h % 5000) AS path,
  CASE WHEN i % 10 < 2 THEN NULL WHEN h % 53 = 0 THEN 503 WHEN h % 11 = 0 THEN 404
       ELSE 200 END AS status,
  'GET /api/items/' || (h % 5000) AS summary, '' AS error, false AS tls,
  'node-' || (s % 8) AS node, 's' || (i // 8) AS stream, CAST(i % 8 AS INTEGER) AS idx,
  0 AS gaps, []::VARCHAR[] AS redacted,
  '{"method":"GET","path":"/api/items/' || (h % 5000) ||
    '","headers":{"host":"svc","x-request-id":"' || i || '"},"body_size":0}' AS request,
  '{"status":200,"headers":{"content-type":"application/json"},"body_size":42}' AS response,
  NULL AS req_body, encode('{"ok": true, "id": ' || i || '}') AS resp_body
FROM (
  SELECT i, hash(i) AS h, CAST(hash(i * 7 + 1) % 40 AS BIGINT) AS s,
         CAST((hash(i * 7 + 1) % 40 + 1 + hash(i) % 3) % 40 AS BIGINT) AS d
  FROM range(?, ?) t(i)
)
"""


def generate(path: str, rows: int) -> float:
    store = DuckDBStorage(path)  # creates the schema through the hub's own migrations
    t = time.perf_counter()
    step = 2_000_000
    with store._write_lock:
        for lo in range(0, rows, step):
            store._con.execute(_GEN, [lo, min(rows, lo + step)])
        store._con.execute("CHECKPOINT")
    store.close()
    return time.perf_counter() - t


def _timed(fn: Callable[[], Any], runs: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bare(path: str, runs: int) -> dict[str, list[float]]:
    """The hub's own SQL (same text, same parameters) on a plain DuckDB cursor; the page
    through the storage layer in-process (its windowed id query, then the row fetch)."""
    store = DuckDBStorage(path)
    viewer = Viewer("bench", ("*",), frozenset({"admin"}))
    page_where = compile_filter(viewer, store.table, PAGE_Q).where
    stats_where = compile_filter(viewer, store.table, STATS_Q).where
    all_where = compile_filter(viewer, store.table, "").where

    def page() -> None:
        assert len(store.page(page_where, 100)) == 100

    stats_sql, stats_params = store.stats_sql(stats_where)
    map_sql, map_params = store.servicemap_sql(all_where)
    cur = store._con.cursor()
    out = {
        "page": _timed(page, runs),
        "stats": _timed(lambda: cur.execute(stats_sql, stats_params).fetchall(), max(3, runs // 4)),
        "servicemap": _timed(
            lambda: cur.execute(map_sql, map_params).fetchall(), max(3, runs // 4)
        ),
    }
    cur.close()
    store.close()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _rss_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def through_hub(path: str, runs: int, tmp: Path) -> tuple[dict[str, list[float]], int, int]:
    port = _free_port()
    cfg = tmp / "hub.yaml"
    cfg.write_text(
        "ingest_token: bench\nretention_max_age: null\nretention_max_bytes: null\n"
        "viewer_tokens:\n  bench: {name: bench, namespaces: ['*']}\n"
    )
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubeweir", "hub", "--config", str(cfg), "--port", str(port),
         "--db", path, "--log-level", "warning"],
        env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_hub(url, proc, 120)
        with httpx.Client(
            base_url=url, headers={"Authorization": "Bearer bench"}, timeout=300
        ) as c:

            def get(p: str, **params: Any) -> Any:
                r = c.get(p, params=params)
                r.raise_for_status()
                return r.json()

            def page() -> None:
                assert len(get("/api/v1/entries", q=PAGE_Q, limit=100)["entries"]) == 100

            out = {
                "page": _timed(page, runs),
                "stats": _timed(lambda: get("/api/v1/stats", q=STATS_Q), max(3, runs // 4)),
                "servicemap": _timed(lambda: get("/api/v1/servicemap"), max(3, runs // 4)),
            }
        # the hub with its ingest workers (idle here, but resident)
        family = [proc.pid, *child_pids(proc.pid)]
        rss = sum(_rss_kib(p, "VmRSS:") for p in family)
        hwm = sum(_rss_kib(p, "VmHWM:") for p in family)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return out, rss, hwm


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--db", help="reuse (or keep) this database file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        path = args.db or str(tmp / "q.duckdb")
        gen_s = None
        if not Path(path).exists():
            gen_s = generate(path, args.rows)
        size = Path(path).stat().st_size
        b = bare(path, args.runs)
        h, rss, hwm = through_hub(path, args.runs, tmp)
    ms = 1000.0
    page_p50 = statistics.median(h["page"]) * ms
    map_s = statistics.median(h["servicemap"])
    print("## Hub queries on 10 million entries (HTTP vs bare DuckDB)\n")
    print(f"`.venv/bin/python -m benchmarks.hub_query --rows {args.rows} --runs {args.runs}`\n")
    gen = f"generated in {gen_s:.0f} s, " if gen_s is not None else ""
    print(f"{args.rows:,} rows ({gen}file {size / 2**30:.2f} GiB), {os.cpu_count()} CPUs. "
          "Bare = the hub's own SQL text and parameters on DuckDB in-process (no HTTP, no "
          "JSON).\n")  # fmt: skip
    print("| query | hub p50 (ms) | hub p95 (ms) | bare p50 (ms) | bare p95 (ms) |")
    print("|---|---:|---:|---:|---:|")
    names = {
        "page": f"first page, 100 rows, `{PAGE_Q}`",
        "stats": f"stats (count by proto/status class/namespace), `{STATS_Q}`",
        "servicemap": "service map, whole range (count, errors, p50/p95/p99)",
    }
    for k, label in names.items():
        print(f"| {label} | {statistics.median(h[k]) * ms:.0f} | {_pct(h[k], 0.95) * ms:.0f} | "
              f"{statistics.median(b[k]) * ms:.0f} | {_pct(b[k], 0.95) * ms:.0f} |")  # fmt: skip
    rss_gib = hwm / 2**20
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nHub RSS (with its ingest workers) after the queries {rss / 1024:.0f} MiB, peak "
          f"{hwm / 1024:.0f} MiB. "
          f"Load average at the end: {load} (shared machine).\n")  # fmt: skip
    print("Bars: page p50 < 100 ms: " + ("met" if page_p50 < BARS["page_p50_ms"] else "MISSED")
          + f" ({page_p50:.0f} ms); service map < 1 s: "
          + ("met" if map_s < BARS["servicemap_s"] else "MISSED")
          + f" ({map_s:.2f} s); hub RSS < 2 GiB: "
          + ("met" if rss_gib < BARS["rss_gib"] else "MISSED")
          + f" ({rss_gib:.2f} GiB).\n")  # fmt: skip


if __name__ == "__main__":
    main()
