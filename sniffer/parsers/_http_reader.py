"""The HTTP/1.x reader (RFC 9112): per direction, bytes in, events out.

A state machine in one table (``_READERS``: which reader handles ``(direction, state)``)
over an incremental buffer per direction: a partial message waits and resumes where it
stopped. Readers turn bytes into events (``_http_events``) handed to hooks that the
pairing layer (``http1.HttpParser``) implements.
"""

from __future__ import annotations

import enum
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, Final

from sniffer.parsers._http_body import BodySink
from sniffer.parsers._http_events import BodyChunk, RequestHead, ResponseHead, Trailers
from sniffer.parsers._http_wire import (
    content_length,
    decode_head,
    find_head_end,
    looks_like_request_line,
    parse_fields,
)
from sniffer.parsers.base import Direction, ParseError, ParserLimits, StreamParser

__all__ = ["HttpReader"]

_RESYNC_LIMIT: Final = 4
"""Times ``max_header_bytes`` skipped before any message is found → not HTTP."""


class _State(enum.IntEnum):
    HEAD = 0
    """Waiting for a start line and header section (RFC 9112 §2.1)."""
    BODY_LENGTH = 1
    """Content-Length body (RFC 9112 §6.2)."""
    CHUNK_SIZE = 2
    """chunk-size line (RFC 9112 §7.1)."""
    CHUNK_DATA = 3
    CHUNK_CRLF = 4
    """The CRLF after chunk-data."""
    TRAILERS = 5
    """trailer-section after the last chunk (RFC 9112 §7.1.2)."""
    BODY_CLOSE = 6
    """Body delimited by the close of the connection (RFC 9112 §6.3 rule 8)."""
    PAUSED = 7
    """Client after an Upgrade/CONNECT request: wait for the response to decide."""
    TUNNEL = 8
    """Protocol switched (RFC 9110 §7.8, 101) or tunnel (CONNECT 2xx): count, don't parse."""
    RESYNC = 9
    """After a gap or a mid-stream start: skipping to the next message start."""


# The states as plain module constants: looking up an enum member through its class
# costs ~0.2 µs, which the hot path pays many times per message.
_HEAD: Final = _State.HEAD
_BODY_LENGTH: Final = _State.BODY_LENGTH
_CHUNK_SIZE: Final = _State.CHUNK_SIZE
_CHUNK_DATA: Final = _State.CHUNK_DATA
_CHUNK_CRLF: Final = _State.CHUNK_CRLF
_TRAILERS: Final = _State.TRAILERS
_BODY_CLOSE: Final = _State.BODY_CLOSE
_PAUSED: Final = _State.PAUSED
_TUNNEL: Final = _State.TUNNEL
_RESYNC: Final = _State.RESYNC
_CLIENT: Final = Direction.CLIENT
_SERVER: Final = Direction.SERVER


class _Msg:
    """One message being read (request or response) and what pairing needs of it.

    Not slotted on purpose: most attributes keep their class-level default for the
    whole life of a message, and only three are set when one is made (hot path)."""

    gaps = 0
    sink: BodySink | None = None
    done = False
    """The whole message was read."""
    emitted = False
    """Its body fields were written into ``fields`` (done once)."""
    req: _Msg | None = None
    """For a response: the request it answers."""
    target = ""
    upgrade = False
    """Request: asked for Upgrade/CONNECT. Response: the protocol switched."""
    interim: list[int] | None = None
    lost = False
    """A placeholder for a request lost in a capture gap (or given up, see ``expired``)."""
    expired = False
    """Request: timed out waiting for its response (``HttpParser.expire``)."""
    answered = False
    """Request: its response head has been read."""
    body: bytes | None = None
    """The body while it is one chunk (the common case needs no ``BodySink``)."""

    def __init__(self, ts: float, fields: dict[str, Any] | None, method: str = "") -> None:
        self.ts = ts
        self.fields = fields
        self.method = method
        if fields is None:
            self.lost = True


