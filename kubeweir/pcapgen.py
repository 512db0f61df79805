"""Synthetic captures for tests and benchmarks.

Build a conversation, bend it, write it::

    from kubeweir import pcapgen as g
    pkts = g.http_conversation(3)                      # handshake, 3 exchanges, FIN
    pkts = g.reorder(pkts, [(4, 5)])                   # swap two packets
    pkts = g.retransmit(pkts, [4])                     # send packet 4 again later
    g.write_pcap("x.pcap", pkts, link="vlan")          # or "ether" "qinq" "sll" "sll2"
                                                       #    "raw" "null" "loop"
    g.write_pcapng("x.pcapng", [("ether", pkts), ("sll2", other)])

Packets are scapy ``IP``/``IPv6`` objects with ``.time`` set; the link header is added
when writing. Writers are hand-written so that byte order, nanosecond stamps and pcapng
``if_tsresol`` can be chosen. ``write_http_benchmark`` writes big keep-alive captures with
``struct`` directly (scapy is far too slow for millions of packets).
"""

from __future__ import annotations

import gzip
import struct
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.packet import Packet, Raw

__all__ = [
    "LINKS",
    "data_packets",
    "drop",
    "fragment_packets",
    "frame",
    "http_conversation",
    "http_messages",
    "midstream",
    "reorder",
    "retransmit",
    "tcp_session",
    "udp_exchange",
    "write_http_benchmark",
    "write_pcap",
    "write_pcapng",
]

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 80)
CLIENT6 = ("fd00::1", 40000)
SERVER6 = ("fd00::2", 80)
T0 = 1_700_000_000.0

# link name -> pcap LINKTYPE
LINKS: dict[str, int] = {
    "ether": 1,
    "vlan": 1,
    "qinq": 1,
    "sll": 113,
    "sll2": 276,
    "raw": 101,
    "null": 0,
    "loop": 108,
}


def _ip(src: str, dst: str, ipv6: bool) -> Packet:
    return IPv6(src=src, dst=dst) if ipv6 else IP(src=src, dst=dst)


def tcp_session(
    messages: Sequence[tuple[str, bytes]],
    *,
    client: tuple[str, int] | None = None,
    server: tuple[str, int] | None = None,
    ipv6: bool = False,
    handshake: bool = True,
    close: str | None = "fin",
    mss: int = 1400,
    client_isn: int = 1000,
    server_isn: int = 500_000,
    t0: float = T0,
    step: float = 0.001,
    acks: bool = True,
) -> list[Packet]:
    """A TCP connection carrying ``messages`` (``("c", bytes)`` client→server, ``("s",
    bytes)`` server→client), each cut into ``mss``-byte segments. ``close`` is ``"fin"``,
    ``"rst"`` or None; ``acks`` adds a pure ACK after each message."""
    client = client or (CLIENT6 if ipv6 else CLIENT)
    server = server or (SERVER6 if ipv6 else SERVER)
    c_ip = _ip(client[0], server[0], ipv6)
    s_ip = _ip(server[0], client[0], ipv6)
    cs, ss = client_isn, server_isn
    t = t0
    out: list[Packet] = []

    def put(side: str, flags: str, payload: bytes = b"") -> None:
        nonlocal cs, ss, t
        if side == "c":
            p = c_ip.copy() / TCP(sport=client[1], dport=server[1], seq=cs, ack=ss, flags=flags)
            cs += len(payload) + (1 if "S" in flags or "F" in flags else 0)
        else:
            p = s_ip.copy() / TCP(sport=server[1], dport=client[1], seq=ss, ack=cs, flags=flags)
            ss += len(payload) + (1 if "S" in flags or "F" in flags else 0)
        if "A" not in flags:
            p[TCP].ack = 0
        if payload:
            p = p / Raw(payload)
        p.time = t
        t += step
        out.append(p)

    if handshake:
        put("c", "S")
        put("s", "SA")
        put("c", "A")
    for side, data in messages:
        for i in range(0, len(data), mss):
            put(side, "PA", data[i : i + mss])
        if acks:
            put("s" if side == "c" else "c", "A")
    if close == "fin":
        put("c", "FA")
        put("s", "FA")
        put("c", "A")
    elif close == "rst":
        put("c", "RA")
    return out


