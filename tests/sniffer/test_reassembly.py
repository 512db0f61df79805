"""TCP reassembly edge cases, built with scapy through kubeweir.pcapgen."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from kubeweir import pcapgen as g
from sniffer.capture import PacketDecoder
from sniffer.parsers.base import Direction
from sniffer.reassembly import Connection, Reassembler


class Recorder:
    """A StreamSink that keeps what the reassembler hands it."""

    def __init__(self) -> None:
        self.got: dict[int, bytearray] = {0: bytearray(), 1: bytearray()}
        self.gaps: list[tuple[int, int]] = []
        self.ended: list[Connection] = []

    def opened(self, conn: Connection) -> None:
        pass

    def data(self, conn: Connection, direction: Direction, data: bytes, ts: float) -> None:
        assert type(data) is bytes
        self.got[direction] += data

    def gap(self, conn: Connection, direction: Direction, length: int, ts: float) -> None:
        self.gaps.append((int(direction), length))
        self.got[direction] += b"?" * length

    def closed(self, conn: Connection, ts: float) -> None:
        self.ended.append(conn)


def run(pkts: list, end: bool = True, **kw: Any) -> tuple[Recorder, Reassembler]:
    rec = Recorder()
    ra = Reassembler(rec, server_ports={80}, **kw)
    dec = PacketDecoder()
    for p in pkts:
        out = dec.decode(float(p.time), 101, bytes(p))
        assert out is not None
        ra.segment(float(p.time), *out[1:])
    if end:
        ra.close_all(1e12)
    return rec, ra


MSGS = [("c", b"PING 1\n" * 300), ("s", b"PONG 1\n" * 500), ("c", b"PING 2\n"), ("s", b"PONG 2\n")]
CLIENT_BYTES = b"PING 1\n" * 300 + b"PING 2\n"
SERVER_BYTES = b"PONG 1\n" * 500 + b"PONG 2\n"


def session(**kw: Any) -> list:
    return g.tcp_session(MSGS, mss=500, **kw)


def test_in_order_both_directions_and_fin() -> None:
    pkts = session()
    rec, ra = run(pkts, end=False)
    assert bytes(rec.got[0]) == CLIENT_BYTES and bytes(rec.got[1]) == SERVER_BYTES
    assert len(rec.ended) == 1 and ra.counters["closed_fin"] == 1
    conn = rec.ended[0]
    assert conn.syn and conn.isns() == (1000, 500_000)
    assert conn.client.port == 40000 and conn.server.port == 80
    assert not ra.halves and not ra.conns


def test_reordered_segments() -> None:
    pkts = session()
    data = g.data_packets(pkts)
    pkts = g.reorder(pkts, [(data[0], data[2]), (data[4], data[5])])
    rec, ra = run(pkts)
    assert bytes(rec.got[0]) == CLIENT_BYTES and bytes(rec.got[1]) == SERVER_BYTES
    assert ra.counters["out_of_order"] >= 2 and rec.gaps == []
    assert ra.buffered == 0


def test_retransmissions_dropped() -> None:
    pkts = session()
    data = g.data_packets(pkts)
    pkts = g.retransmit(pkts, [data[1], data[6]])
    rec, ra = run(pkts)
    assert bytes(rec.got[0]) == CLIENT_BYTES and bytes(rec.got[1]) == SERVER_BYTES
    assert ra.counters["retransmissions"] == 2


def test_overlapping_segments_never_redeliver() -> None:
    c = ("10.0.0.1", 40000)
    s = ("10.0.0.2", 80)

    def seg(seq: int, data: bytes, t: float) -> Any:
        p = IP(src=c[0], dst=s[0]) / TCP(sport=c[1], dport=s[1], seq=seq, flags="PA") / Raw(data)
        p.time = t
        return p

    syn = IP(src=c[0], dst=s[0]) / TCP(sport=c[1], dport=s[1], seq=99, flags="S")
    syn.time = 0.0
    pkts = [
        syn,
        seg(100, b"abcdef", 1),
        seg(103, b"DEFGHI", 2),
        seg(112, b"mn", 3),
        seg(108, b"IJKLMN", 4),
    ]
    rec, ra = run(pkts)
    # bytes already handed on win; a buffered segment overlapped by in-order data is dropped
    assert bytes(rec.got[0]) == b"abcdefGHIJKLMN"
    assert rec.gaps == []


def test_lost_segment_becomes_gap_when_acked() -> None:
    pkts = session()
    data = g.data_packets(pkts)
    server = [i for i in data if pkts[i][TCP].sport == 80]
    lost = pkts[server[1]]
    n = len(lost[TCP].payload)
    pkts = g.drop(pkts, [server[1]])
    rec, ra = run(pkts, end=False)
    assert rec.gaps == [(1, n)]
    assert ra.counters["gaps"] == 1 and ra.counters["gap_bytes"] == n
    assert len(rec.got[1]) == len(SERVER_BYTES)
    # the gap was declared on the client's ACK, before the connection ended
    assert ra.counters["closed_fin"] == 1


def test_midstream_pickup_uses_ports_and_first_seq() -> None:
    pkts = session()
    data = g.data_packets(pkts)
    server = [i for i in data if pkts[i][TCP].sport == 80]
    pkts = g.midstream(pkts, server[2])  # starts inside the server's answer
    rec, ra = run(pkts)
    conn = rec.ended[0]
    assert not conn.syn and conn.server.port == 80
    first_server = pkts[0]
    assert conn.server.isn == first_server[TCP].seq
    assert SERVER_BYTES.endswith(bytes(rec.got[1]))
    assert bytes(rec.got[0]) == b"PING 2\n"


def test_capture_starting_at_syn_ack() -> None:
    pkts = session()[1:]
    rec, _ = run(pkts)
    conn = rec.ended[0]
    assert conn.syn and conn.isns() == (1000, 500_000)
    assert conn.client.port == 40000
    assert bytes(rec.got[0]) == CLIENT_BYTES


@pytest.mark.parametrize(
    "sport,dport,client_port", [(80, 40000, 40000), (5555, 33000, 33000), (33000, 5555, 33000)]
)
def test_roles_without_syn(sport: int, dport: int, client_port: int) -> None:
    p = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=sport, dport=dport, seq=5, flags="PA")
    p = p / Raw(b"x")
    p.time = 0.0
    rec, _ = run([p])
    assert rec.ended[0].client.port == client_port


def test_rst_closes_and_late_segments_are_ignored() -> None:
    pkts = g.tcp_session(MSGS[:2], mss=500, close="rst")
    late = pkts[g.data_packets(pkts)[-1]].copy()
    late.time = float(pkts[-1].time) + 1
    rec, ra = run(pkts + [late], end=False)
    assert ra.counters["closed_rst"] == 1 and len(rec.ended) == 1
    assert ra.counters["late_segments"] == 1 and not ra.conns


def test_idle_timeout() -> None:
    pkts = g.tcp_session(MSGS[:2], mss=500, close=None)
    rec, ra = run(pkts, end=False, idle_timeout=10.0)
    assert not rec.ended
    ra.sweep(float(pkts[-1].time) + 5)
    assert not rec.ended
    ra.sweep(float(pkts[-1].time) + 11)
    assert len(rec.ended) == 1 and ra.counters["closed_idle"] == 1


def test_flow_byte_bound_forces_gap() -> None:
    pkts = session()
    data = g.data_packets(pkts)
    pkts = g.drop(pkts, [data[0]])  # the client's first segment is lost: the rest waits
    pkts = [p for p in pkts if not (p[TCP].sport == 80 and not len(p[TCP].payload))]  # no acks
    rec, ra = run(pkts, end=False, max_flow_bytes=1000)
    assert ra.counters["bound_flow_bytes"] >= 1
    assert rec.gaps[0] == (0, 500)
    assert ra.buffered <= 1000


def test_total_byte_bound() -> None:
    pkts = []
    for i in range(6):
        s = g.tcp_session(MSGS[:1], mss=500, client=("10.0.0.1", 41000 + i), close=None, acks=False)
        d = g.data_packets(s)
        pkts += g.drop(s, [d[0]])
    rec, ra = run(pkts, end=False, max_total_bytes=4000)
    assert ra.counters["bound_total_bytes"] >= 1
    assert ra.buffered <= 4000
    assert rec.gaps


def test_flow_count_bound_evicts_least_recent() -> None:
    pkts = []
    for i in range(40):
        pkts += g.tcp_session(
            MSGS[:1], mss=5000, client=("10.0.0.1", 41000 + i), close=None, t0=g.T0 + i
        )
    rec, ra = run(pkts, end=False, max_flows=16)
    assert len(ra.conns) <= 16
    assert ra.counters["bound_flows"] >= 24
    assert ra.counters["flows"] == 40
    ports = [c.client.port for c in rec.ended]
    assert ports[:2] == [41000, 41001]  # oldest first


def test_ack_of_a_fin_is_not_a_missing_byte() -> None:
    """The client sends its request and FIN; the answer acknowledges the FIN (seq + 1)."""
    c = ("10.0.0.1", 40000)
    s = ("10.0.0.2", 80)
    req = b"PING 1\n"

    def pkt(frm: tuple, to: tuple, seq: int, ack: int, flags: str, data: bytes, t: float) -> Any:
        p = IP(src=frm[0], dst=to[0]) / TCP(
            sport=frm[1], dport=to[1], seq=seq, ack=ack, flags=flags
        )
        if data:
            p = p / Raw(data)
        p.time = t
        return p

    pkts = [
        pkt(c, s, 99, 0, "S", b"", 0),
        pkt(s, c, 499, 100, "SA", b"", 1),
        pkt(c, s, 100, 500, "PA", req, 2),
        pkt(c, s, 107, 500, "FA", b"", 3),
        pkt(s, c, 500, 108, "PA", b"PONG 1\n", 4),
        pkt(s, c, 507, 108, "FA", b"", 5),
    ]
    rec, ra = run(pkts, end=False)
    assert rec.gaps == [] and ra.counters["gaps"] == 0
    assert bytes(rec.got[1]) == b"PONG 1\n"
    assert ra.counters["closed_fin"] == 1


def test_late_syn_retransmission_delivers_nothing_twice() -> None:
    pkts = session()
    syn = pkts[0].copy()
    syn.time = float(pkts[6].time)
    rec, ra = run(pkts[:6] + [syn] + pkts[6:])
    assert bytes(rec.got[0]) == CLIENT_BYTES and bytes(rec.got[1]) == SERVER_BYTES


def test_port_reuse_with_a_new_isn_starts_a_new_connection() -> None:
    first = g.tcp_session(MSGS[:2], mss=500, close=None)
    second = g.tcp_session(MSGS[2:], client_isn=777_000, server_isn=9_000, t0=g.T0 + 10)
    rec, ra = run(first + second)
    assert ra.counters["closed_reused"] == 1 and ra.counters["flows"] == 2
    assert [c.isns() for c in rec.ended] == [(1000, 500_000), (777_000, 9_000)]
    assert bytes(rec.got[0]) == CLIENT_BYTES and bytes(rec.got[1]) == SERVER_BYTES