class _Half:
    """One direction's reader state and incremental buffer."""

    __slots__ = (
        "direction", "readers", "state", "buf", "pos", "scan", "remaining", "msg",
        "start_ts", "pending_gap", "messages", "skipped", "tunnel",
    )  # fmt: skip

    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        self.readers = _READERS[direction]
        self.state = _HEAD
        self.buf: bytes | bytearray = b""
        self.pos = 0
        """Start of the unread bytes in ``buf``."""
        self.scan = 0
        """Where the search for the end of a head resumes (never re-scan)."""
        self.remaining = 0
        """Bytes left of a Content-Length body or of the current chunk."""
        self.msg: _Msg | None = None
        self.start_ts: float | None = None
        """Capture time of the first byte of the message being read."""
        self.pending_gap = 0
        """Bytes lost before the next message on this direction."""
        self.messages = 0
        self.skipped = 0
        """Captured bytes skipped while re-synchronising."""
        self.tunnel = 0
        """Bytes after a protocol switch (counted, not parsed)."""


_Reader = Callable[["HttpReader", "_Half", float], bool]


class HttpReader(StreamParser):
    """Both directions' readers of one connection. Subclasses implement the event hooks
    (``_on_*``, ``_end_message``) and decide what the events mean."""

    def __init__(self, limits: ParserLimits | None = None) -> None:
        super().__init__(limits)
        self._client = _Half(_CLIENT)
        self._server = _Half(_SERVER)
        self._halves = (self._client, self._server)
        self._closed = False
        self._max_head = self.limits.max_header_bytes

    @property
    def tunnel_bytes(self) -> tuple[int, int]:
        """Bytes (client, server) seen after the connection switched protocol."""
        return self._client.tunnel, self._server.tunnel

    @property
    def skipped_bytes(self) -> tuple[int, int]:
        """Captured bytes (client, server) skipped while re-synchronising."""
        return self._client.skipped, self._server.skipped

    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        if self._closed or not data:
            return
        h = self._halves[direction]
        if h.state is _TUNNEL:
            h.tunnel += len(data)
            return
        buf = h.buf
        if h.pos >= len(buf):
            h.buf = data if type(data) is bytes else bytes(data)
            h.pos = h.scan = 0
        else:
            if isinstance(buf, bytearray):
                if h.pos:
                    del buf[: h.pos]
                ba = buf
            else:
                ba = bytearray(memoryview(buf)[h.pos :])
            h.scan = max(0, h.scan - h.pos)
            h.pos = 0
            ba += data
            h.buf = ba
            if h.state is _PAUSED and len(ba) > self._max_head:
                # the server accepted the switch without us seeing it: stop parsing
                self._to_tunnel(h)
                return
        self._run(h, ts)

    # ------------------------------------------------------------------ the loop

    def _run(self, h: _Half, ts: float) -> None:
        readers = h.readers
        # every reader needs bytes to act on: stop as soon as the buffer is empty
        while readers[h.state](self, h, ts) and h.pos < len(h.buf):
            pass
        if h.pos >= len(h.buf):
            h.buf = b""
            h.pos = h.scan = 0

    # ------------------------------------------------------------------ readers

    def _read_request_head(self, h: _Half, ts: float) -> bool:
        buf, pos = h.buf, h.pos
        n = len(buf)
        if pos >= n:
            return False
        # RFC 9112 §2.2: ignore empty lines before a request-line
        while buf[pos] in (10, 13):
            pos += 1
            if pos >= n:
                h.pos = pos
                return False
        h.pos = pos
        if h.start_ts is None:
            h.start_ts = ts
        scan = h.scan if h.scan > pos else pos
        end = buf.find(b"\r\n\r\n", scan)
        if end < 0 or buf.find(b"\n\n", pos, end) >= 0:  # partial, or bare-LF lines
            end, after = find_head_end(buf, pos, scan)
            if end < 0:
                self._head_incomplete(h, n)
                return False
        else:
            after = end + 4
        if end - pos > self._max_head:
            raise ParseError(f"request head longer than {self._max_head} bytes")
        lines = decode_head(buf[pos:end])
        # RFC 9112 §3: request-line = method SP request-target SP HTTP-version
        method, _, rest = lines[0].partition(" ")
        target, _, version = rest.rpartition(" ")
        if not version.startswith("HTTP/1.") or not target or not method.isupper():
            return self._bad_start(h, f"not an HTTP/1 request line: {lines[0][:80]!r}")
        headers = parse_fields(lines, 1)
        h.pos = h.scan = after
        self._on_request_head(h, RequestHead(method, target, version, headers))
        h.messages += 1
        # RFC 9112 §6.1, §6.3: request framing
        te = headers.get("transfer-encoding")
        if te is not None:
            if not te.rstrip().lower().endswith("chunked"):
                raise ParseError(f"request with transfer-encoding {te[:40]!r} (RFC 9112 §6.3)")
            h.state = _CHUNK_SIZE
            return True
        cl = headers.get("content-length")
        if cl is not None:
            length = int(cl) if cl.isdigit() and cl.isascii() else content_length(cl)
            if length:
                end = after + length
                if end <= len(buf):
                    # the whole body is already here (the common case): no detour
                    self._on_body(h, BodyChunk(bytes(buf[after:end])))
                    h.pos = h.scan = end
                    self._end_message(h, ts)
                    return True
                h.remaining = length
                h.state = _BODY_LENGTH
                return True
        self._end_message(h, ts)
        return True

    def _read_response_head(self, h: _Half, ts: float) -> bool:
        buf, pos = h.buf, h.pos
        n = len(buf)
        if pos >= n:
            return False
        while buf[pos] in (10, 13):
            pos += 1
            if pos >= n:
                h.pos = pos
                return False
        h.pos = pos
        if h.start_ts is None:
            h.start_ts = ts
        scan = h.scan if h.scan > pos else pos
        end = buf.find(b"\r\n\r\n", scan)
        if end < 0 or buf.find(b"\n\n", pos, end) >= 0:  # partial, or bare-LF lines
            end, after = find_head_end(buf, pos, scan)
            if end < 0:
                self._head_incomplete(h, n)
                return False
        else:
            after = end + 4
        if end - pos > self._max_head:
            raise ParseError(f"response head longer than {self._max_head} bytes")
        lines = decode_head(buf[pos:end])
        # RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if (
            not version.startswith("HTTP/1.")
            or len(code) != 3
            or not (code.isdigit() and code.isascii())
        ):
            return self._bad_start(h, f"not an HTTP/1 status line: {lines[0][:80]!r}")
        status = int(code)
        headers = parse_fields(lines, 1)
        h.pos = h.scan = after
        h.messages += 1
        msg = self._on_response_head(h, ResponseHead(status, reason, version, headers))
        # RFC 9112 §6.3 rules 1-2: no body for 1xx, 204, 304 and answers to HEAD;
        # 101 and a 2xx to CONNECT switch the connection away from HTTP.
        req = msg.req if msg is not None else None
        if status < 200 or status in (204, 304) or (req is not None and req.method == "HEAD"):
            self._end_message(h, ts)
            return True
        if req is not None and req.method == "CONNECT" and status < 300:
            self._end_message(h, ts)
            return True
        te = headers.get("transfer-encoding")
        if te is not None:
            # rule 3: chunked last → chunked; otherwise read until close
            h.state = _CHUNK_SIZE if te.rstrip().lower().endswith("chunked") else _BODY_CLOSE
            return True
        cl = headers.get("content-length")
        if cl is not None:
            length = int(cl) if cl.isdigit() and cl.isascii() else content_length(cl)
            if length:
                end = after + length
                if end <= len(buf):
                    # the whole body is already here (the common case): no detour
                    self._on_body(h, BodyChunk(bytes(buf[after:end])))
                    h.pos = h.scan = end
                    self._end_message(h, ts)
                    return True
                h.remaining = length
                h.state = _BODY_LENGTH
                return True
            self._end_message(h, ts)
            return True
        h.state = _BODY_CLOSE  # rule 8
        return True

    def _read_length_body(self, h: _Half, ts: float) -> bool:
        buf, pos = h.buf, h.pos
        avail = len(buf) - pos
        if avail <= 0:
            return False
        take = h.remaining if h.remaining < avail else avail
        self._on_body(h, BodyChunk(bytes(buf[pos : pos + take])))
        h.pos = h.scan = pos + take
        h.remaining -= take
        if h.remaining == 0:
            self._end_message(h, ts)
            return True
        return False

    def _read_chunk_size(self, h: _Half, ts: float) -> bool:
        buf, pos = h.buf, h.pos
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if len(buf) - pos > 1024:
                raise ParseError("chunk-size line longer than 1024 bytes")
            return False
        # RFC 9112 §7.1: chunk-size [ chunk-ext ] CRLF; chunk-ext ignored (§7.1.1)
        line = bytes(buf[pos:nl]).split(b";", 1)[0].strip()
        try:
            size = int(line, 16)
        except ValueError:
            raise ParseError(f"invalid chunk size {line[:20]!r}") from None
        if size < 0 or len(line) > 16:
            raise ParseError(f"invalid chunk size {line[:20]!r}")
        h.pos = h.scan = nl + 1
        if size == 0:
            h.state = _TRAILERS
        else:
            h.remaining = size
            h.state = _CHUNK_DATA
        return True

    def _read_chunk_data(self, h: _Half, ts: float) -> bool:
        buf, pos = h.buf, h.pos
        avail = len(buf) - pos
        if avail <= 0:
            return False
        take = h.remaining if h.remaining < avail else avail
        self._on_body(h, BodyChunk(bytes(buf[pos : pos + take])))
        h.pos = h.scan = pos + take
        h.remaining -= take
        if h.remaining == 0:
            h.state = _CHUNK_CRLF
            return True
        return False

    def _read_chunk_crlf(self, h: _Half, ts: float) -> bool:
        buf, pos = h.buf, h.pos
        avail = len(buf) - pos
        if avail <= 0:
            return False
        if buf[pos] == 10:  # bare LF (RFC 9112 §2.2)
            h.pos = pos + 1
        elif buf[pos] == 13:
            if avail < 2:
                return False
            if buf[pos + 1] != 10:
                raise ParseError("chunk data not followed by CRLF")
            h.pos = pos + 2
        else:
            raise ParseError("chunk data not followed by CRLF")
        h.scan = h.pos
        h.state = _CHUNK_SIZE
        return True

    def _read_trailers(self, h: _Half, ts: float) -> bool:
        buf, pos = h.buf, h.pos
        avail = len(buf) - pos
        if avail <= 0:
            return False
        if buf[pos] == 10 or (buf[pos] == 13 and avail >= 2 and buf[pos + 1] == 10):
            h.pos = h.scan = pos + (1 if buf[pos] == 10 else 2)
            self._end_message(h, ts)
            return True
        if buf[pos] == 13 and avail < 2:
            return False
        end, after = find_head_end(buf, pos, max(h.scan, pos))
        if end < 0:
            if avail > self._max_head:
                raise ParseError(f"trailer section longer than {self._max_head} bytes")
            h.scan = max(pos, len(buf) - 3)
            return False
        trailers = parse_fields(decode_head(buf[pos:end]), 0)
        h.pos = h.scan = after
        self._on_trailers(h, Trailers(trailers))
        self._end_message(h, ts)
        return True

    def _read_close_body(self, h: _Half, ts: float) -> bool:
        buf, pos = h.buf, h.pos
        if pos < len(buf):
            self._on_body(h, BodyChunk(bytes(buf[pos:])))
            h.pos = h.scan = len(buf)
        return False

    def _read_paused(self, h: _Half, ts: float) -> bool:
        return False  # bytes wait until the response says whether the protocol switched

    def _read_tunnel(self, h: _Half, ts: float) -> bool:
        h.tunnel += len(h.buf) - h.pos
        h.pos = h.scan = len(h.buf)
        return False

    def _read_resync(self, h: _Half, ts: float) -> bool:
        """Skip to the next line that starts like a message (a request-line with a known
        method, or ``HTTP/1.`` for a status-line)."""
        buf, pos = h.buf, h.pos
        n = len(buf)
        found = -1
        if h.direction == _SERVER:
            i = buf.find(b"HTTP/1.", pos)
            while i >= 0:
                if i == pos or buf[i - 1] == 10:
                    found = i
                    break
                i = buf.find(b"HTTP/1.", i + 1)
            keep_from = max(pos, n - 7)
        else:
            i = buf.find(b" HTTP/1.", pos)
            while i >= 0:
                ls = buf.rfind(b"\n", pos, i) + 1
                if ls == 0:
                    ls = pos
                if looks_like_request_line(buf[ls : i + 8]):
                    found = ls
                    break
                i = buf.find(b" HTTP/1.", i + 1)
            nl = buf.rfind(b"\n", pos)
            keep_from = max(nl + 1 if nl >= 0 else pos, n - self._max_head)
        if found >= 0:
            h.skipped += found - pos
            h.pos = h.scan = found
            h.start_ts = None
            h.state = _HEAD
            return True
        h.skipped += keep_from - pos
        h.pos = h.scan = keep_from
        if (
            self._client.messages + self._server.messages == 0
            and self._client.skipped + self._server.skipped > _RESYNC_LIMIT * self._max_head
        ):
            raise ParseError(
                f"no HTTP/1 message start in the first {_RESYNC_LIMIT * self._max_head} bytes"
            )
        return False

    # ------------------------------------------------------------------ reader helpers

    def _head_incomplete(self, h: _Half, n: int) -> None:
        pos = h.pos
        if n - pos > self._max_head:
            raise ParseError(f"message head longer than {self._max_head} bytes")
        h.scan = max(pos, n - 3)
        if h.messages == 0:
            # check the start line as soon as it is whole, so that a mid-stream start
            # re-synchronises (and non-HTTP bytes fail) without waiting for the head end
            nl = h.buf.find(b"\n", pos)
            if nl >= 0:
                line = h.buf[pos:nl]
                ok = (
                    looks_like_request_line(line)
                    if h.direction == _CLIENT
                    else line.startswith(b"HTTP/1.")
                )
                if not ok:
                    self._bad_start(h, f"not an HTTP/1 start line: {bytes(line[:80])!r}")

    def _bad_start(self, h: _Half, why: str) -> bool:
        if h.messages == 0:
            # the capture began mid-stream (or mid-message): look for the next start
            h.state = _RESYNC
            h.start_ts = None
            h.pos += 1
            h.skipped += 1
            return True
        raise ParseError(why)

    def _to_tunnel(self, h: _Half) -> None:
        h.tunnel += len(h.buf) - h.pos
        h.buf = b""
        h.pos = h.scan = 0
        h.state = _TUNNEL

    # ------------------------------------------------------------------ event hooks

    @abstractmethod
    def _on_request_head(self, h: _Half, ev: RequestHead) -> None:
        """A request head was read (``h.start_ts`` is its first byte's time)."""

    @abstractmethod
    def _on_response_head(self, h: _Half, ev: ResponseHead) -> _Msg | None:
        """A response head was read; returns the message (None for an interim 1xx),
        whose ``req`` decides the body rules (HEAD, CONNECT)."""

    @abstractmethod
    def _on_body(self, h: _Half, ev: BodyChunk) -> None:
        """Payload bytes of the current message."""

    @abstractmethod
    def _on_trailers(self, h: _Half, ev: Trailers) -> None:
        """The trailer section of a chunked message."""

    @abstractmethod
    def _end_message(self, h: _Half, ts: float) -> None:
        """MessageEnd: the current message of ``h`` is complete; sets the next state."""


