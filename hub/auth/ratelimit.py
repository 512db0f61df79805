"""Failure rate limits: too many failed logins or token checks from one address or for
one user, and further attempts get 429 with Retry-After until the window passes."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

__all__ = ["FailureLimiter"]


class FailureLimiter:
    """Counts failures per key in a sliding window; bounded in keys and in memory."""

    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque[float] | None:
        q = self._failures.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._failures[key]
            return None
        return q

    def retry_after(self, *keys: str, now: float | None = None) -> int:
        """Seconds to wait before trying again (0 when any attempt may go ahead)."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._trim(key, now)
                if q is not None and len(q) >= self.limit:
                    wait = max(wait, q[0] + self.window - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, *keys: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) >= self.max_keys:
                for key in list(self._failures):
                    self._trim(key, now)
                if len(self._failures) >= self.max_keys:
                    # Under a flood of distinct keys keep the newest half.
                    for key in list(self._failures)[: self.max_keys // 2]:
                        del self._failures[key]
            for key in keys:
                q = self._failures.setdefault(key, deque())
                q.append(now)
                if len(q) > self.limit * 2:
                    q.popleft()

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
