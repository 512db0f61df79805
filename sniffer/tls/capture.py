"""TLS plaintext → the protocol parsers → entries (``TlsCapture``).

One thread polls the uprobe ring buffer and, every ``scan_interval``, re-reads ``/proc``:
the targeted pods' network namespaces (a namespace is targeted when one of its local
addresses is a target IP), their processes (the ``targets`` map), and their libssl files
(attached per inode, detached when no targeted process needs them any more). ``exec``
events from the kernel let a new program in a targeted pod be targeted within
milliseconds, before it speaks TLS; forked children are targeted by the kernel itself.

Each ``(process, SSL*)`` is a stream. Its socket comes from the fd the kernel side
learnt (see ``openssl.bpf.c``) → ``/proc/PID/fd`` → socket inode → the namespace's
``/proc/PID/net/tcp{,6}`` → the 4-tuple. The process is the server when its local port is a
listening port of its namespace. Plaintext it writes is CLIENT→SERVER data when it is the
client, and so on; the bytes go to a ``Pipeline``'s stream interface (the same detection,
HTTP/1, HTTP/2, gRPC... parsers and degradation to ``tcp`` entries as captured packets).

Entry ids. ``tcp_entry_id`` needs both ISNs. The packet capture of the same sniffer has
them for every connection of a targeted pod, open or recently closed: they are looked up
there (``isn_lookup``, the agent's ``Pipeline.isns``). The entries wait until the packet
capture has processed its frames up to the stream's first plaintext (``wire_clock``, the
pipeline's ``watermark``, plus ``isn_slack``): the handshake came before it, so a lookup
that still finds nothing then means the wire never saw the connection. How late the packet
capture runs (a loaded node) does not matter; ``isn_wait_max`` bounds the wait should it
stall. Without a wire clock the entries wait ``isn_wait`` seconds. When the packets
never show the connection, a stand-in pair is derived from the 4-tuple and the
connection's first-seen time in this sniffer (stable for both ends on this node, not
across nodes). Both ends of one connection on this node share one decision. TLS entries
use ``index + TLS_INDEX_BASE`` in the id (``Entry.index`` stays the real index) so that
they never collide with the ``tcp`` entries of the same connection's ciphertext, and the
``stream`` is the wire connection's stream id.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

from kubeweir.entry import Entry, tcp_entry_id
from sniffer.parsers.base import Direction
from sniffer.pipeline import Pipeline, PipelineSettings
from sniffer.reassembly import Connection, Half
from sniffer.tls import procs
from sniffer.tls.probes import (
    ADDR_PEER,
    CHUNK,
    DIR_WRITE,
    EVENT_HEADER,
    HEADER_SIZE,
    KIND_ADDR,
    KIND_DATA,
    KIND_EXEC,
    KIND_FREE,
    MAX_CHUNKS,
    Probes,
)

__all__ = ["TLS_INDEX_BASE", "IsnLookup", "TlsCapture", "TlsSettings"]

log = logging.getLogger("kubeweir.sniffer.tls")

TLS_INDEX_BASE = 1 << 32
POLL_MS = 20
"""Longest wait between ring drains (data events do not wake the reader)."""
INODE_CHECK = 1.0
"""Seconds between checks of a stream's socket inode on its data path."""
TCP_TABLE_TTL = 0.5
"""Seconds a read of a namespace's TCP table answers for sockets it holds."""
_TcpTable = tuple[dict[int, procs.TcpSocket], set[int]]
_STREAM_ID = struct.Struct("!IIH")
CLIENT = Direction.CLIENT
SERVER = Direction.SERVER

IsnLookup = Callable[[str, int, str, int], "tuple[int, int] | None"]
"""(client ip, client port, server ip, server port) → (client ISN, server ISN) or None."""


