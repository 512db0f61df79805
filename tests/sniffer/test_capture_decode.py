"""Frame decoding: VLAN, IP options, Ethernet padding, fragments, IPv6 extension headers."""

from __future__ import annotations

import random

from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from kubeweir import pcapgen as g
from sniffer.capture import PacketDecoder, ip_text


def test_ipv4_tcp_fields() -> None:
    p = IP(src="10.1.2.3", dst="10.9.8.7") / TCP(sport=1234, dport=80, seq=7, ack=9, flags="PA")
    proto, src, dst, sport, dport, seq, ack, flags, payload = PacketDecoder().decode(
        0, 1, g.frame(p / Raw(b"hello"))
    )
    assert (proto, ip_text(src), ip_text(dst), sport, dport, seq, ack) == (
        6,
        "10.1.2.3",
        "10.9.8.7",
        1234,
        80,
        7,
        9,
    )
    assert flags == 0x18 and bytes(payload) == b"hello"


def test_ethernet_padding_and_ip_options_are_trimmed() -> None:
    p = IP(src="1.1.1.1", dst="2.2.2.2", options=[b"\x01\x01\x01\x00"]) / TCP() / Raw(b"ab")
    frame = g.frame(p) + b"\0" * 20  # Ethernet minimum-size padding
    out = PacketDecoder().decode(0, 1, frame)
    assert out is not None and bytes(out[8]) == b"ab"


def test_qinq_and_vlan_udp() -> None:
    p = (
        Ether()
        / Dot1Q(vlan=5)
        / Dot1Q(vlan=6)
        / IP(src="1.1.1.1", dst="2.2.2.2")
        / UDP(sport=5353, dport=53)
        / Raw(b"q")
    )
    out = PacketDecoder().decode(0, 1, bytes(p))
    assert out is not None and out[0] == 17 and (out[3], out[4]) == (5353, 53)
    assert bytes(out[8]) == b"q"


def test_non_ip_and_malformed_are_counted() -> None:
    d = PacketDecoder()
    arp = bytes(6) + bytes(6) + b"\x08\x06" + bytes(28)
    assert d.decode(0, 1, arp) is None
    assert d.decode(0, 1, b"\x00" * 5) is None
    assert d.decode(0, 1, g.frame(IP() / TCP())[:30]) is None
    assert d.decode(0, 9999, b"x" * 60) is None
    assert d.counters["non_ip"] == 1
    assert d.counters["malformed"] == 2
    assert d.counters["unsupported_linktype"] == 1


def _payload_of(d: PacketDecoder, frames: list[bytes]) -> bytes | None:
    got = None
    for f in frames:
        out = d.decode(0, 101, f)
        if out is not None:
            assert got is None
            got = bytes(out[8])
    return got


def test_ipv4_fragments_in_any_order() -> None:
    data = bytes(range(256)) * 12
    p = IP(src="10.0.0.1", dst="10.0.0.2", id=77) / TCP(sport=1, dport=2) / Raw(data)
    frags = [bytes(f) for f in fragment(p, 400)]
    assert len(frags) > 5
    random.Random(3).shuffle(frags)
    d = PacketDecoder()
    assert _payload_of(d, frags) == data
    assert d.counters["ip_reassembled"] == 1
    assert d.counters["ip_fragments"] == len(frags)


def test_ipv4_fragment_duplicates_and_missing_piece() -> None:
    data = b"z" * 3000
    p = IP(src="10.0.0.1", dst="10.0.0.2", id=78) / UDP(sport=1, dport=2) / Raw(data)
    frags = [bytes(f) for f in fragment(p, 800)]
    d = PacketDecoder()
    assert _payload_of(d, frags[:1] + frags[:1] + frags[2:]) is None  # one piece never came
    assert _payload_of(d, frags[1:2]) == data  # until it does


