"""Loading ``openssl.bpf.c`` and attaching its uprobes per libssl file.

Nothing happens at import time. ``Probes()`` compiles and loads the program (the syscall
and sched tracepoints attach with it); ``attach(path)`` puts the entry and return probes
on one libssl file at the points ``prologue.plan`` picks (one inode: the same library seen
through several ``/proc/PID/root`` paths is attached once), ``detach(path)`` removes them,
``close()`` removes everything.
Which processes are read is the ``targets`` map (tgids), set with ``set_pids``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sniffer.tls import prologue

__all__ = [
    "EVENT_HEADER",
    "HEADER",
    "SOURCE",
    "Probes",
    "TlsEvent",
    "TlsProbeError",
    "header_constants",
]

log = logging.getLogger("kubeweir.sniffer.tls")

SOURCE = Path(__file__).with_name("openssl.bpf.c")
HEADER = Path(__file__).with_name("tls_event.h")
TRACEFS = Path("/sys/kernel/tracing")

# (symbol, entry function, with the shared return probe): the fallback when the file can't
# be read as ELF (``prologue.plan`` decides otherwise)
SYMBOLS = (
    ("SSL_read", "kw_ssl_read_enter", True),
    ("SSL_read_ex", "kw_ssl_read_ex_enter", True),
    ("SSL_write", "kw_ssl_write_enter", True),
    ("SSL_write_ex", "kw_ssl_write_ex_enter", True),
    ("SSL_free", "kw_ssl_free", False),
)


class TlsProbeError(RuntimeError):
    """The uprobe program can't be used here (the message says why)."""


def header_constants() -> dict[str, int]:
    """The ``#define KW_TLS_... N`` constants of the shared header."""
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"#define\s+(KW_TLS_\w+)\s+(\d+)", HEADER.read_text())
    }


_C = header_constants()  # a file read, no BPF work
CHUNK = _C["KW_TLS_CHUNK"]
MAX_CHUNKS = _C["KW_TLS_MAX_CHUNKS"]
KIND_DATA = _C["KW_TLS_DATA"]
KIND_EXEC = _C["KW_TLS_EXEC"]
KIND_ADDR = _C["KW_TLS_ADDR"]
KIND_FREE = _C["KW_TLS_FREE"]
ADDR_PEER = _C["KW_TLS_PEER"]
DIR_READ = _C["KW_TLS_READ"]
DIR_WRITE = _C["KW_TLS_WRITE"]
COUNTER_NAMES = {
    _C["KW_TLS_CALLS"]: "calls",
    _C["KW_TLS_EVENTS"]: "events",
    _C["KW_TLS_RING_FULL"]: "ring_full",
    _C["KW_TLS_READ_FAULT"]: "read_fault",
    _C["KW_TLS_TRUNCATED"]: "truncated",
}


