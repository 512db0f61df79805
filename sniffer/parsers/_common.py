"""Small helpers shared by the binary-protocol parsers (Redis, PostgreSQL, Kafka, ...).

Text previews, bounded bodies and the FIFO of requests waiting for their responses.
No I/O, no globals with state.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sniffer.parsers.base import Exchange

__all__ = ["Pending", "PendingQueue", "body_fields", "text"]


def text(data: bytes | bytearray | memoryview, limit: int = 256) -> str:
    """Bytes as display text: UTF-8 (invalid bytes escaped), cut at ``limit`` characters
    with a trailing ``…`` when cut."""
    raw = bytes(data[: limit * 4]) if len(data) > limit * 4 else bytes(data)
    s = raw.decode("utf-8", "backslashreplace")
    if len(s) > limit:
        return s[:limit] + "…"
    if len(raw) < len(data):
        return s + "…"
    return s


def body_fields(data: bytes, size: int, max_body: int) -> dict[str, Any]:
    """The entry-contract body fields (``body``, ``body_encoding``, ``body_size``,
    ``body_truncated``) of a payload of which ``data`` is the kept part."""
    kept = data[:max_body]
    truncated = len(kept) < size
    try:
        body = kept.decode("utf-8")
        enc = "utf8"
    except UnicodeDecodeError:
        if truncated:
            # a multi-byte character may have been cut at the bound: retry without it
            for cut in (1, 2, 3):
                try:
                    body = kept[:-cut].decode("utf-8")
                    enc = "utf8"
                    break
                except UnicodeDecodeError:
                    continue
            else:
                body, enc = base64.b64encode(kept).decode("ascii"), "base64"
        else:
            body, enc = base64.b64encode(kept).decode("ascii"), "base64"
    return {"body": body, "body_encoding": enc, "body_size": size, "body_truncated": truncated}


@dataclass(slots=True)
class Pending:
    """A request waiting for its response."""

    ts: float
    request: dict[str, Any]
    summary: str
    key: Any = None
    """What pairs it with its response (correlation id, packet id, ...); None for FIFO."""
    extra: dict[str, Any] = field(default_factory=dict)
    gaps: int = 0


class PendingQueue:
    """Requests in order, bounded; the oldest is given up (``error`` set) when full."""

    def __init__(self, proto: str, limit: int) -> None:
        self.proto = proto
        self.limit = limit
        self._q: deque[Pending] = deque()
        self.done: list[Exchange] = []
        """Finished exchanges, in completion order, until ``take``n."""

    def __len__(self) -> int:
        return len(self._q)

    def __iter__(self) -> Iterator[Pending]:
        return iter(self._q)

    def push(self, p: Pending) -> None:
        if len(self._q) >= self.limit:
            old = self._q.popleft()
            self.fail(old, "no response (too many pending requests)")
        self._q.append(p)

    def head(self) -> Pending | None:
        return self._q[0] if self._q else None

    def pop(self) -> Pending | None:
        return self._q.popleft() if self._q else None

    def pop_key(self, key: Any) -> Pending | None:
        """The pending request with ``key``; the ones sent before it that are still
        waiting stay (responses may come out of order, e.g. Kafka, MQTT)."""
        for i, p in enumerate(self._q):
            if p.key == key:
                del self._q[i]
                return p
        return None

    def remove(self, p: Pending) -> None:
        """Take this very request out of the queue (answered out of order)."""
        for i, x in enumerate(self._q):
            if x is p:
                del self._q[i]
                return

    def fail(self, p: Pending, error: str) -> None:
        self.done.append(
            Exchange(
                proto=self.proto,
                ts=p.ts,
                end=None,
                request=p.request,
                summary=p.summary,
                error=error,
                gaps=p.gaps,
            )
        )

    def finish(
        self,
        p: Pending,
        end: float,
        response: dict[str, Any],
        summary: str,
        error: str = "",
        gaps: int = 0,
    ) -> None:
        self.done.append(
            Exchange(
                proto=self.proto,
                ts=p.ts,
                end=end,
                request=p.request,
                response=response,
                summary=summary,
                error=error,
                gaps=p.gaps + gaps,
            )
        )

    def lone(
        self,
        ts: float,
        end: float | None,
        request: dict[str, Any],
        response: dict[str, Any],
        summary: str,
        error: str = "",
    ) -> None:
        """An exchange that is not a request/response pair (a push, a broker delivery)."""
        self.done.append(
            Exchange(
                proto=self.proto,
                ts=ts,
                end=end,
                request=request,
                response=response,
                summary=summary,
                error=error,
            )
        )

    def close(self, error: str = "no response") -> None:
        while self._q:
            self.fail(self._q.popleft(), error)

    def take(self) -> list[Exchange]:
        out, self.done = self.done, []
        return out