def http_messages(
    n: int,
    *,
    pipelining: bool = False,
    chunked_gzip: bool = False,
    body: bytes = b'{"ok":true}',
    host: str = "api.example",
) -> list[tuple[str, bytes]]:
    """``n`` keep-alive HTTP/1.1 exchanges: ``GET /items/<i>`` answered 200 (with
    ``chunked_gzip`` the body is gzip'd and sent in two chunks). ``pipelining`` sends all
    requests before the first response."""
    reqs = [
        f"GET /items/{i}?v=1 HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pcapgen\r\n\r\n".encode()
        for i in range(n)
    ]
    resps = []
    for i in range(n):
        b = body.replace(b"true", f"{i}".encode()) if b"true" in body else body
        if chunked_gzip:
            z = gzip.compress(b, mtime=0)
            half = len(z) // 2
            chunks = b"".join(
                f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in (z[:half], z[half:])
            )
            resps.append(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
                + chunks
                + b"0\r\n\r\n"
            )
        else:
            resps.append(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(b)}\r\n\r\n".encode()
                + b
            )
    if pipelining:
        return [("c", b"".join(reqs))] + [("s", r) for r in resps]
    msgs: list[tuple[str, bytes]] = []
    for q, r in zip(reqs, resps, strict=True):
        msgs += [("c", q), ("s", r)]
    return msgs


def http_conversation(
    n: int = 3, *, pipelining: bool = False, chunked_gzip: bool = False, **session: Any
) -> list[Packet]:
    """A keep-alive HTTP/1.1 connection with ``n`` exchanges (see ``tcp_session`` for the
    connection options: ``ipv6``, ``client``, ``server``, ``mss``, ``handshake``...)."""
    return tcp_session(
        http_messages(n, pipelining=pipelining, chunked_gzip=chunked_gzip), **session
    )


def udp_exchange(
    messages: Sequence[tuple[str, bytes]],
    *,
    client: tuple[str, int] = ("10.0.0.1", 53000),
    server: tuple[str, int] = ("10.0.0.53", 53),
    ipv6: bool = False,
    t0: float = T0,
    step: float = 0.001,
) -> list[Packet]:
    """UDP datagrams between a client and a server, ``("c"|"s", payload)`` each."""
    out = []
    t = t0
    for side, data in messages:
        if side == "c":
            p = _ip(client[0], server[0], ipv6) / UDP(sport=client[1], dport=server[1]) / Raw(data)
        else:
            p = _ip(server[0], client[0], ipv6) / UDP(sport=server[1], dport=client[1]) / Raw(data)
        p.time = t
        t += step
        out.append(p)
    return out


# -- bending a packet list ------------------------------------------------------------


def _data_indices(pkts: Sequence[Packet]) -> list[int]:
    return [i for i, p in enumerate(pkts) if p.haslayer(TCP) and len(p[TCP].payload)]


def data_packets(pkts: Sequence[Packet]) -> list[int]:
    """Indices of the packets that carry TCP payload."""
    return _data_indices(pkts)


def reorder(pkts: Sequence[Packet], swaps: Iterable[tuple[int, int]]) -> list[Packet]:
    """Swap packets by index (timestamps stay in their slots, so the file is in time order)."""
    out = list(pkts)
    times = [p.time for p in out]
    for a, b in swaps:
        out[a], out[b] = out[b], out[a]
    for p, t in zip(out, times, strict=True):
        p.time = t
    return out


def retransmit(pkts: Sequence[Packet], indices: Iterable[int], later: int = 2) -> list[Packet]:
    """Send each packet in ``indices`` a second time, ``later`` packets afterwards."""
    out = list(pkts)
    for i in sorted(indices, reverse=True):
        dup = pkts[i].copy()
        out.insert(min(i + 1 + later, len(out)), dup)
    return _retime(out)


def drop(pkts: Sequence[Packet], indices: Iterable[int]) -> list[Packet]:
    """Lose the packets in ``indices`` from the capture (a gap)."""
    gone = set(indices)
    return [p for i, p in enumerate(pkts) if i not in gone]


def midstream(pkts: Sequence[Packet], start: int) -> list[Packet]:
    """The capture starts at packet ``start`` (no handshake seen)."""
    return list(pkts[start:])


def fragment_packets(pkts: Sequence[Packet], size: int = 512) -> list[Packet]:
    """IP-fragment every packet larger than ``size`` (IPv4 or IPv6 fragment headers)."""
    out: list[Packet] = []
    for p in pkts:
        if len(p) <= size:
            out.append(p)
            continue
        if p.haslayer(IPv6):
            ip6 = p[IPv6]
            q = IPv6(src=ip6.src, dst=ip6.dst) / IPv6ExtHdrFragment() / ip6.payload.copy()
            frags = fragment6(q, size)  # type: ignore[no-untyped-call]
        else:
            frags = fragment(p, size)  # type: ignore[no-untyped-call]
        for f in frags:
            f.time = p.time
        out += frags
    return out


