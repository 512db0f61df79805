"""Property tests: garbage and random orderings never raise anything unhandled; memory
stays within the configured bounds. (HYPOTHESIS_PROFILE=deep for a long run.)"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from kubeweir import pcapgen as g
from sniffer.capture import CaptureError, open_capture
from sniffer.parsers.base import Direction
from sniffer.pipeline import Pipeline, PipelineSettings
from sniffer.reassembly import Connection, Reassembler
from tests.sniffer.lineproto import ECHO, LINE

# the deep profile (5000 examples each) outlasts the default per-test time-out
pytestmark = pytest.mark.timeout(3600)

PCAP_HEAD = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
NG_HEAD = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
_PKTS = g.tcp_session([("c", b"PING 1\n" * 40), ("s", b"PONG 1\n" * 40)], mss=100)
_FILES: dict[str, bytes] = {}


def _sample(tmp_path: Path, fmt: str) -> bytes:
    if fmt not in _FILES:
        p = tmp_path / f"sample.{fmt}"
        if fmt == "pcap":
            g.write_pcap(p, _PKTS)
        else:
            g.write_pcapng(p, [("ether", _PKTS), ("sll2", _PKTS[:3])])
        _FILES[fmt] = p.read_bytes()
    return _FILES[fmt]


def _read_all(path: Path) -> None:
    try:
        reader = open_capture(path)
    except CaptureError as exc:
        assert exc.offset == 0
        return
    size = path.stat().st_size
    pipe = Pipeline(PipelineSettings(), stream_protocols=[LINE], datagram_protocols=[ECHO])
    with reader:
        for _ in pipe.run(reader):
            pass
    for e in reader.errors:
        assert 0 <= e.offset <= size


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=st.sampled_from([b"", PCAP_HEAD, NG_HEAD]), body=st.binary(max_size=2000))
def test_garbage_files(tmp_path: Path, head: bytes, body: bytes) -> None:
    p = tmp_path / "g.pcap"
    p.write_bytes(head + body)
    _read_all(p)


_VALID = g.frame(
    IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=80, flags="PA") / Raw(b"PING 1\n")
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(["pcap", "pcapng"]),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=12),
    cut=st.integers(0, 10_000),
)
def test_mutated_captures(tmp_path: Path, fmt: str, flips: list, cut: int) -> None:
    p = tmp_path / f"m.{fmt}"
    data = bytearray(_sample(tmp_path, fmt))
    for off, val in flips:
        data[off % len(data)] = val
    p.write_bytes(bytes(data[: max(cut, len(data) // 2)]))
    _read_all(p)


@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from([0, 1, 101, 108, 113, 228, 229, 276, 7]), st.binary(max_size=120)
        ),
        max_size=40,
    ),
    mutate=st.lists(st.integers(0, len(_VALID) - 1), max_size=4),
)
def test_garbage_frames(frames: list[tuple[int, bytes]], mutate: list[int]) -> None:
    pipe = Pipeline(PipelineSettings(), stream_protocols=[LINE], datagram_protocols=[ECHO])
    valid = bytearray(_VALID)
    for i in mutate:
        valid[i] ^= 0xFF
    for i, (lt, frame) in enumerate(frames + [(1, bytes(valid))]):
        pipe.feed(float(i), lt, frame)
    pipe.close()
    for e in pipe.take():
        assert e.proto in ("line", "tcp", "echo")


class _Sink:
    def __init__(self) -> None:
        self.got: dict[int, bytearray] = {0: bytearray(), 1: bytearray()}

    def opened(self, conn: Connection) -> None:
        pass

    def data(self, conn: Connection, direction: Direction, data: bytes, ts: float) -> None:
        self.got[direction] += data

    def gap(self, conn: Connection, direction: Direction, length: int, ts: float) -> None:
        self.got[direction] += b"?" * length

    def closed(self, conn: Connection, ts: float) -> None:
        pass


def _segments(side: str, data: bytes, isn: int, cuts: list[int]) -> list[tuple]:
    """(src, dst, sport, dport, seq, payload) pieces of ``data`` cut at ``cuts``."""
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    src, dst, sp, dp = (b"\x0a\0\0\x01", b"\x0a\0\0\x02", 40000, 80)
    if side == "s":
        src, dst, sp, dp = dst, src, dp, sp
    return [
        (src, dst, sp, dp, (isn + a) & 0xFFFFFFFF, data[a:b])
        for a, b in zip(bounds, bounds[1:], strict=False)
        if b > a
    ]


@given(
    cdata=st.binary(min_size=1, max_size=3000),
    sdata=st.binary(min_size=1, max_size=3000),
    ccuts=st.lists(st.integers(0, 3000), max_size=20),
    scuts=st.lists(st.integers(0, 3000), max_size=20),
    isns=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    order=st.randoms(use_true_random=False),
    dups=st.lists(st.integers(0, 100), max_size=6),
)
def test_any_order_reassembles_exactly(
    cdata: bytes,
    sdata: bytes,
    ccuts: list[int],
    scuts: list[int],
    isns: tuple[int, int],
    order,
    dups,
) -> None:
    segs = _segments("c", cdata, isns[0], ccuts) + _segments("s", sdata, isns[1], scuts)
    segs += [segs[i % len(segs)] for i in dups]  # retransmissions
    order.shuffle(segs)
    sink = _Sink()
    ra = Reassembler(sink, server_ports={80})
    # the handshake is seen first, so both ISNs are known; then data in any order (no ACKs)
    c, srv = b"\x0a\0\0\x01", b"\x0a\0\0\x02"
    ra.segment(0.0, c, srv, 40000, 80, (isns[0] - 1) & 0xFFFFFFFF, 0, 0x02, b"")
    ra.segment(0.0, srv, c, 80, 40000, (isns[1] - 1) & 0xFFFFFFFF, isns[0], 0x12, b"")
    for i, (src, dst, sp, dp, seq, payload) in enumerate(segs):
        ra.segment(float(i), src, dst, sp, dp, seq, 0, 0x08, payload)
    ra.close_all(1e9)
    assert bytes(sink.got[0]) == cdata and bytes(sink.got[1]) == sdata
    assert ra.buffered == 0


@given(
    flows=st.lists(
        st.tuples(
            st.integers(0, 30),
            st.integers(0, 2**32 - 1),
            st.integers(1, 5000),
            st.integers(1, 1500),
        ),
        min_size=1,
        max_size=200,
    ),
)
def test_memory_stays_bounded(flows: list[tuple[int, int, int, int]]) -> None:
    sink = _Sink()
    ra = Reassembler(sink, max_flow_bytes=4000, max_total_bytes=20000, max_flows=8)
    for i, (port, seq, skip, n) in enumerate(flows):
        src, dst = b"\x0a\0\0\x01", b"\x0a\0\0\x02"
        # a first segment fixes the stream position; later ones land ahead of it
        ra.segment(float(i), src, dst, 40000 + port, 80, seq, 0, 0x08, b"x")
        ra.segment(
            float(i), src, dst, 40000 + port, 80, (seq + 1 + skip) & 0xFFFFFFFF, 0, 0x08, b"y" * n
        )
        assert ra.buffered <= 20000
        assert len(ra.conns) <= 8
        for conn in ra.conns:
            assert conn.client.ooo_bytes <= 4000 and conn.server.ooo_bytes <= 4000
    ra.close_all(1e9)
    assert ra.buffered == 0
