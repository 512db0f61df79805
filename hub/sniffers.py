"""What the hub knows of each sniffer: last seen, entries shipped, what it reported."""

from __future__ import annotations

import threading
import time
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["Heartbeat", "SnifferRegistry", "SnifferStatus"]


class Heartbeat(BaseModel):
    """Body of ``POST /api/v1/sniffers/heartbeat``."""

    node: str = Field(min_length=1, max_length=253)
    drops: int = Field(default=0, ge=0)
    spool_bytes: int = Field(default=0, ge=0)
    targets: int = Field(default=0, ge=0)
    """How many pods the sniffer captures."""


class SnifferStatus(BaseModel):
    node: str
    last_seen: float
    """Epoch seconds of the last batch or heartbeat."""
    entries: int = 0
    drops: int = 0
    spool_bytes: int = 0
    targets: int = 0


class SnifferRegistry:
    """In-memory, bounded; a restart forgets sniffers until they next report."""

    def __init__(self, max_sniffers: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._by_node: dict[str, SnifferStatus] = {}
        self.max_sniffers = max_sniffers

    def _get(self, node: str) -> SnifferStatus | None:
        st = self._by_node.get(node)
        if st is None:
            if len(self._by_node) >= self.max_sniffers:
                return None
            st = SnifferStatus(node=node, last_seen=time.time())
            self._by_node[node] = st
        return st

    def record_batch(self, node: str, accepted: int) -> None:
        with self._lock:
            st = self._get(node or "unknown")
            if st is not None:
                st.entries += accepted
                st.last_seen = time.time()

    def heartbeat(self, hb: Heartbeat) -> None:
        with self._lock:
            st = self._get(hb.node)
            if st is not None:
                st.drops, st.spool_bytes, st.targets = hb.drops, hb.spool_bytes, hb.targets
                st.last_seen = time.time()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.model_dump() for s in sorted(self._by_node.values(), key=lambda s: s.node)]
