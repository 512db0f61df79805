"""pcap and pcapng readers: lazy, chunked, and honest about damage.

Records are yielded as ``(ts, linktype, frame)`` where ``frame`` is a memoryview into a
read chunk (copy it to keep it). Memory does not grow with the file: the reader holds one
chunk (1 MiB, or one record if larger). Damage is recorded in ``reader.errors`` as
``CaptureError`` with the byte offset; the reader keeps going wherever the format lets it
find the next record (block lengths; past damaged lengths, a bounded scan for the next
plausible pcap record or pcapng block).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from types import TracebackType
from typing import BinaryIO

__all__ = ["CaptureError", "CaptureReader", "open_capture"]

CHUNK = 1 << 20
MAX_RECORD = 64 << 20
"""Larger than any real packet (jumbo/TSO frames included): beyond this a length is damage."""
RESYNC_WINDOW = 1 << 20
"""How far a pcap reader scans past damage for the next plausible record header."""

_PCAP_MAGIC = {
    # magic as read little-endian -> (endian, ticks per second, record header size)
    0xA1B2C3D4: ("<", 1_000_000, 16),
    0xA1B23C4D: ("<", 1_000_000_000, 16),
    0xA1B2CD34: ("<", 1_000_000, 24),  # Kuznetzov's modified pcap
    0xD4C3B2A1: (">", 1_000_000, 16),
    0x4D3CB2A1: (">", 1_000_000_000, 16),
    0x34CDB2A1: (">", 1_000_000, 24),
}
_SHB = 0x0A0D0D0A
_KNOWN_BLOCKS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, _SHB})
_BOM = 0x1A2B3C4D
Record = tuple[float, int, memoryview]


class CaptureError(Exception):
    """A capture file is unreadable or damaged at ``offset`` (bytes from its start)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte offset {offset})")
        self.message = message
        self.offset = offset


