"""eBPF source: the ring with a bcc socket filter whose target IPs live in BPF hash maps.

``ebpf_filter.bpf.c`` is compiled by bcc at start, loaded as a ``SOCKET_FILTER`` and
attached to the capture ring's socket (``SO_ATTACH_BPF``: bcc's ``attach_raw_socket``
makes its own SOCK_RAW socket bound to one named device, while the ring is SOCK_DGRAM and
may capture on ``any``). A targeting change inserts the new addresses and deletes the
departed ones in the maps, in place: the program is never re-attached, and addresses that
stay targeted are never absent for a moment.
"""

from __future__ import annotations

import ctypes
import ipaddress
import re
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sniffer.sources.ring import CaptureError, FrameHandler, PacketRing, RingConfig

__all__ = ["EbpfSource", "load_program", "SOURCE", "HEADER"]

SOURCE = Path(__file__).with_name("ebpf_filter.bpf.c")
HEADER = Path(__file__).with_name("ebpf_filter.h")


def header_constants() -> dict[str, int]:
    """The ``#define KW_... N`` constants of the shared header."""
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"#define\s+(KW_\w+)\s+(\d+)", HEADER.read_text())
    }


_C = header_constants()  # a file read, no BPF work: fine at import
COUNTER_NAMES = {
    _C["KW_SEEN"]: "seen",
    _C["KW_PASSED"]: "passed",
    _C["KW_NOT_IP"]: "not_ip",
    _C["KW_SHORT"]: "short",
}
MAX_TARGETS = _C["KW_MAX_TARGETS"]


def load_program() -> tuple[Any, int]:
    """Compile and load the filter; returns (the bcc BPF object, the program fd).
    Raises CaptureError with the reason when eBPF can't be used here."""
    try:
        from bcc import BPF
    except ImportError as exc:
        raise CaptureError(f"bcc is not importable ({exc}): install python3-bpfcc") from exc
    try:
        bpf = BPF(src_file=str(SOURCE).encode(), cflags=[f"-I{HEADER.parent}"])
        fn = bpf.load_func(b"kw_filter", BPF.SOCKET_FILTER)
    except Exception as exc:  # noqa: BLE001 - bcc raises bare Exception on compile/load
        raise CaptureError(f"the eBPF filter did not load: {exc}") from exc
    return bpf, int(fn.fd)


def _key4(ip: ipaddress.IPv4Address) -> int:
    # The 4 address bytes as the program loads them: a u32 in host order of network bytes.
    value: int = struct.unpack("=I", ip.packed)[0]
    return value


class EbpfSource:
    """AF_PACKET + TPACKET_V3 ring + the eBPF socket filter with its maps."""

    name = "ebpf"

    def __init__(self, config: RingConfig | None = None) -> None:
        self.bpf, fd = load_program()
        self._t4 = self.bpf[b"targets4"]
        self._t6 = self.bpf[b"targets6"]
        self._counters = self.bpf[b"counters"]
        self.targets: frozenset[str] = frozenset()
        self.map_updates = 0
        try:
            self.ring = PacketRing(config or RingConfig())
            self.ring.attach_ebpf(fd)  # maps are empty: passes nothing yet
        except BaseException:
            self.bpf.cleanup()
            raise

    def _keys(self, ip: str) -> tuple[Any, Any]:
        addr = ipaddress.ip_address(ip)
        if isinstance(addr, ipaddress.IPv4Address):
            return self._t4, self._t4.Key(_key4(addr))
        key = self._t6.Key()
        ctypes.memmove(ctypes.addressof(key), addr.packed, 16)
        return self._t6, key

    def set_targets(self, ips: Iterable[str]) -> None:
        """Update the maps in place to hold exactly ``ips``."""
        new = frozenset(str(ipaddress.ip_address(ip)) for ip in ips)
        if len(new) > MAX_TARGETS:
            raise CaptureError(f"{len(new)} targets: over the map size {MAX_TARGETS}")
        for ip in sorted(new - self.targets):  # add first: nothing staying is ever absent
            table, key = self._keys(ip)
            table[key] = table.Leaf(1)
            self.map_updates += 1
        for ip in sorted(self.targets - new):
            table, key = self._keys(ip)
            try:
                del table[key]
            except KeyError:
                pass
            self.map_updates += 1
        self.targets = new

    def map_contents(self) -> set[str]:
        """The addresses in the maps now (for tests and status)."""
        out = {str(ipaddress.IPv4Address(struct.pack("=I", k.value))) for k in self._t4.keys()}
        out |= {str(ipaddress.IPv6Address(bytes(k.addr))) for k in self._t6.keys()}
        return out

    def dispatch(self, handler: FrameHandler, timeout: float) -> int:
        return self.ring.dispatch(handler, timeout)

    def filter_counters(self) -> dict[str, int]:
        out = {}
        for slot, name in COUNTER_NAMES.items():
            out[name] = int(sum(self._counters[ctypes.c_int(slot)]))
        return out

    def stats(self) -> dict[str, int]:
        self.ring.read_stats()
        c = self.filter_counters()
        return {
            "packets": self.ring.packets,
            "bytes": self.ring.bytes,
            "kernel_drops": self.ring.kernel_drops,
            "kernel_packets": self.ring.kernel_packets,
            "filter_seen": c["seen"],
            "filter_passed": c["passed"],
        }

    def close(self) -> None:
        self.ring.close()
        self.bpf.cleanup()
