"""DNS over TCP (RFC 1035 §4.2.2, RFC 7766): two-byte length-prefixed messages, several
per segment or one across many, paired by id like DNS over UDP (``dns``)."""

from __future__ import annotations

from typing import ClassVar

from sniffer.parsers.base import Direction, Exchange, ParseError, ParserLimits, StreamParser
from sniffer.parsers.dns import DnsPairing, header_plausible, parse_message
from sniffer.parsers.registry import StreamProtocol, Verdict

__all__ = ["DnsTcpParser", "PROTOCOL", "detect"]


class _Framer:
    """One direction's incremental buffer: yields whole messages, keeps the partial one.
    After a gap it re-synchronises on the first length prefix followed by a message that
    decodes (RFC 7766 gives no other boundary marker)."""

    __slots__ = ("buf", "pos", "resync", "response")

    def __init__(self, response: bool) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.resync = False
        self.response = response

    def push(self, data: bytes) -> list[bytes]:
        buf = self.buf
        if self.pos:
            del buf[: self.pos]
            self.pos = 0
        buf += data
        if self.resync and not self._find_start():
            return []
        out = []
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            length = (buf[pos] << 8) | buf[pos + 1]
            if n - pos - 2 < length:
                break
            out.append(bytes(buf[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        self.pos = pos
        return out

    def gap(self) -> None:
        self.buf.clear()
        self.pos = 0
        self.resync = True

    def _find_start(self) -> bool:
        buf = self.buf
        n = len(buf)
        for i in range(n - 13):
            length = (buf[i] << 8) | buf[i + 1]
            if length < 12 or not header_plausible(buf, i + 2, self.response):
                continue
            if i + 2 + length > n:
                del buf[:i]  # a candidate: wait for the rest of it
                return False
            try:
                parse_message(bytes(buf[i + 2 : i + 2 + length]))
            except ParseError:
                continue
            del buf[:i]
            self.resync = False
            return True
        if n > 13:
            del buf[: n - 13]
        return False

    @property
    def pending(self) -> int:
        return len(self.buf) - self.pos


class DnsTcpParser(StreamParser):
    """DNS on one TCP connection. A message is at most 65535 bytes, so the buffer of each
    direction stays below 64 KiB plus one segment."""

    proto: ClassVar[str] = "dns"

    def __init__(self, limits: ParserLimits | None = None) -> None:
        super().__init__(limits)
        self._framers = (_Framer(response=False), _Framer(response=True))
        self._pairing = DnsPairing("tcp", self.limits.max_pending)
        self._closed = False

    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        if self._closed:
            return
        for raw in self._framers[direction].push(data):
            if len(raw) < 12:
                raise ParseError(f"DNS message of {len(raw)} bytes in a TCP stream")
            self._pairing.add(parse_message(raw), ts)

    def gap(self, direction: Direction, length: int, ts: float) -> None:
        """Bytes lost: the message in progress is dropped (its query, if it was one, ends
        as ``no response``) and reading resumes at the next decodable message."""
        self._framers[direction].gap()

    def expire(self, now: float, timeout: float) -> None:
        """Queries unanswered for ``timeout`` seconds end as ``no response``."""
        self._pairing.expire(now, timeout)

    def close(self, ts: float) -> None:
        if not self._closed:
            self._pairing.close()
            self._closed = True

    def take(self) -> list[Exchange]:
        return self._pairing.take()


def detect(data: bytes, direction: Direction) -> Verdict:
    """A length prefix that fits a DNS message, then a plausible DNS header."""
    if len(data) < 14:
        return Verdict.MORE
    length = (data[0] << 8) | data[1]
    if length < 12:
        return Verdict.NO
    return Verdict.YES if header_plausible(data, 2, direction == Direction.SERVER) else Verdict.NO


PROTOCOL = StreamProtocol(
    name="dns",
    factory=DnsTcpParser,
    detect=detect,
    ports=frozenset({53}),
    midstream=False,
)
