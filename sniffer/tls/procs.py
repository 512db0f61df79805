"""What ``/proc`` says about processes: network namespace, its addresses, the libssl files
a process uses, and the TCP connection behind one of its file descriptors.

Everything here reads files of other processes: in a cluster the sniffer needs the host
PID namespace (``hostPID: true``) and ``CAP_SYS_PTRACE`` for ``/proc/PID/root``,
``/proc/PID/fd`` and ``/proc/PID/maps`` of processes it does not own. A process may exit
between any two reads: every function answers None / empty then, never raises.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass

__all__ = [
    "TcpSocket",
    "libssl_paths",
    "list_pids",
    "netns_addresses",
    "netns_inode",
    "socket_inode",
    "tcp_sockets",
]

PROC = "/proc"
LIB_NAMES = ("libssl.so.3", "libssl.so.1.1")
_ARCH = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(
    os.uname().machine, f"{os.uname().machine}-linux-gnu"
)
LIB_DIRS = (
    f"usr/lib/{_ARCH}",
    f"lib/{_ARCH}",
    "usr/lib64",
    "lib64",
    "usr/lib",
    "lib",
    "usr/local/lib",
    "usr/local/lib64",
)
"""Where a container image keeps its libssl, relative to the container's root."""
TCP_LISTEN = 0x0A


def list_pids() -> list[int]:
    return [int(n) for n in os.listdir(PROC) if n.isdigit()]


def netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"{PROC}/{pid}/ns/net").st_ino
    except OSError:
        return None


def netns_addresses(pid: int) -> set[str]:
    """The local addresses of ``pid``'s network namespace (IPv4 from ``fib_trie``'s
    ``/32 host LOCAL`` entries, IPv6 from ``if_inet6``)."""
    out: set[str] = set()
    try:
        with open(f"{PROC}/{pid}/net/fib_trie") as f:
            last = ""
            for line in f:
                s = line.strip()
                if s.startswith("|--"):
                    last = s[3:].strip()
                elif s.startswith("/32 host LOCAL") and last:
                    out.add(last)
    except OSError:
        return out
    try:
        with open(f"{PROC}/{pid}/net/if_inet6") as f:
            for line in f:
                h = line.split()[0]
                out.add(str(ipaddress.IPv6Address(bytes.fromhex(h))))
    except (OSError, ValueError, IndexError):
        pass
    out.discard("127.0.0.1")
    out.discard("::1")
    return out


def libssl_paths(pid: int) -> set[str]:
    """libssl files of ``pid``, as paths through ``/proc/PID/root`` (so a container's own
    OpenSSL is found): those mapped now, and those at the usual places of its root (a
    program started later, or one that loads libssl later, uses one of them)."""
    root = f"{PROC}/{pid}/root"
    out: set[str] = set()
    try:
        with open(f"{PROC}/{pid}/maps") as f:
            for line in f:
                i = line.find("/")
                if i > 0 and "libssl.so" in line:
                    path = line[i:].rstrip("\n")
                    if not path.endswith(" (deleted)"):
                        out.add(root + path)
    except OSError:
        return out
    for d in LIB_DIRS:
        for name in LIB_NAMES:
            p = f"{root}/{d}/{name}"
            if os.path.exists(p):
                out.add(p)
    return out


def socket_inode(pid: int, fd: int) -> int | None:
    """The socket inode behind ``fd`` of ``pid``, None when it is no socket (or gone)."""
    try:
        link = os.readlink(f"{PROC}/{pid}/fd/{fd}")
    except OSError:
        return None
    if link.startswith("socket:["):
        return int(link[8:-1])
    return None


@dataclass(frozen=True, slots=True)
class TcpSocket:
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    state: int


def _addr4(h: str) -> str:
    return socket.inet_ntop(socket.AF_INET, int(h, 16).to_bytes(4, "little"))


def _addr6(h: str) -> str:
    raw = b"".join(int(h[i : i + 8], 16).to_bytes(4, "little") for i in range(0, 32, 8))
    addr = ipaddress.IPv6Address(raw)
    mapped = addr.ipv4_mapped
    return str(mapped) if mapped is not None else str(addr)


def tcp_sockets(pid: int) -> tuple[dict[int, TcpSocket], set[int]]:
    """The TCP sockets of ``pid``'s network namespace by inode, and its listening ports."""
    by_inode: dict[int, TcpSocket] = {}
    listening: set[int] = set()
    for name, conv in (("tcp", _addr4), ("tcp6", _addr6)):
        try:
            with open(f"{PROC}/{pid}/net/{name}") as f:
                next(f, None)
                for line in f:
                    p = line.split()
                    if len(p) < 10:
                        continue
                    lip, lport = p[1].split(":")
                    rip, rport = p[2].split(":")
                    state = int(p[3], 16)
                    inode = int(p[9])
                    if state == TCP_LISTEN:
                        listening.add(int(lport, 16))
                        continue
                    if inode:
                        by_inode[inode] = TcpSocket(
                            conv(lip), int(lport, 16), conv(rip), int(rport, 16), state
                        )
        except (OSError, ValueError):
            continue
    return by_inode, listening