def _retime(pkts: list[Packet]) -> list[Packet]:
    times = sorted(float(p.time) for p in pkts)
    for i in range(1, len(times)):
        if times[i] <= times[i - 1]:
            times[i] = times[i - 1] + 1e-6
    for p, t in zip(pkts, times, strict=True):
        p.time = t
    return pkts


# -- link layers and writers -----------------------------------------------------------

_MAC_C = bytes.fromhex("020000000001")
_MAC_S = bytes.fromhex("020000000002")


def frame(pkt: Packet | bytes, link: str = "ether") -> bytes:
    """The bytes of one IP packet behind the link header named ``link``."""
    raw = bytes(pkt)
    v6 = raw[0] >> 4 == 6
    et = 0x86DD if v6 else 0x0800
    if link == "ether":
        return _MAC_S + _MAC_C + struct.pack("!H", et) + raw
    if link == "vlan":
        return _MAC_S + _MAC_C + struct.pack("!HHH", 0x8100, 42, et) + raw
    if link == "qinq":
        return _MAC_S + _MAC_C + struct.pack("!HHHHH", 0x88A8, 7, 0x8100, 42, et) + raw
    if link == "sll":
        return struct.pack("!HHH8sH", 0, 1, 6, _MAC_C + b"\0\0", et) + raw
    if link == "sll2":
        return struct.pack("!HHIHBB8s", et, 0, 3, 1, 0, 6, _MAC_C + b"\0\0") + raw
    if link == "raw":
        return raw
    if link == "null":
        return struct.pack("<I", 30 if v6 else 2) + raw
    if link == "loop":
        return struct.pack("!I", 30 if v6 else 2) + raw
    raise ValueError(f"unknown link {link!r}; one of {sorted(LINKS)}")


