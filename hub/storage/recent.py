"""The ids of recently stored rows, kept in memory so a batch is de-duplicated without
scanning the table.

The hub de-duplicates by id within a window around each batch: a row is a duplicate when
a row with the same id is stored with its ``ts`` in ``[batch's first ts - window, batch's
last ts + window]``. Answering that in SQL means scanning the stored ids of the window
for every batch (an anti-join), which is most of an INSERT's cost. This index answers it
from a dict instead, exactly, for every window that starts at or after ``cover_lo``:

- every stored row with ``ts >= cover_lo`` is in the index (rows are added after their
  commit, rows found in the table are loaded at start-up, and evicting a set of rows
  raises ``cover_lo`` past the newest of them);
- rows deleted by retention (``ts`` below a bound) are ignored from then on.

A window that starts before ``cover_lo`` (a late batch, or right after start-up with an
index that was capped) is not covered: the caller asks the table instead. Memory is
bounded by ``max_ids``; eviction goes oldest-added first. Not thread-safe: the storage
uses it under its write lock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

__all__ = ["RecentIds"]

NEVER = -(2**63)
"""A timestamp (µs) below every stored one."""


class RecentIds:
    """Stored ids (and their ``ts`` in µs since the epoch) of the newest ``horizon``."""

    def __init__(self, horizon_us: int, max_ids: int) -> None:
        self.horizon_us = horizon_us
        self.max_ids = max_ids
        self.cover_lo = NEVER
        """Every stored row with ``ts >= cover_lo`` (µs) is in the index."""
        self.forgotten_below = NEVER
        """Rows with ``ts`` below this (µs) were deleted: index entries below it are void."""
        self.newest = NEVER
        self._ts: dict[str, int | list[int]] = {}
        # (newest ts, ids, their ts) per add(), in the order added
        self._chunks: deque[tuple[int, list[str], list[int]]] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def covers(self, start_us: int) -> bool:
        """Whether a window starting at ``start_us`` can be answered from the index."""
        return start_us >= self.cover_lo

    def any_known(self, ids: Iterable[str]) -> bool:
        """Whether any of ``ids`` is in the index at all (one C-level pass: most batches
        hold only new ids, and then no id needs ``stored``)."""
        return not self._ts.keys().isdisjoint(ids)

    def stored(self, entry_id: str, start_us: int, end_us: int) -> bool:
        """A row with this id is stored with its ts in ``[start_us, end_us]`` (a window
        that ``covers()`` said yes to)."""
        v = self._ts.get(entry_id)
        if v is None:
            return False
        lo = start_us if start_us > self.forgotten_below else self.forgotten_below
        if type(v) is int:
            return lo <= v <= end_us
        return any(lo <= t <= end_us for t in v)  # type: ignore[union-attr]

    def add(self, ids: Sequence[str], ts: Sequence[int]) -> None:
        """Rows just committed. Rows older than ``cover_lo`` are not kept (nothing asks
        the index about them)."""
        cover = self.cover_lo
        if ids and min(ts) < cover:
            pairs = [(i, t) for i, t in zip(ids, ts, strict=True) if t >= cover]
            ids, ts = [p[0] for p in pairs], [p[1] for p in pairs]
        if not ids:
            return
        d = self._ts
        if not self.any_known(ids) and len(set(ids)) == len(ids):
            d.update(zip(ids, ts, strict=True))  # all new (the usual case): in C
        else:
            for i, t in zip(ids, ts, strict=True):
                prev = d.get(i)
                if prev is None:
                    d[i] = t
                elif type(prev) is int:
                    d[i] = [prev, t]  # the same id stored again, outside the earlier window
                else:
                    prev.append(t)  # type: ignore[union-attr]
        top = max(ts)
        self._chunks.append((top, list(ids), list(ts)))
        self._size += len(ids)
        if top > self.newest:
            self.newest = top
        self._evict()

    def forget_before(self, bound_us: int) -> None:
        """Rows with ``ts < bound_us`` were deleted from the table."""
        if bound_us > self.forgotten_below:
            self.forgotten_below = bound_us
        # a late row stored below the bound after this would be void in the index (its
        # resend not found): windows starting below the bound are asked of the table
        if bound_us > self.cover_lo:
            self.cover_lo = bound_us
        self._evict()

    def _evict(self) -> None:
        limit = self.newest - self.horizon_us
        chunks, d = self._chunks, self._ts
        while chunks and (
            chunks[0][0] < limit or chunks[0][0] < self.forgotten_below or self._size > self.max_ids
        ):
            top, ids, ts = chunks.popleft()
            for i, t in zip(ids, ts, strict=True):
                v = d.get(i)
                if isinstance(v, list):
                    v.remove(t)
                    if len(v) == 1:
                        d[i] = v[0]
                else:
                    d.pop(i, None)
            self._size -= len(ids)
            if top >= self.cover_lo:
                self.cover_lo = top + 1
