"""Dashboard under live load: entries/s ingested into a real hub while Chromium shows the
live table, against the same page idle, in one run.

A hub (in-memory DuckDB, uvicorn on loopback in a thread) serves the built dashboard; a
feeder posts batches every 100 ms at each target rate for a few seconds; in the page, a
requestAnimationFrame loop and a long-task observer measure how smooth it stays. Reported:
rows shown per second, frame interval p50/p99 (the idle page is the peer), long tasks,
and the lag from the last ingest until the table shows every entry.

    .venv/bin/python -m benchmarks.dashboard_live [--rates 200,500,1000] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.sync_api import Page, sync_playwright

from hub.core.config import Settings
from hub.main import create_app
from kubeweir.entry import encode_batch
from kubeweir.testing import make_endpoint, make_http_entry

DIST = Path(__file__).resolve().parent.parent / "front" / "dist"
INGEST = "bench-ingest"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROBE = """
window.__long = []; window.__frames = [];
new PerformanceObserver(l => { for (const e of l.getEntries()) window.__long.push(e.duration); })
  .observe({entryTypes: ['longtask']});
let last = performance.now();
function f(t) { window.__frames.push(t - last); last = t; requestAnimationFrame(f); }
requestAnimationFrame(f);
"""


def start_hub() -> tuple[str, uvicorn.Server, threading.Thread]:
    settings = Settings(
        db=":memory:",
        ingest_token=INGEST,
        viewer_tokens={"bench": {"name": "bench", "namespaces": ["*"], "permissions": []}},
        cookie_secure=False,
        front_dist=DIST,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def batches(rate: int, seconds: float, tag: str) -> list[bytes]:
    per = max(1, rate // 10)
    out = []
    for b in range(int(seconds * 10)):
        entries = [
            make_http_entry(
                "GET",
                f"/{tag}/{b}/{i}",
                200 if i % 17 else 503,
                src=make_endpoint("10.0.0.1", 40000, namespace="shop", pod="web-1"),
                dst=make_endpoint("10.0.0.2", 80, namespace="shop", pod="orders-1"),
            )
            for i in range(per)
        ]
        out.append(encode_batch(entries, sniffer="bench"))
    return out


def shown(page: Page) -> int:
    return int(page.get_by_test_id("row-count").inner_text().split()[0].replace(",", ""))


def sample(page: Page) -> dict[str, Any]:
    r: dict[str, Any] = page.evaluate("() => ({long: window.__long, frames: window.__frames})")
    page.evaluate("() => { window.__long = []; window.__frames = []; }")
    return r


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="200,500,1000")
    ap.add_argument("--seconds", type=float, default=8.0)
    a = ap.parse_args()
    if not (DIST / "index.html").is_file():
        raise SystemExit("front/dist is not built: make front")
    url, server, thread = start_hub()
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {INGEST}"})
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.add_init_script(PROBE)
        page.goto(f"{url}/auth/token-login?token=bench&next=/")
        page.wait_for_selector("[data-testid=conn][data-state=live]")
        time.sleep(a.seconds / 2)
        idle = sample(page)
        rows.append(("idle (peer)", 0, 0.0, idle, 0.0))
        total = 0
        for rate in (int(r) for r in a.rates.split(",")):
            payloads = batches(rate, a.seconds, f"r{rate}")
            before = shown(page)
            sample(page)
            t0 = time.monotonic()
            for i, body in enumerate(payloads):
                client.post("/api/v1/ingest", content=body).raise_for_status()
                delay = t0 + (i + 1) * 0.1 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sent_at = time.monotonic()
            total = before + sum(max(1, rate // 10) for _ in payloads)
            want = min(total, 10_000)
            while shown(page) < want and time.monotonic() - sent_at < 30:
                time.sleep(0.02)
            lag = time.monotonic() - sent_at
            load = sample(page)
            achieved = (shown(page) - before) / (sent_at - t0) if want < 10_000 else float(rate)
            rows.append((f"{rate}/s", rate, achieved, load, lag))
        browser.close()
    client.close()
    server.should_exit = True
    thread.join(10)

    print("## Dashboard live table (benchmarks/dashboard_live.py)\n")
    print(
        f"`.venv/bin/python -m benchmarks.dashboard_live --rates {a.rates} --seconds {a.seconds:g}`"
        " — real hub, Debian Chromium (software rendering); hub, feeder and browser share"
        f" one machine: 1-min load average at the end {os.getloadavg()[0]:.1f}"
        f" on {os.cpu_count()} CPUs.\n"
    )
    print(
        "| load | rows shown/s | frame p50 | frame p99 | p99 vs idle | long tasks | "
        "longest | lag to last row |"
    )
    print("|---|---|---|---|---|---|---|---|")
    idle_p99 = pct(rows[0][3]["frames"], 0.99) or 1.0
    for label, _rate, achieved, r, lag in rows:
        fr = r["frames"]
        print(
            f"| {label} | {achieved:.0f} | {pct(fr, 0.5):.1f} ms | {pct(fr, 0.99):.1f} ms | "
            f"{pct(fr, 0.99) / idle_p99:.2f}× | {len(r['long'])} | "
            f"{max(r['long'] or [0]):.0f} ms | {lag * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