def test_fragment_bounds_and_timeout() -> None:
    d = PacketDecoder(max_datagrams=4, frag_timeout=5.0)
    for i in range(10):
        p = IP(src="10.0.0.1", dst="10.0.0.2", id=i) / UDP() / Raw(b"x" * 2000)
        d.decode(float(i) * 0.1, 101, bytes(fragment(p, 500)[0]))
    assert d.counters["bound_fragments"] == 6
    p = IP(src="10.0.0.1", dst="10.0.0.2", id=99) / UDP() / Raw(b"x" * 2000)
    d.decode(100.0, 101, bytes(fragment(p, 500)[0]))
    assert d.counters["bound_fragments"] == 10  # the 4 old ones expired
    assert len(d._frags) == 1


def test_ipv6_extension_header_chain() -> None:
    p = (
        IPv6(src="fd00::1", dst="fd00::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=["fd00::9"])
        / IPv6ExtHdrDestOpt()
        / TCP(sport=4000, dport=80, seq=11, flags="PA")
        / Raw(b"GET / HTTP/1.1\r\n\r\n")
    )
    out = PacketDecoder().decode(0, 1, g.frame(p))
    assert out is not None
    assert (out[0], ip_text(out[1]), out[3], out[5]) == (6, "fd00::1", 4000, 11)
    assert bytes(out[8]) == b"GET / HTTP/1.1\r\n\r\n"


def test_ipv6_fragments() -> None:
    data = b"0123456789" * 400
    p = (
        IPv6(src="fd00::1", dst="fd00::2")
        / IPv6ExtHdrFragment(id=5)
        / TCP(sport=4000, dport=80)
        / Raw(data)
    )
    frags = [bytes(f) for f in fragment6(p, 1280)]
    assert len(frags) >= 3
    frags.reverse()
    d = PacketDecoder()
    assert _payload_of(d, frags) == data
    assert d.counters["ip_reassembled"] == 1


def test_snapped_frame_is_counted_and_decoded() -> None:
    p = IP(src="1.1.1.1", dst="2.2.2.2") / TCP() / Raw(b"x" * 1000)
    d = PacketDecoder()
    out = d.decode(0, 1, g.frame(p)[:200])
    assert out is not None and len(out[8]) == 200 - 14 - 40
    assert d.counters["snapped"] == 1


def _plain(d: tuple[object, ...] | None) -> tuple[object, ...] | None:
    return None if d is None else (*d[:8], bytes(d[8]))  # type: ignore[call-overload]


def test_raw_ip_fast_path_decodes_as_the_general_path() -> None:
    """LINKTYPE_RAW (the live ring's frames) has a one-struct IPv4/TCP fast path: for
    every frame it takes, and every one it passes on, the answer is the general path's."""
    tcp = IP(src="10.1.2.3", dst="10.9.8.7") / TCP(sport=1234, dport=80, seq=7, ack=9)
    frames = [
        bytes(tcp / Raw(b"hello")),
        bytes(tcp),
        bytes(IP(src="10.1.2.3", dst="10.9.8.7", options=b"\x01\x01\x01\x00") / TCP() / b"x"),
        bytes(tcp / Raw(b"hello"))[:45],  # snapped: the IP length says more than the frame
        bytes(tcp / Raw(b"hello") / Raw(b"\0" * 6))[:-6] + b"\0" * 6,  # trailing padding
        bytes(IP(src="10.1.2.3", dst="10.9.8.7", flags="MF") / TCP() / b"frag"),
        bytes(IP(src="10.1.2.3", dst="10.9.8.7") / UDP(sport=53, dport=53) / b"dns"),
        bytes(IP(src="10.1.2.3", dst="10.9.8.7") / TCP(dataofs=4) / b"bad"),
        bytes(IP(src="10.1.2.3", dst="10.9.8.7", len=30) / TCP() / b"short"),
        bytes(tcp)[:39],
    ]
    rng = random.Random(4)
    for _ in range(300):
        f = bytearray(rng.choice(frames[:2]) + bytes(rng.randrange(40)))
        for _ in range(rng.randrange(4)):
            f[rng.randrange(40)] = rng.randrange(256)
        frames.append(bytes(f))
    for f in frames:
        fast, general = PacketDecoder(), PacketDecoder()
        got = fast.decode(0.0, 101, f)
        want = general._decode(0.0, 101, f)
        assert _plain(got) == _plain(want), f.hex()
        assert fast.counters == general.counters, f.hex()
