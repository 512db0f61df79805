"""TCP reassembly: segments in capture order → in-order bytes per direction, bounded.

``Reassembler.segment(...)`` takes the decoded fields of one TCP segment and calls its
``StreamSink`` with in-order data (``data``), lost bytes (``gap``) and the connection's
end (``closed``). Client and server are decided by the SYN, else by the server ports
known to the sniffer (hints and protocols' defaults), else the lower port is the server.
Connections whose start was not captured are picked up: the first seen sequence number of
each side stands in for its ISN.

Out-of-order segments wait in a per-direction buffer; retransmissions are dropped and
overlaps trimmed (bytes already handed on win). A hole is declared a gap — and skipped — when the
receiver acknowledges bytes the capture never held, when a bound is hit, or when the
connection ends. Bounds: bytes buffered per flow (``bound_flow_bytes``), in total
(``bound_total_bytes``), number of connections (``bound_flows``: the least recently
active are closed first); each hit is counted.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final, Protocol

from sniffer.parsers.base import Direction

__all__ = ["Connection", "Half", "Reassembler", "StreamSink"]

M32: Final = 0xFFFFFFFF
HALF32: Final = 0x80000000
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
ACK: Final = 0x10
CLIENT: Final = Direction.CLIENT
SERVER: Final = Direction.SERVER


class Half:
    """One direction of a connection: what its sender has sent."""

    __slots__ = (
        "conn",
        "dir",
        "ip",
        "port",
        "next",
        "isn",
        "ooo",
        "ooo_bytes",
        "fin",
        "peer",
        "held",
        "held_bytes",
        "held_ts",
        "need",
        "evidence",
    )

    def __init__(self, conn: Connection, direction: Direction, ip: bytes, port: int) -> None:
        self.conn = conn
        self.dir = direction
        self.ip = ip
        self.port = port
        self.next: int | None = None
        """Sequence number of the next in-order byte (None until the side is seen)."""
        self.isn: int | None = None
        self.ooo: dict[int, tuple[bytes, float]] = {}
        self.ooo_bytes = 0
        self.fin: int | None = None
        """Sequence number of the FIN, once seen."""
        self.peer: Half = self
        self.held: list[tuple[bytes, float]] | None = None
        """In-order data that answers peer bytes not delivered yet (held back so that a
        parser sees a request before its response even when the capture reordered them)."""
        self.held_bytes = 0
        self.held_ts = 0.0
        self.need = 0
        self.evidence = 0
        """Peer sequence number the held data acknowledges."""


class Connection:
    """One TCP connection. The slots after ``last`` belong to the sink (the pipeline)."""

    __slots__ = (
        "client",
        "server",
        "syn",
        "first",
        "last",
        "keys",
        # used by the pipeline
        "state",
        "proto",
        "parser",
        "expire",
        "pending",
        "pending_bytes",
        "opening",
        "raw",
        "index",
        "error",
        "stream",
        "tries",
        "names",
        "entry_ids",
        "ends",
    )

    def __init__(self, ts: float) -> None:
        self.client: Half
        self.server: Half
        self.syn = False
        self.first = ts
        self.last = ts
        self.keys: tuple[Any, Any] = ((), ())
        self.state = 0
        self.proto: Any = None
        self.parser: Any = None
        self.expire: Any = None
        self.pending: list[tuple[Direction, bytes, float, int]] | None = None
        self.pending_bytes = 0
        self.opening = [b"", b""]
        self.raw: Any = None
        self.index = 0
        self.error = ""
        self.stream = ""
        self.tries = 0
        self.names: tuple[str, str, int, int] = ("", "", 0, 0)
        self.entry_ids: Any = None
        """``kubeweir.entry.tcp_connection_ids`` of the connection, once named."""
        self.ends: Any = None
        """(client info, server info, client Endpoint, server Endpoint) of its entries."""

    def isns(self) -> tuple[int, int]:
        """Client and server ISN (or first seen sequence number; 0 when never seen)."""
        return (self.client.isn or 0, self.server.isn or 0)


class StreamSink(Protocol):
    def opened(self, conn: Connection) -> None: ...
    def data(self, conn: Connection, direction: Direction, data: bytes, ts: float) -> None: ...
    def gap(self, conn: Connection, direction: Direction, length: int, ts: float) -> None: ...
    def closed(self, conn: Connection, ts: float) -> None: ...


class Reassembler:
    def __init__(
        self,
        sink: StreamSink,
        *,
        server_ports: set[int] | frozenset[int] = frozenset(),
        idle_timeout: float = 120.0,
        max_flow_bytes: int = 4 << 20,
        max_total_bytes: int = 128 << 20,
        max_flows: int = 20000,
        hold_timeout: float = 2.0,
        isn_memory: int = 65536,
        isn_memory_age: float = 300.0,
    ) -> None:
        self.sink = sink
        self.isn_memory = isn_memory
        self.isn_memory_age = isn_memory_age
        self._recent_isns: OrderedDict[tuple[bytes, int, bytes, int], tuple[int, int, float]] = (
            OrderedDict()
        )
        """(client ip, port, server ip, port) → (client ISN, server ISN, close time) of
        recently closed connections: at most ``isn_memory``, none older than
        ``isn_memory_age`` seconds (capture clock) after a later close or sweep."""
        self.hold_timeout = hold_timeout
        self.server_ports = frozenset(server_ports)
        self.idle_timeout = idle_timeout
        self.max_flow_bytes = max_flow_bytes
        self.max_total_bytes = max_total_bytes
        self.max_flows = max_flows
        self.halves: dict[tuple[bytes, int, bytes, int], Half] = {}
        self.conns: dict[Connection, None] = {}
        self.buffered = 0
        self._closed: OrderedDict[tuple[bytes, int, bytes, int], float] = OrderedDict()
        self.counters: dict[str, int] = {
            "flows": 0,
            "retransmissions": 0,
            "out_of_order": 0,
            "gaps": 0,
            "gap_bytes": 0,
            "closed_fin": 0,
            "closed_rst": 0,
            "closed_idle": 0,
            "closed_evicted": 0,
            "closed_reused": 0,
            "late_segments": 0,
            "held": 0,
            "bound_flow_bytes": 0,
            "bound_total_bytes": 0,
            "bound_flows": 0,
            "dropped_segments": 0,
        }

    # -- the per-segment path -----------------------------------------------------------

    def packet(self, ts: float, pkt: tuple[Any, ...]) -> None:
        """One decoded TCP packet, as ``PacketDecoder.decode`` returns it."""
        seq: int  # typed: compiled, the sequence arithmetic below is native
        ack: int
        flags: int
        _, src, dst, sport, dport, seq, ack, flags, payload = pkt
        half = self.halves.get((src, sport, dst, dport))
        if half is not None and not flags & 0x07:
            # fast path: no SYN/FIN/RST on a known connection
            conn = half.conn
            conn.last = ts
            if payload:
                if seq == half.next and half.held is None:
                    peer = half.peer
                    pn = peer.next
                    if pn is None or not flags & ACK or ack == pn or (ack - pn) & M32 >= HALF32:
                        half.next = (seq + len(payload)) & M32
                        self.sink.data(conn, half.dir, bytes(payload), ts)
                        if half.ooo:
                            self._drain(half)
                        if peer.held is not None:
                            self._maybe_release(peer)
                        return
            elif not half.peer.ooo:
                return  # a pure ACK with nothing waiting for it
        self._segment(ts, half, src, dst, sport, dport, seq, ack, flags, payload)

    def segment(
        self,
        ts: float,
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        payload: Any,
    ) -> None:
        """One TCP segment's fields (addresses packed)."""
        self.packet(ts, (6, src, dst, sport, dport, seq, ack, flags, payload))

    def _segment(
        self,
        ts: float,
        half: Half | None,
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        payload: Any,
    ) -> None:
        n = len(payload)
        if half is not None and flags & SYN and half.isn is not None and seq != half.isn:
            # a new connection on the same addresses and ports (the old one's end was
            # not captured): close the old one first
            self._close(half.conn, ts, "closed_reused")
            half = None
        if half is None:
            if flags & RST or not (n or flags & SYN):
                return
            if not flags & SYN and self._closed:
                t = self._closed.get((src, sport, dst, dport))
                if t is not None and ts - t < self.idle_timeout:
                    self.counters["late_segments"] += 1
                    return
            half = self._open(ts, src, dst, sport, dport, flags)
        conn = half.conn
        conn.last = ts
        if flags & SYN:
            if half.next is None:
                half.isn = seq
                half.next = (seq + 1) & M32
            # else: a retransmitted SYN, whatever came after it stays delivered
            if flags & ACK:
                peer = half.peer
                if peer.next is None:
                    peer.isn = (ack - 1) & M32
                    peer.next = ack
            seq = (seq + 1) & M32
        if n:
            nxt = half.next
            if nxt is None:
                half.isn = nxt = seq
            d = (seq - nxt) & M32
            peer = half.peer
            if d == 0:
                half.next = (seq + n) & M32
                pn = peer.next
                if half.held is None and (
                    pn is None
                    or not flags & ACK
                    or (ack - pn) & M32 == 0
                    or (ack - pn) & M32 >= HALF32
                ):
                    self.sink.data(conn, half.dir, bytes(payload), ts)
                else:
                    self._hold(half, bytes(payload), ts, ack)
                if half.ooo:
                    self._drain(half)
            elif d < HALF32:
                self._buffer(half, seq, payload, ts)
                held = peer.held
                if held is not None and (seq - peer.need) & M32 < HALF32:
                    # this side moved past the bytes the peer's data answers: they are lost
                    self._force(peer, ts)
            else:
                back = (nxt - seq) & M32
                if back >= n:
                    self.counters["retransmissions"] += 1
                else:  # overlap: the part already delivered is dropped
                    half.next = (seq + n) & M32
                    self._deliver(half, bytes(payload[back:]), ts)
                    if half.ooo:
                        self._drain(half)
            if peer.held is not None:
                self._maybe_release(peer)
        elif flags & ACK:
            peer = half.peer
            if (
                peer.ooo
                and peer.next is not None
                and 0 < ((ack - peer.next) & M32) < HALF32
                and not (peer.fin is not None and ack == (peer.fin + 1) & M32)
            ):
                # the receiver acknowledges bytes the capture never held; on the second
                # such ACK (one may just overtake a reordered segment) they are lost
                peer.evidence += 1
                if peer.evidence >= 2:
                    self._skip(peer, ts)
        if flags & (FIN | RST):
            if flags & RST:
                self._close(conn, ts, "closed_rst")
                return
            half.fin = (seq + n) & M32
            peer = half.peer
            if (
                peer.fin is not None
                and half.next == half.fin
                and peer.next == peer.fin
                and not half.ooo
                and not peer.ooo
                and half.held is None
                and peer.held is None
            ):
                self._close(conn, ts, "closed_fin")

    def _open(self, ts: float, src: bytes, dst: bytes, sport: int, dport: int, flags: int) -> Half:
        if len(self.conns) >= self.max_flows:
            self._evict(ts)
        if flags & SYN:
            sender_is_client = not flags & ACK
        else:
            sp = sport in self.server_ports
            dp = dport in self.server_ports
            sender_is_client = dp if sp != dp else dport <= sport
        conn = Connection(ts)
        conn.syn = bool(flags & SYN)
        a = Half(conn, CLIENT if sender_is_client else SERVER, src, sport)
        b = Half(conn, SERVER if sender_is_client else CLIENT, dst, dport)
        a.peer, b.peer = b, a
        conn.client, conn.server = (a, b) if sender_is_client else (b, a)
        ka = (src, sport, dst, dport)
        kb = (dst, dport, src, sport)
        conn.keys = (ka, kb)
        self.halves[ka] = a
        self.halves[kb] = b
        self.conns[conn] = None
        self.counters["flows"] += 1
        self.sink.opened(conn)
        return a

    def _buffer(self, half: Half, seq: int, payload: Any, ts: float) -> None:
        c = self.counters
        ooo = half.ooo
        old = ooo.get(seq)
        n = len(payload)
        if old is not None:
            c["retransmissions"] += 1
            if len(old[0]) >= n:
                return
            self._release(half, len(old[0]))
        c["out_of_order"] += 1
        ooo[seq] = (bytes(payload), ts)
        half.ooo_bytes += n
        self.buffered += n
        while half.ooo_bytes > self.max_flow_bytes and half.ooo:
            c["bound_flow_bytes"] += 1
            self._skip(half, ts)
        if self.buffered > self.max_total_bytes:
            c["bound_total_bytes"] += 1
            while self.buffered > self.max_total_bytes and half.ooo:
                self._skip(half, ts)
            if self.buffered > self.max_total_bytes:
                self._shed(ts)

    def _release(self, half: Half, n: int) -> None:
        half.ooo_bytes -= n
        self.buffered -= n

    def _shed(self, ts: float) -> None:
        """Free buffered bytes of the fullest flows until under the total bound."""
        fullest = sorted(
            (h for conn in self.conns for h in (conn.client, conn.server) if h.ooo),
            key=lambda h: -h.ooo_bytes,
        )
        for h in fullest:
            while h.ooo and self.buffered > self.max_total_bytes // 2:
                self._skip(h, ts)
            if self.buffered <= self.max_total_bytes // 2:
                break

    def _skip(self, half: Half, ts: float) -> None:
        """Declare the hole before the earliest buffered segment lost, and go on."""
        half.evidence = 0
        nxt = half.next
        assert nxt is not None
        first = min(half.ooo, key=lambda s: (s - nxt) & M32)
        gap = (first - nxt) & M32
        if gap >= HALF32:
            gap = 0
        else:
            half.next = first
        if gap:
            self.counters["gaps"] += 1
            self.counters["gap_bytes"] += gap
            self.sink.gap(half.conn, half.dir, gap, ts)
        self._drain(half)
        if half.peer.held is not None:
            self._maybe_release(half.peer)

    def _deliver(self, half: Half, data: bytes, ts: float) -> None:
        if half.held is None:
            self.sink.data(half.conn, half.dir, data, ts)
        else:
            self._hold(half, data, ts, half.need)

    def _hold(self, half: Half, data: bytes, ts: float, ack: int) -> None:
        peer = half.peer
        if peer.fin is not None and ack == (peer.fin + 1) & M32:
            ack = peer.fin  # the ACK covers the peer's FIN, which is no byte of data
            if half.held is None and peer.next == ack:
                self.sink.data(half.conn, half.dir, data, ts)
                return
        if half.held is None:
            half.held = []
            half.held_bytes = 0
            half.held_ts = ts
            half.need = ack
            self.counters["held"] += 1
        elif (ack - half.need) & M32 < HALF32:
            half.need = ack
        half.held.append((data, ts))
        half.held_bytes += len(data)
        self.buffered += len(data)
        if half.held_bytes > self.max_flow_bytes:
            self.counters["bound_flow_bytes"] += 1
            self._force(half, ts)
        elif self.buffered > self.max_total_bytes:
            self.counters["bound_total_bytes"] += 1
            self._force(half, ts)

    def _maybe_release(self, half: Half) -> None:
        """Hand on held data once the peer has delivered what it acknowledges."""
        pn = half.peer.next
        if pn is not None and (pn - half.need) & M32 < HALF32:
            self._release_held(half)

    def _release_held(self, half: Half) -> None:
        held = half.held
        if held is None:
            return
        half.held = None
        self.buffered -= half.held_bytes
        half.held_bytes = 0
        sink = self.sink
        for data, t in held:
            sink.data(half.conn, half.dir, data, t)

    def _force(self, half: Half, ts: float) -> None:
        """The peer bytes the held data answers are lost: say so, then hand it on."""
        peer = half.peer
        # buffered peer bytes before the needed point still go first, around their holes
        while half.held is not None and peer.ooo and peer.next is not None:
            nxt = peer.next
            first = min(peer.ooo, key=lambda s: (s - nxt) & M32)
            if (half.need - first) & M32 >= HALF32 or first == half.need:
                break
            self._skip(peer, ts)
        if half.held is None:
            return
        pn = peer.next
        if pn is not None:
            gap = (half.need - pn) & M32
            if 0 < gap < HALF32:
                peer.next = half.need
                self.counters["gaps"] += 1
                self.counters["gap_bytes"] += gap
                self.sink.gap(peer.conn, peer.dir, gap, ts)
        self._release_held(half)
        if peer.ooo:
            self._drain(peer)

    def _drain(self, half: Half) -> None:
        ooo = half.ooo
        conn = half.conn
        sink = self.sink
        while ooo:
            nxt = half.next
            assert nxt is not None
            item = ooo.pop(nxt, None)
            if item is None:
                for s in ooo:
                    if (nxt - s) & M32 < HALF32:
                        break
                else:
                    return
                data, t = ooo.pop(s)
                self._release(half, len(data))
                back = (nxt - s) & M32
                if back >= len(data):
                    self.counters["retransmissions"] += 1
                    continue
                data = data[back:]
            else:
                data, t = item
                self._release(half, len(data))
            half.evidence = 0
            half.next = (nxt + len(data)) & M32
            if half.held is None:
                sink.data(conn, half.dir, data, t)
            else:
                self._hold(half, data, t, half.need)

    # -- ends -----------------------------------------------------------------------------

    def _close(self, conn: Connection, ts: float, reason: str) -> None:
        if conn not in self.conns:
            return
        for h in (conn.client, conn.server):
            if h.held is not None:
                self._force(h, ts)
        for h in (conn.client, conn.server):
            while h.ooo:
                self._skip(h, ts)
            if h.peer.held is not None:
                self._force(h.peer, ts)
        del self.conns[conn]
        closed = self._closed
        for k in conn.keys:
            self.halves.pop(k, None)
            closed[k] = ts
            closed.move_to_end(k)
        while len(closed) > 4096:
            closed.popitem(last=False)
        c, s = conn.client, conn.server
        if c.isn is not None and s.isn is not None:
            recent = self._recent_isns
            key = (c.ip, c.port, s.ip, s.port)
            recent[key] = (c.isn, s.isn, ts)
            recent.move_to_end(key)
            self._forget_isns(ts)
        self.counters[reason] += 1
        self.sink.closed(conn, ts)

    def _forget_isns(self, now: float) -> None:
        recent = self._recent_isns
        while len(recent) > self.isn_memory:
            recent.popitem(last=False)
        limit = now - self.isn_memory_age
        while recent:
            first = next(iter(recent.values()))
            if first[2] >= limit:
                break
            recent.popitem(last=False)

    def isns(
        self, client_ip: bytes, cport: int, server_ip: bytes, sport: int
    ) -> tuple[int, int] | None:
        """(client ISN, server ISN) of the connection with these addresses, open or
        recently closed, when the capture saw both; else None. Single dict reads only, so
        another thread may ask while the capture thread runs (the answer is as of the last
        segment processed). Either end's view of client and server is accepted."""
        half = self.halves.get((client_ip, cport, server_ip, sport))
        if half is not None:
            conn = half.conn
            a, b = conn.client.isn, conn.server.isn
            if a is not None and b is not None:
                if conn.client.port == cport and conn.client.ip == client_ip:
                    return (a, b)
                return (b, a)
        done = self._recent_isns.get((client_ip, cport, server_ip, sport))
        if done is not None:
            return (done[0], done[1])
        back = self._recent_isns.get((server_ip, sport, client_ip, cport))
        if back is not None:
            return (back[1], back[0])
        return None

    def _evict(self, ts: float) -> None:
        victims = sorted(self.conns, key=lambda c: c.last)[: max(1, len(self.conns) // 8)]
        for conn in victims:
            self.counters["bound_flows"] += 1
            self._close(conn, ts, "closed_evicted")

    def sweep(self, now: float) -> None:
        """Close connections idle for longer than the idle time-out."""
        limit = now - self.idle_timeout
        hold_limit = now - self.hold_timeout
        self._forget_isns(now)
        for conn in list(self.conns):
            if conn.last < limit:
                self._close(conn, now, "closed_idle")
                continue
            for h in (conn.client, conn.server):
                if h.held is not None and h.held_ts < hold_limit:
                    self._force(h, now)

    def close_all(self, ts: float) -> None:
        for conn in list(self.conns):
            self._close(conn, ts, "closed_idle")
