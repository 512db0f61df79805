"""Which protocols the sniffer knows, and how each is recognised.

Recognition is by content first (the opening bytes of a direction), with port hints
to break ties and to pick a parser when a capture starts mid-stream. Each protocol
module exposes one ``PROTOCOL`` object; this module lists them in priority order.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from sniffer.parsers.base import DatagramParser, Direction, ParserLimits, StreamParser

__all__ = [
    "Verdict",
    "StreamProtocol",
    "DatagramProtocol",
    "stream_protocols",
    "datagram_protocols",
]


class Verdict(enum.Enum):
    """What a detector says of the opening bytes of one direction."""

    YES = "yes"
    NO = "no"
    MORE = "more"
    """Too few bytes to tell; ask again with more."""


@dataclass(frozen=True, slots=True)
class StreamProtocol:
    name: str
    factory: Callable[[ParserLimits], StreamParser]
    detect: Callable[[bytes, Direction], Verdict]
    """Looks at up to the first 64 bytes one side sent."""
    ports: frozenset[int] = frozenset()
    """Default port hints (overridable in the sniffer's settings)."""
    midstream: bool = False
    """Whether the parser can start on a connection whose beginning was not captured."""


@dataclass(frozen=True, slots=True)
class DatagramProtocol:
    name: str
    factory: Callable[[ParserLimits], DatagramParser]
    detect: Callable[[bytes, Direction], Verdict]
    ports: frozenset[int] = frozenset()


# Module names, in the order detectors are asked. Each exposes ``PROTOCOL``.
STREAM_MODULES: tuple[str, ...] = (
    "sniffer.parsers.http2",  # before http1: its preface "PRI * HTTP/2.0" is a request line
    "sniffer.parsers.http1",
    "sniffer.parsers.redis",
    "sniffer.parsers.postgres",
    "sniffer.parsers.kafka",
    "sniffer.parsers.mqtt",
    "sniffer.parsers.amqp",
    "sniffer.parsers.dns_tcp",
)
DATAGRAM_MODULES: tuple[str, ...] = ("sniffer.parsers.dns",)


@cache
def stream_protocols() -> tuple[StreamProtocol, ...]:
    return tuple(importlib.import_module(m).PROTOCOL for m in STREAM_MODULES)


@cache
def datagram_protocols() -> tuple[DatagramProtocol, ...]:
    return tuple(importlib.import_module(m).PROTOCOL for m in DATAGRAM_MODULES)