class TlsEvent(ctypes.Structure):
    """``struct kw_tls_event`` of tls_event.h (header part; ``data`` follows)."""

    _fields_ = [
        ("ts_ns", ctypes.c_uint64),
        ("ssl", ctypes.c_uint64),
        ("kind", ctypes.c_uint32),
        ("tgid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("fd", ctypes.c_int32),
        ("dir", ctypes.c_uint32),
        ("len", ctypes.c_uint32),
        ("off", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
    ]


HEADER_SIZE = ctypes.sizeof(TlsEvent)
EVENT_HEADER = struct.Struct("<QQIIIiIIII")
"""The same header for ``unpack_from`` (ts_ns, ssl, kind, tgid, tid, fd, dir, len, off,
size): one unpack instead of ctypes attribute reads, on the hot path."""


class _SslKey(ctypes.Structure):
    _fields_ = [("tgid", ctypes.c_uint32), ("pad", ctypes.c_uint32), ("ssl", ctypes.c_uint64)]


def ensure_tracefs() -> None:
    """bcc finds tracepoints through tracefs; mount it when the host has not."""
    if (TRACEFS / "events").is_dir():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"nodev", str(TRACEFS).encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise TlsProbeError(
            f"tracefs is not mounted at {TRACEFS} and mounting it failed: {os.strerror(err)}"
        )


class Probes:
    """The loaded program, its maps, and the libraries it is attached to."""

    def __init__(self, on_event: Callable[[bytes], None]) -> None:
        """``on_event(record)`` is called from ``poll`` for each ring record (header and
        data, copied out of the ring)."""
        try:
            from bcc import BPF
            from bcc.libbcc import _RINGBUF_CB_TYPE, lib
        except ImportError as exc:
            raise TlsProbeError(f"bcc is not importable ({exc}): install python3-bpfcc") from exc
        ensure_tracefs()
        try:
            self.bpf: Any = BPF(src_file=str(SOURCE).encode(), cflags=[f"-I{HEADER.parent}"])
        except Exception as exc:  # noqa: BLE001 - bcc raises bare Exception on compile/load
            raise TlsProbeError(f"the OpenSSL uprobe program did not load: {exc}") from exc
        self._targets = self.bpf[b"targets"]
        self._ssl_fds = self.bpf[b"ssl_fds"]
        self._counters = self.bpf[b"counters"]
        self.libs: dict[tuple[int, int], tuple[bytes, list[prologue.ProbePoint]]] = {}
        """(st_dev, st_ino) → (path attached through, probe points attached)."""
        self.pids: frozenset[int] = frozenset()

        string_at = ctypes.string_at

        def callback(_ctx: Any, data: int | None, size: int) -> int:
            # straight from libbcc's ring reader (bcc's open_ring_buffer adds a Python
            # wrapper frame per record)
            try:
                on_event(string_at(data or 0, size))
            except Exception:  # noqa: BLE001 - an exception can't cross the C callback
                log.exception("TLS event handling failed")
            return 0

        self._lib = lib
        self._callback = _RINGBUF_CB_TYPE(callback)  # kept alive as long as the ring
        self._ring = lib.bpf_new_ringbuf(self.bpf[b"events"].map_fd, self._callback, None)
        if not self._ring:
            self.bpf.cleanup()
            raise TlsProbeError("the ring buffer of the OpenSSL uprobe program did not open")

    # --- libraries -------------------------------------------------------------------
    def attach(self, path: str) -> bool:
        """Attach the probes to the libssl at ``path`` (where: ``prologue.plan``); False
        when already attached (same inode) or when it exports none of the functions."""
        try:
            st = os.stat(path)
        except OSError:
            return False
        key = (st.st_dev, st.st_ino)
        if key in self.libs:
            return False
        name = path.encode()
        try:
            points = prologue.plan(path)
        except (OSError, prologue.ElfError) as exc:
            log.warning("%s: %s; probes on the exported functions' first bytes", path, exc)
            points = [prologue.ProbePoint(s, 0, fn, ret, False) for s, fn, ret in SYMBOLS]
        done: list[prologue.ProbePoint] = []
        for pt in points:
            where: dict[str, Any] = {"addr": pt.vaddr} if pt.vaddr else {"sym": pt.what.encode()}
            try:
                self.bpf.attach_uprobe(name=name, fn_name=pt.entry.encode(), **where)
            except Exception as exc:  # noqa: BLE001 - a missing symbol (1.0.x has no _ex)
                log.debug("%s: no uprobe on %s: %s", path, pt.what, exc)
                continue
            if pt.ret:
                try:
                    self.bpf.attach_uretprobe(name=name, fn_name=b"kw_ssl_return", **where)
                except Exception as exc:  # noqa: BLE001
                    self.bpf.detach_uprobe(name=name, **where)
                    log.warning("%s: no return probe on %s: %s", path, pt.what, exc)
                    continue
            done.append(pt)
        if not done:
            log.warning("%s exports none of %s: not attached", path, [s[0] for s in SYMBOLS])
            return False
        self.libs[key] = (name, done)
        slow = [pt.what for pt in done if not pt.emulated]
        log.info(
            "TLS probes on %s (%s)%s", path, ", ".join(pt.what for pt in done),
            f"; single-stepped (slow) on {', '.join(slow)}" if slow else "",
        )  # fmt: skip
        return True

    def detach(self, key: tuple[int, int]) -> None:
        name, points = self.libs.pop(key)
        for pt in points:
            where: dict[str, Any] = {"addr": pt.vaddr} if pt.vaddr else {"sym": pt.what.encode()}
            fns = [self.bpf.detach_uprobe]
            if pt.ret:
                fns.append(self.bpf.detach_uretprobe)
            for fn in fns:
                try:
                    fn(name=name, **where)
                except Exception as exc:  # noqa: BLE001 - the file may be gone already
                    log.debug("detaching %s from %r: %s", pt.what, name, exc)

    # --- processes -------------------------------------------------------------------
    def set_pids(self, pids: Iterable[int]) -> None:
        """Make the ``targets`` map hold exactly ``pids`` (tgids); add before removing."""
        new = frozenset(pids)
        one = self._targets.Leaf(1)
        for pid in new - self.pids:
            self._targets[self._targets.Key(pid)] = one
        for pid in self.pids - new:
            try:
                del self._targets[self._targets.Key(pid)]
            except KeyError:
                pass
        self.pids = new

    def add_pid(self, pid: int) -> None:
        self._targets[self._targets.Key(pid)] = self._targets.Leaf(1)
        self.pids = self.pids | {pid}

    def map_pids(self) -> set[int]:
        """The tgids in the kernel map now (includes children the program added itself)."""
        return {int(k.value) for k in self._targets.keys()}

    def ssl_fd(self, tgid: int, ssl: int) -> int:
        """The socket fd the program learnt for an SSL* since the event was sent, or -1."""
        try:
            return int(self._ssl_fds[_SslKey(tgid, 0, ssl)].value)
        except KeyError:
            return -1

    # --- events ----------------------------------------------------------------------
    def poll(self, timeout_ms: int) -> None:
        """Wait up to ``timeout_ms`` for a waking event (exec, address), then drain the
        ring (data events do not wake the reader)."""
        self._lib.bpf_poll_ringbuf(self._ring, timeout_ms)
        self._lib.bpf_consume_ringbuf(self._ring)

    def counters(self) -> dict[str, int]:
        return {
            name: int(sum(self._counters[ctypes.c_int(slot)]))
            for slot, name in COUNTER_NAMES.items()
        }

    def close(self) -> None:
        for key in list(self.libs):
            self.detach(key)
        if self._ring:
            self._lib.bpf_free_ringbuf(self._ring)
            self._ring = None
        self.bpf.cleanup()
