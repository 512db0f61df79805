"""Redis (RESP2 and RESP3) command/reply parser.

Entries (``proto="redis"``) — ``PROTOCOL_FIELDS``:

- request: ``method`` and ``command`` (upper-cased command name, with the subcommand for
  container commands: ``CLIENT SETNAME``), ``keys`` (the keys per the command's key spec,
  for common commands), ``args`` (arguments after the command name, at most
  ``limits.max_args``, each cut at 256 characters), ``args_count`` (all of them),
  ``password`` (``AUTH``/``HELLO ... AUTH``: the password, kept out of ``args`` and the
  summary so that the redaction engine's ``password`` rule replaces it), ``user``.
- response: ``type`` (``simple``, ``error``, ``integer``, ``bulk``, ``null``, ``array``,
  ``map``, ``set``, ``push``, ``double``, ``boolean``, ``bignum``, ``verbatim``),
  ``value`` (a bounded text summary), ``size`` (bytes of a bulk string, items of an
  aggregate), ``error`` (the error reply's text, ``ERR unknown command ...``).
- pub/sub: messages the server pushes (RESP3 ``>``, or RESP2 ``message``/``pmessage``/
  ``smessage`` arrays while subscribed) are entries of their own with an empty request and
  response ``{type: "push", kind, channel, pattern?, value}``.

Pipelined commands pair with replies in order (RESP §"Pipelining"); ``SUBSCRIBE a b``
takes one confirmation per channel. A capture that begins mid-connection starts at the
client's next command (server bytes before it are skipped); after lost bytes the requests
in flight are reported with the gap and reading resumes at the next command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sniffer.parsers._common import Pending, PendingQueue, text
from sniffer.parsers.base import Direction, Exchange, ParseError, ParserLimits, StreamParser
from sniffer.parsers.registry import StreamProtocol, Verdict

__all__ = ["PROTOCOL", "PROTOCOL_FIELDS", "RedisParser", "RespValue", "RespReader"]

PROTOCOL_FIELDS = {
    "request": ["method", "command", "keys", "args", "args_count", "password", "user"],
    "response": ["type", "value", "size", "error", "kind", "channel", "pattern"],
}

_KEEP = 256
"""Characters kept of one argument or reply string."""
_MAX_DEPTH = 32
_MAX_BULK = 512 * 1024 * 1024
_MAX_COUNT = 1 << 31
_MAX_LINE = 64 * 1024

# RESP type bytes → names (RESP3 spec, "RESP protocol description")
_SCALARS = {
    ord("+"): "simple",
    ord("-"): "error",
    ord(":"): "integer",
    ord(","): "double",
    ord("#"): "boolean",
    ord("("): "bignum",
    ord("_"): "null",
}
_BULKS = {ord("$"): "bulk", ord("!"): "error", ord("="): "verbatim"}
_AGGS = {ord("*"): "array", ord("%"): "map", ord("~"): "set", ord(">"): "push", ord("|"): "attr"}


@dataclass(slots=True)
class RespValue:
    """One decoded RESP value, bounded: strings keep their first bytes, aggregates their
    first items (``size`` is the real length / item count)."""

    kind: str
    data: Any = None
    """bytes (strings), int (integers), bool, None, or list[RespValue] (aggregates)."""
    size: int = 0


@dataclass(slots=True)
class _Agg:
    kind: str
    remaining: int
    size: int
    items: list[RespValue] = field(default_factory=list)


class RespReader:
    """Incremental RESP decoder for one direction: resumes where it stopped; big bulk
    strings are consumed as they arrive and only their first bytes are kept."""

    def __init__(self, *, client: bool, max_items: int) -> None:
        self.client = client
        self.max_items = max_items
        self.buf = bytearray()
        self.stack: list[_Agg] = []
        self.bulk_left = 0
        """Bytes (with the final CRLF) of the bulk string being read."""
        self.bulk_kind = ""
        self.bulk_size = 0
        self.bulk_kept = bytearray()
        self.start: float | None = None
        """Capture time of the first byte of the top-level value being read."""
        self.rest_ts = 0.0

    def feed(self, data: bytes, ts: float) -> list[tuple[RespValue, float]]:
        """Returns the top-level values completed by ``data`` with their start times."""
        old = len(self.buf)
        if not old:
            self.rest_ts = ts
        self.buf += data
        buf = self.buf
        pos = 0
        out: list[tuple[RespValue, float]] = []
        n = len(buf)
        while pos < n:
            if self.start is None:
                self.start = self.rest_ts if pos < old else ts
            if self.bulk_left:
                take = min(self.bulk_left, n - pos)
                room = _KEEP * 4 - len(self.bulk_kept)
                if room > 0:
                    self.bulk_kept += buf[pos : pos + min(take, room)]
                pos += take
                self.bulk_left -= take
                if self.bulk_left:
                    break
                kept = bytes(self.bulk_kept)
                if len(kept) > self.bulk_size:  # the CRLF was kept: drop it
                    if (
                        kept[self.bulk_size : self.bulk_size + 2]
                        != b"\r\n"[: len(kept) - self.bulk_size]
                    ):
                        raise ParseError("redis: bulk string not followed by CRLF")
                    kept = kept[: self.bulk_size]
                self.bulk_kept = bytearray()
                v = RespValue(self.bulk_kind, kept, self.bulk_size)
                self._done(v, out, ts)
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if n - pos > _MAX_LINE:
                    raise ParseError("redis: line longer than 64 KiB")
                break
            t = buf[pos]
            line = bytes(buf[pos + 1 : eol])
            if t in _SCALARS:
                pos = eol + 2
                self._done(self._scalar(_SCALARS[t], line), out, ts)
            elif t in _BULKS:
                size = self._int(line)
                pos = eol + 2
                if size < 0:
                    self._done(RespValue("null"), out, ts)
                    continue
                if size > _MAX_BULK:
                    raise ParseError(f"redis: bulk string of {size} bytes")
                if pos + size + 2 <= n:  # all there: no streaming needed (the common case)
                    if buf[pos + size : pos + size + 2] != b"\r\n":
                        raise ParseError("redis: bulk string not followed by CRLF")
                    kept = bytes(buf[pos : pos + min(size, _KEEP * 4)])
                    pos += size + 2
                    self._done(RespValue(_BULKS[t], kept, size), out, ts)
                    continue
                self.bulk_kind = _BULKS[t]
                self.bulk_size = size
                self.bulk_left = size + 2
            elif t in _AGGS:
                if line == b"?":
                    raise ParseError("redis: streamed aggregates are not supported")
                count = self._int(line)
                pos = eol + 2
                kind = _AGGS[t]
                if count < 0:
                    self._done(RespValue("null"), out, ts)
                    continue
                if count >= _MAX_COUNT:
                    raise ParseError(f"redis: aggregate of {count} items")
                if len(self.stack) >= _MAX_DEPTH:
                    raise ParseError("redis: aggregates nested too deep")
                items = count * 2 if kind in ("map", "attr") else count
                agg = _Agg(kind, items, count)
                if items == 0:
                    self._close(agg, out, ts)
                else:
                    self.stack.append(agg)
            elif self.client and not self.stack:
                # inline command (RESP: "Inline commands"): words separated by spaces
                words = bytes(buf[pos:eol]).split()
                pos = eol + 2
                if not words:
                    self.start = None
                    continue
                inl = [RespValue("bulk", w[: _KEEP * 4], len(w)) for w in words]
                self._done(RespValue("array", inl, len(words)), out, ts)
            else:
                raise ParseError(f"redis: unknown RESP type byte {t:#04x}")
        if pos:
            del buf[:pos]
        return out

    @staticmethod
    def _int(line: bytes) -> int:
        try:
            return int(line)
        except ValueError:
            raise ParseError(f"redis: bad length {line[:20]!r}") from None

    def _scalar(self, kind: str, line: bytes) -> RespValue:
        if kind == "integer":
            return RespValue(kind, self._int(line))
        if kind == "boolean":
            return RespValue(kind, line == b"t")
        if kind == "null":
            return RespValue(kind)
        return RespValue(kind, line[: _KEEP * 4], len(line))

    def _done(self, v: RespValue, out: list[tuple[RespValue, float]], ts: float) -> None:
        while True:
            if not self.stack:
                start = self.start if self.start is not None else ts
                self.start = None
                out.append((v, start))
                return
            top = self.stack[-1]
            if top.kind != "attr" and len(top.items) < self.max_items:
                top.items.append(v)
            top.remaining -= 1
            if top.remaining:
                return
            self.stack.pop()
            if top.kind == "attr":
                return  # attributes decorate the next value; they are not one
            v = RespValue(top.kind, top.items, top.size)

    def _close(self, agg: _Agg, out: list[tuple[RespValue, float]], ts: float) -> None:
        if agg.kind == "attr":
            return
        self._done(RespValue(agg.kind, agg.items, agg.size), out, ts)


def _s(v: RespValue) -> str:
    """A RESP value as text (strings and numbers; aggregates as their kind and size)."""
    if isinstance(v.data, bytes | bytearray):
        return text(v.data, _KEEP)
    if v.kind == "null":
        return "(nil)"
    if isinstance(v.data, list):
        return f"{v.kind}({v.size})"
    return str(v.data)


def summarize(v: RespValue, limit: int = 64) -> str:
    """One short line for a reply: ``OK``, ``"alice"``, ``(integer) 3``, ``array(2)``."""
    if v.kind in ("simple", "error"):
        return _s(v)[:limit]
    if v.kind in ("bulk", "verbatim"):
        s = _s(v)
        return '"' + (s[:limit] + "…" if len(s) > limit else s) + '"'
    if v.kind == "integer":
        return f"(integer) {v.data}"
    return _s(v)[:limit]


# Key specs of common commands: (first, last, step); last -1 = the last argument,
# -2 = all but the last (blocking pops end with a timeout). Positions count the command
# name as 0, as in COMMAND INFO.
_KEYSPEC: dict[str, tuple[int, int, int]] = {}
for _c in (
    "GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX APPEND STRLEN INCR INCRBY INCRBYFLOAT "
    "DECR DECRBY GETRANGE SETRANGE SUBSTR EXPIRE PEXPIRE EXPIREAT PEXPIREAT EXPIRETIME TTL "
    "PTTL PERSIST TYPE DUMP RESTORE HGET HSET HSETNX HMSET HMGET HDEL HLEN HKEYS HVALS "
    "HGETALL HEXISTS HINCRBY HINCRBYFLOAT HSCAN HSTRLEN HRANDFIELD HEXPIRE HTTL LPUSH RPUSH "
    "LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LREM LTRIM LINSERT LPOS SADD SREM "
    "SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SSCAN ZADD ZREM ZRANGE "
    "ZRANGEBYSCORE ZREVRANGE ZREVRANGEBYSCORE ZRANK ZREVRANK ZSCORE ZMSCORE ZCARD ZCOUNT "
    "ZINCRBY ZSCAN ZPOPMIN ZPOPMAX ZRANGEBYLEX ZREVRANGEBYLEX ZLEXCOUNT ZREMRANGEBYRANK "
    "ZREMRANGEBYSCORE ZREMRANGEBYLEX ZRANDMEMBER XADD XLEN XRANGE XREVRANGE XDEL XTRIM XACK "
    "XCLAIM XAUTOCLAIM XPENDING XSETID PFADD GEOADD GEODIST GEOHASH GEOPOS GEOSEARCH "
    "GEORADIUS GEORADIUSBYMEMBER SETBIT GETBIT BITCOUNT BITPOS BITFIELD BITFIELD_RO SORT "
    "SORT_RO LCS JSON.GET JSON.SET JSON.DEL"
).split():
    _KEYSPEC[_c] = (1, 1, 1)
for _c in "DEL UNLINK EXISTS MGET TOUCH WATCH SUNION SINTER SDIFF PFCOUNT PFMERGE".split():
    _KEYSPEC[_c] = (1, -1, 1)
for _c in "SUNIONSTORE SINTERSTORE SDIFFSTORE BITOP".split():
    _KEYSPEC[_c] = (1, -1, 1) if _c != "BITOP" else (2, -1, 1)
for _c in "MSET MSETNX".split():
    _KEYSPEC[_c] = (1, -1, 2)
for _c in "RENAME RENAMENX RPOPLPUSH SMOVE LMOVE COPY GEOSEARCHSTORE ZRANGESTORE".split():
    _KEYSPEC[_c] = (1, 2, 1)
for _c in "BLPOP BRPOP BZPOPMIN BZPOPMAX".split():
    _KEYSPEC[_c] = (1, -2, 1)
_KEYSPEC["BLMOVE"] = (1, 2, 1)
_KEYSPEC["BRPOPLPUSH"] = (1, 2, 1)
_KEYSPEC["OBJECT"] = (2, 2, 1)
_KEYSPEC["MEMORY"] = (2, 2, 1)
_NUMKEYS_AT_2 = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}
_NUMKEYS_AT_1 = {"ZUNION", "ZINTER", "ZDIFF", "SINTERCARD", "ZINTERCARD", "LMPOP", "ZMPOP"}
_DEST_NUMKEYS = {"ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"}
_CONTAINERS = {
    "CLIENT", "CONFIG", "COMMAND", "CLUSTER", "OBJECT", "MEMORY", "SCRIPT", "FUNCTION",
    "XINFO", "XGROUP", "ACL", "PUBSUB", "SLOWLOG", "LATENCY", "MODULE", "DEBUG",
}  # fmt: skip
_SUBSCRIBE = {
    "SUBSCRIBE": "subscribe",
    "PSUBSCRIBE": "psubscribe",
    "SSUBSCRIBE": "ssubscribe",
    "UNSUBSCRIBE": "unsubscribe",
    "PUNSUBSCRIBE": "punsubscribe",
    "SUNSUBSCRIBE": "sunsubscribe",
}
_PUSH_KINDS = {b"message", b"pmessage", b"smessage"}
_CONFIRM_KINDS = {k.encode() for k in _SUBSCRIBE.values()}


def command_keys(cmd: str, words: list[bytes]) -> list[bytes]:
    """The keys of one command (``words[0]`` is the command name)."""
    n = len(words)
    if cmd in _NUMKEYS_AT_2 or cmd in _NUMKEYS_AT_1 or cmd in _DEST_NUMKEYS:
        at = 2 if cmd in _NUMKEYS_AT_2 or cmd in _DEST_NUMKEYS else 1
        try:
            nk = int(words[at]) if at < n else 0
        except ValueError:
            return []
        keys = words[at + 1 : at + 1 + max(0, nk)]
        return ([words[1]] if cmd in _DEST_NUMKEYS and n > 1 else []) + keys
    if cmd in ("XREAD", "XREADGROUP"):
        for i, w in enumerate(words):
            if w.upper() == b"STREAMS":
                rest = words[i + 1 :]
                return rest[: len(rest) // 2]
        return []
    spec = _KEYSPEC.get(cmd)
    if spec is None:
        return []
    first, last, step = spec
    end = n + last if last < 0 else last
    return words[first : min(end, n - 1) + 1 : step]


class RedisParser(StreamParser):
    """RESP commands from the client paired with replies from the server."""

    proto = "redis"

    def __init__(self, limits: ParserLimits | None = None) -> None:
        super().__init__(limits)
        items = max(self.limits.max_args + 1, 8)
        self._readers = (
            RespReader(client=True, max_items=items),
            RespReader(client=False, max_items=items),
        )
        self._q = PendingQueue("redis", self.limits.max_pending)
        self._subscribed = False
        self._sync = [True, True]
        self._requests_seen = False
        """Whether each direction is at a message boundary (False after a gap)."""

    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        if direction is Direction.SERVER and not self._requests_seen:
            return  # a capture that began mid-connection: replies to unseen requests
        if not self._sync[direction] and not self._resume(direction, data):
            return
        for v, start in self._readers[direction].feed(data, ts):
            if direction is Direction.CLIENT:
                self._request(v, start)
            else:
                self._reply(v, start, ts)

    def gap(self, direction: Direction, length: int, ts: float) -> None:
        """Lost bytes: the requests in flight can no longer be paired (they are reported
        with the gap); reading resumes at the next client segment that starts a command,
        and on the server side at the first segment after it that starts a reply (best
        effort: a reply to a command sent before the loss may still be taken for it)."""
        for p in self._q:
            p.gaps += length
        self._q.close(f"gap: {length} bytes lost")
        items = self._readers[0].max_items
        self._readers = (RespReader(client=True, max_items=items),
                         RespReader(client=False, max_items=items))  # fmt: skip
        self._sync = [False, False]

    def _resume(self, direction: Direction, data: bytes) -> bool:
        if direction is Direction.CLIENT:
            ok = bool(_ARRAY_HEAD.match(data))
        else:
            ok = self._sync[Direction.CLIENT] and data[:1] in _REPLY_START
        self._sync[direction] = ok
        return ok

    def close(self, ts: float) -> None:
        self._q.close()

    def take(self) -> list[Exchange]:
        return self._q.take()

    # -- requests --

    def _request(self, v: RespValue, ts: float) -> None:
        self._requests_seen = True
        if v.kind != "array" or not v.data or any(i.kind != "bulk" for i in v.data):
            raise ParseError("redis: a command must be an array of bulk strings")
        words: list[bytes] = [i.data for i in v.data]
        cmd = words[0].decode("latin-1").upper()
        argv = words[1:]
        req: dict[str, Any] = {}
        shown = cmd
        if cmd in _CONTAINERS and argv:
            shown = f"{cmd} {argv[0].decode('latin-1').upper()}"
        secret_at: set[int] = set()
        if cmd == "AUTH" and argv:
            secret_at = {len(argv) - 1}
            if len(argv) > 1:
                req["user"] = text(argv[0])
        elif cmd == "HELLO":
            for i, w in enumerate(argv):
                if w.upper() == b"AUTH":
                    if i + 1 < len(argv):
                        req["user"] = text(argv[i + 1])
                    if i + 2 < len(argv):
                        secret_at = {i + 2}
        elif cmd == "MIGRATE":
            for i, w in enumerate(argv):
                if w.upper() == b"AUTH" and i + 1 < len(argv):
                    secret_at = {i + 1}
                elif w.upper() == b"AUTH2" and i + 2 < len(argv):
                    secret_at = {i + 2}
        if secret_at:
            req["password"] = text(argv[min(secret_at)], 1024)
        keys = [text(k) for k in command_keys(cmd, words)[: self.limits.max_args]]
        args = [text(a) for i, a in enumerate(argv) if i not in secret_at]
        req.update(
            method=shown,
            command=shown,
            keys=keys,
            args=args[: self.limits.max_args],
            args_count=v.size - 1,
        )
        summary = shown + (" " + keys[0] if keys else "")
        p = Pending(ts, req, summary)
        if cmd in _SUBSCRIBE:
            chans = len(argv)
            p.extra["confirm"] = _SUBSCRIBE[cmd].encode()
            p.extra["expect"] = chans if chans else -1
            p.extra["replies"] = []
        self._q.push(p)

    # -- replies --

    def _reply(self, v: RespValue, start: float, end: float) -> None:
        items = v.data if isinstance(v.data, list) else None
        first = items[0].data if items and isinstance(items[0].data, bytes) else None
        first_l = first.lower() if first is not None else None
        head = self._q.head()
        if v.kind == "push" or (self._subscribed and v.kind == "array" and first_l):
            if first_l in _CONFIRM_KINDS and head and head.extra.get("confirm") == first_l:
                self._confirmation(head, v, end)
                return
            if v.kind == "push" or first_l in _PUSH_KINDS:
                self._push(v, start, end)
                return
            if first_l in _CONFIRM_KINDS:  # unsubscribe confirmations nobody waits for
                self._track(v)
                self._push(v, start, end)
                return
        if head is not None and "confirm" in head.extra and v.kind == "array" and first_l:
            if first_l == head.extra["confirm"]:
                self._confirmation(head, v, end)
                return
        p = self._q.pop()
        resp = self._describe(v)
        if p is None:
            self._q.lone(start, end, {}, resp, f"→ {summarize(v)}", error="no request")
            return
        self._q.finish(p, end, resp, f"{p.summary} → {summarize(v)}")

    def _track(self, v: RespValue) -> None:
        items = v.data
        if isinstance(items, list) and len(items) >= 3 and items[2].kind == "integer":
            self._subscribed = bool(items[2].data)

    def _confirmation(self, p: Pending, v: RespValue, end: float) -> None:
        self._track(v)
        replies: list[RespValue] = p.extra["replies"]
        replies.append(v)
        expect: int = p.extra["expect"]
        items = v.data if isinstance(v.data, list) else []
        remaining = items[2].data if len(items) >= 3 and items[2].kind == "integer" else 0
        if (expect >= 0 and len(replies) < expect) or (expect < 0 and remaining):
            return
        self._q.pop()
        chans = [_s(r.data[1]) for r in replies if isinstance(r.data, list) and len(r.data) > 1]
        resp = {
            "type": v.kind,
            "value": f"{_s(items[0]) if items else ''} {len(replies)} channel(s)",
            "size": len(replies),
            "channels": chans[: self.limits.max_args],
            "subscriptions": remaining,
        }
        self._q.finish(p, end, resp, f"{p.summary} → {resp['value']}")

    def _push(self, v: RespValue, start: float, end: float) -> None:
        items = v.data if isinstance(v.data, list) else []
        kind = _s(items[0]) if items else v.kind
        resp: dict[str, Any] = {"type": "push", "kind": kind, "size": v.size}
        if kind.lower() == "pmessage" and len(items) >= 4:
            resp.update(pattern=_s(items[1]), channel=_s(items[2]), value=summarize(items[3], 256))
        elif len(items) >= 3:
            resp.update(channel=_s(items[1]), value=summarize(items[2], 256))
        elif len(items) == 2:
            resp.update(value=summarize(items[1], 256))
        summary = f"push {kind} {resp.get('channel', '')} → {resp.get('value', '')}"
        self._q.lone(start, end, {}, resp, summary.replace("  ", " "))

    @staticmethod
    def _describe(v: RespValue) -> dict[str, Any]:
        resp: dict[str, Any] = {"type": v.kind, "value": summarize(v, 256)}
        if v.kind in ("bulk", "verbatim", "simple", "error") or isinstance(v.data, list):
            resp["size"] = v.size
        if v.kind == "error":
            resp["error"] = _s(v)
        return resp


_INLINE = re.compile(rb"^[A-Za-z]{3,16}( [^\r\n]*)?\r?\n")
_INLINE_CMDS = {b"PING", b"INFO", b"QUIT", b"MONITOR", b"DBSIZE", b"AUTH", b"HELLO"}
_REPLY_START = {bytes([c]) for c in (*_SCALARS, *_BULKS, *_AGGS)}
_ARRAY_HEAD = re.compile(rb"^\*([0-9]{1,7})\r\n\$([0-9]{1,10})\r\n")


def detect(data: bytes, direction: Direction) -> Verdict:
    """A client's first command: ``*<n>\\r\\n$<len>\\r\\n`` (or a known inline command)."""
    if direction is not Direction.CLIENT:
        return Verdict.NO
    if _ARRAY_HEAD.match(data):
        return Verdict.YES
    if not data or data[0:1] != b"*":
        m = _INLINE.match(data)
        if m and data.split(None, 1)[0].upper() in _INLINE_CMDS and b" HTTP/" not in data:
            return Verdict.YES
        if len(data) < 8 and data.isalpha():
            return Verdict.MORE
        return Verdict.NO
    # a prefix of "*<digits>\r\n$<digits>\r\n"
    if len(data) < 24 and re.fullmatch(rb"\*[0-9]{0,7}(\r(\n(\$[0-9]{0,10}\r?)?)?)?", data):
        return Verdict.MORE
    return Verdict.NO


PROTOCOL = StreamProtocol(
    name="redis",
    factory=RedisParser,
    detect=detect,
    ports=frozenset({6379, 6380, 26379}),
)
