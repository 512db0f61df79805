"""The offline pipeline: frames → TCP/UDP flows → protocol parsers → entries.

``Pipeline(settings)`` is fed frames (``feed``), told the time (``advance``) and closed
(``close``); ``take()`` hands out the entries completed so far. ``read_pcap`` wires a
capture file to it and streams entries while reading.

Detection is by content first: each stream protocol's detector looks at the opening bytes
of each direction; port hints (settings over the protocols' defaults) break ties and pick
the parser for connections picked up mid-stream (when the protocol can start there). UDP
flows go to datagram parsers the same way. A stream that no protocol recognises, or whose
parser raised ``ParseError``, degrades to ``tcp`` entries — one per client burst and the
server burst that answers it — and capture goes on.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import ipaddress
import math
import os
import struct
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from kubeweir.entry import Endpoint, Entry, tcp_connection_ids, udp_entry_id
from sniffer.capture import CaptureError, PacketDecoder, ip_text, open_capture
from sniffer.parsers import registry
from sniffer.parsers.base import (
    DatagramParser,
    Direction,
    Exchange,
    ParseError,
    ParserLimits,
    StreamParser,
    Switch,
)
from sniffer.parsers.registry import DatagramProtocol, StreamProtocol, Verdict
from sniffer.reassembly import Connection, Reassembler

__all__ = [
    "CaptureWarning",
    "FlowShare",
    "Pipeline",
    "PipelineSettings",
    "load_protocols",
    "read_pcap",
]

DETECT_BYTES: Final = 64
"""Opening bytes of a direction shown to the detectors."""
DETECT_MAX_PENDING: Final = 64 * 1024
"""Bytes held while detectors still say MORE; past this the stream is decided."""
PREVIEW: Final = 256
MIDSTREAM_TRIES: Final = 8
"""Client bursts of an unrecognised mid-stream connection tried as message starts."""

_DETECT: Final = 0
_PARSE: Final = 1
_RAW: Final = 2
CLIENT: Final = Direction.CLIENT
SERVER: Final = Direction.SERVER
_YES: Final = Verdict.YES
_MORE: Final = Verdict.MORE
_STREAM_ID: Final = struct.Struct("!IIH")
_PORTS: Final = struct.Struct("!HH")


class CaptureWarning(UserWarning):
    """A capture file is damaged; the readable part was read."""


@dataclass(frozen=True)
class PipelineSettings:
    limits: ParserLimits = field(default_factory=ParserLimits)
    port_hints: dict[int, str] = field(default_factory=dict)
    """port → protocol name, merged over each protocol's default ports."""
    idle_timeout: float = 120.0
    response_timeout: float = 30.0
    max_flow_bytes: int = 4 << 20
    """Out-of-order bytes buffered per connection direction."""
    max_total_bytes: int = 128 << 20
    """Out-of-order bytes buffered over all connections."""
    max_flows: int = 20000
    """TCP connections (and, separately, UDP flows) tracked at once."""
    node: str = ""
    redact: Callable[[Entry], Entry] | None = None
    endpoint_info: Callable[[str], dict[str, Any]] | None = None


def _load(modules: Iterable[str]) -> list[Any]:
    out = []
    for m in modules:
        try:
            mod = importlib.import_module(m)
        except ModuleNotFoundError as exc:
            if exc.name != m:
                raise
            continue  # listed but not part of this build yet
        out.append(mod.PROTOCOL)
    return out


def load_protocols() -> tuple[list[StreamProtocol], list[DatagramProtocol]]:
    """The registry's protocols, in detection order (modules not present are skipped)."""
    return _load(registry.STREAM_MODULES), _load(registry.DATAGRAM_MODULES)


class _Raw:
    """A raw burst pair on a degraded or unrecognised stream."""

    __slots__ = ("ts", "end", "req_n", "req", "resp_n", "resp", "gaps")

    def __init__(self, ts: float) -> None:
        self.ts = ts
        self.end = ts
        self.req_n = 0
        self.req = b""
        self.resp_n = 0
        self.resp = b""
        self.gaps = 0