def write_pcap(
    path: str | Path,
    pkts: Iterable[Packet | tuple[float, bytes]],
    *,
    link: str = "ether",
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
) -> Path:
    """Write a classic pcap. Items are scapy IP packets (framed with ``link``) or
    ``(ts, frame bytes)`` pairs written as they are."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    ticks = 1_000_000_000 if nanosecond else 1_000_000
    path = Path(path)
    with path.open("wb") as f:
        f.write(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, LINKS[link]))
        for item in pkts:
            ts, data = _ts_frame(item, link)
            sec = int(ts)
            frac = round((ts - sec) * ticks)
            f.write(struct.pack(e + "IIII", sec, frac, len(data), len(data)) + data)
    return path


def _ts_frame(item: Packet | tuple[float, bytes], link: str) -> tuple[float, bytes]:
    if isinstance(item, tuple):
        return item
    return float(item.time), frame(item, link)


def write_pcapng(
    path: str | Path,
    interfaces: Sequence[tuple[str, Sequence[Packet]]],
    *,
    big_endian: bool = False,
    tsresol: int = 6,
    simple: bool = False,
    extra_blocks: bool = True,
) -> Path:
    """Write a pcapng with one interface per ``(link, packets)`` pair; packets of all
    interfaces are merged in time order into Enhanced Packet Blocks (``simple``: Simple
    Packet Blocks, one interface only). ``tsresol`` is the ``if_tsresol`` byte (6 = µs,
    9 = ns, 0x80|n = 2^-n). ``extra_blocks`` adds a Name Resolution and a custom block
    that readers must skip."""
    e = ">" if big_endian else "<"

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)

    ticks = float(2 ** (tsresol & 0x7F)) if tsresol & 0x80 else float(10**tsresol)
    path = Path(path)
    with path.open("wb") as f:
        f.write(block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)))
        for link, _ in interfaces:
            opts = struct.pack(e + "HHB3x", 9, 1, tsresol) + struct.pack(e + "HH", 0, 0)
            f.write(block(1, struct.pack(e + "HHI", LINKS[link], 0, 262144) + opts))
        if extra_blocks:
            f.write(block(4, struct.pack(e + "HH", 0, 0)))  # empty name resolution block
            f.write(block(0x40000BAD, b"\x00\x00\x7f\x00custom"))
        merged = sorted(
            (
                (float(p.time), i, frame(p, link))
                for i, (link, ps) in enumerate(interfaces)
                for p in ps
            ),
            key=lambda x: x[0],
        )
        for ts, iface, data in merged:
            if simple:
                f.write(block(3, struct.pack(e + "I", len(data)) + data))
                continue
            t = round(ts * ticks)
            body = struct.pack(e + "IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(data), len(data))
            f.write(block(6, body + data))
    return path


# -- big captures, written with struct -----------------------------------------------------

_ETH_IP = _MAC_S + _MAC_C + b"\x08\x00"
_IPH = struct.Struct("!BBHHHBBH4s4s")
_TCPH = struct.Struct("!HHIIBBHHH")
_REC = struct.Struct("<IIII")


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(array("H", data))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class FastTcpWriter:
    """Writes TCP conversations (Ethernet, IPv4, correct checksums) to a pcap with
    precompiled structs, for captures too big to build with scapy: ~1 s per 50k exchanges.

    Connections are numbered; each has a handshake when opened and a FIN exchange when
    closed, and ``send`` writes one segment advancing that side's sequence number."""

    def __init__(self, f: Any, port: int, connections: int, t0: float = T0) -> None:
        self.f = f
        self.t = t0
        self.ipid = 0
        self.conns: list[list[Any]] = []
        for c in range(connections):
            cip = bytes([10, 1, (c >> 8) & 255, c & 255])
            sip = bytes([10, 2, 0, 1])
            self.conns.append(
                [cip, sip, 30000 + c, port, 1_000_000 + c * 7919, 2_000_000 + c * 104729]
            )
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))

    def send(self, c: int, from_client: bool, flags: int, payload: bytes = b"") -> None:
        cn = self.conns[c]
        cip, sip, cport, sport, cseq, sseq = cn
        if from_client:
            src, dst, sp, dp, seq, ack = cip, sip, cport, sport, cseq, sseq
        else:
            src, dst, sp, dp, seq, ack = sip, cip, sport, cport, sseq, cseq
        self.ipid = (self.ipid + 1) & 0xFFFF
        tcp = _TCPH.pack(sp, dp, seq, ack, 5 << 4, flags, 65535, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, 6, 20 + len(payload))
        tcp = tcp[:16] + struct.pack("!H", _csum(pseudo + tcp + payload)) + tcp[18:]
        iph = _IPH.pack(0x45, 0, 40 + len(payload), self.ipid, 0x4000, 64, 6, 0, src, dst)
        iph = iph[:10] + struct.pack("!H", _csum(iph)) + iph[12:]
        fr = _ETH_IP + iph + tcp + payload
        sec = int(self.t)
        self.f.write(_REC.pack(sec, int((self.t - sec) * 1e6), len(fr), len(fr)) + fr)
        self.t += 0.00001
        adv = len(payload) + (1 if flags & 0x03 else 0)
        if from_client:
            cn[4] = (cseq + adv) & 0xFFFFFFFF
        else:
            cn[5] = (sseq + adv) & 0xFFFFFFFF

    def open_all(self) -> None:
        for c in range(len(self.conns)):
            self.send(c, True, 0x02)
            self.send(c, False, 0x12)
            self.send(c, True, 0x10)

    def close_all(self) -> None:
        for c in range(len(self.conns)):
            self.send(c, True, 0x11)
            self.send(c, False, 0x11)
            self.send(c, True, 0x10)


def write_http_benchmark(
    path: str | Path,
    exchanges: int,
    *,
    connections: int = 8,
    body_size: int = 200,
    mss: int = 1448,
    t0: float = T0,
) -> Path:
    """A keep-alive HTTP/1.1 capture (Ethernet, IPv4, correct checksums) with
    ``exchanges`` GETs spread round-robin over ``connections`` connections, each with a
    handshake and a FIN. Every exchange is a request segment, response segment(s) of
    ``body_size`` JSON bytes, and a pure ACK. Written with struct: ~1 s per 50k exchanges."""
    path = Path(path)
    pad = b"x" * max(0, body_size - 24)
    with path.open("wb", buffering=1 << 20) as f:
        w = FastTcpWriter(f, 80, connections, t0)
        w.open_all()
        for i in range(exchanges):
            c = i % connections
            req = (
                f"GET /api/orders/{i}?page={i % 7} HTTP/1.1\r\nHost: shop.svc\r\n"
                f"User-Agent: bench/1\r\nAccept: application/json\r\n\r\n"
            ).encode()
            body = (f'{{"id":{i:>10},"p":"'.encode() + pad)[: max(body_size - 2, 0)] + b'"}'
            resp = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            w.send(c, True, 0x18, req)
            for k in range(0, len(resp), mss):
                w.send(c, False, 0x18, resp[k : k + mss])
            w.send(c, True, 0x10)
        w.close_all()
    return path
