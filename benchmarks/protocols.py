"""Protocol parsers against tshark, per protocol, on generated captures.

    python -m benchmarks.protocols                     # 10,000 exchanges per protocol
    python -m benchmarks.protocols --exchanges 20000 --only redis,http2

For each protocol a capture is written with ``struct`` (Ethernet/IPv4/TCP, correct
checksums, handshakes and FINs, 8 connections, exchanges round-robin). Both tools run as
processes on the same file in the same run (wall clock, best of ``--repeat`` runs, the
two tools' runs interleaved):

- kubeweir: ``read_pcap`` over the file with the protocol's port hint, counting entries
  (what ``kubeweir read --no-redact`` does, without writing JSON);
- tshark: ``tshark -r F -d tcp.port==P,<dissector> -T fields -e <field>`` over all frames.

The rate is exchanges per second (the capture's exchanges / wall time, for both); the
ratio is kubeweir's rate over tshark's. Bar: ≥ 1.00× for every protocol.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hpack

from kubeweir.pcapgen import FastTcpWriter

Conversation = list[tuple[bool, bytes]]
"""(from client, bytes) in order, for one connection."""


def write_capture(path: Path, port: int, conns: list[Conversation], mss: int = 1448) -> None:
    """Interleave the connections message by message (round-robin) into one pcap."""
    with path.open("wb", buffering=1 << 20) as f:
        w = FastTcpWriter(f, port, len(conns), 1_700_000_000.0)
        w.open_all()
        iters = [iter(c) for c in conns]
        live = list(range(len(conns)))
        while live:
            for i in list(live):
                item = next(iters[i], None)
                if item is None:
                    live.remove(i)
                    continue
                client, data = item
                for k in range(0, len(data), mss):
                    w.send(i, client, 0x18, data[k : k + mss])
                w.send(i, not client, 0x10)
        w.close_all()


# -- conversations (n exchanges on one connection) --


def _resp_cmd(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def redis(n: int, c: int) -> Iterator[tuple[bool, bytes]]:
    for i in range(n):
        key = b"user:%d:%d" % (c, i)
        if i % 2:
            yield True, _resp_cmd(b"GET", key)
            yield False, b"$%d\r\n%s\r\n" % (40, b"v" * 40)
        else:
            yield True, _resp_cmd(b"SET", key, b"v" * 40)
            yield False, b"+OK\r\n"


def _pg(t: bytes, body: bytes) -> bytes:
    return t + struct.pack("!i", len(body) + 4) + body


def postgres(n: int, c: int) -> Iterator[tuple[bool, bytes]]:
    body = struct.pack("!i", 196608) + b"user\0app\0database\0shop\0\0"
    yield True, struct.pack("!i", len(body) + 4) + body
    yield False, _pg(b"R", struct.pack("!i", 0)) + _pg(b"Z", b"I")
    row = _pg(b"T", struct.pack("!h", 1) + b"id\0" + b"\0" * 18)
    for i in range(n):
        yield True, _pg(b"Q", b"SELECT id FROM orders WHERE id = %d\0" % i)
        data = _pg(b"D", struct.pack("!hi", 1, 2) + b"42")
        yield False, row + data + _pg(b"C", b"SELECT 1\0") + _pg(b"Z", b"I")


def _h2(t: int, flags: int, sid: int, payload: bytes) -> bytes:
    n = len(payload)
    return struct.pack("!HBBBI", n >> 8, n & 0xFF, t, flags, sid) + payload


def _http2(n: int, c: int, grpc: bool) -> Iterator[tuple[bool, bytes]]:
    ce, se = hpack.Encoder(), hpack.Encoder()
    yield True, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2(4, 0, 0, b"")
    yield False, _h2(4, 0, 0, b"") + _h2(4, 1, 0, b"")
    ctype = "application/grpc" if grpc else "application/json"
    for i in range(n):
        sid = 2 * i + 1
        path = "/shop.Orders/Get" if grpc else f"/api/orders/{i}"
        req = ce.encode([(":method", "POST" if grpc else "GET"), (":scheme", "http"),
                         (":path", path), (":authority", "shop"),
                         ("content-type", ctype)])  # fmt: skip
        if grpc:
            msg = b"\x08" + bytes([i & 0x7F]) + b"\x12\x05order"
            yield True, _h2(1, 4, sid, req) + _h2(0, 1, sid, struct.pack("!BI", 0, len(msg)) + msg)
            out = b"\x0a\x05hello\x10\x01"
            body = struct.pack("!BI", 0, len(out)) + out
            trailers = se.encode([("grpc-status", "0")])
            yield False, (_h2(1, 4, sid, se.encode([(":status", "200"), ("content-type", ctype)]))
                          + _h2(0, 0, sid, body) + _h2(1, 5, sid, trailers))  # fmt: skip
        else:
            yield True, _h2(1, 5, sid, req)
            body = b'{"id": %d, "state": "shipped"}' % i
            yield False, (_h2(1, 4, sid, se.encode([(":status", "200"), ("content-type", ctype)]))
                          + _h2(0, 1, sid, body))  # fmt: skip


def http2(n: int, c: int) -> Iterator[tuple[bool, bytes]]:
    return _http2(n, c, False)


def grpc(n: int, c: int) -> Iterator[tuple[bool, bytes]]:
    return _http2(n, c, True)


def _kstr(v: bytes) -> bytes:
    return struct.pack("!h", len(v)) + v


def kafka(n: int, c: int) -> Iterator[tuple[bool, bytes]]:
    records = struct.pack("!i", 60) + b"r" * 60
    for i in range(n):
        topic = b"orders"
        body = (_kstr(b"") + struct.pack("!hi", 1, 30000) + struct.pack("!i", 1) + _kstr(topic)
                + struct.pack("!ii", 1, i % 4) + records)  # fmt: skip
        msg = struct.pack("!hhi", 0, 3, i) + _kstr(b"producer-1") + body
        yield True, struct.pack("!i", len(msg)) + msg
        resp = (struct.pack("!i", i) + struct.pack("!i", 1) + _kstr(topic) + struct.pack("!i", 1)
                + struct.pack("!ihqq", i % 4, 0, i, -1) + struct.pack("!i", 0))  # fmt: skip
        yield False, struct.pack("!i", len(resp)) + resp


def _mqtt(t: int, flags: int, body: bytes) -> bytes:
    n = len(body)
    rl = bytearray()
    while True:
        b, n = n % 128, n // 128
        rl.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes([t << 4 | flags]) + bytes(rl) + body


def mqtt(n: int, c: int) -> Iterator[tuple[bool, bytes]]:
    cid = b"dev-%d" % c
    yield True, _mqtt(1, 0, b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid)
    yield False, _mqtt(2, 0, b"\x00\x00")
    for i in range(n):
        topic = b"sensors/%d/temp" % c
        pid = i % 65535 + 1
        yield True, _mqtt(3, 2, struct.pack("!H", len(topic)) + topic + struct.pack("!H", pid)
                          + b'{"t": 21.5}')  # fmt: skip
        yield False, _mqtt(4, 0, struct.pack("!H", pid))


def _amqp(t: int, ch: int, payload: bytes) -> bytes:
    return struct.pack("!BHI", t, ch, len(payload)) + payload + b"\xce"


def _ss(v: bytes) -> bytes:
    return bytes([len(v)]) + v


def amqp(n: int, c: int) -> Iterator[tuple[bool, bytes]]:
    yield True, b"AMQP\x00\x00\x09\x01"
    start = struct.pack("!HHBBI", 10, 10, 0, 9, 0) + struct.pack("!I", 5) + b"PLAIN"
    yield False, _amqp(1, 0, start + struct.pack("!I", 5) + b"en_US")
    yield True, _amqp(1, 0, struct.pack("!HH", 10, 11) + struct.pack("!I", 0) + _ss(b"PLAIN")
                      + struct.pack("!I", 12) + b"\0guest\0guest" + _ss(b"en_US"))  # fmt: skip
    for i in range(n):
        q = b"q%d" % (i % 10)
        yield True, _amqp(1, 1, struct.pack("!HHH", 50, 10, 0) + _ss(q) + b"\x02"
                          + struct.pack("!I", 0))  # fmt: skip
        yield False, _amqp(1, 1, struct.pack("!HH", 50, 11) + _ss(q) + struct.pack("!II", i, 0))
        body = b'{"order": %d}' % i
        header = struct.pack("!HHQH", 60, 0, len(body), 0x8000) + _ss(b"application/json")
        yield True, (_amqp(1, 1, struct.pack("!HHH", 60, 40, 0) + _ss(b"shop") + _ss(b"order.new")
                           + b"\0") + _amqp(2, 1, header) + _amqp(3, 1, body))  # fmt: skip


# protocol → (generator, port, tshark dissector, tshark field, exchanges per n)
_Gen = Callable[[int, int], Iterator[tuple[bool, bytes]]]
PROTOCOLS: dict[str, tuple[_Gen, int, str, str, float]] = {
    "redis": (redis, 6379, "resp", "resp.bulk_string.value", 1.0),
    "postgres": (postgres, 5432, "pgsql", "pgsql.query", 1.0),
    "http2": (http2, 29518, "http2", "http2.headers.path", 1.0),
    "grpc": (grpc, 29519, "http2", "grpc.message_length", 1.0),
    "kafka": (kafka, 9092, "kafka", "kafka.request_key", 1.0),
    "mqtt": (mqtt, 1883, "mqtt", "mqtt.topic", 1.0),
    "amqp": (amqp, 5672, "amqp", "amqp.method.arguments.routing_key", 2.0),
}  # fmt: skip

_OURS = """
import sys
from sniffer.pipeline import PipelineSettings, read_pcap
s = PipelineSettings(port_hints={{{port}: {hint!r}}})
n = sum(1 for e in read_pcap(sys.argv[1], s) if e.proto in ({proto!r}, "grpc"))
print(n)
"""


def _run(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if p.returncode:
        raise RuntimeError(f"{cmd[:3]} failed ({p.returncode}): {p.stderr[-2000:]}")
    return wall, p.stdout


def bench(name: str, tmp: Path, exchanges: int, repeat: int) -> tuple[str, float]:
    gen, port, dissector, fieldname, per = PROTOCOLS[name]
    conns = 8
    each = max(1, int(exchanges / per) // conns)
    path = tmp / f"{name}.pcap"
    write_capture(path, port, [list(gen(each, c)) for c in range(conns)])
    hint = "http2" if name == "grpc" else name
    ours = [sys.executable, "-c", _OURS.format(port=port, hint=hint, proto=name), str(path)]
    theirs = ["tshark", "-r", str(path), "-d", f"tcp.port=={port},{dissector}", "-T", "fields",
              "-e", fieldname]  # fmt: skip
    k_runs: list[tuple[float, str]] = []
    t_runs: list[tuple[float, str]] = []
    for _ in range(repeat):  # interleaved, so that load drifting on the machine hits both
        k_runs.append(_run(ours))
        t_runs.append(_run(theirs))
    k_wall = min(w for w, _ in k_runs)
    t_wall = min(w for w, _ in t_runs)
    entries = int(k_runs[0][1].strip() or 0)
    n_ex = int(each * conns * per)
    k_rate, t_rate = n_ex / k_wall, n_ex / t_wall
    ratio = k_rate / t_rate
    size = path.stat().st_size / 1e6
    row = (f"| {name} | {n_ex:,} | {entries:,} | {size:.1f} | {k_wall:.2f} | {k_rate:,.0f} "
           f"| {t_wall:.2f} | {t_rate:,.0f} | {ratio:.2f}× |")  # fmt: skip
    return row, ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exchanges", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated protocols")
    args = ap.parse_args()
    names = [n for n in PROTOCOLS if not args.only or n in args.only.split(",")]
    rows = []
    worst = float("inf")
    with tempfile.TemporaryDirectory(prefix="kubeweir-bench-") as tmp:
        for name in names:
            row, ratio = bench(name, Path(tmp), args.exchanges, args.repeat)
            rows.append(row)
            worst = min(worst, ratio)
    out = [
        "## Protocol parsers vs tshark",
        "",
        f"Generated captures (8 connections, ~{args.exchanges:,} exchanges each protocol); "
        f"whole-process wall time, best of {args.repeat}; {os.cpu_count()} CPUs, shared "
        "machine. kubeweir: `read_pcap` with the port hint, counting entries; tshark: "
        "`tshark -r F -d tcp.port==P,<dissector> -T fields -e <field>` over all frames.",
        "",
        "| protocol | exchanges | entries | MB | kubeweir s | kubeweir exch/s | tshark s "
        "| tshark exch/s | vs tshark |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Bar: ≥ 1.00× for every protocol — worst here {worst:.2f}× "
        f"({'met' if worst >= 1 else 'NOT met'}).",
        "",
        "Reproduce: `.venv/bin/python -m benchmarks.protocols"
        + (f" --exchanges {args.exchanges}" if args.exchanges != 10000 else "")
        + "`",
        "",
    ]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
