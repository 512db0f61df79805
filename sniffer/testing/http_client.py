"""A counting HTTP client for test pods: ``count`` GETs of ``URL/call/<i>`` over
keep-alive connections, optionally paced; prints ``{"ok", "errors", "elapsed"}`` as JSON.
A call counts as ok only when its 200 response was read in full."""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0.0, help="calls/s in total; 0 = flat out")
    ap.add_argument("--prefix", default="/call/")
    args = ap.parse_args()
    u = urlsplit(args.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    lock = threading.Lock()
    tally = {"ok": 0, "errors": 0}
    next_i = iter(range(args.count))
    start = time.monotonic()

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            with lock:
                i = next(next_i, None)
            if i is None:
                break
            if args.rate > 0:
                delay = start + i / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=10)
                conn.request("GET", f"{u.path.rstrip('/')}{args.prefix}{i}")
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                tally["ok" if ok else "errors"] += 1
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(max(1, args.connections))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    json.dump({**tally, "elapsed": time.monotonic() - start}, sys.stdout)


if __name__ == "__main__":
    main()