_READERS: dict[Direction, dict[_State, _Reader]] = {
    Direction.CLIENT: {
        _State.HEAD: HttpReader._read_request_head,
        _State.BODY_LENGTH: HttpReader._read_length_body,
        _State.CHUNK_SIZE: HttpReader._read_chunk_size,
        _State.CHUNK_DATA: HttpReader._read_chunk_data,
        _State.CHUNK_CRLF: HttpReader._read_chunk_crlf,
        _State.TRAILERS: HttpReader._read_trailers,
        _State.BODY_CLOSE: HttpReader._read_close_body,
        _State.PAUSED: HttpReader._read_paused,
        _State.TUNNEL: HttpReader._read_tunnel,
        _State.RESYNC: HttpReader._read_resync,
    },
    Direction.SERVER: {
        _State.HEAD: HttpReader._read_response_head,
        _State.BODY_LENGTH: HttpReader._read_length_body,
        _State.CHUNK_SIZE: HttpReader._read_chunk_size,
        _State.CHUNK_DATA: HttpReader._read_chunk_data,
        _State.CHUNK_CRLF: HttpReader._read_chunk_crlf,
        _State.TRAILERS: HttpReader._read_trailers,
        _State.BODY_CLOSE: HttpReader._read_close_body,
        _State.PAUSED: HttpReader._read_paused,
        _State.TUNNEL: HttpReader._read_tunnel,
        _State.RESYNC: HttpReader._read_resync,
    },
}
"""The state machine: which reader handles ``(direction, state)``. Every transition
is made by the reader that owns the current state (or by ``_end_message``/``gap``)."""
