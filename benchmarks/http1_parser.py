"""The HTTP/1.x parser alone against h11 on the same keep-alive exchanges.

    python -m benchmarks.http1_parser            # 50,000 exchanges
    python -m benchmarks.http1_parser -n 5000    # quicker

Each exchange is ``GET /api/orders/<i>?page=<p>`` with four header lines, answered 200
with a ~200-byte JSON body and Content-Length (the shape of the capture that
``benchmarks.read_vs_tshark`` generates), over 8 connections. Our parser is fed each
message whole (as the reassembler hands over in-order segments) and, in a second run, in
100-byte pieces. h11 (the sans-IO library our reader is shaped after; it comes with
httpx) parses the same bytes with one server-role connection per stream for the requests
and one client-role connection for the responses; its state machine needs the matching
sends, which it does in the same loop. h11 yields events only, while ours also pairs
requests with responses and builds the entry fields (headers map, body text).
CPU time (``time.process_time``), best of 3 runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import h11

from sniffer.parsers.base import Direction
from sniffer.parsers.http1 import HttpParser

CONNS = 8


def exchanges(n: int) -> list[tuple[bytes, bytes]]:
    out = []
    pad = b"x" * 176
    for i in range(n):
        req = (
            f"GET /api/orders/{i}?page={i % 7} HTTP/1.1\r\nHost: shop.svc\r\n"
            f"User-Agent: bench/1\r\nAccept: application/json\r\n\r\n"
        ).encode()
        body = (f'{{"id":{i:>10},"p":"'.encode() + pad)[:198] + b'"}'
        resp = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        out.append((req, resp))
    return out


def run_ours(data: list[tuple[bytes, bytes]], piece: int = 0) -> tuple[float, int]:
    parsers = [HttpParser() for _ in range(CONNS)]
    made = 0
    t = time.process_time()
    for i, (req, resp) in enumerate(data):
        p = parsers[i % CONNS]
        if piece:
            for k in range(0, len(req), piece):
                p.feed(Direction.CLIENT, req[k : k + piece], float(i))
            for k in range(0, len(resp), piece):
                p.feed(Direction.SERVER, resp[k : k + piece], float(i))
        else:
            p.feed(Direction.CLIENT, req, float(i))
            p.feed(Direction.SERVER, resp, float(i))
        made += len(p.take())
    return time.process_time() - t, made


_REQ = h11.Request(method="GET", target="/", headers=[("Host", "x")])
_RESP = h11.Response(status_code=200, headers=[("Content-Length", "0")])


def run_h11(data: list[tuple[bytes, bytes]]) -> tuple[float, int]:
    servers = [h11.Connection(h11.SERVER) for _ in range(CONNS)]
    clients = [h11.Connection(h11.CLIENT) for _ in range(CONNS)]
    made = 0
    t = time.process_time()
    for i, (req, resp) in enumerate(data):
        srv, cli = servers[i % CONNS], clients[i % CONNS]
        # requests, as a server reads them
        srv.receive_data(req)
        while (ev := srv.next_event()) is not h11.NEED_DATA and not isinstance(
            ev, h11.EndOfMessage
        ):
            pass
        srv.send(_RESP)
        srv.send(h11.EndOfMessage())
        srv.start_next_cycle()
        # responses, as a client reads them
        cli.send(_REQ)
        cli.send(h11.EndOfMessage())
        cli.receive_data(resp)
        while (ev := cli.next_event()) is not h11.NEED_DATA and not isinstance(
            ev, h11.EndOfMessage
        ):
            pass
        cli.start_next_cycle()
        made += 1
    return time.process_time() - t, made


def best(fn: Callable[[], tuple[float, int]], runs: int = 3) -> tuple[float, int]:
    results = [fn() for _ in range(runs)]
    return min(r[0] for r in results), results[0][1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50_000, help="exchanges (default 50,000)")
    args = ap.parse_args()
    data = exchanges(args.n)
    ours, made = best(lambda: run_ours(data))
    assert made == args.n, f"our parser made {made} exchanges of {args.n}"
    pieces, made = best(lambda: run_ours(data, piece=100))
    assert made == args.n
    theirs, made = best(lambda: run_h11(data))
    assert made == args.n
    n = args.n
    print("## HTTP/1.x parser alone (sniffer/parsers/http1.py) vs h11\n")
    print(f"`python -m benchmarks.http1_parser -n {n}` — {n:,} keep-alive exchanges, CPU time.\n")
    print("| parser | seconds | exchanges/s | µs/exchange |")
    print("|---|---:|---:|---:|")
    for name, sec in (
        ("kubeweir http1, whole messages", ours),
        ("kubeweir http1, 100-byte pieces", pieces),
        ("h11 0.16 (both roles)", theirs),
    ):
        print(f"| {name} | {sec:.2f} | {n / sec:,.0f} | {sec / n * 1e6:.1f} |")
    print(f"\nRatio (whole messages): **{theirs / ours:.2f}×** h11's throughput.")


if __name__ == "__main__":
    main()
