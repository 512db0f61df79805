"""Capture sources behind one face: frames of the targeted pods, and kernel counters.

Both sources read the same AF_PACKET TPACKET_V3 ring (``ring.py``) and differ in the
kernel filter: ``afpacket`` attaches a classic BPF program compiled by libpcap and
recompiles it on every targeting change; ``ebpf`` attaches a bcc socket filter whose
target IPs are BPF map entries updated in place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal, Protocol

from sniffer.sources.ring import LINKTYPE_RAW, CaptureError, FrameHandler, RingConfig

__all__ = [
    "LINKTYPE_RAW",
    "CaptureError",
    "CaptureSource",
    "FrameHandler",
    "RingConfig",
    "open_source",
]

log = logging.getLogger("kubeweir.sniffer.capture")

CaptureKind = Literal["afpacket", "ebpf", "auto"]


class CaptureSource(Protocol):
    name: str

    def set_targets(self, ips: Iterable[str]) -> None:
        """Capture exactly the packets whose source or destination is one of ``ips``."""

    def dispatch(self, handler: FrameHandler, timeout: float) -> int:
        """Hand the frames that are ready to ``handler``; wait up to ``timeout`` for some."""

    def stats(self) -> dict[str, int]:
        """Cumulative counters: packets, bytes, kernel_drops, kernel_packets, ..."""

    def close(self) -> None: ...


def open_source(kind: CaptureKind, config: RingConfig) -> tuple[CaptureSource, str]:
    """Open the requested source; returns it and why it was chosen (for logs/status).
    ``auto`` prefers eBPF and falls back to AF_PACKET, naming the reason."""
    if kind in ("ebpf", "auto"):
        from sniffer.sources.ebpf import EbpfSource

        try:
            return EbpfSource(config), (
                "eBPF requested" if kind == "ebpf" else "auto: the eBPF socket filter loaded"
            )
        except CaptureError as exc:
            if kind == "ebpf":
                raise
            reason = f"auto: eBPF unavailable ({exc}); using AF_PACKET with a classic BPF filter"
            log.warning("%s", reason)
    else:
        reason = "AF_PACKET requested"
    from sniffer.sources.afpacket import AfPacketSource

    return AfPacketSource(config), reason