@dataclass(frozen=True)
class TlsSettings:
    scan_interval: float = 1.0
    """Seconds between /proc scans (new processes, departed pods, closed sockets)."""
    isn_wait: float = 1.5
    """Without a ``wire_clock``: seconds entries wait for their connection's ISNs."""
    isn_slack: float = 0.25
    """With one: how far past a stream's first plaintext the packet capture must have
    processed frames before the entries give up on the wire's ISNs (time stamps of the
    two captures may differ a little; frames of several CPUs interleave)."""
    isn_wait_max: float = 30.0
    """With one: longest wait (wall clock) should the packet capture stall."""
    max_pending_bytes: int = 1 << 20
    """Plaintext held per stream while its socket is not known yet."""
    unresolved_timeout: float = 5.0
    """Seconds a stream may stay without a socket before its held bytes are dropped."""


@dataclass
class _Stream:
    tgid: int
    ssl: int
    first: float
    fd: int = -1
    inode: int = 0
    checked: float = 0.0
    conn: Connection | None = None
    local_client: bool = True
    key: tuple[str, int, str, int] = ("", 0, "", 0)
    held: list[tuple[int, bytes, float, int]] = field(default_factory=list)
    held_bytes: int = 0
    last: float = 0.0
    waiting: list[Entry] = field(default_factory=list)


@dataclass
class _Ids:
    first: float
    isns: tuple[int, int] | None = None
    source: str = ""
    used: float = 0.0


