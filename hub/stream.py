"""Live fan-out: new entries go to every connected viewer whose filter they match.

Ingest calls ``publish`` from a worker thread and returns at once: delivery runs on each
subscriber's event loop, filtering with the subscriber's predicate (viewer scope + CEL)
and putting into a bounded queue without waiting. A client that can't keep up loses the
overflow and is told how many entries it missed; ingest never waits for a client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from kubeweir.entry import Entry

__all__ = ["Broadcaster", "Subscriber", "entry_dict", "without_bodies"]


def entry_dict(e: Entry) -> dict[str, Any]:
    """The entry as plain dicts with every field present (defaults included)."""
    d = msgspec.structs.asdict(e)
    d["src"] = msgspec.structs.asdict(e.src)
    d["dst"] = msgspec.structs.asdict(e.dst)
    return d


def without_bodies(entry: dict[str, Any], *, headers: bool) -> dict[str, Any]:
    """A copy without request/response bodies (and without headers unless ``headers``)."""
    out = dict(entry)
    for key in ("request", "response"):
        msg = entry.get(key) or {}
        out[key] = {k: v for k, v in msg.items() if k != "body" and (headers or k != "headers")}
    return out


@dataclass(eq=False)
class Subscriber:
    """One live client: its predicate, its loop and a bounded queue of entries."""

    matches: Callable[[dict[str, Any], datetime], bool]
    loop: asyncio.AbstractEventLoop
    maxsize: int
    headers: bool = False
    queue: asyncio.Queue[dict[str, Any]] = field(init=False)
    wake: asyncio.Event = field(init=False)
    """Set when entries were queued or lost: the sender has something to say."""
    missed: int = 0
    delivered: int = 0
    on_missed: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.maxsize)
        self.wake = asyncio.Event()

    def _deliver(self, entries: Sequence[dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        lost = 0
        queued = 0
        for e in entries:
            try:
                if not self.matches(e, now):
                    continue
            except Exception:  # a predicate must not break delivery to others
                continue
            try:
                self.queue.put_nowait(without_bodies(e, headers=self.headers))
                queued += 1
            except asyncio.QueueFull:
                lost += 1
        self.delivered += queued
        if queued or lost:
            self.wake.set()
        if lost:
            self.missed += lost
            if self.on_missed is not None:
                self.on_missed(lost)

    def take_missed(self) -> int:
        n, self.missed = self.missed, 0
        return n


class Broadcaster:
    """The set of live subscribers; ``publish`` is safe from any thread."""

    def __init__(self) -> None:
        self._subs: set[Subscriber] = set()
        self._lock = threading.Lock()

    def subscribe(self, sub: Subscriber) -> Subscriber:
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    def __len__(self) -> int:
        return len(self._subs)

    def publish(self, entries: Sequence[Entry]) -> None:
        with self._lock:
            subs = list(self._subs)
        if not subs or not entries:
            return
        dicts = [entry_dict(e) for e in entries]
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._deliver, dicts)
            except RuntimeError:  # its loop is closed: the client is gone
                self.unsubscribe(sub)
