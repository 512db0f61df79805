"""AMQP 0-9-1 parser (RabbitMQ's protocol): frames, methods, content, sync pairing.

Entries (``proto="amqp"``) — ``PROTOCOL_FIELDS``:

- request: ``method`` (``class.method``: ``queue.declare``, ``basic.publish``), ``channel``,
  ``from`` (``client`` or ``broker``: ``connection.start``, ``basic.deliver`` come from
  the broker), ``args`` (the method's arguments by name: ``exchange``, ``routing_key``,
  ``queue``, ``consumer_tag``, ``delivery_tag``, ``reply_code``, ``reply_text``...; field
  tables as maps), and for content-carrying methods (publish, deliver, return) the
  content header's ``properties`` (``content_type``, ``delivery_mode``, ``headers``...)
  and the body fields (``body``, ``body_encoding``, ``body_size``, ``body_truncated``).
- response: ``method`` (``queue.declare-ok``; ``channel.close`` when the broker refused
  the request by closing the channel), ``args``, and for ``basic.get-ok`` the content.
  ``connection.start-ok``'s SASL response is kept under ``password`` only so that the
  redaction engine's ``password`` rule replaces it (``user`` beside it for PLAIN).
- ``reply_code``/``reply_text`` on either side when a channel or connection closes.

Synchronous methods (AMQP 0-9-1 §2.3.3, "X" → "X-Ok") pair with their answer on the same
channel; asynchronous ones (``basic.publish``, ``basic.deliver``, ``basic.ack``...) and
requests sent with ``no-wait`` are entries without a response.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from sniffer.parsers._common import Pending, PendingQueue, body_fields, text
from sniffer.parsers.base import Direction, Exchange, ParseError, ParserLimits, StreamParser
from sniffer.parsers.registry import StreamProtocol, Verdict

__all__ = ["METHODS", "PROTOCOL", "PROTOCOL_FIELDS", "AmqpParser"]

PROTOCOL_FIELDS = {
    "request": ["method", "channel", "from", "args", "properties", "body", "body_encoding",
                "body_size", "body_truncated"],
    "response": ["method", "args", "reply_code", "reply_text", "password", "user"],
}  # fmt: skip

HEADER = b"AMQP\x00\x00\x09\x01"
_FRAME = struct.Struct("!BHI")
_CM = struct.Struct("!HH")
_CONTENT = struct.Struct("!HHQH")
_FRAME_END = 0xCE
_MAX_FRAME = 128 * 1024 * 1024

_CLASSES = {10: "connection", 20: "channel", 40: "exchange", 50: "queue", 60: "basic",
            85: "confirm", 90: "tx"}  # fmt: skip

# (class, method) → (name, argument spec). Spec letters: o octet, s short, l long,
# L long long, b bit, S short string, T long string, F field table (§4.2.5).
METHODS: dict[tuple[int, int], tuple[str, str]] = {
    (10, 10): ("start", "o:version_major o:version_minor F:server_properties T:mechanisms "
                        "T:locales"),
    (10, 11): ("start-ok", "F:client_properties S:mechanism T:response S:locale"),
    (10, 20): ("secure", "T:challenge"),
    (10, 21): ("secure-ok", "T:response"),
    (10, 30): ("tune", "s:channel_max l:frame_max s:heartbeat"),
    (10, 31): ("tune-ok", "s:channel_max l:frame_max s:heartbeat"),
    (10, 40): ("open", "S:virtual_host S:_ b:_"),
    (10, 41): ("open-ok", "S:_"),
    (10, 50): ("close", "s:reply_code S:reply_text s:class_id s:method_id"),
    (10, 51): ("close-ok", ""),
    (10, 60): ("blocked", "S:reason"),
    (10, 61): ("unblocked", ""),
    (10, 70): ("update-secret", "T:new_secret S:reason"),
    (10, 71): ("update-secret-ok", ""),
    (20, 10): ("open", "S:_"),
    (20, 11): ("open-ok", "T:_"),
    (20, 20): ("flow", "b:active"),
    (20, 21): ("flow-ok", "b:active"),
    (20, 40): ("close", "s:reply_code S:reply_text s:class_id s:method_id"),
    (20, 41): ("close-ok", ""),
    (40, 10): ("declare", "s:_ S:exchange S:type b:passive b:durable b:auto_delete b:internal "
                          "b:no_wait F:arguments"),
    (40, 11): ("declare-ok", ""),
    (40, 20): ("delete", "s:_ S:exchange b:if_unused b:no_wait"),
    (40, 21): ("delete-ok", ""),
    (40, 30): ("bind", "s:_ S:destination S:source S:routing_key b:no_wait F:arguments"),
    (40, 31): ("bind-ok", ""),
    (40, 40): ("unbind", "s:_ S:destination S:source S:routing_key b:no_wait F:arguments"),
    (40, 51): ("unbind-ok", ""),
    (50, 10): ("declare", "s:_ S:queue b:passive b:durable b:exclusive b:auto_delete b:no_wait "
                          "F:arguments"),
    (50, 11): ("declare-ok", "S:queue l:message_count l:consumer_count"),
    (50, 20): ("bind", "s:_ S:queue S:exchange S:routing_key b:no_wait F:arguments"),
    (50, 21): ("bind-ok", ""),
    (50, 30): ("purge", "s:_ S:queue b:no_wait"),
    (50, 31): ("purge-ok", "l:message_count"),
    (50, 40): ("delete", "s:_ S:queue b:if_unused b:if_empty b:no_wait"),
    (50, 41): ("delete-ok", "l:message_count"),
    (50, 50): ("unbind", "s:_ S:queue S:exchange S:routing_key F:arguments"),
    (50, 51): ("unbind-ok", ""),
    (60, 10): ("qos", "l:prefetch_size s:prefetch_count b:global"),
    (60, 11): ("qos-ok", ""),
    (60, 20): ("consume", "s:_ S:queue S:consumer_tag b:no_local b:no_ack b:exclusive b:no_wait "
                          "F:arguments"),
    (60, 21): ("consume-ok", "S:consumer_tag"),
    (60, 30): ("cancel", "S:consumer_tag b:no_wait"),
    (60, 31): ("cancel-ok", "S:consumer_tag"),
    (60, 40): ("publish", "s:_ S:exchange S:routing_key b:mandatory b:immediate"),
    (60, 50): ("return", "s:reply_code S:reply_text S:exchange S:routing_key"),
    (60, 60): ("deliver", "S:consumer_tag L:delivery_tag b:redelivered S:exchange S:routing_key"),
    (60, 70): ("get", "s:_ S:queue b:no_ack"),
    (60, 71): ("get-ok", "L:delivery_tag b:redelivered S:exchange S:routing_key l:message_count"),
    (60, 72): ("get-empty", "S:_"),
    (60, 80): ("ack", "L:delivery_tag b:multiple"),
    (60, 90): ("reject", "L:delivery_tag b:requeue"),
    (60, 100): ("recover-async", "b:requeue"),
    (60, 110): ("recover", "b:requeue"),
    (60, 111): ("recover-ok", ""),
    (60, 120): ("nack", "L:delivery_tag b:multiple b:requeue"),
    (85, 10): ("select", "b:no_wait"),
    (85, 11): ("select-ok", ""),
    (90, 10): ("select", ""),
    (90, 11): ("select-ok", ""),
    (90, 20): ("commit", ""),
    (90, 21): ("commit-ok", ""),
    (90, 30): ("rollback", ""),
    (90, 31): ("rollback-ok", ""),
}  # fmt: skip
_SPECS = {k: [tuple(a.split(":")) for a in spec.split()] for k, (_, spec) in METHODS.items()}

# synchronous requests → the methods that answer them (§1.x of the class reference)
_ANSWERS: dict[tuple[int, int], tuple[int, ...]] = {
    k: (k[1] + 1,) for k in METHODS if METHODS.get((k[0], k[1] + 1), ("",))[0].endswith("-ok")
    and not METHODS[k][0].endswith("-ok")
}  # fmt: skip
_ANSWERS[(40, 40)] = (51,)
_ANSWERS[(60, 70)] = (71, 72)
_CONTENT_METHODS = {(60, 40), (60, 50), (60, 60), (60, 71)}

# basic content properties, in flag order (§4.2.6.1; basic class)
_PROPS = (
    ("content_type", "S"), ("content_encoding", "S"), ("headers", "F"), ("delivery_mode", "o"),
    ("priority", "o"), ("correlation_id", "S"), ("reply_to", "S"), ("expiration", "S"),
    ("message_id", "S"), ("timestamp", "L"), ("type", "S"), ("user_id", "S"), ("app_id", "S"),
    ("cluster_id", "S"),
)  # fmt: skip


class _Short(Exception):
    pass


def method_name(cid: int, mid: int) -> str:
    cls = _CLASSES.get(cid, f"class-{cid}")
    m = METHODS.get((cid, mid))
    return f"{cls}.{m[0] if m else f'method-{mid}'}"


class _R:
    __slots__ = ("b", "p", "depth")

    def __init__(self, b: bytes, p: int = 0) -> None:
        self.b = b
        self.p = p
        self.depth = 0

    def take(self, n: int) -> bytes:
        if self.p + n > len(self.b):
            raise _Short
        v = self.b[self.p : self.p + n]
        self.p += n
        return v

    def num(self, fmt: str, n: int) -> Any:
        return struct.unpack(fmt, self.take(n))[0]

    def shortstr(self) -> str:
        n = self.take(1)[0]
        return self.take(n).decode("utf-8", "backslashreplace")

    def longstr(self) -> bytes:
        return self.take(self.num("!I", 4))

    def value(self) -> Any:
        t = chr(self.take(1)[0])
        simple = {"b": ("!b", 1), "B": ("!B", 1), "s": ("!h", 2), "u": ("!H", 2),
                  "I": ("!i", 4), "i": ("!I", 4), "l": ("!q", 8), "L": ("!Q", 8),
                  "T": ("!Q", 8), "f": ("!f", 4), "d": ("!d", 8)}  # fmt: skip
        if t in simple:
            return self.num(*simple[t])
        if t == "t":
            return bool(self.take(1)[0])
        if t == "D":
            scale = self.take(1)[0]
            return self.num("!i", 4) / (10**scale)
        if t in "Sx":
            return text(self.longstr(), 256)
        if t == "F":
            return self.table()
        if t == "A":
            n = self.num("!I", 4)
            end = self.p + n
            out = []
            while self.p < end:
                out.append(self.value())
            return out[:32]
        if t == "V":
            return None
        raise ParseError(f"amqp: field value type {t!r}")

    def table(self) -> dict[str, Any]:
        self.depth += 1
        if self.depth > 8:
            raise ParseError("amqp: field tables nested too deep")
        n = self.num("!I", 4)
        end = self.p + n
        if end > len(self.b):
            raise _Short
        out: dict[str, Any] = {}
        while self.p < end:
            k = self.shortstr()
            out[k] = self.value()
        self.depth -= 1
        return dict(list(out.items())[:64])


def parse_args(cid: int, mid: int, r: _R) -> dict[str, Any]:
    out: dict[str, Any] = {}
    bits = 0
    bit = 8
    for t, name in _SPECS.get((cid, mid), []):
        if t == "b":
            if bit == 8:
                bits, bit = r.take(1)[0], 0
            v: Any = bool(bits >> bit & 1)
            bit += 1
        else:
            bit = 8
            if t == "o":
                v = r.take(1)[0]
            elif t == "s":
                v = r.num("!H", 2)
            elif t == "l":
                v = r.num("!I", 4)
            elif t == "L":
                v = r.num("!Q", 8)
            elif t == "S":
                v = r.shortstr()
            elif t == "T":
                v = r.longstr()
            else:
                v = r.table()
        if name != "_":
            out[name] = v
    return out


@dataclass(slots=True)
class _Content:
    """A content-carrying method waiting for its header and body frames."""

    cid: int
    mid: int
    ts: float
    args: dict[str, Any]
    size: int = -1
    got: int = 0
    props: dict[str, Any] = field(default_factory=dict)
    kept: bytearray = field(default_factory=bytearray)
    answer: tuple[Pending, dict[str, Any], str] | None = None
    """basic.get-ok: the get it answers, its response map and summary tail."""


class AmqpParser(StreamParser):
    """Frames of both directions of one AMQP 0-9-1 connection."""

    proto = "amqp"

    def __init__(self, limits: ParserLimits | None = None) -> None:
        super().__init__(limits)
        self._buf = (bytearray(), bytearray())
        self._header = [False, False]
        self._q = PendingQueue("amqp", self.limits.max_pending)
        self._content: dict[tuple[Direction, int], _Content] = {}
        self._midstream = False
        """The capture began after the connection did: orphan content frames are skipped."""

    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        buf = self._buf[direction]
        buf += data
        pos = 0
        if direction is Direction.CLIENT and not self._header[0]:
            n = min(len(buf), 8)
            if buf and buf[0] in (1, 2, 3, 8):
                # mid-stream: the connection began before the capture; frames follow
                self._header[0] = True
                self._midstream = True
            elif buf[:n] != HEADER[:n] and buf[:4] != b"AMQP"[: min(4, n)]:
                raise ParseError("amqp: no protocol header")
        if direction is Direction.CLIENT and not self._header[0]:
            if len(buf) < 8:
                return
            self._header[0] = True
            pos = 8
        elif direction is Direction.SERVER and not self._header[1] and buf[:4] == b"AMQP":
            if len(buf) < 8:
                return
            # the server answers a header it does not speak with the one it does (§4.2.2)
            version = ".".join(str(b) for b in bytes(buf[5:8]))
            self._q.lone(ts, ts, {}, {"method": "protocol-header", "version": version},
                         f"protocol header refused: server speaks {version}",
                         error="protocol version mismatch")  # fmt: skip
            del buf[:8]
            return
        if direction is Direction.SERVER and not self._header[0]:
            self._midstream = True  # the broker speaks first: its client's start is gone
        self._header[direction] = True
        while len(buf) - pos >= 7:
            t, ch, size = _FRAME.unpack_from(buf, pos)
            if size > _MAX_FRAME:
                raise ParseError(f"amqp: frame of {size} bytes")
            if len(buf) - pos < size + 8:
                break
            if buf[pos + 7 + size] != _FRAME_END:
                raise ParseError("amqp: frame-end octet missing")
            payload = bytes(buf[pos + 7 : pos + 7 + size])
            pos += size + 8
            self._frame(direction, t, ch, payload, ts)
        if pos:
            del buf[:pos]

    def _frame(self, d: Direction, t: int, ch: int, payload: bytes, ts: float) -> None:
        if t == 1:
            if len(payload) < 4:
                raise ParseError("amqp: short method frame")
            cid, mid = _CM.unpack_from(payload)
            try:
                args = parse_args(cid, mid, _R(payload, 4))
            except _Short:
                raise ParseError(f"amqp: {method_name(cid, mid)} arguments cut short") from None
            self._method(d, ch, cid, mid, args, ts)
        elif t == 2:
            c = self._content.get((d, ch))
            if c is None and self._midstream:
                return  # its method frame came before the capture
            if c is None or c.size >= 0:
                raise ParseError("amqp: content header without a content method")
            if len(payload) < _CONTENT.size:
                raise ParseError("amqp: short content header")
            _cid, _w, c.size, flags = _CONTENT.unpack_from(payload)
            try:
                c.props = self._properties(flags, _R(payload, _CONTENT.size))
            except _Short:
                raise ParseError("amqp: content properties cut short") from None
            if c.size == 0:
                self._content_done(d, ch, ts)
        elif t == 3:
            c = self._content.get((d, ch))
            if c is None and self._midstream:
                return
            if c is None or c.size < 0:
                raise ParseError("amqp: body frame without a content header")
            room = self.limits.max_body - len(c.kept)
            if room > 0:
                c.kept += payload[:room]
            c.got += len(payload)
            if c.got >= c.size:
                self._content_done(d, ch, ts)
        elif t in (4, 8):
            return  # heartbeat
        else:
            raise ParseError(f"amqp: frame type {t}")

    @staticmethod
    def _properties(flags: int, r: _R) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, (name, t) in enumerate(_PROPS):
            if not flags & (1 << (15 - i)):
                continue
            if t == "S":
                out[name] = r.shortstr()
            elif t == "F":
                out[name] = r.table()
            elif t == "o":
                out[name] = r.take(1)[0]
            else:
                out[name] = r.num("!Q", 8)
        return out

    # -- methods --

    def _method(
        self, d: Direction, ch: int, cid: int, mid: int, args: dict[str, Any], ts: float
    ) -> None:
        name = method_name(cid, mid)
        sender = "client" if d is Direction.CLIENT else "broker"
        if (cid, mid) == (10, 11):  # start-ok: the SASL response is a credential
            resp = args.pop("response", b"")
            args["password"] = text(resp, 1024)
            if args.get("mechanism") == "PLAIN" and resp.count(b"\0") == 2:
                args["user"] = resp.split(b"\0")[1].decode("utf-8", "backslashreplace")
                args["password"] = resp.split(b"\0")[2].decode("utf-8", "backslashreplace")
        for k, v in list(args.items()):
            if isinstance(v, bytes):
                args[k] = text(v, 256)
        # the answer to a pending synchronous request on this channel (X → X-Ok)?
        for p in self._q:
            if p.key is not None and p.key[0] == ch and p.key[1] == d and (cid, mid) in p.key[2]:
                self._answer(p, d, ch, cid, mid, name, args, ts)
                return
        # a close instead of the answer: the peer refused the request (§1.1 exceptions)
        if (cid, mid) in ((20, 40), (10, 50)):
            for p in self._q:
                if p.key is not None and p.key[0] == ch and p.key[1] == d:
                    self._answer(p, d, ch, cid, mid, name, dict(args), ts)
                    break
        if (cid, mid) in _CONTENT_METHODS:
            self._content[(d, ch)] = _Content(cid, mid, ts, args)
            return
        req: dict[str, Any] = {"method": name, "channel": ch, "from": sender, "args": args}
        if "reply_code" in args:
            req["reply_code"], req["reply_text"] = args["reply_code"], args["reply_text"]
        summary = self._describe(name, args)
        answers = _ANSWERS.get((cid, mid))
        if answers is None or args.get("no_wait"):
            self._q.lone(ts, None, req, {}, summary)
            return
        key = (ch, d.other, tuple((cid, a) for a in answers), (cid, mid))
        self._q.push(Pending(ts, req, summary, key=key))

    def _answer(
        self, p: Pending, d: Direction, ch: int, cid: int, mid: int, name: str,
        args: dict[str, Any], ts: float,
    ) -> None:  # fmt: skip
        self._q.remove(p)
        resp: dict[str, Any] = {"method": name, "args": args}
        for k in ("password", "user"):
            if k in args:
                resp[k] = args.pop(k)
        tail = name.split(".", 1)[1]
        if "reply_code" in args:
            resp["reply_code"], resp["reply_text"] = args["reply_code"], args["reply_text"]
            tail = f"{name} {args['reply_code']} {args['reply_text']}"
        if "message_count" in args:
            tail += f" ({args['message_count']} msgs)"
        if (cid, mid) == (60, 71):  # get-ok carries content: finish when it has arrived
            self._content[(d, ch)] = _Content(cid, mid, ts, args, answer=(p, resp, tail))
            return
        self._q.finish(p, ts, resp, f"{p.summary} → {tail}")

    def _content_done(self, d: Direction, ch: int, ts: float) -> None:
        c = self._content.pop((d, ch))
        pending = c.answer
        fields = body_fields(bytes(c.kept), c.got, self.limits.max_body)
        if pending is not None:
            p, resp, tail = pending
            resp.update(properties=c.props, **fields)
            self._q.finish(p, ts, resp, f"{p.summary} → {tail} {c.got} B")
            return
        name = method_name(c.cid, c.mid)
        sender = "client" if d is Direction.CLIENT else "broker"
        req: dict[str, Any] = {"method": name, "channel": ch, "from": sender, "args": c.args,
                               "properties": c.props, **fields}  # fmt: skip
        self._q.lone(c.ts, None, req, {}, f"{self._describe(name, c.args)} {c.got} B")

    @staticmethod
    def _describe(name: str, args: dict[str, Any]) -> str:
        parts = [name]
        for k, label in (("queue", "q"), ("exchange", "x"), ("routing_key", "rk"),
                         ("virtual_host", "vhost")):  # fmt: skip
            if args.get(k):
                parts.append(f"{label}={args[k]}")
        if "reply_code" in args:
            parts.append(f"{args['reply_code']} {args.get('reply_text', '')}")
        return " ".join(parts)

    def close(self, ts: float) -> None:
        for c in list(self._content.values()):
            pending = c.answer
            if pending is not None:
                p, resp, tail = pending
                self._q.finish(p, ts, resp, f"{p.summary} → {tail}", error="content incomplete")
            else:
                name = method_name(c.cid, c.mid)
                req = {"method": name, "args": c.args}
                self._q.lone(c.ts, None, req, {}, name, error="content incomplete")
        self._content.clear()
        self._q.close()

    def take(self) -> list[Exchange]:
        return self._q.take()


def detect(data: bytes, direction: Direction) -> Verdict:
    """The client's protocol header ``AMQP\\0\\0\\x09\\x01`` (or another AMQP version's,
    which the server will answer with its own)."""
    if direction is not Direction.CLIENT:
        return Verdict.NO
    n = min(len(data), 4)
    if data[:n] != b"AMQP"[:n]:
        return Verdict.NO
    return Verdict.YES if len(data) >= 8 else Verdict.MORE


PROTOCOL = StreamProtocol(
    name="amqp",
    factory=AmqpParser,
    detect=detect,
    ports=frozenset({5672}),
    midstream=True,
)
