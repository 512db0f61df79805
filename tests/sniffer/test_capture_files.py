"""pcap/pcapng reading: byte orders, resolutions, interfaces, damage with offsets."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from kubeweir import pcapgen as g
from sniffer.capture import CaptureError, PacketDecoder, open_capture


def _read(path: Path) -> tuple[list[tuple[float, int, bytes]], list[CaptureError]]:
    with open_capture(path) as r:
        recs = [(ts, lt, bytes(fr)) for ts, lt, fr in r]
        return recs, r.errors


@pytest.fixture(scope="module")
def pkts() -> list:
    return g.http_conversation(2)


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("ns", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, pkts: list, big: bool, ns: bool) -> None:
    p = g.write_pcap(tmp_path / "x.pcap", pkts, nanosecond=ns, big_endian=big)
    recs, errors = _read(p)
    assert errors == []
    assert [fr for _, _, fr in recs] == [g.frame(x) for x in pkts]
    assert {lt for _, lt, _ in recs} == {1}
    for (ts, _, _), x in zip(recs, pkts, strict=True):
        assert ts == pytest.approx(float(x.time), abs=1e-6)


def test_pcap_nanosecond_precision(tmp_path: Path) -> None:
    frame = g.frame(g.http_conversation(1)[0])
    p = tmp_path / "ns.pcap"
    with p.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
        f.write(struct.pack("<IIII", 1_700_000_000, 123_456_789, len(frame), len(frame)) + frame)
    ((ts, _, _),) = _read(p)[0]
    assert ts == pytest.approx(1_700_000_000.123456789, abs=1e-7)


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("tsresol", [6, 9, 0x80 | 20])
def test_pcapng_interfaces_resolutions(tmp_path: Path, big: bool, tsresol: int) -> None:
    a = g.http_conversation(2)
    b = g.http_conversation(1, ipv6=True, t0=g.T0 + 0.0005)
    p = g.write_pcapng(
        tmp_path / "x.pcapng", [("ether", a), ("sll2", b)], big_endian=big, tsresol=tsresol
    )
    recs, errors = _read(p)
    assert errors == []
    assert len(recs) == len(a) + len(b)
    assert {lt for _, lt, _ in recs} == {1, 276}
    ts = [t for t, _, _ in recs]
    assert ts == sorted(ts)
    want = sorted([float(x.time) for x in a + b])
    assert ts == pytest.approx(want, abs=2e-6)
    assert sorted(fr for _, lt, fr in recs if lt == 276) == sorted(g.frame(x, "sll2") for x in b)


def test_pcapng_simple_packet_blocks(tmp_path: Path, pkts: list) -> None:
    p = g.write_pcapng(tmp_path / "s.pcapng", [("raw", pkts)], simple=True)
    recs, errors = _read(p)
    assert errors == []
    assert [fr for _, _, fr in recs] == [bytes(x) for x in pkts]
    assert {lt for _, lt, _ in recs} == {101}


def test_pcapng_two_sections(tmp_path: Path, pkts: list) -> None:
    a = g.write_pcapng(tmp_path / "a.pcapng", [("ether", pkts)])
    b = g.write_pcapng(tmp_path / "b.pcapng", [("sll", pkts)], big_endian=True)
    both = tmp_path / "ab.pcapng"
    both.write_bytes(a.read_bytes() + b.read_bytes())
    recs, errors = _read(both)
    assert errors == []
    assert [lt for _, lt, _ in recs] == [1] * len(pkts) + [113] * len(pkts)


@pytest.mark.parametrize("link", sorted(g.LINKS))
@pytest.mark.parametrize("ipv6", [False, True])
def test_every_link_type_decodes(tmp_path: Path, link: str, ipv6: bool) -> None:
    pkts = g.http_conversation(1, ipv6=ipv6)
    p = g.write_pcap(tmp_path / "l.pcap", pkts, link=link)
    dec = PacketDecoder()
    recs, _ = _read(p)
    out = [dec.decode(ts, lt, fr) for ts, lt, fr in recs]
    assert all(o is not None for o in out)
    payload = b"".join(bytes(o[8]) for o in out if o and o[3] == 40000)
    assert payload.startswith(b"GET /items/0?v=1 HTTP/1.1\r\n")


def test_truncated_pcap_reports_offset_and_keeps_the_rest(tmp_path: Path, pkts: list) -> None:
    p = g.write_pcap(tmp_path / "t.pcap", pkts)
    data = p.read_bytes()
    cut = len(data) - 10
    p.write_bytes(data[:cut])
    recs, errors = _read(p)
    assert len(recs) == len(pkts) - 1
    last_start = len(data) - (16 + len(g.frame(pkts[-1])))
    assert len(errors) == 1
    assert errors[0].offset == last_start
    assert "truncated" in str(errors[0]) and f"offset {last_start}" in str(errors[0])


def test_corrupt_pcap_record_resyncs(tmp_path: Path, pkts: list) -> None:
    p = g.write_pcap(tmp_path / "c.pcap", pkts)
    data = bytearray(p.read_bytes())
    # the 3rd record's length becomes absurd
    off = 24
    for _ in range(2):
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
    struct.pack_into("<I", data, off + 8, 0x7FFFFFFF)
    p.write_bytes(bytes(data))
    recs, errors = _read(p)
    assert errors and errors[0].offset == off
    # everything but the damaged record is still read
    assert len(recs) == len(pkts) - 1
    assert [fr for _, _, fr in recs] == [g.frame(x) for i, x in enumerate(pkts) if i != 2]


def test_truncated_pcapng(tmp_path: Path, pkts: list) -> None:
    p = g.write_pcapng(tmp_path / "t.pcapng", [("ether", pkts)], extra_blocks=False)
    data = p.read_bytes()
    p.write_bytes(data[:-7])
    recs, errors = _read(p)
    assert len(recs) == len(pkts) - 1
    assert len(errors) == 1 and "truncated pcapng block" in str(errors[0])
    assert errors[0].offset == len(data) - (32 + ((len(g.frame(pkts[-1])) + 3) & ~3))


def test_corrupt_pcapng_block_length(tmp_path: Path, pkts: list) -> None:
    p = g.write_pcapng(tmp_path / "c.pcapng", [("ether", pkts)], extra_blocks=False)
    data = bytearray(p.read_bytes())
    # find the 4th EPB and break its length
    off, seen = 0, 0
    while True:
        btype, blen = struct.unpack_from("<II", data, off)
        if btype == 6:
            seen += 1
            if seen == 4:
                break
        off += blen
    struct.pack_into("<I", data, off + 4, 13)
    p.write_bytes(bytes(data))
    recs, errors = _read(p)
    assert errors[0].offset == off and "corrupt pcapng block length 13" in str(errors[0])
    # the scan finds the next whole block: only the damaged one is lost
    assert [fr for _, _, fr in recs] == [g.frame(x) for i, x in enumerate(pkts) if i != 3]


@pytest.mark.parametrize("content", [b"", b"abc", b"hello world, not a capture" * 3])
def test_not_a_capture(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "junk.pcap"
    p.write_bytes(content)
    with pytest.raises(CaptureError) as ei:
        open_capture(p)
    assert ei.value.offset == 0 and "offset 0" in str(ei.value)


def test_reading_is_lazy(tmp_path: Path) -> None:
    p = g.write_http_benchmark(tmp_path / "big.pcap", 8000, connections=2)
    size = p.stat().st_size
    assert size > 3_000_000
    with open_capture(p) as r:
        it = iter(r)
        next(it)
        # one chunk in memory, not the file
        assert r._f.tell() <= 2 << 20
        n = 1 + sum(1 for _ in it)
    assert n == 3 * 2 + 3 * 8000 + 3 * 2
