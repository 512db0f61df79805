"""The face every protocol parser shows the reassembler: bytes in, exchanges out.

Parsers are sans-IO (STYLE.md): they are fed reassembled bytes with the capture
timestamp of the segment that carried them, and hand back completed ``Exchange``
records. They never touch sockets, clocks, loggers or globals. Their one error is
``ParseError``; the reassembler catches it for that stream alone and degrades the
stream to a raw ``tcp`` entry. Any other exception is a bug.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

__all__ = [
    "DatagramParser",
    "Direction",
    "Exchange",
    "ParseError",
    "ParserLimits",
    "StreamParser",
    "Switch",
]


class ParseError(Exception):
    """The bytes are not the protocol the parser speaks (or break its rules)."""


class Direction(enum.IntEnum):
    """Which side sent the bytes."""

    CLIENT = 0
    """client → server (requests)"""
    SERVER = 1
    """server → client (responses)"""

    @property
    def other(self) -> Direction:
        return Direction.SERVER if self is Direction.CLIENT else Direction.CLIENT


@dataclass(frozen=True, slots=True)
class ParserLimits:
    """Bounds every parser honours; exceeded bounds are reported, never fatal."""

    max_body: int = 64 * 1024
    """Bytes of a body kept on the entry (the real size is recorded beside it)."""
    max_decoded: int = 1024 * 1024
    """Bytes a compressed body may inflate to before decoding stops (bomb guard)."""
    max_header_bytes: int = 64 * 1024
    """Bytes of a message head (start line + headers) before it is a parse error."""
    max_pending: int = 1024
    """Requests waiting for their responses on one connection."""
    max_args: int = 16
    """Arguments kept of a command (Redis, etc.)."""


@dataclass(slots=True)
class Exchange:
    """One completed request/response pair (or a lone half, with ``error`` set)."""

    proto: str
    ts: float
    """Request start (capture time of its first byte); response start if no request."""
    end: float | None
    """Capture time of the last byte of the response; None when there is none."""
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    error: str = ""
    gaps: int = 0
    """Bytes lost from the capture inside this exchange."""
    txid: int | None = None
    """Datagram protocols: the transaction id used for the deterministic entry id."""


@dataclass(frozen=True, slots=True)
class Switch:
    """The connection switched protocol (e.g. HTTP/1 ``101 Switching Protocols`` to
    ``h2c``): the rest of it belongs to a fresh parser of another protocol."""

    proto: str
    """Registry name of the protocol the connection speaks from now on."""
    leftover: tuple[bytes, bytes]
    """Bytes (client, server) already fed that belong to the new protocol."""
    ts: float
    """Capture time of the switch (the leftover bytes are fed with it)."""
    handover: dict[str, Any] = field(default_factory=dict)
    """What the new parser carries over (see its ``adopt``), e.g. the HTTP/1 request
    that became HTTP/2 stream 1."""


@mypyc_attr(allow_interpreted_subclasses=True)  # parsers outside the compiled modules
class StreamParser(ABC):
    """A parser for one TCP connection, both directions."""

    proto: ClassVar[str]
    """The ``proto`` of the entries it makes."""
    switch: Switch | None = None
    """Set once the connection switched to another protocol. The pipeline then takes the
    exchanges, closes this parser, makes one of ``switch.proto``, calls its ``adopt`` and
    feeds it the leftover bytes and everything after them. A pipeline that does not know
    that protocol keeps this parser, which must then go on consuming (e.g. counting) the
    bytes."""

    def __init__(self, limits: ParserLimits | None = None) -> None:
        self.limits = limits or ParserLimits()

    @abstractmethod
    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        """Take the next in-order bytes of one direction. Raises ``ParseError``."""

    def gap(self, direction: Direction, length: int, ts: float) -> None:
        """``length`` bytes of ``direction`` were never captured. A parser that can
        re-synchronise marks the exchange in progress and resumes at the next message
        boundary; the default gives up on the stream."""
        raise ParseError(f"{length} bytes missing from the capture")

    def close(self, ts: float) -> None:
        """The connection ended (FIN/RST/idle): flush close-delimited bodies and turn
        requests without responses into exchanges with ``error`` set."""
        return None

    @abstractmethod
    def take(self) -> list[Exchange]:
        """The exchanges completed since the last call, in request order."""

    def adopt(self, switch: Switch) -> None:
        """Start on a connection that switched to this protocol (before the leftover
        bytes are fed). The default carries nothing over."""
        return None


@mypyc_attr(allow_interpreted_subclasses=True)
class DatagramParser(ABC):
    """A parser for one UDP flow (client address/port ↔ server address/port)."""

    proto: ClassVar[str]

    def __init__(self, limits: ParserLimits | None = None) -> None:
        self.limits = limits or ParserLimits()

    @abstractmethod
    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        """Take one datagram. Raises ``ParseError``."""

    def expire(self, now: float, timeout: float) -> None:
        """Turn queries unanswered for ``timeout`` seconds into exchanges with an error."""
        return None

    @abstractmethod
    def take(self) -> list[Exchange]:
        """The exchanges completed since the last call."""
