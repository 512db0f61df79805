"""An AF_PACKET socket with a TPACKET_V3 receive ring: the one way packets come in.

Both capture sources share it and differ only in the kernel filter they attach (a classic
BPF program compiled by libpcap, or an eBPF socket filter). The socket is ``SOCK_DGRAM``
so every frame starts at its network header whatever the device (``any`` mixes Ethernet,
loopback, tunnels): frames are handed on as LINKTYPE_RAW (101). Outgoing copies are
ignored (``PACKET_IGNORE_OUTGOING``): on a node, pod traffic is seen once, when it
enters the host from a pod's veth, instead of once per device it crosses.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mypy_extensions import mypyc_attr

__all__ = ["LINKTYPE_RAW", "RingConfig", "PacketRing", "CaptureError", "FrameHandler"]

LINKTYPE_RAW: Final = 101

SOL_PACKET: Final = 263
PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_RX_RING: Final = 5
PACKET_STATISTICS: Final = 6
PACKET_VERSION: Final = 10
PACKET_IGNORE_OUTGOING: Final = 23
PACKET_FANOUT: Final = 18
PACKET_FANOUT_HASH: Final = 0
FANOUT_FLAG_DEFRAG: Final = 0x8000
TPACKET_V3: Final = 2
SO_ATTACH_FILTER: Final = 26
SO_ATTACH_BPF: Final = 50
SO_RCVBUFFORCE: Final = 33
ETH_P_ALL: Final = 0x0003
TP_STATUS_USER: Final = 1
TP_STATUS_KERNEL: Final = 0

_REQ3: Final = struct.Struct("7I")
# version, off_priv, status, num_pkts, off_first, blk_len, seq
_BLOCK: Final = struct.Struct("=IIIIIIQ")
_PKT: Final = struct.Struct("=IIIII4xH2x")  # next, sec, nsec, snaplen, len, (status), mac, (net)
_STATS3: Final = struct.Struct("III")  # tp_packets, tp_drops, tp_freeze_q_cnt
_FPROG: Final = struct.Struct("@HP")  # struct sock_fprog {unsigned short len; struct sock_filter *}

log = logging.getLogger("kubeweir.sniffer.capture")

FrameHandler = Callable[[float, int, bytes], None]
"""Called with (timestamp, linktype, frame) for each captured frame."""


@mypyc_attr(native_class=False)  # mypyc compiles no subclass of this builtin
class CaptureError(RuntimeError):
    """The capture could not be set up (with the reason the kernel gave)."""


@dataclass(frozen=True, slots=True)
class RingConfig:
    interface: str = "any"
    """Device to capture on; ``any`` for all devices of the host's network namespace."""
    block_size: int = 1 << 18
    """Bytes per ring block (a power-of-two number of pages; holds a 64 KiB GSO frame)."""
    block_count: int = 256
    """Blocks in the ring: ``block_size * block_count`` bytes absorb bursts."""
    block_timeout_ms: int = 100
    """A partly filled block is handed over after this long. The kernel retires a block
    at this timeout however little it holds, so while the reader lags the ring holds at
    least ``block_count * block_timeout_ms`` of traffic: many small blocks and a timeout
    of 100 ms keep slow traffic from eating the ring (entries wait at most this long)."""
    ignore_outgoing: bool = True
    fanout_group: int = 0
    """Non-zero: join this PACKET_FANOUT group with flow-hash balancing, so that several
    rings (one per worker process) split the traffic, each connection whole in one."""


