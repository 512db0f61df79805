"""What redaction costs: `kubeweir read` with the default rules vs `--no-redact`.

    python -m benchmarks.redaction                   # 20,000 exchanges, best of 3
    python -m benchmarks.redaction --exchanges 5000 --repeat 1

The capture is made with `kubeweir.pcapgen.tcp_session`: keep-alive HTTP/1.1 connections
whose requests carry realistic headers (browser User-Agent, Accept-*, trace ids, a bearer
JWT on most, cookies on some) and JSON bodies (orders with a customer, items, an address,
sometimes a card number), answered by JSON lists of 1–2 KB with timestamps and ids. A
set of template connections is generated once with scapy and replicated with new client
ports (scapy is far too slow to write every packet). Both runs read the same file in the
same run, alternating, best of ``--repeat``, timed by CPU (user + sys of the child: the
machine is shared, so wall clock is shown but not trusted); the bar is that redaction
costs at most 25% of `kubeweir read`'s time. The engine alone is timed in-process as well
(CPU µs per entry).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubeweir import pcapgen

TEMPLATE_CONNECTIONS = 8
EXCHANGES_PER_CONNECTION = 50
_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
_WORDS = "alpha blue cedar delta ember fjord grove harbor iris juniper kestrel lumen".split()


def _luhn_card(rng: random.Random) -> str:
    body = "4" + "".join(rng.choice("0123456789") for _ in range(14))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def _jwt(rng: random.Random) -> str:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"sub": f"user-{rng.randrange(10**6)}", "iat": 1700000000, "scope": "orders:rw"}
    sig = base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode()
    return f"{b64({'alg': 'RS256', 'typ': 'JWT', 'kid': 'k1'})}.{b64(claims)}.{sig}"


def _request(rng: random.Random, i: int) -> bytes:
    post = rng.random() < 0.4
    path = f"/api/v1/orders/{rng.randrange(10**6)}" if not post else "/api/v1/orders"
    query = f"?page={rng.randrange(20)}&limit=50&sort=created_at" if not post else ""
    headers = [
        "Host: orders.shop.svc.cluster.local",
        f"User-Agent: {_UA}",
        "Accept: application/json, text/plain, */*",
        "Accept-Encoding: gzip, deflate, br",
        "Accept-Language: en-US,en;q=0.9,de;q=0.8",
        f"X-Request-Id: {rng.randbytes(16).hex()}",
        f"traceparent: 00-{rng.randbytes(16).hex()}-{rng.randbytes(8).hex()}-01",
    ]
    if rng.random() < 0.7:
        headers.append(f"Authorization: Bearer {_jwt(rng)}")
    if rng.random() < 0.3:
        headers.append(
            f"Cookie: session={rng.randbytes(12).hex()}; _ga=GA1.2.{rng.randrange(10**9)}; "
            "theme=dark"
        )
    body = b""
    if post:
        order = {
            "customer": {
                "id": rng.randrange(10**6),
                "name": f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()}",
                "email": f"{rng.choice(_WORDS)}.{i}@example.com",
            },
            "items": [
                {"sku": f"SKU-{rng.randrange(10**5):05d}", "qty": rng.randrange(1, 5),
                 "price": round(rng.uniform(1, 200), 2), "name": " ".join(rng.sample(_WORDS, 3))}
                for _ in range(rng.randrange(1, 6))
            ],
            "shipping": {"street": f"{rng.randrange(1, 200)} {rng.choice(_WORDS).title()} St",
                         "city": "Berlin", "zip": f"{rng.randrange(10000, 99999)}",
                         "country": "DE"},
            "payment": {"method": "card", "card": {"number": _luhn_card(rng), "exp": "12/29"}}
            if rng.random() < 0.1 else {"method": "invoice"},
            "notes": " ".join(rng.choices(_WORDS, k=rng.randrange(0, 12))),
        }  # fmt: skip
        body = json.dumps(order).encode()
        headers += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    method = "POST" if post else "GET"
    head = f"{method} {path}{query} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n"
    return head.encode() + body


def _response(rng: random.Random) -> bytes:
    items = [
        {
            "id": rng.randrange(10**9),
            "status": rng.choice(["PAID", "SHIPPED", "PENDING"]),
            "total": round(rng.uniform(5, 900), 2),
            "currency": "EUR",
            "created_at": f"2024-05-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:"
                          f"{rng.randrange(60):02d}:00Z",
            "updated_ms": 1_700_000_000_000 + rng.randrange(10**9),
            "tags": rng.sample(_WORDS, 2),
        }
        for _ in range(rng.randrange(4, 12))
    ]  # fmt: skip
    body = json.dumps({"items": items, "next": None}).encode()
    headers = [
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        f"X-Request-Id: {rng.randbytes(16).hex()}",
    ]
    if rng.random() < 0.1:
        headers.append(f"Set-Cookie: session={rng.randbytes(12).hex()}; Path=/; HttpOnly; Secure")
    return ("HTTP/1.1 200 OK\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode() + body


_GLOBAL = struct.Struct("<IHHiIII")
_REC = struct.Struct("<IIII")
_PORTS = struct.Struct("!HH")


def write_capture(path: Path, exchanges: int, seed: int = 7) -> int:
    """Write the benchmark capture; returns the number of exchanges written."""
    rng = random.Random(seed)
    template_pcap = path.with_suffix(".template.pcap")
    packets = []
    for c in range(TEMPLATE_CONNECTIONS):
        msgs: list[tuple[str, bytes]] = []
        for i in range(EXCHANGES_PER_CONNECTION):
            msgs += [("c", _request(rng, i)), ("s", _response(rng))]
        packets += pcapgen.tcp_session(
            msgs, client=("10.1.0.1", 1024 + c), server=("10.2.0.1", 8080), t0=pcapgen.T0 + c
        )
    packets.sort(key=lambda p: float(p.time))
    pcapgen.write_pcap(template_pcap, packets)
    data = template_pcap.read_bytes()
    template_pcap.unlink()
    records: list[tuple[int, int, bytes]] = []
    pos = _GLOBAL.size
    while pos < len(data):
        sec, usec, caplen, _ = _REC.unpack_from(data, pos)
        records.append((sec, usec, data[pos + 16 : pos + 16 + caplen]))
        pos += 16 + caplen
    per_copy = TEMPLATE_CONNECTIONS * EXCHANGES_PER_CONNECTION
    copies = max(1, exchanges // per_copy)
    tcp_at = 14 + 20  # Ethernet, IPv4 without options (as scapy writes them)
    with path.open("wb", buffering=1 << 20) as f:
        f.write(data[: _GLOBAL.size])
        for k in range(copies):
            shift = 10 * k
            for sec, usec, frame in records:
                sport, dport = _PORTS.unpack_from(frame, tcp_at)
                if dport == 8080:
                    sport = sport + TEMPLATE_CONNECTIONS * (k + 1)
                else:
                    dport = dport + TEMPLATE_CONNECTIONS * (k + 1)
                frame = frame[:tcp_at] + _PORTS.pack(sport, dport) + frame[tcp_at + 4 :]
                f.write(_REC.pack(sec + shift, usec, len(frame), len(frame)) + frame)
    return copies * per_copy


def _read(path: Path, *extra: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds (user + sys), entries) of one `kubeweir read --jobs 1`
    (one process: with ``--jobs auto`` the two rows could get different numbers of
    workers, each paying its start-up, as the machine's idle CPUs come and go)."""
    cmd = [sys.executable, "-m", "kubeweir", "read", "--jobs", "1", str(path), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p.returncode:
        raise RuntimeError(f"kubeweir read failed ({p.returncode}): {p.stderr[-2000:]}")
    entries = int(p.stderr.split("entries ", 1)[1].split()[0]) if "entries " in p.stderr else -1
    return wall, cpu, entries


def _engine_alone(path: Path) -> tuple[float, float, int]:
    """(CPU µs per entry, share of entries changed, entries) for Engine.apply in-process."""
    from redaction import default_engine
    from sniffer.pipeline import PipelineSettings, read_pcap

    entries = list(read_pcap(path, PipelineSettings()))
    engine = default_engine()
    best = float("inf")
    changed = 0
    for _ in range(3):
        t = time.process_time()  # CPU time: the machine may be shared
        out = [engine.apply(e) for e in entries]
        best = min(best, time.process_time() - t)
        changed = sum(1 for a, b in zip(entries, out, strict=True) if a is not b)
    return best / len(entries) * 1e6, changed / len(entries), len(entries)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--exchanges", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kubeweir-bench-redaction-") as d:
        path = Path(d) / "realistic.pcap"
        t = time.perf_counter()
        n = write_capture(path, a.exchanges)
        gen = time.perf_counter() - t
        size = path.stat().st_size
        on: list[tuple[float, float]] = []
        off: list[tuple[float, float]] = []
        entries = 0
        for _ in range(a.repeat):  # alternate so that machine load hits both alike
            w, c, entries = _read(path)
            on.append((w, c))
            w, c, _ = _read(path, "--no-redact")
            off.append((w, c))
        us, share, n_entries = _engine_alone(path)
    load = os.getloadavg()
    t_on, t_off = min(w for w, _ in on), min(w for w, _ in off)
    c_on, c_off = min(c for _, c in on), min(c for _, c in off)
    cost = (c_on - c_off) / c_off * 100
    wall_cost = (t_on - t_off) / t_off * 100
    verdict = "meets" if cost <= 25 else "MISSES"
    lines = [
        "## Redaction cost: `kubeweir read` with default rules vs `--no-redact`",
        "",
        "`kubeweir read --jobs 1`, one process. "
        f"Capture: {n:,} keep-alive HTTP/1.1 exchanges ({size / 1e6:.1f} MB; generated with "
        f"`kubeweir.pcapgen.tcp_session` in {gen:.1f} s): browser-like headers, a bearer JWT "
        "on 70% of requests, cookies on 30%, JSON order bodies with a customer e-mail on 40% "
        "(card numbers on 10% of those), 1–2 KB JSON responses. Best of "
        f"{a.repeat}, runs alternating; {os.cpu_count()} CPUs, shared machine (load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end; CPU time is the measure, "
        "wall clock is shown but moves with other people's load).",
        "",
        "| run | entries | CPU s | wall s | entries per CPU s |",
        "|---|---:|---:|---:|---:|",
        f"| kubeweir read --no-redact | {entries:,} | {c_off:.2f} | {t_off:.2f} | "
        f"{entries / c_off:,.0f} |",
        f"| kubeweir read (default redaction) | {entries:,} | {c_on:.2f} | {t_on:.2f} | "
        f"{entries / c_on:,.0f} |",
        "",
        f"Redaction costs **{cost:+.1f}%** of the read's CPU time (ratio {c_on / c_off:.3f}; "
        f"wall clock {wall_cost:+.1f}%); bar ≤ 25%: {verdict}. The engine alone: "
        f"{us:.1f} µs of CPU per entry over {n_entries:,} entries, {share:.0%} of them changed.",
        "",
        "Reproduce: `flock /tmp/kw-bench.lock .venv/bin/python -m benchmarks.redaction"
        + (f" --exchanges {a.exchanges}" if a.exchanges != 20000 else "")
        + (f" --repeat {a.repeat}" if a.repeat != 3 else "")
        + "`",
        "",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