class _UdpFlow:
    __slots__ = ("client", "cport", "server", "sport", "parser", "last", "stream", "index", "keys")

    def __init__(self, client: str, cport: int, server: str, sport: int, ts: float) -> None:
        self.client = client
        self.cport = cport
        self.server = server
        self.sport = sport
        self.parser: DatagramParser | None = None
        self.last = ts
        self.index = 0
        self.keys: tuple[Any, ...] = ()
        raw = f"{client}|{cport}|{server}|{sport}".encode()
        self.stream = hashlib.blake2b(raw, digest_size=8, person=b"kubeweir-udps").hexdigest()


def _preview(data: bytes) -> tuple[str, str]:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return base64.b64encode(data).decode(), "base64"
    if text.isprintable() or all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return text, "utf8"
    return base64.b64encode(data).decode(), "base64"


class Pipeline:
    """Frames in, entries out. Not thread-safe; one per capture."""

    def __init__(
        self,
        settings: PipelineSettings | None = None,
        *,
        stream_protocols: Iterable[StreamProtocol] | None = None,
        datagram_protocols: Iterable[DatagramProtocol] | None = None,
    ) -> None:
        s = self.settings = settings or PipelineSettings()
        if stream_protocols is None or datagram_protocols is None:
            st, dg = load_protocols()
            stream_protocols = st if stream_protocols is None else stream_protocols
            datagram_protocols = dg if datagram_protocols is None else datagram_protocols
        self._stream = list(stream_protocols)
        self._stream_by_name = {p.name: p for p in self._stream}
        self._dgram = list(datagram_protocols)
        by_name: dict[str, Any] = {p.name: p for p in self._dgram}
        by_name.update({p.name: p for p in self._stream})
        self._hint_stream: dict[int, StreamProtocol] = {}
        self._hint_dgram: dict[int, DatagramProtocol] = {}
        for p in self._stream:
            for port in p.ports:
                self._hint_stream.setdefault(port, p)
        for d in self._dgram:
            for port in d.ports:
                self._hint_dgram.setdefault(port, d)
        for port, name in s.port_hints.items():
            proto = by_name.get(name)
            if proto is None:
                known = ", ".join(sorted(by_name)) or "none"
                raise ValueError(f"port hint {port}={name}: unknown protocol (known: {known})")
            if isinstance(proto, StreamProtocol):
                self._hint_stream[port] = proto
                self._hint_dgram.pop(port, None)
            else:
                self._hint_dgram[port] = proto
                self._hint_stream.pop(port, None)
        self.limits = s.limits
        self._decoder = PacketDecoder()
        self._decode = self._decoder.decode
        self._tcp = Reassembler(
            self,
            server_ports=set(self._hint_stream) | set(self._hint_dgram),
            idle_timeout=s.idle_timeout,
            max_flow_bytes=s.max_flow_bytes,
            max_total_bytes=s.max_total_bytes,
            max_flows=s.max_flows,
        )
        self._packet = self._tcp.packet
        self._udp: dict[tuple[bytes, int, bytes, int], tuple[_UdpFlow, Direction]] = {}
        self._udp_flows: dict[_UdpFlow, None] = {}
        self._out: list[Entry] = []
        self._packets = 0
        self._bytes = 0
        self._entries = 0
        self._c: dict[str, int] = {
            "parse_errors": 0,
            "parser_bugs": 0,
            "udp_flows": 0,
            "udp_unrecognised": 0,
            "tcp_unrecognised": 0,
            "bound_udp_flows": 0,
            "bound_detect_bytes": 0,
            "roles_swapped": 0,
            "protocol_switches": 0,
        }
        self._pending_total = 0
        self._max_pending_total = max(DETECT_MAX_PENDING, s.max_total_bytes // 4)
        self._now = 0.0
        self._caught_up = 0.0
        self._sweep_every = max(0.05, min(1.0, s.response_timeout / 4, s.idle_timeout / 4))
        self._next_sweep = 0.0
        self._redact = s.redact
        self._info = s.endpoint_info
        self._node = s.node

    # -- public face --------------------------------------------------------------------

    @property
    def counters(self) -> dict[str, int]:
        c = {
            "packets": self._packets,
            "bytes": self._bytes,
            "entries": self._entries,
        }
        c.update(self._tcp.counters)
        c["flows"] = self._tcp.counters["flows"] + self._c["udp_flows"]
        c.update(self._c)
        c.update(self._decoder.counters)
        c["buffered_bytes"] = self._tcp.buffered
        return c

    def feed(self, ts: float, linktype: int, frame: bytes | memoryview) -> None:
        """One captured frame, in capture order."""
        self._packets += 1
        self._bytes += len(frame)
        # methods of native classes called directly (compiled: a native call, not a
        # Python call through a bound method)
        pkt = self._decoder.decode(ts, linktype, frame)
        if ts > self._now:
            self._now = ts
            if ts >= self._next_sweep:
                self.advance(ts)
        if pkt is None:
            return
        if pkt[0] == 6:
            self._tcp.packet(ts, pkt)
        else:
            self._datagram(ts, pkt[1], pkt[2], pkt[3], pkt[4], pkt[8])

    def advance(self, now: float) -> None:
        """Apply time-outs up to ``now`` (capture clock): idle connections and flows are
        closed, unanswered requests become entries with an error."""
        self._next_sweep = now + self._sweep_every
        self._tcp.sweep(now)
        timeout = self.settings.response_timeout
        for conn in self._tcp.conns:
            if conn.expire is not None:
                try:
                    conn.expire(now, timeout)
                    done = conn.parser.take()
                except Exception as exc:
                    if not isinstance(exc, ParseError):
                        self._c["parser_bugs"] += 1
                    self._degrade(conn, exc)
                    continue
                if done:
                    self._emit(conn, done)
        idle = now - self.settings.idle_timeout
        for flow in list(self._udp_flows):
            if flow.parser is not None:
                self._expire_udp(flow, now)
            if flow.last < idle:
                self._drop_udp(flow)

    def _expire_udp(self, flow: _UdpFlow, now: float) -> None:
        assert flow.parser is not None
        try:
            flow.parser.expire(now, self.settings.response_timeout)
        except Exception:
            self._c["parser_bugs"] += 1
        self._collect_udp(flow)

    def close(self) -> None:
        """The capture ended: flush every connection and flow."""
        now = self._now
        self._tcp.close_all(now)
        for flow in list(self._udp_flows):
            if flow.parser is not None:
                self._expire_udp(flow, math.inf)
            self._drop_udp(flow)

    def caught_up(self, ts: float) -> None:
        """The capture has handed over every frame stamped before ``ts`` (its source was
        found empty): raises ``watermark`` while no traffic comes."""
        if ts > self._caught_up:
            self._caught_up = ts

    @property
    def watermark(self) -> float:
        """Capture time up to which frames have been processed: the latest frame's time
        stamp, or a later ``caught_up`` mark. Readable from another thread."""
        return max(self._now, self._caught_up)

    def isns(
        self, client_ip: str, cport: int, server_ip: str, sport: int
    ) -> tuple[int, int] | None:
        """(client ISN, server ISN) of a TCP connection seen by this pipeline, open or
        closed recently (a bounded, time-limited memory in the reassembler), else None.
        Another thread may ask (e.g. TLS capture naming its entries like the wire's): the
        answer covers the frames processed up to ``watermark`` read before the call."""
        packed = ipaddress.ip_address
        return self._tcp.isns(packed(client_ip).packed, cport, packed(server_ip).packed, sport)

    def take(self) -> list[Entry]:
        """The entries completed since the last call."""
        out = self._out[:]
        self._out.clear()
        return out

    def run(
        self, records: Iterable[tuple[float, int, Any]], share: FlowShare | None = None
    ) -> Iterator[Entry]:
        """Feed every record, yielding entries as they complete; close at the end.

        With ``share``, only the TCP connections and UDP flows that ``share`` owns go on
        past decoding (one of several processes reading the same file); every frame
        still counts in ``packets``/``bytes`` and moves the capture clock, so time-outs
        fall where they fall with one process."""
        # Pipeline.feed, inlined: this loop is the hot path of `kubeweir read`
        owned = share.cache if share is not None else None
        owns = share.owns if share is not None else _owns_all
        out = self._out
        decode = self._decode
        packet = self._packet
        packets = self._packets
        nbytes = self._bytes
        now = self._now
        next_sweep = self._next_sweep
        for ts, lt, frame in records:
            packets += 1
            nbytes += len(frame)
            pkt = decode(ts, lt, frame)
            if ts > now:
                now = ts
                if ts >= next_sweep:
                    self._now = now
                    self.advance(ts)
                    next_sweep = self._next_sweep
            if pkt is not None:
                if owned is not None:
                    mine = owned.get(pkt[1:5])
                    if mine is None:
                        mine = owns(pkt)
                    if not mine:
                        continue
                if pkt[0] == 6:
                    packet(ts, pkt)
                else:
                    self._datagram(ts, pkt[1], pkt[2], pkt[3], pkt[4], pkt[8])
                if out:
                    self._packets = packets
                    self._bytes = nbytes
                    self._now = now
                    yield from out
                    out.clear()
        self._packets = packets
        self._bytes = nbytes
        self._now = now
        self.close()
        yield from out
        out.clear()

    # -- StreamSink (called by the reassembler) ----------------------------------------

    def opened(self, conn: Connection) -> None:
        conn.state = _DETECT
        conn.pending = []

    def data(self, conn: Connection, direction: Direction, data: bytes, ts: float) -> None:
        st = conn.state
        if st == _PARSE:
            try:
                parser: StreamParser = conn.parser  # typed: compiled, native method calls
                parser.feed(direction, data, ts)
                done = parser.take()
            except ParseError as exc:
                self._degrade(conn, exc)
                self._raw(conn, direction, data, ts, 0)
                return
            except Exception as bug:  # a parser bug must not stop capture (mypyc: own name)
                self._c["parser_bugs"] += 1
                self._degrade(conn, bug)
                self._raw(conn, direction, data, ts, 0)
                return
            if done:
                self._emit(conn, done)
            if parser.switch is not None:
                self._switch(conn, parser.switch)
        elif st == _RAW:
            if (
                direction == CLIENT
                and conn.tries
                and (conn.raw is None or conn.raw.resp_n)
                and self._retry(conn, data, ts)
            ):
                return
            self._raw(conn, direction, data, ts, 0)
        else:
            self._detect(conn, direction, data, ts, 0)

    def gap(self, conn: Connection, direction: Direction, length: int, ts: float) -> None:
        st = conn.state
        if st == _PARSE:
            try:
                conn.parser.gap(direction, length, ts)
                done = conn.parser.take()
            except ParseError as exc:
                self._degrade(conn, exc)
                self._raw(conn, direction, b"", ts, length)
                return
            except Exception as bug:
                self._c["parser_bugs"] += 1
                self._degrade(conn, bug)
                self._raw(conn, direction, b"", ts, length)
                return
            if done:
                self._emit(conn, done)
        elif st == _RAW:
            self._raw(conn, direction, b"", ts, length)
        else:
            self._detect(conn, direction, b"", ts, length)

    def closed(self, conn: Connection, ts: float) -> None:
        if conn.state == _DETECT:
            self._decide(conn, final=True)
        if conn.state == _PARSE:
            try:
                conn.parser.close(ts)
                done = conn.parser.take()
            except Exception as exc:
                if not isinstance(exc, ParseError):
                    self._c["parser_bugs"] += 1
                self._degrade(conn, exc)
            else:
                if done:
                    self._emit(conn, done)
        if conn.raw is not None:
            self._flush_raw(conn)
        conn.parser = conn.expire = conn.pending = None

    # -- detection ----------------------------------------------------------------------

    def _detect(self, conn: Connection, d: Direction, data: bytes, ts: float, gap: int) -> None:
        assert conn.pending is not None
        conn.pending.append((d, data, ts, gap))
        conn.pending_bytes += len(data)
        self._pending_total += len(data)
        op = conn.opening
        if gap and not op[d]:
            op[d] = b"\0"  # a direction that starts with a hole can't be recognised
        elif len(op[d]) < DETECT_BYTES and data:
            op[d] = (op[d] + data)[:DETECT_BYTES]
        if self._pending_total > self._max_pending_total:
            # bytes waiting for a verdict count against the total bound too
            self._c["bound_detect_bytes"] += 1
            self._decide(conn, final=True)
        else:
            self._decide(conn, final=False)

    def _decide(self, conn: Connection, final: bool) -> None:
        op = conn.opening
        yes: list[StreamProtocol] = []
        no: set[str] = set()
        more = False
        for proto in self._stream:
            for d in (CLIENT, SERVER):
                o = op[d]
                if not o:
                    continue
                v = proto.detect(o, d)
                if v is _YES:
                    yes.append(proto)
                    break
                if v is _MORE and len(o) < DETECT_BYTES:
                    more = True
                else:
                    no.add(proto.name)
        hinted = self._hint_stream.get(conn.server.port) or self._hint_stream.get(conn.client.port)
        if yes:
            # content first; a port hint only breaks a tie
            self._start(conn, hinted if hinted in yes else yes[0])
            return
        if not conn.syn and not more and self._swapped_roles_match(conn):
            return
        if more and not final and conn.pending_bytes < DETECT_MAX_PENDING:
            return
        if hinted is not None:
            if not conn.syn and hinted.midstream:
                # picked up mid-stream: the opening bytes need not start a message
                self._start(conn, hinted)
                return
            if hinted.name not in no:
                self._start(conn, hinted)  # the hinted protocol never said no
                return
        if not final and not op[CLIENT] and conn.pending_bytes < DETECT_MAX_PENDING:
            return  # only the server spoke so far: wait for the client's first bytes
        self._c["tcp_unrecognised"] += 1
        conn.state = _RAW
        if not conn.syn:
            conn.tries = MIDSTREAM_TRIES
        self._replay(conn)

    def _swapped_roles_match(self, conn: Connection) -> bool:
        """Mid-stream, the ports may have named the wrong side the client: if the bytes
        read the other way round are a protocol's, swap the roles and start it."""
        op = conn.opening
        for proto in self._stream:
            if any(op[d] and proto.detect(op[d], d.other) is _YES for d in (CLIENT, SERVER)):
                conn.client, conn.server = conn.server, conn.client
                conn.client.dir, conn.server.dir = CLIENT, SERVER
                conn.opening = [op[SERVER], op[CLIENT]]
                conn.pending = [(d.other, b, t, gp) for d, b, t, gp in conn.pending or []]
                self._c["roles_swapped"] += 1
                self._start(conn, proto)
                return True
        return False

    def _retry(self, conn: Connection, data: bytes, ts: float) -> bool:
        """Mid-stream: a new client burst may start a message a detector knows."""
        conn.tries -= 1
        head = data[:DETECT_BYTES]
        for proto in self._stream:
            if proto.detect(head, CLIENT) is _YES:
                if conn.raw is not None:
                    self._flush_raw(conn)
                self._c["tcp_unrecognised"] -= 1
                conn.tries = 0
                conn.pending = [(CLIENT, data, ts, 0)]
                self._start(conn, proto)
                return True
        return False

    def _start(self, conn: Connection, proto: StreamProtocol) -> None:
        conn.proto = proto
        try:
            conn.parser = proto.factory(self.limits)
        except Exception as exc:
            self._c["parser_bugs"] += 1
            self._degrade(conn, exc)
            self._replay(conn)
            return
        conn.expire = getattr(conn.parser, "expire", None)
        conn.state = _PARSE
        self._replay(conn)

    def _switch(self, conn: Connection, switch: Switch) -> None:
        """The parser says the connection switched protocol (HTTP/1 ``101`` to ``h2c``):
        its exchanges are out; a fresh parser of the new protocol adopts the connection
        and gets the leftover bytes, then everything after them. Entry ids and indexes
        go on counting on the connection. Unknown protocol: the old parser stays."""
        proto = self._stream_by_name.get(switch.proto)
        if proto is None:
            return
        old = conn.parser
        try:
            old.close(switch.ts)
            done = old.take()
            parser = proto.factory(self.limits)
            parser.adopt(switch)
        except Exception as exc:
            if not isinstance(exc, ParseError):
                self._c["parser_bugs"] += 1
            self._degrade(conn, exc)
            return
        if done:
            self._emit(conn, done)
        self._c["protocol_switches"] += 1
        conn.proto = proto
        conn.parser = parser
        conn.expire = getattr(parser, "expire", None)
        for d in (CLIENT, SERVER):
            if switch.leftover[d] and conn.state == _PARSE:
                self.data(conn, d, switch.leftover[d], switch.ts)

    def _replay(self, conn: Connection) -> None:
        pending = conn.pending or []
        conn.pending = None
        self._pending_total -= conn.pending_bytes
        conn.pending_bytes = 0
        for d, data, ts, gap in pending:
            if gap:
                self.gap(conn, d, gap, ts)
            else:
                self.data(conn, d, data, ts)

    def _degrade(self, conn: Connection, exc: BaseException) -> None:
        """The parser gave up: keep what it finished, the rest becomes ``tcp`` entries."""
        self._c["parse_errors"] += 1
        parser = conn.parser
        conn.parser = conn.expire = None
        conn.state = _RAW
        name = conn.proto.name if conn.proto is not None else "?"
        conn.error = f"parse error ({name}): {exc}"
        if parser is not None:
            try:
                done = parser.take()
            except Exception:
                done = []
            if done:
                self._emit(conn, done)

    # -- raw tcp entries ------------------------------------------------------------------

    def _raw(self, conn: Connection, d: Direction, data: bytes, ts: float, gap: int) -> None:
        r = conn.raw
        if r is None:
            r = conn.raw = _Raw(ts)
        if d == CLIENT:
            if r.resp_n or (r.gaps and not r.req_n):
                self._flush_raw(conn)
                r = conn.raw = _Raw(ts)
            if not r.req_n:
                r.ts = ts
            r.req_n += len(data)
            if len(r.req) < PREVIEW:
                r.req += data[: PREVIEW - len(r.req)]
        else:
            if not r.req_n and not r.resp_n:
                r.ts = ts
            r.resp_n += len(data)
            r.end = ts
            if len(r.resp) < PREVIEW:
                r.resp += data[: PREVIEW - len(r.resp)]
        r.gaps += gap

    def _flush_raw(self, conn: Connection) -> None:
        r = conn.raw
        conn.raw = None
        if r is None or not (r.req_n or r.resp_n or r.gaps):
            return
        request: dict[str, Any] = {"bytes": r.req_n}
        if r.req_n:
            request["preview"], request["preview_encoding"] = _preview(r.req)
        response: dict[str, Any] = {}
        if r.resp_n:
            response = {"bytes": r.resp_n}
            response["preview"], response["preview_encoding"] = _preview(r.resp)
        ex = Exchange(
            proto="tcp",
            ts=r.ts,
            end=r.end if r.resp_n else None,
            request=request,
            response=response,
            summary=f"{r.req_n} B → {r.resp_n} B" if r.resp_n else f"{r.req_n} B →",
            error=conn.error or ("gap" if r.gaps else ""),
            gaps=r.gaps,
        )
        self._emit(conn, [ex])

    # -- entries --------------------------------------------------------------------------

    def _endpoint(self, ip: str, port: int) -> Endpoint:
        if self._info is not None:
            return Endpoint(ip=ip, port=port, **self._info(ip))
        return Endpoint(ip=ip, port=port)

    def _emit(self, conn: Connection, exchanges: list[Exchange]) -> None:
        if not conn.stream:
            # the ISNs (or first seen sequence numbers) are frozen with the first entry
            c_isn, s_isn = conn.isns()
            conn.stream = hashlib.blake2b(
                _STREAM_ID.pack(c_isn, s_isn, conn.client.port),
                digest_size=8,
                person=b"kubeweir-tcps",
            ).hexdigest()
            conn.names = (ip_text(conn.client.ip), ip_text(conn.server.ip), c_isn, s_isn)
            conn.entry_ids = tcp_connection_ids(c_isn, s_isn, conn.client.port)
        cip, sip, c_isn, s_isn = conn.names
        entry_id = conn.entry_ids
        cport = conn.client.port
        sport = conn.server.port
        out = self._out
        redact = self._redact
        info = self._info
        node = self._node
        stream = conn.stream
        # The connection's two Endpoints, shared by its entries until endpoint_info
        # says something else about either address (the targeting changed).
        ends = conn.ends
        for ex in exchanges:
            idx = conn.index
            conn.index = idx + 1
            end = ex.end
            if ends is None or info is not None:
                ci = info(cip) if info is not None else {}
                si = info(sip) if info is not None else {}
                if (ends is None or (ends[0] is not ci and ends[0] != ci)
                        or (ends[1] is not si and ends[1] != si)):  # fmt: skip
                    ends = conn.ends = (ci, si, Endpoint(ip=cip, port=cport, **ci),
                                        Endpoint(ip=sip, port=sport, **si))  # fmt: skip
            src = ends[2]
            dst = ends[3]
            entry = Entry(
                id=entry_id(idx),
                ts=ex.ts,
                proto=ex.proto,
                src=src,
                dst=dst,
                elapsed=None if end is None else max(0.0, end - ex.ts),
                request=ex.request,
                response=ex.response,
                summary=ex.summary,
                error=ex.error,
                gaps=ex.gaps,
                stream=stream,
                index=idx,
                node=node,
            )
            out.append(entry if redact is None else redact(entry))
        self._entries += len(exchanges)

    # -- UDP ------------------------------------------------------------------------------

    def _datagram(
        self, ts: float, src: bytes, dst: bytes, sport: int, dport: int, payload: Any
    ) -> None:
        hit = self._udp.get((src, sport, dst, dport))
        data = bytes(payload)
        if hit is None:
            hit = self._open_udp(ts, src, dst, sport, dport, data)
        flow, d = hit
        flow.last = ts
        parser = flow.parser
        if parser is None:
            return
        try:
            parser.feed(d, data, ts)
        except ParseError:
            self._c["parse_errors"] += 1
        except Exception:
            self._c["parser_bugs"] += 1
        self._collect_udp(flow)

    def _open_udp(
        self, ts: float, src: bytes, dst: bytes, sport: int, dport: int, data: bytes
    ) -> tuple[_UdpFlow, Direction]:
        if len(self._udp_flows) >= self.settings.max_flows:
            self._c["bound_udp_flows"] += 1
            for flow in sorted(self._udp_flows, key=lambda f: f.last)[
                : max(1, len(self._udp_flows) // 8)
            ]:
                self._drop_udp(flow)
        hs, hd = self._hint_dgram.get(sport), self._hint_dgram.get(dport)
        proto: DatagramProtocol | None = None
        sender_client = True
        for p in self._dgram:
            if p.detect(data, CLIENT) is _YES:
                proto = p
                break
            if p.detect(data, SERVER) is _YES:
                proto, sender_client = p, False
                break
        if hs is not None and hd is None:
            sender_client = False
        elif hd is not None and hs is None:
            sender_client = True
        if proto is None:
            proto = hd or hs
        s_ip, d_ip = ip_text(src), ip_text(dst)
        if sender_client:
            flow = _UdpFlow(s_ip, sport, d_ip, dport, ts)
        else:
            flow = _UdpFlow(d_ip, dport, s_ip, sport, ts)
        if proto is None:
            self._c["udp_unrecognised"] += 1
        else:
            try:
                flow.parser = proto.factory(self.limits)
            except Exception:
                self._c["parser_bugs"] += 1
        self._c["udp_flows"] += 1
        mine = CLIENT if sender_client else SERVER
        flow.keys = ((src, sport, dst, dport), (dst, dport, src, sport))
        self._udp[flow.keys[0]] = (flow, mine)
        self._udp[flow.keys[1]] = (flow, mine.other)
        self._udp_flows[flow] = None
        return flow, mine

    def _drop_udp(self, flow: _UdpFlow) -> None:
        self._udp_flows.pop(flow, None)
        for key in flow.keys:
            self._udp.pop(key, None)

    def _collect_udp(self, flow: _UdpFlow) -> None:
        assert flow.parser is not None
        try:
            done = flow.parser.take()
        except Exception:
            self._c["parser_bugs"] += 1
            return
        for ex in done:
            idx = flow.index
            flow.index = idx + 1
            txid = ex.txid if ex.txid is not None else idx
            end = ex.end
            entry = Entry(
                id=udp_entry_id(flow.client, flow.cport, flow.server, flow.sport, txid, ex.ts),
                ts=ex.ts,
                proto=ex.proto,
                src=self._endpoint(flow.client, flow.cport),
                dst=self._endpoint(flow.server, flow.sport),
                elapsed=None if end is None else max(0.0, end - ex.ts),
                request=ex.request,
                response=ex.response,
                summary=ex.summary,
                error=ex.error,
                gaps=ex.gaps,
                stream=flow.stream,
                index=idx,
                node=self._node,
            )
            self._out.append(self._redact(entry) if self._redact is not None else entry)
            self._entries += 1


def _owns_all(pkt: Any) -> bool:
    return True


class FlowShare:
    """Worker ``index`` of ``count`` reading one capture: owns a connection's (or UDP
    flow's) packets in both directions, decided the same way in every worker because
    each one sees every frame in the same order. The first ``ROUND_ROBIN`` distinct flows
    are dealt round-robin by first appearance (an even share even with a few flows);
    later ones by a symmetric CRC-32 of the addresses and ports. IP fragments are
    reassembled before the decision (the decoder hands over whole datagrams)."""

    ROUND_ROBIN: ClassVar[int] = 4096
    CACHE: ClassVar[int] = 1 << 16
    """Directional (src, dst, sport, dport) → owner answers cached; cleared when full."""

    __slots__ = ("index", "count", "_dealt", "cache")

    def __init__(self, index: int, count: int) -> None:
        if not 0 <= index < count:
            raise ValueError(f"worker {index} of {count}")
        self.index = index
        self.count = count
        self._dealt: dict[tuple[bytes, int, bytes, int], int] = {}
        self.cache: dict[tuple[Any, ...], bool] = {}
        """(src, dst, sport, dport) → owned, as ``owns`` answered (for inlined lookups)."""

    def owner(self, src: bytes, dst: bytes, sport: int, dport: int) -> int:
        """The worker that owns this flow (either direction)."""
        a, b = (src, sport), (dst, dport)
        key = (src, sport, dst, dport) if a <= b else (dst, dport, src, sport)
        dealt = self._dealt
        w = dealt.get(key)
        if w is None:
            if len(dealt) < self.ROUND_ROBIN:
                w = dealt[key] = len(dealt) % self.count
            else:
                w = zlib.crc32(key[0] + key[2] + _PORTS.pack(key[1], key[3])) % self.count
        return w

    def owns(self, pkt: Any) -> bool:
        """Is this decoded packet (``PacketDecoder.decode``) one of this worker's?"""
        key = pkt[1:5]
        cache = self.cache
        mine = cache.get(key)
        if mine is None:
            if len(cache) >= self.CACHE:
                cache.clear()
            mine = cache[key] = self.owner(*key) == self.index
        return mine


def read_pcap(
    path: str | os.PathLike[str],
    settings: PipelineSettings | None = None,
    *,
    pipeline: Pipeline | None = None,
    on_error: Callable[[CaptureError], None] | None = None,
) -> Iterator[Entry]:
    """Stream the entries of a pcap/pcapng file while reading it.

    Damage in the file is reported through ``on_error`` (default: a ``CaptureWarning``)
    and the readable rest is still read. A file that is not a capture at all raises
    ``CaptureError``. Pass ``pipeline`` to read its counters afterwards.
    """
    pipe = pipeline or Pipeline(settings)
    with open_capture(path) as reader:
        yield from pipe.run(reader)
    for err in reader.errors:
        if on_error is not None:
            on_error(err)
        else:
            warnings.warn(f"{reader.path}: {err}", CaptureWarning, stacklevel=2)