class CaptureReader:
    """An open capture file; iterate it for records. Use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], f: BinaryIO, head: bytes) -> None:
        self.path = os.fspath(path)
        self._f = f
        self.size = os.fstat(f.fileno()).st_size
        self.errors: list[CaptureError] = []
        """Damage met so far, each with its byte offset."""
        self.records = 0
        """Records yielded so far."""
        self.offset = 0
        """Bytes of the file consumed so far (for progress)."""
        self.linktypes: set[int] = set()
        (magic,) = struct.unpack_from("<I", head)
        if magic == _SHB:
            self.format = "pcapng"
        elif magic in _PCAP_MAGIC:
            self.format = "pcap"
            endian, self._ticks, self._rec_size = _PCAP_MAGIC[magic]
            if len(head) < 24:
                raise CaptureError("pcap file header is truncated", len(head))
            _, _, _, _, self._snaplen, network = struct.unpack_from(endian + "HHiIII", head, 4)
            self._linktype = network & 0x03FFFFFF
            self.linktypes.add(self._linktype)
            self._rec = struct.Struct(endian + "IIII")
        else:
            raise CaptureError(f"not a pcap or pcapng file (magic 0x{magic:08x})", 0)

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()

    def __iter__(self) -> Iterator[Record]:
        if self.format == "pcap":
            return self._iter_pcap()
        return self._iter_pcapng()

    def _error(self, message: str, offset: int) -> None:
        self.errors.append(CaptureError(message, offset))

    # -- pcap ---------------------------------------------------------------------------

    def _iter_pcap(self) -> Iterator[Record]:
        f = self._f
        f.seek(24)
        size = self._rec_size
        unpack = self._rec.unpack_from
        ticks = self._ticks
        lt = self._linktype
        limit = MAX_RECORD
        buf = b""
        mv = memoryview(buf)
        pos = 0
        base = 24  # file offset of buf[0]
        eof = False
        last_sec = -1
        while True:
            # whole, sane records already in ``buf`` (the common case) in a tight loop;
            # anything else (damage, a record across the chunk end) below
            n = len(buf)
            start = pos + size
            while start <= n:
                sec, frac, incl, _ = unpack(buf, pos)
                end = start + incl
                if end > n or incl > limit or frac >= ticks:
                    break
                last_sec = sec
                self.records += 1
                yield sec + frac / ticks, lt, mv[start:end]
                pos = end
                start = end + size
            have = n - pos
            if have >= size:
                sec, frac, incl, orig = unpack(buf, pos)
                end = pos + size + incl
                if incl > limit or frac >= ticks:
                    self._error(
                        f"corrupt pcap record header (length {incl}, fraction {frac})",
                        base + pos,
                    )
                    if not eof and len(buf) - pos < RESYNC_WINDOW:
                        buf, mv, pos, base, eof = self._refill(buf, pos, base, RESYNC_WINDOW)
                    found = self._resync(buf, pos + 1, last_sec)
                    if found < 0:
                        self._error("no further readable pcap record found", base + pos)
                        self.offset = base + len(buf)
                        return
                    pos = found
                    continue
                if end <= len(buf):
                    last_sec = sec
                    self.records += 1
                    yield sec + frac / ticks, lt, mv[pos + size : end]
                    pos = end
                    continue
                if eof:
                    self._error(
                        f"truncated pcap record: {incl} bytes announced, {have - size} present",
                        base + pos,
                    )
                    break
                buf, mv, pos, base, eof = self._refill(buf, pos, base, size + incl)
                continue
            if eof:
                if have:
                    self._error(
                        f"truncated pcap record header ({have} of {size} bytes)", base + pos
                    )
                break
            buf, mv, pos, base, eof = self._refill(buf, pos, base, size)
            self.offset = base + pos
        self.offset = base + len(buf)

    def _refill(
        self, buf: bytes, pos: int, base: int, need: int
    ) -> tuple[bytes, memoryview, int, int, bool]:
        """Drop consumed bytes, read at least ``need`` more than what is left if possible."""
        rest = buf[pos:]
        want = max(CHUNK, need - len(rest))
        more = self._f.read(want)
        eof = len(more) < want
        new = rest + more if rest else more
        return new, memoryview(new), 0, base + pos, eof

    def _resync(self, buf: bytes, start: int, last_sec: int) -> int:
        """The offset of the next plausible record header in ``buf`` or -1."""
        size = self._rec_size
        unpack = self._rec.unpack_from
        ticks = self._ticks
        n = len(buf)
        for p in range(start, min(n - size, start + RESYNC_WINDOW) + 1):
            sec, frac, incl, orig = unpack(buf, p)
            if frac >= ticks or incl > orig or incl > 262144 or orig > MAX_RECORD:
                continue
            if last_sec >= 0 and abs(sec - last_sec) > 86400:
                continue
            nxt = p + size + incl
            if nxt + size <= n:
                s2, f2, i2, o2 = unpack(buf, nxt)
                if f2 >= ticks or i2 > o2 or abs(s2 - sec) > 86400:
                    continue
            elif nxt != n:
                continue
            return p
        return -1

    # -- pcapng -------------------------------------------------------------------------

    def _iter_pcapng(self) -> Iterator[Record]:
        f = self._f
        f.seek(0)
        buf = b""
        mv = memoryview(buf)
        pos = 0
        base = 0
        eof = False
        endian = "<"
        hdr = struct.Struct("<II")
        epb = struct.Struct("<IIIII")
        spb = struct.Struct("<I")
        pb = struct.Struct("<HHIIII")
        # interface id -> (linktype, ticks per second, offset seconds)
        ifaces: list[tuple[int, float, int]] = []
        last_ts = 0.0
        while True:
            have = len(buf) - pos
            if have < 12:
                if eof:
                    if have:
                        self._error(f"truncated pcapng block header ({have} bytes)", base + pos)
                    break
                buf, mv, pos, base, eof = self._refill(buf, pos, base, 12)
                continue
            btype = hdr.unpack_from(buf, pos)[0]
            if btype == _SHB:
                (bom,) = struct.unpack_from("<I", buf, pos + 8)
                if bom == _BOM:
                    endian = "<"
                elif bom == 0x4D3C2B1A:
                    endian = ">"
                else:
                    self._error(f"bad pcapng byte-order magic 0x{bom:08x}", base + pos + 8)
                    return
                hdr = struct.Struct(endian + "II")
                epb = struct.Struct(endian + "IIIII")
                spb = struct.Struct(endian + "I")
                pb = struct.Struct(endian + "HHIIII")
                ifaces = []
            btype, blen = hdr.unpack_from(buf, pos)
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                self._error(f"corrupt pcapng block length {blen}", base + pos)
                if not eof and len(buf) - pos < RESYNC_WINDOW:
                    buf, mv, pos, base, eof = self._refill(buf, pos, base, RESYNC_WINDOW)
                found = self._resync_ng(buf, pos + 4, hdr)
                if found < 0:
                    self._error("no further readable pcapng block found", base + pos)
                    self.offset = base + len(buf)
                    return
                pos = found
                continue
            if have < blen:
                if eof:
                    self._error(
                        f"truncated pcapng block: {blen} bytes announced, {have} present",
                        base + pos,
                    )
                    break
                buf, mv, pos, base, eof = self._refill(buf, pos, base, blen)
                continue
            end = pos + blen
            (trail,) = spb.unpack_from(buf, end - 4)
            if trail != blen:
                self._error(
                    f"pcapng block trailer length {trail} differs from header {blen}",
                    base + pos,
                )
            if btype == 6:  # Enhanced Packet Block
                iface, hi, lo, caplen, _orig = epb.unpack_from(buf, pos + 8)
                if iface >= len(ifaces) or 28 + caplen > blen - 4:
                    self._error(
                        f"pcapng packet block with unknown interface {iface} "
                        f"or bad length {caplen}",
                        base + pos,
                    )
                else:
                    lt, ticks, tsoff = ifaces[iface]
                    last_ts = ((hi << 32) | lo) / ticks + tsoff
                    self.records += 1
                    yield last_ts, lt, mv[pos + 28 : pos + 28 + caplen]
            elif btype == 3:  # Simple Packet Block: interface 0, no timestamp
                (orig,) = spb.unpack_from(buf, pos + 8)
                caplen = min(orig, blen - 16)
                if not ifaces:
                    self._error("pcapng simple packet block before any interface", base + pos)
                else:
                    self.records += 1
                    yield last_ts, ifaces[0][0], mv[pos + 12 : pos + 12 + caplen]
            elif btype == 1:  # Interface Description Block
                if blen < 20:
                    self._error("pcapng interface block too short", base + pos)
                else:
                    ifaces.append(self._idb(buf, pos, blen, endian))
            elif btype == 2:  # obsolete Packet Block
                iface, _drops, hi, lo, caplen, _orig = pb.unpack_from(buf, pos + 8)
                if iface >= len(ifaces) or 28 + caplen > blen - 4:
                    self._error("pcapng packet block with bad interface or length", base + pos)
                else:
                    lt, ticks, tsoff = ifaces[iface]
                    last_ts = ((hi << 32) | lo) / ticks + tsoff
                    self.records += 1
                    yield last_ts, lt, mv[pos + 28 : pos + 28 + caplen]
            # every other block type (name resolution, statistics, custom...) is skipped
            pos = end
            self.offset = base + pos
        self.offset = base + len(buf)

    def _resync_ng(self, buf: bytes, start: int, hdr: struct.Struct) -> int:
        """The offset of the next block whose type is known and whose two lengths agree."""
        n = len(buf)
        for p in range(start, min(n - 12, start + RESYNC_WINDOW) + 1, 4):
            btype, blen = hdr.unpack_from(buf, p)
            if btype not in _KNOWN_BLOCKS or blen < 12 or blen % 4 or p + blen > n:
                continue
            if struct.unpack_from(hdr.format[0] + "I", buf, p + blen - 4)[0] == blen:
                return p
        return -1

    def _idb(self, buf: bytes, pos: int, blen: int, endian: str) -> tuple[int, float, int]:
        linktype, _res, _snap = struct.unpack_from(endian + "HHI", buf, pos + 8)
        self.linktypes.add(linktype)
        ticks = 1_000_000.0
        tsoff = 0
        p = pos + 16
        end = pos + blen - 4
        opt = struct.Struct(endian + "HH")
        while p + 4 <= end:
            code, length = opt.unpack_from(buf, p)
            if code == 0:
                break
            val = buf[p + 4 : p + 4 + length]
            if code == 9 and length >= 1:  # if_tsresol
                r = val[0]
                ticks = float(2 ** (r & 0x7F)) if r & 0x80 else float(10**r)
            elif code == 14 and length >= 8:  # if_tsoffset
                (tsoff,) = struct.unpack_from(endian + "q", val)
            p += 4 + ((length + 3) & ~3)
        return linktype, ticks, tsoff


def open_capture(path: str | os.PathLike[str]) -> CaptureReader:
    """Open a pcap or pcapng file. Raises ``CaptureError`` when it is neither (offset 0),
    ``OSError`` when it can't be opened."""
    f = open(path, "rb")  # noqa: SIM115 - owned by the reader
    try:
        head = f.read(24)
        if len(head) < 4:
            raise CaptureError(f"file too short to be a capture ({len(head)} bytes)", 0)
        return CaptureReader(path, f, head)
    except BaseException:
        f.close()
        raise