def _ip_bytes(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


class TlsCapture:
    """Reads the targeted pods' TLS plaintext and hands finished entries to ``on_entries``
    (from its own thread). ``start()``, ``set_targets(ips)`` any time, ``stop()``."""

    def __init__(
        self,
        pipeline_settings: PipelineSettings,
        on_entries: Callable[[list[Entry]], None],
        *,
        isn_lookup: IsnLookup | None = None,
        wire_clock: Callable[[], float] | None = None,
        settings: TlsSettings | None = None,
    ) -> None:
        self.settings = settings or TlsSettings()
        ps = pipeline_settings
        self._redact = ps.redact
        # the stream interface of a pipeline of our own (not thread-safe: this thread only)
        self.pipeline = Pipeline(
            PipelineSettings(
                limits=ps.limits,
                port_hints=ps.port_hints,
                node=ps.node,
                endpoint_info=ps.endpoint_info,
                response_timeout=ps.response_timeout,
                idle_timeout=ps.idle_timeout,
            )
        )
        self.on_entries = on_entries
        self.isn_lookup = isn_lookup
        self.wire_clock = wire_clock
        self.probes: Probes | None = None
        self._lock = threading.Lock()
        self._target_ips: frozenset[str] = frozenset()
        self._rescan = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._procs_thread: threading.Thread | None = None
        self._execs: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._sync = threading.Lock()  # libraries and the scan: one writer at a time
        self._map_lock = threading.Lock()  # the targets map (exec events don't wait on scans)
        self._exec_added: dict[int, float] = {}
        """pid → when an exec event targeted it (a scan that started earlier keeps it)."""
        self._streams: dict[tuple[int, int], _Stream] = {}
        self._ids: dict[tuple[str, int, str, int], _Ids] = {}
        self._ns_addrs: dict[int, set[str]] = {}
        self._ns_checked: dict[int, float] = {}
        self.targeted_netns: frozenset[int] = frozenset()
        self._lib_users: dict[tuple[int, int], set[int]] = {}
        self._pid_libs: dict[int, set[str]] = {}
        self._clock = time.time() - time.monotonic()
        self._ready: list[Entry] = []
        self._parked: list[_Stream] = []
        self._by_fd: dict[tuple[int, int], _Stream] = {}
        self._tcp_tables: dict[int, tuple[float, dict[int, procs.TcpSocket], set[int]]] = {}
        self._addrs: dict[tuple[int, int], dict[int, tuple[str, int]]] = {}
        """(tgid, fd) → {ADDR_PEER/ADDR_LOCAL: (ip, port)} from the kernel's ADDR events."""
        self.c: dict[str, int] = {
            "events": 0,
            "bytes": 0,
            "streams": 0,
            "execs_targeted": 0,
            "unresolved_dropped_bytes": 0,
            "held_overflow_bytes": 0,
            "entries": 0,
            "isn_from_packets": 0,
            "isn_fallback": 0,
            "scans": 0,
        }

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> TlsCapture:
        """Load and start (raises ``TlsProbeError`` when uprobes can't be used here)."""
        self.probes = Probes(self._on_event)
        self._scan(time.monotonic())
        self._thread = threading.Thread(target=self._run, name="tls", daemon=True)
        self._thread.start()
        self._procs_thread = threading.Thread(target=self._run_procs, name="tls-procs",
                                              daemon=True)  # fmt: skip
        self._procs_thread.start()
        return self

    def stop(self) -> None:
        """Detach every probe, close every stream, hand over the last entries."""
        self._stop.set()
        self._execs.put(-1)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._procs_thread is not None:
            self._procs_thread.join(timeout=10)
        for st in list(self._streams.values()):
            self._close_stream(st)
        self._finish_waiting(force=True)
        if self._ready:
            self.on_entries(self._ready)
            self._ready = []
        if self.probes is not None:
            self.probes.close()
            self.probes = None

    def set_targets(self, ips: Iterable[str]) -> None:
        """The target IPs (the targeting listener); applied by the next scan, at once."""
        with self._lock:
            self._target_ips = frozenset(str(ipaddress.ip_address(ip)) for ip in ips)
        self._rescan.set()

    @property
    def counters(self) -> dict[str, int]:
        c = dict(self.c)
        if self.probes is not None:
            c.update({f"kernel_{k}": v for k, v in self.probes.counters().items()})
            c["attached_libraries"] = len(self.probes.libs)
            c["targeted_processes"] = len(self.probes.pids)
        c["open_streams"] = len(self._streams)
        return c

    # --- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        """The ring: events → streams → entries. Never reads /proc of a process that may
        be exec'ing (that can block on the kernel's exec lock): see ``_run_procs``."""
        assert self.probes is not None
        next_sweep = time.monotonic() + self.settings.scan_interval
        while not self._stop.is_set():
            try:
                self.probes.poll(POLL_MS)
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + self.settings.scan_interval
                self._finish_waiting(force=False)
                if self._ready:
                    out, self._ready = self._ready, []
                    self.on_entries(out)
            except Exception:  # noqa: BLE001 - capture goes on
                log.exception("TLS capture loop error")
                time.sleep(0.1)

    def _run_procs(self) -> None:
        """Processes: exec events and the periodic /proc scan (a thread of its own: a
        /proc read of an exec'ing process may wait on that exec)."""
        next_scan = time.monotonic() + self.settings.scan_interval
        while not self._stop.is_set():
            try:
                timeout = max(0.0, next_scan - time.monotonic())
                try:
                    pid = self._execs.get(timeout=min(timeout, 0.2))
                except queue.Empty:
                    pid = 0
                if pid > 0:
                    self._on_exec(pid)
                now = time.monotonic()
                if now >= next_scan or self._rescan.is_set():
                    self._rescan.clear()
                    self._scan(now)
                    next_scan = now + self.settings.scan_interval
            except Exception:  # noqa: BLE001 - capture goes on
                log.exception("TLS process scan error")
                time.sleep(0.1)

    # --- processes and libraries ----------------------------------------------------------
    def _ns_targeted(self, ino: int, pid: int, now: float, targets: frozenset[str]) -> bool:
        if ino not in self._ns_addrs or now - self._ns_checked.get(ino, 0.0) > 30.0:
            self._ns_addrs[ino] = procs.netns_addresses(pid)
            self._ns_checked[ino] = now
        return bool(self._ns_addrs[ino] & targets)

    def _scan(self, now: float) -> None:
        with self._sync:
            self._scan_locked(now)

    def _scan_locked(self, now: float) -> None:
        probes = self.probes
        assert probes is not None
        self.c["scans"] += 1
        with self._lock:
            targets = self._target_ips
        host_ns = procs.netns_inode(1)
        pids: set[int] = set()
        targeted_ns: set[int] = set()
        if targets:
            seen_ns: dict[int, bool] = {}
            for pid in procs.list_pids():
                ino = procs.netns_inode(pid)
                if ino is None or ino == host_ns:
                    continue
                hit = seen_ns.get(ino)
                if hit is None:
                    hit = seen_ns[ino] = self._ns_targeted(ino, pid, now, targets)
                if hit:
                    pids.add(pid)
                    targeted_ns.add(ino)
        self.targeted_netns = frozenset(targeted_ns)
        with self._map_lock:
            for pid, at in list(self._exec_added.items()):
                if at >= now - 5.0 and procs.netns_inode(pid) in targeted_ns:
                    pids.add(pid)  # exec'd while this scan was listing /proc
                elif at < now - 5.0:
                    del self._exec_added[pid]
            probes.set_pids(pids)
        for extra in probes.map_pids() - pids:  # children the kernel added, since gone/moved
            if procs.netns_inode(extra) not in targeted_ns:
                probes.set_pids(probes.pids | {extra})
                probes.set_pids(probes.pids - {extra})
        # libraries: attach what targeted processes use; detach what none uses any more
        for pid in list(self._pid_libs):
            if pid not in pids:
                del self._pid_libs[pid]
        for pid in pids:
            if pid not in self._pid_libs or self.c["scans"] % 5 == 0:
                self._pid_libs[pid] = procs.libssl_paths(pid)
        self._sync_libs()

    def _sync_libs(self) -> None:
        probes = self.probes
        assert probes is not None
        users: dict[tuple[int, int], set[int]] = {}
        for pid, paths in self._pid_libs.items():
            for path in paths:
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key not in probes.libs:
                    probes.attach(path)
                users.setdefault(key, set()).add(pid)
        for key in list(probes.libs):
            if key not in users:
                probes.detach(key)
                log.info("TLS probes removed from %r (no targeted process uses it)", key)
        self._lib_users = users

    def _on_exec(self, pid: int) -> None:
        ino = procs.netns_inode(pid)
        if ino is None or ino == procs.netns_inode(1):
            return
        with self._lock:
            targets = self._target_ips
        if not targets or not self._ns_targeted(ino, pid, time.monotonic(), targets):
            return
        with self._map_lock:  # targeted first: the program may speak TLS within milliseconds
            assert self.probes is not None
            self.probes.add_pid(pid)
            self._exec_added[pid] = time.monotonic()
            self.c["execs_targeted"] += 1
        paths = procs.libssl_paths(pid)
        with self._sync:
            self._pid_libs[pid] = paths
            self._sync_libs()

    # --- events -------------------------------------------------------------------------
    def _on_event(self, raw: bytes) -> None:
        """One ring record (header + data), copied out of the ring."""
        ts_ns, ssl, kind, tgid, _tid, fd, d, length, off, size = EVENT_HEADER.unpack_from(raw)
        if kind != KIND_DATA:
            if kind == KIND_EXEC:
                self._execs.put(tgid)  # handled on the procs thread
            elif kind == KIND_ADDR:
                self._on_addr(tgid, fd, d, raw[HEADER_SIZE:])
            elif kind == KIND_FREE:
                done = self._streams.get((tgid, ssl))
                if done is not None:
                    self._close_stream(done)
            return
        data = raw[HEADER_SIZE : HEADER_SIZE + size]
        n = len(data)
        c = self.c
        c["events"] += 1
        c["bytes"] += n
        ts = ts_ns / 1e9 + self._clock
        # bytes of the call not carried by any event: unreadable, or past the per-call bound
        gap = min(CHUNK, length - off) if n == 0 else 0
        end = off + (n or gap)
        if end >= CHUNK * MAX_CHUNKS and length > end:
            gap += length - end
        st = self._streams.get((tgid, ssl))
        if st is not None and st.conn is not None and fd >= 0:
            # a freed SSL* address is soon reused for the next connection. The SSL_free
            # probe closes the stream first; should its event be lost, a TLS connection
            # never changes its fd, and with the same fd number the socket inode differs
            # (looked at once a second per stream: a readlink per event costs) — or the
            # accept/getpeername address event tells (see _on_addr)
            if fd != st.fd:
                self._close_stream(st)
                st = None
            elif ts - st.checked > INODE_CHECK:
                st.checked = ts
                inode = procs.socket_inode(tgid, fd)
                if inode is not None and st.inode > 0 and inode != st.inode:
                    self._close_stream(st)
                    st = None
        if st is None:
            st = self._streams[(tgid, ssl)] = _Stream(tgid, ssl, ts, checked=ts)
            c["streams"] += 1
        st.last = ts
        if st.conn is None:
            if fd < 0:
                assert self.probes is not None
                fd = self.probes.ssl_fd(tgid, ssl)
            st.held.append((d, data, ts, gap))
            st.held_bytes += n
            if fd < 0 or not self._resolve(st, fd):
                if st.held_bytes > self.settings.max_pending_bytes:
                    c["held_overflow_bytes"] += st.held_bytes
                    st.held.clear()
                    st.held_bytes = 0
                return
            held, st.held, st.held_bytes = st.held, [], 0
            for hd, b, t, g in held:
                self._feed(st, hd, b, t, g)
            return
        self._feed(st, d, data, ts, gap)

    def _on_addr(self, tgid: int, fd: int, which: int, raw: bytes) -> None:
        family = int.from_bytes(raw[:2], "little") if len(raw) >= 2 else 0
        port = int.from_bytes(raw[2:4], "big") if len(raw) >= 4 else 0
        if family == socket.AF_INET and len(raw) >= 8:
            ip = socket.inet_ntop(socket.AF_INET, raw[4:8])
        elif family == socket.AF_INET6 and len(raw) >= 24:
            a6 = ipaddress.IPv6Address(raw[8:24])
            ip = str(a6.ipv4_mapped or a6)
        else:
            return  # not an IP socket
        if len(self._addrs) > 65536:
            for k in list(self._addrs)[:32768]:
                del self._addrs[k]
        key = (tgid, fd)
        self._addrs.setdefault(key, {})[which] = (ip, port)
        st = self._by_fd.get(key)
        if st is not None and st.conn is not None and which == ADDR_PEER:
            remote = (st.key[2], st.key[3]) if st.local_client else (st.key[0], st.key[1])
            if remote != (ip, port):
                self._close_stream(st)  # the fd now names a new connection

    def _tcp_table(self, tgid: int, inode: int | None) -> _TcpTable:
        """``tgid``'s namespace's TCP table: a recent read when it has ``inode`` (many new
        connections at once resolve from one read of ``/proc/PID/net/tcp``), else fresh."""
        now = time.monotonic()
        hit = self._tcp_tables.get(tgid)
        if hit is not None and now - hit[0] < TCP_TABLE_TTL and inode in hit[1]:
            return hit[1], hit[2]
        if len(self._tcp_tables) > 256:
            self._tcp_tables.clear()
        table, listening = procs.tcp_sockets(tgid)
        self._tcp_tables[tgid] = (now, table, listening)
        return table, listening

    def _resolve(self, st: _Stream, fd: int) -> bool:
        inode = procs.socket_inode(st.tgid, fd)
        table, listening = self._tcp_table(st.tgid, inode)
        sock = table.get(inode) if inode is not None else None
        if sock is not None:
            local, remote = (sock.local_ip, sock.local_port), (sock.remote_ip, sock.remote_port)
        else:
            # closed before we looked: the addresses the process itself asked the kernel for
            known = self._addrs.get((st.tgid, fd), {})
            if len(known) < 2:
                return False
            remote, local = known[ADDR_PEER], known[1 - ADDR_PEER]
            inode = -1
        st.fd, st.inode = fd, inode or -1
        self._by_fd[(st.tgid, fd)] = st
        if listening:
            server = local[1] in listening and remote[1] not in listening
        else:
            server = local[1] < remote[1]
        st.local_client = not server
        (cip, cport), (sip, sport) = (remote, local) if server else (local, remote)
        st.key = (cip, cport, sip, sport)
        ids = self._ids.get(st.key)
        if ids is None:
            ids = self._ids[st.key] = _Ids(first=st.first)
        conn = Connection(st.first)
        conn.client = Half(conn, CLIENT, _ip_bytes(cip), cport)
        conn.server = Half(conn, SERVER, _ip_bytes(sip), sport)
        conn.client.peer, conn.server.peer = conn.server, conn.client
        conn.syn = True  # plaintext starts at a message boundary
        st.conn = conn
        self.pipeline.opened(conn)
        return True

    def _direction(self, st: _Stream, d: int) -> Direction:
        wrote = d == DIR_WRITE
        return CLIENT if wrote == st.local_client else SERVER

    def _feed(self, st: _Stream, d: int, data: bytes, ts: float, gap: int) -> None:
        conn = st.conn
        assert conn is not None
        direction = self._direction(st, d)
        if data:
            self.pipeline.data(conn, direction, data, ts)
        if gap:
            self.pipeline.gap(conn, direction, gap, ts)
        self._collect(st)

    def _collect(self, st: _Stream) -> None:
        out = self.pipeline.take()
        if out:
            st.waiting.extend(out)

    def _close_stream(self, st: _Stream) -> None:
        self._streams.pop((st.tgid, st.ssl), None)
        if self._by_fd.get((st.tgid, st.fd)) is st:
            del self._by_fd[(st.tgid, st.fd)]
        if st.conn is None:
            if st.held_bytes:
                self.c["unresolved_dropped_bytes"] += st.held_bytes
            return
        self.pipeline.closed(st.conn, st.last)
        self._collect(st)
        if st.waiting:
            self._finalize(st, force=False)
            if st.waiting:
                self._parked.append(st)  # still waiting for the wire's ISNs

    def _sweep(self, now: float) -> None:
        wall = now + self._clock
        for st in list(self._streams.values()):
            if st.conn is None:
                if wall - st.first > self.settings.unresolved_timeout:
                    self._close_stream(st)
                continue
            if procs.socket_inode(st.tgid, st.fd) != st.inode:
                self._close_stream(st)  # socket closed, process exited
            elif wall - st.last > self.pipeline.settings.idle_timeout:
                self._close_stream(st)
        stale = wall - 600.0
        for key, ids in list(self._ids.items()):
            if ids.used and ids.used < stale:
                del self._ids[key]

    # --- ids ----------------------------------------------------------------------------
    def _isns(self, st: _Stream, force: bool) -> tuple[int, int] | None:
        ids = self._ids[st.key]
        s = self.settings
        # the wire's progress is read before the lookup: what it covers, the lookup sees
        wire = self.wire_clock() if self.wire_clock is not None else None
        if ids.isns is None and self.isn_lookup is not None:
            found = self.isn_lookup(*st.key)
            if found is not None:
                ids.isns, ids.source = found, "packets"
                self.c["isn_from_packets"] += 1
        if ids.isns is None and not force:
            waited = time.time() - ids.first
            if wire is None:
                force = waited > s.isn_wait
            else:
                force = wire >= ids.first + s.isn_slack or waited > s.isn_wait_max
        if ids.isns is None and force:
            raw = f"{st.key[0]}|{st.key[1]}|{st.key[2]}|{st.key[3]}|{int(ids.first * 1000)}"
            h = hashlib.blake2b(raw.encode(), digest_size=8, person=b"kubeweir-tlsid").digest()
            ids.isns = (int.from_bytes(h[:4], "big"), int.from_bytes(h[4:], "big"))
            ids.source = "fallback"
            self.c["isn_fallback"] += 1
        ids.used = time.time()
        return ids.isns

    def _finalize(self, st: _Stream, force: bool) -> None:
        isns = self._isns(st, force)
        if isns is None:
            return
        c_isn, s_isn = isns
        cport = st.key[1]
        stream = hashlib.blake2b(
            _STREAM_ID.pack(c_isn, s_isn, cport), digest_size=8, person=b"kubeweir-tcps"
        ).hexdigest()
        redact = self._redact
        for e in st.waiting:
            e = msgspec.structs.replace(
                e,
                id=tcp_entry_id(c_isn, s_isn, cport, TLS_INDEX_BASE + e.index),
                stream=stream,
                tls=True,
            )
            self._ready.append(e if redact is None else redact(e))
        self.c["entries"] += len(st.waiting)
        st.waiting = []

    def _finish_waiting(self, force: bool) -> None:
        for st in list(self._streams.values()):
            if st.waiting:
                self._finalize(st, force)
        if self._parked:
            for st in self._parked:
                self._finalize(st, force)
            self._parked = [st for st in self._parked if st.waiting]
