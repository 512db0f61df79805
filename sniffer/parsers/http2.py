"""HTTP/2 (cleartext, RFC 9113) and gRPC parser: frames, HPACK, streams as entries.

Entries (``proto="http2"``, or ``"grpc"`` when the content-type is ``application/grpc``)
— ``PROTOCOL_FIELDS``:

- request: ``method``, ``path``, ``query``, ``scheme``, ``authority``, ``version``
  (``HTTP/2``), ``headers`` (lower-cased, pseudo-headers apart), ``body``,
  ``body_encoding``, ``body_size``, ``body_truncated``, ``content_type``, ``stream_id``,
  ``trailers``; gRPC adds ``service``, ``rpc``, ``messages`` (decoded protobuf, see
  ``sniffer.parsers.grpc``), ``message_count``.
- response: ``status`` (int), ``headers``, body fields as above, ``trailers``,
  ``informational`` (1xx statuses); gRPC adds ``grpc_status``, ``grpc_status_name``,
  ``grpc_message``, ``messages``, ``message_count``.
- extra on either side: ``headers_error`` (HPACK could not decode the block — typically
  a capture that started mid-connection, whose dynamic table entries were never seen),
  ``frames`` (frames counted on the stream), ``reset`` (RST_STREAM error code name).

Connection: the client preface is skipped; SETTINGS (header table size), PING, GOAWAY,
WINDOW_UPDATE and PRIORITY are read and not entries. One HPACK decoder per direction
(RFC 7541), so the dynamic table survives across streams. A capture that starts
mid-connection is followed from the first plausible frame header; after a lost segment
the parser re-synchronises at the next segment that starts with a plausible frame.

``Upgrade: h2c`` (RFC 7540 §3.2): the HTTP/1 parser reports the ``101`` as an
``http`` entry (``upgrade: h2c``) and hands the connection over (``StreamParser.switch``);
``adopt`` takes the upgrade request as stream 1, half-closed by the client, and applies its
``HTTP2-Settings``. Stream 1's entry has the HTTP/1 request's fields (``version``
``HTTP/1.1``, ``headers`` as sent, ``scheme`` ``http``, ``authority`` from ``Host``,
``upgrade`` ``h2c``) and the HTTP/2 response. h2c with prior knowledge (the preface) is
recognised here, as is a server's opening SETTINGS frame.

For field names in gRPC messages, build the protocol with ``make_protocol(schemas)``
(a ``ProtoSchemas`` from a FileDescriptorSet) instead of the default ``PROTOCOL``.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import hpack
from hpack.exceptions import HPACKError

from sniffer.parsers._http_body import BodySink
from sniffer.parsers.base import (
    Direction,
    Exchange,
    ParseError,
    ParserLimits,
    StreamParser,
    Switch,
)
from sniffer.parsers.grpc import STATUS_NAMES, GrpcBody, split_path
from sniffer.parsers.protobuf import ProtoSchemas
from sniffer.parsers.registry import StreamProtocol, Verdict

__all__ = ["PREFACE", "PROTOCOL", "PROTOCOL_FIELDS", "Http2Parser", "make_protocol"]

PROTOCOL_FIELDS = {
    "request": [
        "method", "path", "query", "scheme", "authority", "version", "headers", "body",
        "body_encoding", "body_size", "body_truncated", "content_type", "stream_id",
        "trailers", "service", "rpc", "messages", "message_count", "headers_error",
    ],
    "response": [
        "status", "headers", "body", "body_encoding", "body_size", "body_truncated",
        "content_type", "trailers", "informational", "grpc_status", "grpc_status_name",
        "grpc_message", "messages", "message_count", "headers_error", "reset",
    ],
}  # fmt: skip

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEAD = struct.Struct("!HBBBI")  # length as 16+8 bits, type, flags, stream id
_U32 = struct.Struct("!I")
_SETTING = struct.Struct("!HI")

# RFC 9113 §6: frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20

# RFC 9113 §7: error codes
_ERRORS = (
    "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
    "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
    "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
)  # fmt: skip

# what a frame header must look like to be believed when re-synchronising: allowed flags,
# whether the stream id is 0, a fixed payload length (or None)
_SHAPES: dict[int, tuple[int, bool, int | None]] = {
    DATA: (_END_STREAM | _PADDED, False, None),
    HEADERS: (_END_STREAM | _END_HEADERS | _PADDED | _PRIORITY, False, None),
    PRIORITY: (0, False, 5),
    RST_STREAM: (0, False, 4),
    SETTINGS: (_ACK, True, None),
    PUSH_PROMISE: (_END_HEADERS | _PADDED, False, None),
    PING: (_ACK, True, 8),
    GOAWAY: (0, True, None),
    WINDOW_UPDATE: (0, False, 4),
    CONTINUATION: (_END_HEADERS, False, None),
}
_MAX_FRAME = 1 << 24
_RESYNC_FRAME = 1 << 20
_RESYNC_GIVE_UP = 1 << 20
"""Bytes discarded while looking for a frame boundary before the stream is declared
not HTTP/2."""
_MAX_HEADER_BLOCK = 1 << 20


def _err(code: int) -> str:
    return _ERRORS[code] if code < len(_ERRORS) else f"0x{code:x}"


def plausible(data: bytes | bytearray, pos: int = 0) -> bool:
    """Whether 9 bytes at ``pos`` look like a frame header (for re-synchronising)."""
    if len(data) - pos < 9:
        return False
    hi, lo, t, flags, sid = _HEAD.unpack_from(data, pos)
    length = hi << 8 | lo
    shape = _SHAPES.get(t)
    if shape is None or sid & 0x80000000 or length > _RESYNC_FRAME:
        return False
    allowed, zero_sid, fixed = shape
    if flags & ~allowed & 0xFF:
        return False
    if zero_sid != (sid == 0):
        return False
    if fixed is not None and length != fixed:
        return False
    return not (t == SETTINGS and length % 6)


@dataclass(slots=True)
class _Side:
    """One direction of one stream."""

    head: dict[str, str] | None = None
    pseudo: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] | None = None
    informational: list[int] = field(default_factory=list)
    headers_error: str = ""
    body: BodySink | None = None
    grpc: GrpcBody | None = None
    ended: bool = False
    ts: float | None = None
    end_ts: float | None = None
    frames: int = 0


@dataclass(slots=True)
class _Stream:
    sid: int
    sides: tuple[_Side, _Side] = field(default_factory=lambda: (_Side(), _Side()))
    reset: str = ""
    gaps: int = 0
    upgraded: dict[str, Any] | None = None
    """Stream 1 of an ``Upgrade: h2c`` connection: the HTTP/1 request's fields."""