class PacketRing:
    """The capture socket, its mmapped ring, and the counters read from the kernel."""

    def __init__(self, config: RingConfig) -> None:
        self.config = config
        self.packets = 0
        self.bytes = 0
        self.kernel_drops = 0
        self.kernel_packets = 0
        self.handler_errors = 0
        self._stats_lock = threading.Lock()
        self._block = 0
        self._filter_buf: ctypes.Array[ctypes.c_char] | None = None
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        except PermissionError as exc:
            raise CaptureError(f"AF_PACKET socket needs CAP_NET_RAW: {exc}") from exc
        try:
            # Nothing passes until the real filter is attached.
            self.attach_classic([(0x06, 0, 0, 0)])  # ret #0
            if config.ignore_outgoing:
                self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            frame_size = 1 << 11
            req = _REQ3.pack(
                config.block_size,
                config.block_count,
                frame_size,
                config.block_size // frame_size * config.block_count,
                config.block_timeout_ms,
                0,
                0,
            )
            self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self.size = config.block_size * config.block_count
            self.mm = mmap.mmap(
                self.sock.fileno(), self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
            if config.interface != "any":
                try:
                    socket.if_nametoindex(config.interface)
                except OSError as missing:
                    raise CaptureError(f"no interface {config.interface!r}") from missing
                self.sock.bind((config.interface, ETH_P_ALL))
            # ``any``: an unbound ETH_P_ALL socket already sees every device.
            if config.fanout_group:
                # FANOUT_HASH balances by the symmetric flow hash: both directions of a
                # connection land in the same ring; DEFRAG hashes whole datagrams.
                arg = (config.fanout_group & 0xFFFF) | (
                    (PACKET_FANOUT_HASH | FANOUT_FLAG_DEFRAG) << 16
                )
                self.sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("=I", arg))
        except OSError as exc:
            self.sock.close()
            raise CaptureError(f"cannot set up the capture ring: {exc}") from exc
        self._poll = select.poll()
        self._poll.register(self.sock.fileno(), select.POLLIN | select.POLLERR)

    # --- filters ---------------------------------------------------------------------
    def attach_classic(self, insns: list[tuple[int, int, int, int]]) -> None:
        """Attach (atomically replace) a classic BPF program."""
        raw = b"".join(struct.pack("=HBBI", *i) for i in insns)
        buf = ctypes.create_string_buffer(raw, len(raw))
        fprog = _FPROG.pack(len(insns), ctypes.addressof(buf))
        # held on self until the kernel has copied it: compiled (mypyc), a local is
        # released after its last use — here before setsockopt reads the instructions
        self._filter_buf = buf
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        finally:
            self._filter_buf = None

    def attach_ebpf(self, prog_fd: int) -> None:
        """Attach (atomically replace) an eBPF socket-filter program by its fd."""
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, prog_fd)

    # --- reading ---------------------------------------------------------------------
    def dispatch(self, handler: FrameHandler, timeout: float, max_blocks: int = 8) -> int:
        """Hand every frame of up to ``max_blocks`` ready blocks to ``handler``; wait up to
        ``timeout`` seconds for one when none is ready. Returns the number of frames handed
        on. Bounded, so that a caller behind on a full ring still gets control back often
        (to collect entries, apply time-outs) instead of draining the whole ring first."""
        mm = self.mm
        bs = self.config.block_size
        n = self.config.block_count
        unpack_block = _BLOCK.unpack_from
        unpack_pkt = _PKT.unpack_from
        # typed: compiled, the header arithmetic per frame is native
        status: int
        num: int
        first: int
        nxt: int
        sec: int
        nsec: int
        snap: int
        wire: int
        mac: int
        frames = 0
        nbytes = 0
        blocks = 0
        waited = False
        try:
            while True:
                off = self._block * bs
                _, _, status, num, first, _, _ = unpack_block(mm, off)
                if not status & TP_STATUS_USER:
                    if waited or blocks:
                        break
                    self._poll.poll(int(timeout * 1000))
                    waited = True
                    continue
                p = off + first
                for _ in range(num):
                    nxt, sec, nsec, snap, wire, mac = unpack_pkt(mm, p)
                    start = p + mac
                    try:
                        # a copy (mmap slicing makes one bytes object): the block goes
                        # back to the kernel below while reassembly may still hold data
                        handler(sec + nsec * 1e-9, LINKTYPE_RAW, mm[start : start + snap])
                    except Exception:  # noqa: BLE001 - one bad frame must not stop the capture
                        self.handler_errors += 1
                        if self.handler_errors % 1000 == 1:
                            log.exception("frame handler failed (%d so far)", self.handler_errors)
                    nbytes += wire
                    p += nxt
                frames += num
                struct.pack_into("=I", mm, off + 8, TP_STATUS_KERNEL)
                self._block = (self._block + 1) % n
                blocks += 1
                if max_blocks and blocks >= max_blocks:
                    break
        finally:
            self.packets += frames
            self.bytes += nbytes
        return frames

    def read_stats(self) -> tuple[int, int]:
        """(packets, drops) the kernel counted since the last call; totals kept here."""
        with self._stats_lock:  # reading resets the kernel's counters: one reader at a time
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS3.size)
            packets, drops, _ = _STATS3.unpack(raw)
            self.kernel_packets += packets
            self.kernel_drops += drops
        return packets, drops

    def close(self) -> None:
        try:
            self.mm.close()
        except (BufferError, ValueError):
            pass
        self.sock.close()
