"""Link layer → IP → TCP/UDP, with precompiled structs on memoryviews.

``PacketDecoder.decode(ts, linktype, frame)`` returns one flat tuple
``(proto, src, dst, sport, dport, seq, ack, flags, payload)`` (addresses as packed bytes,
payload a memoryview or bytes) or None for frames that carry no TCP/UDP. No object per
layer. IPv4 and IPv6 fragments are reassembled under bounds (datagrams pending, bytes per
datagram, age); every drop is counted in ``counters``.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Final

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "PROTO_TCP",
    "PROTO_UDP",
    "TCP_ACK",
    "TCP_FIN",
    "TCP_RST",
    "TCP_SYN",
    "Decoded",
    "PacketDecoder",
    "ip_text",
]

LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276
_RAW_TYPES: Final = frozenset({LINKTYPE_RAW, 12, 14})

PROTO_TCP: Final = 6
PROTO_UDP: Final = 17
TCP_FIN: Final = 0x01
TCP_SYN: Final = 0x02
TCP_RST: Final = 0x04
TCP_ACK: Final = 0x10

_ETH_IPV4: Final = 0x0800
_ETH_IPV6: Final = 0x86DD
_VLAN_TAGS: Final = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})

_H: Final = struct.Struct("!H").unpack_from
_I: Final = struct.Struct("!I").unpack_from
_IPV4: Final = struct.Struct("!BBHHHBBH4s4s").unpack_from
_IPV6: Final = struct.Struct("!IHBB16s16s").unpack_from
_TCP: Final = struct.Struct("!HHIIBB").unpack_from
_UDP: Final = struct.Struct("!HHH").unpack_from
# Ethernet + IPv4 without options + TCP in one call: the common case
_FAST: Final = struct.Struct("!12xHBBHHHBBH4s4sHHIIBB").unpack_from
# the same from the IP header on (LINKTYPE_RAW: the live capture ring's frames)
_FAST_RAW: Final = struct.Struct("!BBHHHBBH4s4sHHIIBB").unpack_from

Decoded = tuple[int, bytes, bytes, int, int, int, int, int, Any]

MAX_FRAG_DATAGRAMS = 256
MAX_FRAG_BYTES = 65535 + 8
FRAG_TIMEOUT = 30.0


def ip_text(addr: bytes) -> str:
    """Packed IPv4/IPv6 address → text."""
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


class _Datagram:
    __slots__ = ("first", "pieces", "size", "total", "nh")

    def __init__(self, first: float) -> None:
        self.first = first
        self.pieces: dict[int, bytes] = {}
        self.size = 0
        self.total = -1
        self.nh = -1


class PacketDecoder:
    """Stateful only for fragment reassembly; otherwise a pure function of the frame."""

    def __init__(
        self,
        max_datagrams: int = MAX_FRAG_DATAGRAMS,
        frag_timeout: float = FRAG_TIMEOUT,
    ) -> None:
        self.max_datagrams = max_datagrams
        self.frag_timeout = frag_timeout
        self._frags: dict[tuple[Any, ...], _Datagram] = {}
        self.counters: dict[str, int] = {
            "non_ip": 0,
            "malformed": 0,
            "unsupported_linktype": 0,
            "other_ip_proto": 0,
            "snapped": 0,
            "ip_fragments": 0,
            "ip_reassembled": 0,
            "bound_fragments": 0,
        }

    def decode(self, ts: float, linktype: int, buf: Any) -> Decoded | None:
        # typed, so that compiled (mypyc) tests and arithmetic on them are native; the
        # fields handed on stay the objects the struct made
        vihl: int
        tot: int
        frag: int
        proto: int
        offx: int
        if linktype == LINKTYPE_ETHERNET and len(buf) >= 54:
            (
                et,
                vihl,
                _,
                tot,
                _,
                frag,
                _,
                proto,
                _,
                src,
                dst,
                sport,
                dport,
                seq,
                ack,
                offx,
                flags,
            ) = _FAST(buf)
            if et == _ETH_IPV4 and vihl == 0x45 and proto == PROTO_TCP and not frag & 0x3FFF:
                end = 14 + tot
                hl = (offx >> 4) << 2
                if hl >= 20 and 34 + hl <= end <= len(buf):
                    return (PROTO_TCP, src, dst, sport, dport, seq, ack, flags, buf[34 + hl : end])
        elif linktype == LINKTYPE_RAW and len(buf) >= 40:
            vihl, _, tot, _, frag, _, proto, _, src, dst, sport, dport, seq, ack, offx, flags = (
                _FAST_RAW(buf)
            )
            if vihl == 0x45 and proto == PROTO_TCP and not frag & 0x3FFF:
                hl = (offx >> 4) << 2
                if hl >= 20 and 20 + hl <= tot <= len(buf):
                    return (PROTO_TCP, src, dst, sport, dport, seq, ack, flags, buf[20 + hl : tot])
        return self._decode(ts, linktype, buf)

    def _decode(self, ts: float, linktype: int, buf: Any) -> Decoded | None:
        try:
            if linktype == LINKTYPE_ETHERNET:
                et = _H(buf, 12)[0]
                off = 14
                while et in _VLAN_TAGS:
                    et = _H(buf, off + 2)[0]
                    off += 4
            elif linktype == LINKTYPE_LINUX_SLL:
                et = _H(buf, 14)[0]
                off = 16
            elif linktype == LINKTYPE_LINUX_SLL2:
                et = _H(buf, 0)[0]
                off = 20
            elif linktype in _RAW_TYPES:
                v = buf[0] >> 4
                et = _ETH_IPV4 if v == 4 else _ETH_IPV6 if v == 6 else 0
                off = 0
            elif linktype == LINKTYPE_NULL or linktype == LINKTYPE_LOOP:
                # the family is in the capturing host's byte order; the IP version nibble
                # says the same thing without guessing it
                v = buf[4] >> 4
                et = _ETH_IPV4 if v == 4 else _ETH_IPV6 if v == 6 else 0
                off = 4
            elif linktype == LINKTYPE_IPV4:
                et = _ETH_IPV4
                off = 0
            elif linktype == LINKTYPE_IPV6:
                et = _ETH_IPV6
                off = 0
            else:
                self.counters["unsupported_linktype"] += 1
                return None
            if et == _ETH_IPV4:
                return self._ipv4(ts, buf, off)
            if et == _ETH_IPV6:
                return self._ipv6(ts, buf, off)
            self.counters["non_ip"] += 1
            return None
        except (struct.error, IndexError):
            self.counters["malformed"] += 1
            return None

    def _ipv4(self, ts: float, buf: Any, off: int) -> Decoded | None:
        vihl, _tos, tot, ident, frag, _ttl, proto, _sum, src, dst = _IPV4(buf, off)
        ihl = (vihl & 15) * 4
        if vihl >> 4 != 4 or ihl < 20:
            self.counters["malformed"] += 1
            return None
        n = len(buf)
        end = off + tot
        if tot == 0:  # TSO: the NIC fills the length in later
            end = n
        elif end > n:
            self.counters["snapped"] += 1
            end = n
        start = off + ihl
        if start > end:
            self.counters["malformed"] += 1
            return None
        if frag & 0x3FFF:  # RFC 791: MF flag or a fragment offset
            data = self._fragment(
                ts,
                (4, src, dst, ident, proto),
                (frag & 0x1FFF) * 8,
                bool(frag & 0x2000),
                bytes(buf[start:end]),
                proto,
            )
            if data is None:
                return None
            return self._l4(proto, src, dst, data, 0, len(data))
        return self._l4(proto, src, dst, buf, start, end)

    def _ipv6(self, ts: float, buf: Any, off: int) -> Decoded | None:
        vtc, plen, nh, _hlim, src, dst = _IPV6(buf, off)
        if vtc >> 28 != 6:
            self.counters["malformed"] += 1
            return None
        n = len(buf)
        start = off + 40
        end = start + plen
        if plen == 0:  # jumbogram or TSO
            end = n
        elif end > n:
            self.counters["snapped"] += 1
            end = n
        # RFC 8200 §4: walk the extension headers
        while True:
            if nh == 0 or nh == 43 or nh == 60:  # hop-by-hop, routing, destination options
                nxt = buf[start]
                start += (buf[start + 1] + 1) * 8
                nh = nxt
            elif nh == 44:  # RFC 8200 §4.5 fragment header
                nxt = buf[start]
                fo = _H(buf, start + 2)[0]
                ident = _I(buf, start + 4)[0]
                start += 8
                if fo & 0xFFF9:
                    if start > end:
                        break
                    data = self._fragment(
                        ts,
                        (6, src, dst, ident),
                        fo & 0xFFF8,
                        bool(fo & 1),
                        bytes(buf[start:end]),
                        nxt,
                    )
                    if data is None:
                        return None
                    buf, start, end = data, 0, len(data)
                    nh = self._last_nh
                else:  # atomic fragment (RFC 6946)
                    nh = nxt
            elif nh == 51:  # AH
                nxt = buf[start]
                start += (buf[start + 1] + 2) * 4
                nh = nxt
            elif nh == 59:  # no next header
                return None
            else:
                break
            if start > end:
                self.counters["malformed"] += 1
                return None
        return self._l4(nh, src, dst, buf, start, end)

    def _l4(
        self, proto: int, src: bytes, dst: bytes, buf: Any, start: int, end: int
    ) -> Decoded | None:
        if proto == PROTO_TCP:
            sport, dport, seq, ack, offx, flags = _TCP(buf, start)
            hl = (offx >> 4) * 4
            if hl < 20 or start + hl > end:
                self.counters["malformed"] += 1
                return None
            return (PROTO_TCP, src, dst, sport, dport, seq, ack, flags, buf[start + hl : end])
        if proto == PROTO_UDP:
            sport, dport, ulen = _UDP(buf, start)
            e = start + ulen
            if ulen < 8 or e > end:
                e = end
            return (PROTO_UDP, src, dst, sport, dport, 0, 0, 0, buf[start + 8 : e])
        self.counters["other_ip_proto"] += 1
        return None

    _last_nh = -1

    def _fragment(
        self, ts: float, key: tuple[Any, ...], offset: int, more: bool, data: bytes, nh: int
    ) -> bytes | None:
        """Store one fragment; return the whole payload when the datagram is complete."""
        c = self.counters
        c["ip_fragments"] += 1
        frags = self._frags
        # expire old datagrams (dict order is arrival order)
        while frags:
            k0 = next(iter(frags))
            if ts - frags[k0].first <= self.frag_timeout:
                break
            del frags[k0]
            c["bound_fragments"] += 1
        d = frags.get(key)
        if d is None:
            if len(frags) >= self.max_datagrams:
                del frags[next(iter(frags))]
                c["bound_fragments"] += 1
            d = frags[key] = _Datagram(ts)
        if offset + len(data) > MAX_FRAG_BYTES:
            del frags[key]
            c["bound_fragments"] += 1
            return None
        if offset == 0:
            d.nh = nh
        if offset not in d.pieces:
            d.pieces[offset] = data
            d.size += len(data)
        if not more:
            d.total = offset + len(data)
        if d.total < 0 or d.size < d.total:
            return None
        out = bytearray(d.total)
        covered = 0
        for o in sorted(d.pieces):
            p = d.pieces[o]
            if o > covered:
                return None  # a hole remains (overlaps inflated size)
            tail = o + len(p)
            if tail > covered:
                out[covered:tail] = p[covered - o :]
                covered = tail
        if covered < d.total:
            return None
        del frags[key]
        c["ip_reassembled"] += 1
        self._last_nh = d.nh
        return bytes(out[: d.total])
