"""Events of the HTTP/1.x reader: facts about one direction's bytes, in wire order.

The reader (``http1``) turns bytes into these; the pairing layer turns them into
exchanges. Frozen and slotted: an event is a fact, never updated.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BodyChunk",
    "Event",
    "MESSAGE_END",
    "MessageEnd",
    "RequestHead",
    "ResponseHead",
    "Trailers",
]


@dataclass(frozen=True, slots=True)
class RequestHead:
    """RFC 9112 §3: request-line and header section."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    """Lower-cased names; repeated fields joined by ", " (set-cookie by "\\n")."""


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """RFC 9112 §4: status-line and header section."""

    status: int
    reason: str
    version: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class BodyChunk:
    """Payload bytes of the current message (de-chunked, still content-coded)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Trailers:
    """RFC 9112 §7.1.2: the trailer section of a chunked message."""

    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class MessageEnd:
    """The current message is complete."""


MESSAGE_END = MessageEnd()
"""The one ``MessageEnd`` (it carries nothing, so one instance serves all)."""

Event = RequestHead | ResponseHead | BodyChunk | Trailers | MessageEnd
