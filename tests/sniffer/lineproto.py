"""A tiny line protocol for pipeline tests: ``PING <n>\\n`` answered ``PONG <n>\\n``.

``BAD`` in a client line raises ParseError; gaps are survived (resync at the next line).
"""

from __future__ import annotations

from sniffer.parsers.base import (
    DatagramParser,
    Direction,
    Exchange,
    ParseError,
    ParserLimits,
    StreamParser,
)
from sniffer.parsers.registry import DatagramProtocol, StreamProtocol, Verdict


class LineParser(StreamParser):
    proto = "line"

    def __init__(self, limits: ParserLimits | None = None) -> None:
        super().__init__(limits)
        self.buf = [b"", b""]
        self.skip = [False, False]
        self.pending: list[tuple[float, str, int]] = []
        self.done: list[Exchange] = []
        self.gaps = 0

    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        self.buf[direction] += data
        while b"\n" in self.buf[direction]:
            line, _, self.buf[direction] = self.buf[direction].partition(b"\n")
            if self.skip[direction]:
                self.skip[direction] = False
                continue
            text = line.decode("latin-1")
            if direction == Direction.CLIENT:
                if "BAD" in text:
                    raise ParseError(f"bad line {text!r}")
                self.pending.append((ts, text, self.gaps))
                self.gaps = 0
            else:
                if self.pending:
                    t0, q, g = self.pending.pop(0)
                else:
                    t0, q, g = ts, "", 0
                self.done.append(
                    Exchange(
                        proto="line",
                        ts=t0,
                        end=ts,
                        request={"method": q.split(" ")[0] if q else "", "line": q},
                        response={"line": text},
                        summary=f"{q} → {text}",
                        gaps=g + self.gaps,
                    )
                )
                self.gaps = 0

    def gap(self, direction: Direction, length: int, ts: float) -> None:
        self.gaps += length
        self.skip[direction] = bool(self.buf[direction])  # the rest of a broken line
        self.buf[direction] = b""

    def close(self, ts: float) -> None:
        for t0, q, g in self.pending:
            self.done.append(
                Exchange(
                    proto="line",
                    ts=t0,
                    end=None,
                    request={"line": q},
                    error="no response",
                    summary=q,
                    gaps=g,
                )
            )
        self.pending = []

    def take(self) -> list[Exchange]:
        out, self.done = self.done, []
        return out


def detect(data: bytes, direction: Direction) -> Verdict:
    want = b"PING " if direction == Direction.CLIENT else b"PONG "
    if data.startswith(want):
        return Verdict.YES
    if want.startswith(data[:5]):
        return Verdict.MORE
    return Verdict.NO


LINE = StreamProtocol(
    name="line", factory=LineParser, detect=detect, ports=frozenset({7070}), midstream=True
)


class EchoDatagrams(DatagramParser):
    proto = "echo"

    def __init__(self, limits: ParserLimits | None = None) -> None:
        super().__init__(limits)
        self.q: dict[int, tuple[float, bytes]] = {}
        self.done: list[Exchange] = []

    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        if len(data) < 2:
            raise ParseError("short datagram")
        txid = int.from_bytes(data[:2], "big")
        if direction == Direction.CLIENT:
            self.q[txid] = (ts, data[2:])
        else:
            t0, q = self.q.pop(txid, (ts, b""))
            self.done.append(
                Exchange(
                    proto="echo",
                    ts=t0,
                    end=ts,
                    txid=txid,
                    request={"q": q.decode()},
                    response={"a": data[2:].decode()},
                    summary=q.decode(),
                )
            )

    def expire(self, now: float, timeout: float) -> None:
        for txid, (t0, q) in list(self.q.items()):
            if now - t0 >= timeout:
                del self.q[txid]
                self.done.append(
                    Exchange(
                        proto="echo",
                        ts=t0,
                        end=None,
                        txid=txid,
                        request={"q": q.decode()},
                        error="no response",
                    )
                )

    def take(self) -> list[Exchange]:
        out, self.done = self.done, []
        return out


ECHO = DatagramProtocol(
    name="echo", factory=EchoDatagrams, detect=lambda b, d: Verdict.NO, ports=frozenset({5005})
)
