"""AF_PACKET source: the ring with a classic BPF filter for the target IPs.

The filter is compiled by libpcap (``pcap_compile`` on a dead LINKTYPE_RAW handle, via
ctypes) from a ``host A or host B ...`` expression, and swapped in with one
``SO_ATTACH_FILTER`` when the targets change (the kernel replaces it atomically).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import threading
from collections.abc import Iterable
from functools import cache

from sniffer.sources.ring import CaptureError, FrameHandler, PacketRing, RingConfig

__all__ = ["AfPacketSource", "compile_filter", "target_expression"]

DLT_RAW = 12  # libpcap's DLT for LINKTYPE_RAW on Linux
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
DROP_ALL = [(0x06, 0, 0, 0)]  # ret #0
MAX_INSNS = 4096  # BPF_MAXINSNS


class _Insn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


@cache
def _libpcap() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap")
    if name is None:
        raise CaptureError("libpcap not found (install libpcap0.8)")
    lib = ctypes.CDLL(name)
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(_Program),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    ]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


_compile_lock = threading.Lock()  # pcap_compile is not thread-safe in older libpcaps


def compile_filter(expression: str) -> list[tuple[int, int, int, int]]:
    """Compile a pcap filter expression for frames that start at the IP header."""
    lib = _libpcap()
    with _compile_lock:
        handle = lib.pcap_open_dead(DLT_RAW, 262144)
        if not handle:
            raise CaptureError("pcap_open_dead failed")
        prog = _Program()
        try:
            rc = lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1,
                                  PCAP_NETMASK_UNKNOWN)  # fmt: skip
            if rc != 0:
                err = (lib.pcap_geterr(handle) or b"").decode(errors="replace")
                raise CaptureError(f"bad filter {expression[:80]!r}: {err}")
            insns = [
                (prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf,
                 prog.bf_insns[i].k)
                for i in range(prog.bf_len)
            ]  # fmt: skip
            lib.pcap_freecode(ctypes.byref(prog))
        finally:
            lib.pcap_close(handle)
    if len(insns) > MAX_INSNS:
        raise CaptureError(f"filter for this many targets is {len(insns)} instructions (> 4096)")
    return insns


def target_expression(ips: Iterable[str]) -> str:
    """``host a or host b ...`` over valid addresses, sorted (so equal sets compile alike)."""
    addrs = sorted({str(ipaddress.ip_address(ip)) for ip in ips})
    return " or ".join(f"host {a}" for a in addrs)


class AfPacketSource:
    """AF_PACKET + TPACKET_V3 ring + a libpcap-compiled classic BPF filter."""

    name = "afpacket"

    def __init__(self, config: RingConfig | None = None) -> None:
        self.ring = PacketRing(config or RingConfig())
        self.targets: frozenset[str] = frozenset()
        self.filter_len = 1

    def set_targets(self, ips: Iterable[str]) -> None:
        """Replace the kernel filter to pass exactly the packets to/from ``ips``."""
        targets = frozenset(ips)
        expr = target_expression(targets)
        insns = compile_filter(expr) if expr else DROP_ALL
        self.ring.attach_classic(insns)
        self.targets = targets
        self.filter_len = len(insns)

    def dispatch(self, handler: FrameHandler, timeout: float) -> int:
        return self.ring.dispatch(handler, timeout)

    def stats(self) -> dict[str, int]:
        self.ring.read_stats()
        return {
            "packets": self.ring.packets,
            "bytes": self.ring.bytes,
            "kernel_drops": self.ring.kernel_drops,
            "kernel_packets": self.ring.kernel_packets,
        }

    def close(self) -> None:
        self.ring.close()