@dataclass(slots=True)
class _Reader:
    buf: bytearray = field(default_factory=bytearray)
    preface: bool = True
    """Client: the preface may still come first."""
    resync: bool = False
    discarded: int = 0
    block: bytearray | None = None
    """A header block waiting for its CONTINUATION frames."""
    block_sid: int = 0
    block_type: int = 0
    block_flags: int = 0
    block_promised: int = 0


def _only_indexed(block: bytes) -> bool:
    """Whether a header block holds indexed fields only (RFC 7541 §6.1: first bit 1)."""
    pos, n = 0, len(block)
    while pos < n:
        b = block[pos]
        if not b & 0x80:
            return False
        pos += 1
        if b & 0x7F == 0x7F:  # the index continues (§5.1)
            while pos < n and block[pos] & 0x80:
                pos += 1
            pos += 1
    return n > 0


def _headers(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """Regular headers (lower-case names, repeats joined) and pseudo-headers."""
    regular: dict[str, str] = {}
    pseudo: dict[str, str] = {}
    for name, value in pairs:
        name = name.lower()
        if name.startswith(":"):
            pseudo[name] = value
        elif name in regular:
            regular[name] += ("\n" if name == "set-cookie" else ", ") + value
        else:
            regular[name] = value
    return regular, pseudo


class Http2Parser(StreamParser):
    """Both directions of one HTTP/2 connection."""

    proto = "http2"

    def __init__(self, limits: ParserLimits | None = None, schemas: ProtoSchemas | None = None):
        super().__init__(limits)
        self.schemas = schemas
        self._r = (_Reader(), _Reader(preface=False))
        self._hpack = (hpack.Decoder(), hpack.Decoder())
        for d in self._hpack:
            d.max_header_list_size = self.limits.max_header_bytes
            d.max_allowed_table_size = 1 << 16
        self._hcache: tuple[dict[bytes, list[tuple[str, str]]], ...] = ({}, {})
        """Per direction: header blocks made only of indexed fields, decoded. Such a block
        leaves the dynamic table as it was, so while nothing else is decoded the same bytes
        mean the same headers (RFC 7541 §6.1); any other block empties the cache."""
        self._streams: dict[int, _Stream] = {}
        self._done: list[Exchange] = []
        self._midstream = False
        self.counters = {"frames": 0, "settings": 0, "ping": 0, "window_update": 0, "goaway": 0}

    # -- framing --

    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        r = self._r[direction]
        if r.resync:
            if not plausible(data) and not (len(data) < 9 and not r.buf):
                r.discarded += len(data)
                if r.discarded > _RESYNC_GIVE_UP:
                    raise ParseError("http2: no frame boundary found")
                return
            r.resync = False
        r.buf += data
        buf = r.buf
        pos = 0
        if r.preface:
            n = min(len(buf), len(PREFACE))
            if buf[:n] != PREFACE[:n]:
                if len(buf) < 9:
                    return  # too few bytes to judge a frame header yet
                r.preface = False
                if not plausible(buf):
                    self._lost(direction, len(buf), ts)
                    return
                self._midstream = True
            elif n < len(PREFACE):
                return
            else:
                pos = len(PREFACE)
                r.preface = False
        while len(buf) - pos >= 9:
            hi, lo, t, flags, sid = _HEAD.unpack_from(buf, pos)
            length = hi << 8 | lo
            if len(buf) - pos - 9 < length:
                break
            payload = bytes(buf[pos + 9 : pos + 9 + length])
            pos += 9 + length
            self._frame(direction, t, flags, sid & 0x7FFFFFFF, payload, ts)
        if pos:
            del buf[:pos]

    def _lost(self, direction: Direction, length: int, ts: float) -> None:
        r = self._r[direction]
        r.buf.clear()
        r.block = None
        r.resync = True
        r.discarded += length
        self._midstream = True

    def gap(self, direction: Direction, length: int, ts: float) -> None:
        """Lost bytes: the frame in progress is dropped, streams with frames in flight
        are marked, and reading resumes at the next segment that starts a frame."""
        self._lost(direction, length, ts)
        for s in self._streams.values():
            if not (s.sides[0].ended and s.sides[1].ended):
                s.gaps += length
                break

    def _frame(self, d: Direction, t: int, flags: int, sid: int, payload: bytes, ts: float) -> None:
        self.counters["frames"] += 1
        r = self._r[d]
        if r.block is not None and t != CONTINUATION:
            raise ParseError("http2: header block interrupted (RFC 9113 §6.10)")
        if t == DATA:
            self._data(d, flags, sid, payload, ts)
        elif t == HEADERS:
            body = self._unpad(flags, payload)
            if flags & _PRIORITY:
                body = body[5:]
            self._block(d, HEADERS, flags, sid, 0, body, ts)
        elif t == CONTINUATION:
            if r.block is None or r.block_sid != sid:
                if self._midstream:
                    return  # its HEADERS frame was not captured
                raise ParseError("http2: CONTINUATION without HEADERS")
            self._block(d, r.block_type, r.block_flags | (flags & _END_HEADERS), sid,
                        r.block_promised, payload, ts, more=True)  # fmt: skip
        elif t == PUSH_PROMISE:
            body = self._unpad(flags, payload)
            if len(body) < 4:
                raise ParseError("http2: short PUSH_PROMISE")
            promised = _U32.unpack_from(body)[0] & 0x7FFFFFFF
            self._block(d, PUSH_PROMISE, flags, sid, promised, body[4:], ts)
        elif t == RST_STREAM:
            if len(payload) != 4:
                raise ParseError("http2: RST_STREAM length")
            s = self._streams.get(sid)
            if s is not None:
                s.reset = _err(_U32.unpack(payload)[0])
                self._side(s, d, ts).end_ts = ts
                self._finish(s, ts)
        elif t == SETTINGS:
            self.counters["settings"] += 1
            self._settings(d, payload)
        elif t == PING:
            self.counters["ping"] += 1
        elif t == GOAWAY:
            self.counters["goaway"] += 1
            if len(payload) >= 8:
                last = _U32.unpack_from(payload)[0] & 0x7FFFFFFF
                code = _U32.unpack_from(payload, 4)[0]
                for s in list(self._streams.values()):
                    if s.sid > last and (s.sid & 1) == (1 if d is Direction.SERVER else 0):
                        s.reset = f"GOAWAY {_err(code)}"
                        self._finish(s, ts)
        elif t == WINDOW_UPDATE:
            self.counters["window_update"] += 1
        # PRIORITY and unknown frame types carry nothing for entries (§5.5: ignore)

    def _settings(self, d: Direction, payload: bytes) -> None:
        if len(payload) % 6:
            raise ParseError("http2: SETTINGS length")
        for i in range(0, len(payload), 6):
            ident, value = _SETTING.unpack_from(payload, i)
            if ident == 1:  # SETTINGS_HEADER_TABLE_SIZE bounds the peer's encoder
                self._hpack[d.other].max_allowed_table_size = min(value, 1 << 20)

    def adopt(self, switch: Switch) -> None:
        """The connection switched from HTTP/1 (``Upgrade: h2c``, RFC 7540 §3.2): the
        upgrade request is stream 1, already half-closed by the client; its
        ``HTTP2-Settings`` (base64url SETTINGS payload) applies as the client's first
        SETTINGS. The client's preface follows; the server starts with frames."""
        request = switch.handover.get("request")
        if not isinstance(request, dict):
            return  # the request was not captured: stream 1 shows up as a lone response
        s = self._stream(1)
        s.upgraded = request
        cq = s.sides[Direction.CLIENT]
        ts = switch.handover.get("request_ts")
        cq.ts = ts if isinstance(ts, float) else switch.ts
        cq.end_ts = switch.ts
        cq.ended = True
        headers = request.get("headers")
        raw = headers.get("http2-settings", "") if isinstance(headers, dict) else ""
        if raw:
            try:
                payload = base64.urlsafe_b64decode(raw.strip() + "=" * (-len(raw.strip()) % 4))
                self._settings(Direction.CLIENT, payload)
            except (ValueError, ParseError):
                pass  # only a bound on the server's HPACK table; the frames still decode

    @staticmethod
    def _unpad(flags: int, payload: bytes) -> bytes:
        if not flags & _PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise ParseError("http2: bad padding")
        return payload[1 : len(payload) - payload[0]]

    # -- streams --

    def _stream(self, sid: int) -> _Stream:
        s = self._streams.get(sid)
        if s is None:
            if len(self._streams) >= self.limits.max_pending:
                oldest = min(self._streams)
                self._finish(self._streams[oldest], None, "too many open streams")
            s = self._streams[sid] = _Stream(sid)
        return s

    def _side(self, s: _Stream, d: Direction, ts: float) -> _Side:
        side = s.sides[d]
        if side.ts is None:
            side.ts = ts
        side.frames += 1
        return side

    def _block(
        self, d: Direction, t: int, flags: int, sid: int, promised: int, frag: bytes,
        ts: float, more: bool = False,
    ) -> None:  # fmt: skip
        r = self._r[d]
        if not flags & _END_HEADERS:
            if r.block is None:
                r.block = bytearray()
                r.block_sid, r.block_type, r.block_flags = sid, t, flags
                r.block_promised = promised
            r.block += frag
            if len(r.block) > _MAX_HEADER_BLOCK:
                raise ParseError("http2: header block over 1 MiB")
            return
        if r.block is not None:
            r.block += frag
            frag = bytes(r.block)
            r.block = None
        pairs: list[tuple[str, str]] = []
        error = ""
        cache = self._hcache[d]
        hit = cache.get(frag)
        if hit is not None:
            pairs = hit
        else:
            try:
                # hpack types the pairs as bytes, but raw=False makes them str
                decoded: Any = self._hpack[d].decode(frag, raw=False)
                pairs = [(str(k), str(v)) for k, v in decoded]
            except (HPACKError, UnicodeDecodeError, IndexError, ValueError) as e:
                error = f"HPACK: {type(e).__name__}: {e}"[:200]
            if _only_indexed(frag) and not error:
                if len(cache) >= 256:
                    cache.clear()
                cache[frag] = pairs
            else:
                cache.clear()  # the dynamic table may have changed: indices moved
        if t == PUSH_PROMISE:
            ps = self._stream(promised)
            self._side(ps, Direction.CLIENT, ts)
            self._head(ps, Direction.CLIENT, pairs, error, ts)
            ps.sides[Direction.CLIENT].ended = True
            return
        s = self._stream(sid)
        side = self._side(s, d, ts)
        self._head(s, d, pairs, error, ts)
        if flags & _END_STREAM:
            side.ended = True
            side.end_ts = ts
            self._maybe_done(s, ts)

    def _head(
        self, s: _Stream, d: Direction, pairs: list[tuple[str, str]], error: str, ts: float
    ) -> None:
        side = s.sides[d]
        regular, pseudo = _headers(pairs)
        if error:
            side.headers_error = error
            if side.head is None:
                side.head = {}
            return
        if side.head is None or (d is Direction.SERVER and side.head == {} and pseudo):
            status = pseudo.get(":status", "")
            if d is Direction.SERVER and status.isdigit() and 100 <= int(status) < 200:
                side.informational.append(int(status))
                return
            side.head, side.pseudo = regular, pseudo
            self._open_body(s, d)
        else:
            side.trailers = regular

    def _open_body(self, s: _Stream, d: Direction) -> None:
        side = s.sides[d]
        assert side.head is not None
        ctype = side.head.get("content-type", "")
        req = s.sides[Direction.CLIENT]
        is_grpc = ctype.startswith("application/grpc") or (
            d is Direction.SERVER and req.grpc is not None
        )
        if is_grpc and not ctype.startswith("application/grpc+json"):
            path = req.pseudo.get(":path", "")
            side.grpc = GrpcBody(path, d is Direction.SERVER, side.head.get("grpc-encoding", ""),
                                 self.schemas, self.limits.max_decoded)  # fmt: skip
        side.body = BodySink(
            self.limits.max_body,
            self.limits.max_decoded,
            "" if side.grpc else side.head.get("content-encoding", ""),
        )

    def _data(self, d: Direction, flags: int, sid: int, payload: bytes, ts: float) -> None:
        if sid == 0:
            raise ParseError("http2: DATA on stream 0")
        data = self._unpad(flags, payload)
        s = self._stream(sid)
        side = self._side(s, d, ts)
        if side.body is None:
            if side.head is None:  # mid-stream: the HEADERS were never captured
                side.head = {}
                side.headers_error = "headers not captured"
            if (
                s.sides[Direction.CLIENT].grpc is not None
                or data[:1] in (b"\0", b"\1")
                and len(data) >= 5
                and _U32.unpack_from(data, 1)[0] == len(data) - 5
            ):
                path = s.sides[Direction.CLIENT].pseudo.get(":path", "")
                side.grpc = GrpcBody(path, d is Direction.SERVER, "", self.schemas,
                                     self.limits.max_decoded)  # fmt: skip
            side.body = BodySink(self.limits.max_body, self.limits.max_decoded)
        side.body.add(data)
        if side.grpc is not None:
            side.grpc.add(data)
        if flags & _END_STREAM:
            side.ended = True
            side.end_ts = ts
            self._maybe_done(s, ts)

    def _maybe_done(self, s: _Stream, ts: float) -> None:
        if s.sides[0].ended and s.sides[1].ended:
            self._finish(s, ts)

    def _finish(self, s: _Stream, ts: float | None, error: str = "") -> None:
        if self._streams.pop(s.sid, None) is None:
            return
        cq, sr = s.sides
        if cq.ts is None and sr.ts is None:
            return
        grpc = cq.grpc is not None or sr.grpc is not None
        proto = "grpc" if grpc else "http2"
        if s.upgraded is not None:
            req = dict(s.upgraded)
            req["scheme"] = "http"
            req["authority"] = str(req.get("host", ""))
            req["upgrade"] = "h2c"
        else:
            req = self._fields(cq, request=True)
        resp = self._fields(sr, request=False) if sr.ts is not None else {}
        req["stream_id"] = s.sid
        if grpc:
            service, rpc = split_path(str(req.get("path", "")))
            req["service"], req["rpc"] = service, rpc
            trailers = sr.trailers if sr.trailers is not None else (sr.head or {})
            if sr.grpc is not None and sr.grpc.trailers:  # gRPC-Web
                trailers = {**trailers, **sr.grpc.trailers}
                resp.setdefault("trailers", sr.grpc.trailers)
            gs = trailers.get("grpc-status")
            if gs is not None and gs.strip().isdigit():
                code = int(gs)
                resp["grpc_status"] = code
                resp["grpc_status_name"] = (
                    STATUS_NAMES[code] if code < len(STATUS_NAMES) else str(code)
                )
            if "grpc-message" in trailers:
                resp["grpc_message"] = trailers["grpc-message"]
        if s.reset:
            resp["reset"] = s.reset
        if not error:
            if sr.ts is None:
                error = "no response"
            elif s.reset and not (cq.ended and sr.ended):
                error = f"stream reset: {s.reset}"
            elif not sr.ended:
                error = "response incomplete"
        method = req.get("method") or "?"
        target = req.get("path") or "?"
        if grpc:
            target = f"{req['service']}/{req['rpc']}" if req.get("rpc") else target
        tail = ""
        if "status" in resp:
            tail = str(resp["status"])
        if "grpc_status" in resp:
            tail = (tail + " " if tail else "") + resp["grpc_status_name"]
        if s.reset and not tail:
            tail = s.reset
        summary = f"{method} {target}" + (f" → {tail}" if tail else "")
        start = cq.ts if cq.ts is not None else sr.ts
        assert start is not None
        end = sr.end_ts if sr.ts is not None else None
        if end is None and sr.ts is not None:
            end = ts
        self._done.append(Exchange(proto, start, end, req, resp, summary, error=error, gaps=s.gaps))

    def _fields(self, side: _Side, request: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        p = side.pseudo
        if request:
            path = p.get(":path", "")
            query = ""
            if "?" in path:
                path, query = path.split("?", 1)
            if p.get(":method"):
                out["method"] = p[":method"]
            if path:
                out["path"] = path
            out["query"] = query
            out["scheme"] = p.get(":scheme", "")
            out["authority"] = p.get(":authority", "")
        else:
            st = p.get(":status", "")
            if st.isdigit():
                out["status"] = int(st)
            if side.informational:
                out["informational"] = side.informational
        out["version"] = "HTTP/2"
        out["headers"] = side.head or {}
        out["content_type"] = (side.head or {}).get("content-type", "")
        if side.body is not None:
            out.update(side.body.fields(complete=side.ended))
        else:
            out.update(body="", body_encoding="utf8", body_size=0, body_truncated=False)
        if side.grpc is not None:
            g = side.grpc.fields()
            out.update(g)
            # the body shown is the decoded messages; body_size stays the wire size
            shown = json.dumps(g["messages"], ensure_ascii=False, separators=(",", ":"))
            cut = len(shown) > self.limits.max_body
            out["body"] = shown[: self.limits.max_body] if cut else shown
            out["body_encoding"] = "utf8"
            out["body_truncated"] = cut or bool(out.get("body_truncated")) and not side.ended
        if side.trailers is not None:
            out["trailers"] = side.trailers
        if side.headers_error:
            out["headers_error"] = side.headers_error
        out["frames"] = side.frames
        return out

    def close(self, ts: float) -> None:
        for s in sorted(self._streams.values(), key=lambda s: s.sid):
            self._finish(s, ts)

    def take(self) -> list[Exchange]:
        out, self._done = self._done, []
        return out


def detect(data: bytes, direction: Direction) -> Verdict:
    """The client preface (h2c prior knowledge), or a server's opening SETTINGS frame."""
    if direction is Direction.CLIENT:
        n = min(len(data), len(PREFACE))
        if data[:n] != PREFACE[:n]:
            return Verdict.NO
        return Verdict.YES if n == len(PREFACE) else Verdict.MORE
    if len(data) < 9:
        return Verdict.MORE if data == b"\0" * len(data) else Verdict.NO
    hi, lo, t, flags, sid = _HEAD.unpack_from(data)
    length = hi << 8 | lo
    if t == SETTINGS and flags == 0 and sid == 0 and length % 6 == 0 and length <= 60:
        return Verdict.YES
    return Verdict.NO


def make_protocol(schemas: ProtoSchemas | None = None) -> StreamProtocol:
    """The HTTP/2 protocol, decoding gRPC messages with ``schemas`` when given."""
    factory: Any = Http2Parser if schemas is None else partial(Http2Parser, schemas=schemas)
    return StreamProtocol(
        name="http2",
        factory=factory,
        detect=detect,
        ports=frozenset(),
        midstream=True,
    )


PROTOCOL = make_protocol()
