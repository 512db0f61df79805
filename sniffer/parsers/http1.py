"""HTTP/1.0 and HTTP/1.1 (RFC 9112): a sans-IO reader per direction, paired into exchanges.

Bytes of each direction go through the reader (``_http_reader``: a state machine in one
table, one reader per ``(direction, state)``, over incremental buffers) that yields events
(``_http_events``); this module is the pairing layer: it matches responses to requests in
order (pipelining included), handles gaps and the close, and hands out ``Exchange``
records. Wire details live in ``_http_wire``, bodies and their decoding in ``_http_body``.

Entry fields (``proto="http"``):

- request: ``method``, ``path``, ``query``, ``version``, ``host``, ``headers`` (lower-cased
  names; repeated fields joined by ``", "``, ``set-cookie`` by ``"\\n"``), ``body``,
  ``body_encoding`` (``utf8``/``base64``), ``body_size`` (bytes on the wire, de-chunked),
  ``body_truncated``, ``content_type``; ``trailers`` when a chunked body had some;
  ``body_error`` when content decoding stopped (bomb bound, corrupt data);
  ``decoded_size`` when the body had a ``Content-Encoding`` we decode (gzip, deflate, br).
- response: ``status``, ``reason``, ``version``, ``headers``, the same body fields,
  ``upgrade`` (the protocol switched to, e.g. ``websocket``, ``h2c``, ``tcp``; ``CONNECT``
  for a tunnel) when the connection stopped speaking HTTP after it, and ``informational``
  (the 1xx statuses that came before it, e.g. ``[100]``). After a 101 to ``h2c`` the
  connection is handed to the HTTP/2 parser (``SWITCH_TO``, ``StreamParser.switch``).
- error: ``incomplete request`` (the connection ended inside a request head; the
  request-line, if whole, fills the request, and ``head_preview`` keeps the first bytes),
  ``no response`` (none before the connection ended or the time-out, see
  ``expire``), ``no request`` (the request was not captured), ``late response`` (came
  after its request had timed out), ``gap`` (bytes missing from the capture broke the message),
  ``incomplete response`` (the connection ended inside the response).
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from sniffer.parsers._http_body import BodySink, body_fields
from sniffer.parsers._http_events import BodyChunk, RequestHead, ResponseHead, Trailers
from sniffer.parsers._http_reader import (
    _BODY_CLOSE,
    _BODY_LENGTH,
    _CHUNK_CRLF,
    _CHUNK_DATA,
    _CLIENT,
    _HEAD,
    _PAUSED,
    _RESYNC,
    _TUNNEL,
    HttpReader,
    _Half,
    _Msg,
)
from sniffer.parsers._http_wire import detect, parse_fields, split_target
from sniffer.parsers.base import Direction, Exchange, ParseError, ParserLimits, Switch
from sniffer.parsers.registry import StreamProtocol

__all__ = ["HttpParser", "PROTOCOL", "PROTOCOL_FIELDS", "SWITCH_TO", "detect"]

SWITCH_TO: dict[str, str] = {"h2c": "http2"}
"""``Upgrade`` token (lower-case) → the protocol whose parser takes the connection over
after a ``101 Switching Protocols``; other tokens (``websocket``...) stay a counted tunnel."""

PROTOCOL_FIELDS: dict[str, tuple[str, ...]] = {
    "request": (
        "method", "path", "query", "version", "host", "headers", "body", "body_encoding",
        "body_size", "body_truncated", "content_type",
    ),
    "response": (
        "status", "reason", "version", "headers", "body", "body_encoding", "body_size",
        "body_truncated", "content_type",
    ),
    "extra": ("upgrade", "body_error", "trailers", "decoded_size", "informational"),
}  # fmt: skip


class HttpParser(HttpReader):
    """HTTP/1.x on one TCP connection, both directions: the reader's events paired into
    exchanges (responses answer requests in order, RFC 9112 §9.3.2)."""

    proto: ClassVar[str] = "http"

    def __init__(self, limits: ParserLimits | None = None) -> None:
        super().__init__(limits)
        self._pending: deque[_Msg] = deque()
        """Requests (head read) waiting for their response, in order."""
        self._done: list[Exchange] = []
        self._max_pending = self.limits.max_pending
        self._max_body = self.limits.max_body
        self._orphans = 0
        """Responses without a request since the last request head (see ``_lost_message``)."""

    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        h = self._halves[direction]
        if h.state is _HEAD and h.pos >= len(h.buf) and type(data) is bytes and not self._closed:
            # Fast path: whole messages at a message boundary (the usual segment) are read
            # straight from ``data``, with no events, buffer or state-machine turns. Any
            # other case (a partial head or body, chunked, 1xx, HEAD, Upgrade, gaps, bad
            # input) goes to the reader from the first message the fast path declines.
            client = direction == _CLIENT
            pos = 0
            n = len(data)
            while pos < n:
                # direct calls: compiled, native ones (a bound method picked from a
                # tuple was a Python call with its arguments boxed)
                if client:
                    nxt = self._fast_request(h, data, pos, ts)
                else:
                    nxt = self._fast_response(h, data, pos, ts)
                if nxt < 0:
                    break
                pos = nxt
            if pos:
                if pos >= n:
                    return
                data = data[pos:]
        super().feed(direction, data, ts)

    def _fast_head(self, data: bytes, pos: int) -> tuple[list[str], int]:
        """The head at ``pos`` as lines and where it ends, when it is whole, CRLF-ended
        and within bounds; ``([], -1)`` otherwise (the reader then decides)."""
        if data[pos] in (10, 13):
            return [], -1
        end = data.find(b"\r\n\r\n", pos)
        if end < 0 or end - pos > self._max_head:
            return [], -1
        raw = data[pos:end]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        lines = text.split("\r\n")
        if text.count("\n") != len(lines) - 1:
            return [], -1  # a bare LF: the reader's line rules (RFC 9112 §2.2)
        return lines, end + 4  # what decode_head makes of a head without bare LFs

    def _fast_request(self, h: _Half, data: bytes, pos: int, ts: float) -> int:
        """One whole request at ``pos`` without Transfer-Encoding, Upgrade or CONNECT,
        its Content-Length body (if any) all in ``data``: read as the reader would.
        Returns the offset after it, or -1 (nothing done)."""
        lines, after = self._fast_head(data, pos)
        if after < 0:
            return -1
        method, _, rest = lines[0].partition(" ")
        target, _, version = rest.rpartition(" ")
        if (
            not version.startswith("HTTP/1.")
            or not target
            or not method.isupper()
            or method == "CONNECT"
        ):
            return -1
        try:
            headers = parse_fields(lines, 1)
        except ParseError:
            return -1
        if "transfer-encoding" in headers or "upgrade" in headers:
            return -1
        body = None
        cl = headers.get("content-length")
        if cl is not None:
            if not (cl.isdigit() and cl.isascii()):
                return -1
            length = int(cl)
            if length:
                stop = after + length
                if stop > len(data):
                    return -1
                body = data[after:stop]
                after = stop
        start = h.start_ts if h.start_ts is not None else ts
        h.start_ts = None
        msg = self._open_request(h, method, target, version, headers, start)
        h.messages += 1
        h.msg = None
        msg.done = True
        if body is None:
            msg.emitted = True  # the fields were made for an empty, complete body
        else:
            msg.body = body
            self._seal(msg)
        return after

    def _fast_response(self, h: _Half, data: bytes, pos: int, ts: float) -> int:
        """One whole final response at ``pos`` to a plain request (not HEAD, CONNECT or
        Upgrade, no 1xx before it), without Transfer-Encoding, its Content-Length body
        all in ``data`` (or none: 204, 304): paired as the reader and ``_finish`` would.
        Returns the offset after it, or -1 (nothing done)."""
        pending = self._pending
        if not pending or h.pending_gap:
            return -1
        req = pending[0]
        if req.lost or req.upgrade or req.interim is not None or req.method == "HEAD":
            return -1
        lines, after = self._fast_head(data, pos)
        if after < 0:
            return -1
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if (
            not version.startswith("HTTP/1.")
            or len(code) != 3
            or not (code.isdigit() and code.isascii())
            or code < "200"
        ):
            return -1
        status = int(code)
        try:
            headers = parse_fields(lines, 1)
        except ParseError:
            return -1
        if "transfer-encoding" in headers:
            return -1
        body = None
        if status != 204 and status != 304:
            cl = headers.get("content-length")
            if cl is None or not (cl.isdigit() and cl.isascii()):
                return -1
            length = int(cl)
            if length:
                stop = after + length
                if stop > len(data):
                    return -1
                body = data[after:stop]
                after = stop
        start = h.start_ts if h.start_ts is not None else ts
        h.start_ts = None
        h.messages += 1
        pending.popleft()
        req.answered = True
        text: str | None = ""
        if body is not None:
            # what ``_seal`` makes of a whole plain UTF-8 body within the bound
            if "content-encoding" in headers or len(body) > self._max_body:
                text = None
            else:
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
        fields = {
            "status": status,
            "reason": reason,
            "version": version,
            "headers": headers,
            "content_type": headers.get("content-type", ""),
            "body": "",
            "body_encoding": "utf8",
            "body_size": 0,
            "body_truncated": False,
        }
        if text is None or req.gaps or not req.emitted:
            msg = _Msg(start, fields)
            msg.req = req
            msg.done = True
            msg.body = body
            self._finish(req, msg, ts, "")
            return after
        if body is not None:
            fields["body"] = text
            fields["body_size"] = len(body)
        # ``_finish`` for a sealed request without gaps and this response
        target = req.target if len(req.target) <= 200 else req.target[:200] + "…"
        self._done.append(
            Exchange(
                "http",
                req.ts,
                ts,
                req.fields or {},
                fields,
                f"{req.method} {target} → {status}",
                "",
                0,
            )
        )
        return after

    def gap(self, direction: Direction, length: int, ts: float) -> None:
        if self._closed or length <= 0:
            return
        h = self._halves[direction]
        state = h.state
        msg = h.msg
        if state == _TUNNEL or state == _PAUSED:
            h.tunnel += length
            return
        if state == _RESYNC:
            h.pending_gap += length
            return
        if state == _BODY_CLOSE and msg is not None:
            msg.gaps += length
            if msg.sink is None:
                msg.sink = self._sink(msg)
                if msg.body is not None:
                    msg.sink.add(msg.body)
                    msg.body = None
            msg.sink.size += length
            return
        if state in (_BODY_LENGTH, _CHUNK_DATA) and msg is not None:
            if length <= h.remaining:
                # the hole is inside a body of known length: framing survives
                msg.gaps += length
                if msg.sink is None:
                    msg.sink = self._sink(msg)
                    if msg.body is not None:
                        msg.sink.add(msg.body)
                        msg.body = None
                msg.sink.size += length
                h.remaining -= length
                if h.remaining == 0:
                    if state == _BODY_LENGTH:
                        self._end_message(h, ts)
                    else:
                        h.state = _CHUNK_CRLF
                return
        # The framing is lost. A message that had started is broken; when the hole
        # spans the start of a new message, that message is lost as well.
        if msg is not None:
            msg.gaps += length
            crossed = state == _BODY_LENGTH and length > h.remaining
            self._break_message(h, ts)
            if crossed:  # the body ended inside the hole and the next message began
                self._lost_message(h, 0)
        elif not self._lost_message(h, length):
            # idle or inside a head: a message begins in (or before) the hole; the
            # bytes are counted on the next message read if no exchange took them
            h.pending_gap += length
        h.buf = b""
        h.pos = h.scan = 0
        h.start_ts = None
        h.state = _RESYNC

    def expire(self, now: float, timeout: float) -> None:
        """Requests unanswered for ``timeout`` seconds become exchanges with ``error="no
        response"``. Each stays in the queue as a placeholder, so that a response coming
        after all is paired with it (and kept, as ``late response``) instead of shifting
        every later pairing by one."""
        for req in self._pending:
            if req.ts + timeout > now:
                break  # the queue is in request order: the rest are younger
            if req.lost:
                continue
            self._finish(req, None, None, "no response")
            req.fields = None
            req.lost = req.expired = True

    def close(self, ts: float) -> None:
        if self._closed:
            return
        srv = self._server
        if srv.state == _BODY_CLOSE and srv.msg is not None:
            # RFC 9112 §6.3 rule 8: the close ends the body
            self._end_message(srv, ts)
        elif srv.msg is not None:
            msg = srv.msg
            srv.msg = None
            self._finish(msg.req, msg, ts, "incomplete response")
        cli = self._client
        if cli.msg is not None:
            cli.msg = None  # its body stays incomplete; it still waits for nothing
        elif cli.state is _HEAD and bytes(cli.buf[cli.pos :]).strip():
            self._incomplete_request(cli)
        while self._pending:
            req = self._pending.popleft()
            if not req.lost:
                self._finish(req, None, None, "no response")
        self._closed = True

    def _incomplete_request(self, h: _Half) -> None:
        """The connection ended inside a request head: keep what it said."""
        raw = bytes(h.buf[h.pos : h.pos + 8192])
        line = raw.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
        method, _, rest = line.partition(" ")
        target, _, version = rest.rpartition(" ")
        if not version.startswith("HTTP/1."):
            target, version = rest, ""
        path, query, host = split_target(target) if target else ("", "", "")
        fields: dict[str, Any] = {
            "method": method[:32],
            "path": path,
            "query": query,
            "version": version,
            "host": host,
            "headers": {},
            "content_type": "",
            "body": "",
            "body_encoding": "utf8",
            "body_size": 0,
            "body_truncated": True,
            "head_preview": raw[:256].decode("latin-1"),
        }
        msg = _Msg(h.start_ts if h.start_ts is not None else 0.0, fields, method[:32])
        msg.target = target
        msg.emitted = True
        self._finish(msg, None, None, "incomplete request")

    def take(self) -> list[Exchange]:
        out = self._done
        self._done = []
        return out

    def _sink(self, msg: _Msg) -> BodySink:
        headers = msg.fields["headers"] if msg.fields is not None else {}
        return BodySink(
            self.limits.max_body, self.limits.max_decoded, headers.get("content-encoding", "")
        )

    # ------------------------------------------------------------------ pairing

    def _on_request_head(self, h: _Half, ev: RequestHead) -> None:
        ts = h.start_ts if h.start_ts is not None else 0.0
        h.start_ts = None
        self._open_request(h, ev.method, ev.target, ev.version, ev.headers, ts)

    def _open_request(
        self, h: _Half, method: str, target: str, version: str, headers: dict[str, str], ts: float
    ) -> _Msg:
        """The request's message and fields, queued for its response (``h.msg``)."""
        if target[:1] == "/":
            path, _, query = target.partition("?")
            host = ""
        else:
            path, query, host = split_target(target)
        msg = _Msg(
            ts,
            {
                "method": method,
                "path": path,
                "query": query,
                "version": version,
                "host": host or headers.get("host", ""),
                "headers": headers,
                "content_type": headers.get("content-type", ""),
                "body": "",
                "body_encoding": "utf8",
                "body_size": 0,
                "body_truncated": False,
            },
            method,
        )
        msg.target = target
        self._orphans = 0
        if h.pending_gap:
            msg.gaps, h.pending_gap = h.pending_gap, 0
        # RFC 9110 §7.8 (Upgrade), §9.3.6 (CONNECT): may switch protocol
        if method == "CONNECT" or "upgrade" in headers:
            msg.upgrade = True
        h.msg = msg
        pending = self._pending
        if len(pending) >= self._max_pending:
            self._push(msg)
        else:
            pending.append(msg)
        return msg

    def _push(self, msg: _Msg) -> None:
        if len(self._pending) >= self.limits.max_pending:
            old = self._pending.popleft()
            if not old.lost:
                self._finish(old, None, None, "no response (too many pending requests)")
        self._pending.append(msg)

    def _on_response_head(self, h: _Half, ev: ResponseHead) -> _Msg | None:
        ts = h.start_ts if h.start_ts is not None else 0.0
        h.start_ts = None
        status = ev.status
        if 100 <= status < 200 and status != 101:
            # RFC 9110 §15.2: interim; the final response is still to come
            if self._pending:
                first = self._pending[0]
                if first.interim is None:
                    first.interim = []
                first.interim.append(status)
            h.msg = None
            return None
        headers = ev.headers
        fields: dict[str, Any] = {
            "status": status,
            "reason": ev.reason,
            "version": ev.version,
            "headers": headers,
            "content_type": headers.get("content-type", ""),
            "body": "",
            "body_encoding": "utf8",
            "body_size": 0,
            "body_truncated": False,
        }
        msg = _Msg(ts, fields)
        if h.pending_gap:
            msg.gaps, h.pending_gap = h.pending_gap, 0
        req = self._pending.popleft() if self._pending else None
        if req is None:
            self._orphans += 1
        msg.req = req
        if req is not None:
            req.answered = True
            if req.interim:
                fields["informational"] = req.interim
            if req.upgrade and (status == 101 or (req.method == "CONNECT" and status < 300)):
                msg.upgrade = True
                fields["upgrade"] = (
                    "CONNECT" if req.method == "CONNECT" else headers.get("upgrade", "")
                )
        elif status == 101:
            msg.upgrade = True
            fields["upgrade"] = headers.get("upgrade", "")
        h.msg = msg
        return msg

    def _on_body(self, h: _Half, ev: BodyChunk) -> None:
        msg = h.msg
        if msg is None:
            return
        sink = msg.sink
        if sink is None:
            if msg.body is None:
                msg.body = ev.data
                return
            sink = msg.sink = self._sink(msg)
            sink.add(msg.body)
            msg.body = None
        sink.add(ev.data)

    def _on_trailers(self, h: _Half, ev: Trailers) -> None:
        if h.msg is not None and h.msg.fields is not None and ev.headers:
            h.msg.fields["trailers"] = ev.headers

    def _end_message(self, h: _Half, ts: float) -> None:
        """MessageEnd: the current message of ``h`` is complete."""
        msg = h.msg
        h.msg = None
        h.state = _HEAD
        if msg is None:  # an interim response
            return
        msg.done = True
        if h.direction == _CLIENT:
            self._seal(msg)
            if msg.upgrade:
                if not msg.answered:
                    h.state = _PAUSED
                elif self._server.state == _TUNNEL:
                    self._to_tunnel(h)
            return
        self._finish(msg.req, msg, ts, "")
        req = msg.req
        if msg.upgrade:
            self._offer_switch(msg, ts)
            self._to_tunnel(self._server)
            self._to_tunnel(self._client)
        elif req is not None and req.upgrade and self._client.state == _PAUSED:
            # the server declined the switch: the client's bytes are HTTP after all
            self._client.state = _HEAD
            self._run(self._client, ts)

    def _offer_switch(self, resp: _Msg, ts: float) -> None:
        """A ``101`` to a protocol the sniffer parses (``SWITCH_TO``): hand the rest of
        the connection over (``StreamParser.switch``) with the bytes after the 101 and
        after the request, and the request itself (RFC 7540 §3.2: it becomes stream 1).
        The bytes are still counted as tunnel bytes here, for a pipeline without that
        protocol. A client still inside its request body keeps the plain tunnel."""
        fields = resp.fields
        if fields is None or fields.get("status") != 101:
            return
        proto = SWITCH_TO.get(str(fields.get("upgrade", "")).strip().lower())
        cli, srv = self._client, self._server
        if proto is None or cli.msg is not None or cli.state not in (_PAUSED, _HEAD):
            return
        handover: dict[str, Any] = {}
        req = resp.req
        if req is not None and not req.lost and req.fields is not None:
            handover = {"request": req.fields, "request_ts": req.ts, "upgrade": fields["upgrade"]}
        leftover = (bytes(cli.buf[cli.pos :]), bytes(srv.buf[srv.pos :]))
        self.switch = Switch(proto, leftover, ts, handover)

    def _seal(self, msg: _Msg) -> None:
        """Write the body fields into the message's map (once). The map was made with
        those of an empty, complete body."""
        if msg.emitted:
            return
        msg.emitted = True
        fields = msg.fields
        if fields is None:
            return
        body = msg.body
        complete = msg.done and not msg.gaps
        if body is not None:
            if "content-encoding" not in fields["headers"]:
                limit = self.limits.max_body
                size = len(body)
                if size <= limit:
                    if complete:
                        try:
                            fields["body"] = body.decode("utf-8")
                            fields["body_size"] = size
                            return
                        except UnicodeDecodeError:
                            pass
                    fields.update(body_fields(body, size, not complete))
                else:
                    fields.update(body_fields(body[:limit], len(body), True))
                return
            msg.sink = self._sink(msg)
            msg.sink.add(body)
        if msg.sink is not None:
            fields.update(msg.sink.fields(complete=complete))
        elif not msg.done:
            fields["body_truncated"] = True

    def _break_message(self, h: _Half, ts: float) -> None:
        """A gap destroyed the framing of the message being read."""
        msg = h.msg
        h.msg = None
        if msg is None:
            return
        if h.direction == _CLIENT:
            self._seal(msg)  # incomplete body; the request still waits for its response
        else:
            self._finish(msg.req, msg, None, "gap")

    def _lost_message(self, h: _Half, gaps: int) -> bool:
        """A message started inside a gap and cannot be read. Returns whether ``gaps``
        was counted on an exchange."""
        if h.direction == _CLIENT:
            if self._orphans:
                # A response without request came since the last request: the gap is
                # reported late (at the next client segment), after that response; it
                # was the answer to the lost request.
                self._orphans -= 1
                return False
            lost = _Msg(0.0, None)
            lost.gaps = gaps
            self._push(lost)
            return True
        if self._pending:
            req = self._pending.popleft()
            if not req.lost:
                req.gaps += gaps
                self._finish(req, None, None, "gap")
            return True
        return False

    def _finish(self, req: _Msg | None, resp: _Msg | None, end: float | None, error: str) -> None:
        """Emit one exchange."""
        gaps = 0
        if req is not None and req.lost:
            gaps = req.gaps
            if req.expired and resp is not None and not error:
                error = "late response"  # its request was already given up
            req = None
        request: dict[str, Any] = {}
        response: dict[str, Any] = {}
        if req is not None:
            self._seal(req)
            request = req.fields or {}
            gaps += req.gaps
            target = req.target if len(req.target) <= 200 else req.target[:200] + "…"
            summary = req.method + " " + target
            ts = req.ts
        else:
            summary = "?"
            ts = resp.ts if resp is not None else 0.0
        if resp is not None:
            self._seal(resp)
            response = resp.fields or {}
            gaps += resp.gaps
            summary = f"{summary} → {response['status']}"
            if req is None and not error:
                error = "no request"
        elif error:
            summary = f"{summary} → {error}"
        self._done.append(Exchange("http", ts, end, request, response, summary, error, gaps))


# ----------------------------------------------------------------------- detection

PROTOCOL = StreamProtocol(
    name="http",
    factory=HttpParser,
    detect=detect,
    ports=frozenset(
        {80, 81, 591, 2375, 3000, 4000, 5000, 8000, 8008, 8080, 8081, 8088, 8888, 9090}
    ),
    midstream=True,
)
