"""PostgreSQL frontend/backend protocol 3.0 parser (startup, simple and extended query).

Entries (``proto="postgres"``) — ``PROTOCOL_FIELDS``:

- request: ``method`` (the SQL verb, ``SELECT``; ``STARTUP``, ``SSLRequest``,
  ``GSSENCRequest``, ``CANCEL``), ``kind`` (``startup``, ``simple``, ``extended``,
  ``prepare``, ``function``, ``ssl``, ``gssenc``, ``cancel``), ``query`` (SQL text, cut at
  ``limits.max_body``), ``statement`` / ``portal`` names and ``params`` (parameter count)
  for the extended protocol; startup: ``user``, ``database``, ``application_name``,
  ``parameters``, and ``password`` (a PasswordMessage, or the SASL messages, kept here
  only so that the redaction engine's ``password`` rule replaces them).
- response: ``tag`` (CommandComplete, ``SELECT 3``), ``rows`` (DataRows seen, or the
  count in the tag), ``columns`` (RowDescription names), ``sqlstate``, ``message``,
  ``severity`` (ErrorResponse), ``auth`` (startup: the method the server asked for),
  ``server_version``, ``encrypted`` (SSL/GSS accepted: parsing stops there).

One exchange per simple ``Query`` (until ReadyForQuery), per ``Execute`` of the extended
protocol (until CommandComplete/ErrorResponse/PortalSuspended), per ``Parse`` batch
without an Execute (until ReadyForQuery after ``Sync``), and per startup (until the
first ReadyForQuery). Executes after an error in the same batch are reported skipped
(the server discards them until Sync, protocol §55.2.3).
"""

from __future__ import annotations

import re
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sniffer.parsers._common import text
from sniffer.parsers.base import Direction, Exchange, ParseError, ParserLimits, StreamParser
from sniffer.parsers.registry import StreamProtocol, Verdict

__all__ = ["PROTOCOL", "PROTOCOL_FIELDS", "PostgresParser"]

PROTOCOL_FIELDS = {
    "request": [
        "method", "kind", "query", "statement", "portal", "params", "user", "database",
        "application_name", "parameters", "password",
    ],
    "response": [
        "tag", "rows", "columns", "sqlstate", "message", "severity", "auth",
        "server_version", "encrypted",
    ],
}  # fmt: skip

_I32 = struct.Struct("!i")
_HEAD = struct.Struct("!ci")
_I16 = struct.Struct("!h")
_I32I32 = struct.Struct("!ii")

_PROTO3 = 196608
_SSL = 80877103
_GSSENC = 80877104
_CANCEL = 80877102
_MAX_MSG = 16 * 1024 * 1024
_SKIP_OVER = 64 * 1024
"""DataRow/CopyData bigger than this are counted and skipped as they arrive."""
_SKIPPABLE = {b"D", b"d"}
_MAX_NAMED = 4096
"""Prepared statements and portals remembered per connection (the oldest are dropped)."""

_AUTH = {
    0: "ok", 2: "kerberos", 3: "cleartext", 5: "md5", 7: "gss", 8: "gss-continue",
    9: "sspi", 10: "sasl", 11: "sasl-continue", 12: "sasl-final",
}  # fmt: skip
_VERB = re.compile(r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*\(*\s*([A-Za-z]+)", re.S)


def sql_verb(query: str) -> str:
    """The first keyword of a statement (``SELECT``), skipping comments and parentheses."""
    m = _VERB.match(query)
    return m.group(1).upper() if m else ""


@dataclass(slots=True)
class _Unit:
    """Something the backend will answer: a query, an Execute, a startup, a Sync."""

    kind: str
    ts: float
    request: dict[str, Any]
    response: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
    skipped: bool = False


def _cstr(body: bytes, pos: int) -> tuple[str, int]:
    end = body.find(b"\0", pos)
    if end < 0:
        raise ParseError("postgres: unterminated string")
    return body[pos:end].decode("utf-8", "backslashreplace"), end + 1


def _fields(body: bytes) -> dict[str, str]:
    """ErrorResponse / NoticeResponse fields (protocol §55.8)."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(body) and body[pos] != 0:
        code = chr(body[pos])
        val, pos = _cstr(body, pos + 1)
        out[code] = val
    return out


class _Reader:
    """Length-prefixed messages of one direction, incremental and bounded."""

    __slots__ = ("buf", "skip", "rest_ts")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.skip = 0
        self.rest_ts = 0.0


class PostgresParser(StreamParser):
    """Frontend messages paired with backend replies into exchanges."""

    proto = "postgres"

    def __init__(self, limits: ParserLimits | None = None) -> None:
        super().__init__(limits)
        self._r = (_Reader(), _Reader())
        self._started = False
        """The client sent its first (untyped) message."""
        self._await_byte = ""
        """``ssl``/``gssenc``: the server's next byte answers the request."""
        self._stopped = False
        self._units: deque[_Unit] = deque()
        self._done: list[Exchange] = []
        self._statements: dict[str, tuple[str, int]] = {}
        self._portals: dict[str, tuple[str, str, int]] = {}
        self._batch_ts: float | None = None
        self._batch_parse: list[_Unit] = []
        self._batch_exec = False
        self._client: dict[bytes, Any] = {
            b"Q": self._c_query,
            b"P": self._c_parse,
            b"B": self._c_bind,
            b"E": self._c_execute,
            b"S": self._c_sync,
            b"p": self._c_password,
            b"F": self._c_function,
            b"C": self._c_close,
        }
        self._server: dict[bytes, Any] = {
            b"R": self._s_auth,
            b"S": self._s_param,
            b"T": self._s_rowdesc,
            b"D": self._s_datarow,
            b"C": self._s_complete,
            b"I": self._s_empty,
            b"s": self._s_suspended,
            b"E": self._s_error,
            b"Z": self._s_ready,
        }

    # -- framing --

    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        if self._stopped:
            return
        r = self._r[direction]
        if r.skip:
            n = min(r.skip, len(data))
            r.skip -= n
            data = data[n:]
            if not data:
                return
        if not r.buf:
            r.rest_ts = ts
        r.buf += data
        buf = r.buf
        pos = 0
        while not self._stopped:
            avail = len(buf) - pos
            if direction is Direction.CLIENT and not self._started:
                if avail and buf[pos] in _MIDSTREAM_FIRST and not self._units:
                    # mid-stream: the connection began before the capture; a typed
                    # message (a query, a Parse...) means the startup is long past
                    self._started = True
                    continue
                if avail < 8:
                    break
                (length,) = _I32.unpack_from(buf, pos)
                if length < 8 or length > 10240:
                    raise ParseError(f"postgres: bad startup length {length}")
                if avail < length:
                    break
                self._startup(bytes(buf[pos + 4 : pos + length]), r.rest_ts)
                pos += length
                continue
            if direction is Direction.SERVER and self._await_byte:
                if avail < 1:
                    break
                self._answer_byte(bytes(buf[pos : pos + 1]), ts)
                pos += 1
                continue
            if avail < 5:
                break
            t, length = _HEAD.unpack_from(buf, pos)
            if length < 4 or length > _MAX_MSG:
                raise ParseError(f"postgres: bad message length {length} for {t!r}")
            if avail < length + 1:
                if t in _SKIPPABLE and length > _SKIP_OVER:
                    self._message(direction, t, b"", ts)
                    r.skip = length + 1 - avail
                    pos = len(buf)
                break
            body = bytes(buf[pos + 5 : pos + 1 + length])
            self._message(direction, t, body, r.rest_ts if pos == 0 else ts)
            pos += length + 1
        if pos:
            del buf[:pos]
            r.rest_ts = ts
        if self._stopped:
            buf.clear()

    def _message(self, direction: Direction, t: bytes, body: bytes, ts: float) -> None:
        table = self._client if direction is Direction.CLIENT else self._server
        handler = table.get(t)
        if handler is not None:
            handler(body, ts)
        elif direction is Direction.CLIENT and t not in b"DCHXdcf":
            raise ParseError(f"postgres: unknown frontend message {t!r}")
        elif direction is Direction.SERVER and t not in b"123KNnAtGHWdcVv":
            raise ParseError(f"postgres: unknown backend message {t!r}")

    # -- startup --

    def _startup(self, body: bytes, ts: float) -> None:
        (code,) = _I32.unpack_from(body, 0)
        if code == _SSL or code == _GSSENC:
            kind = "ssl" if code == _SSL else "gssenc"
            name = "SSLRequest" if code == _SSL else "GSSENCRequest"
            self._units.append(_Unit(kind, ts, {"method": name, "kind": kind}))
            self._await_byte = kind
            return
        if code == _CANCEL:
            pid = _I32.unpack_from(body, 4)[0] if len(body) >= 8 else 0
            creq = {"method": "CANCEL", "kind": "cancel", "pid": pid}
            self._done.append(Exchange("postgres", ts, None, creq, {}, f"CANCEL pid {pid}"))
            self._started = True
            return
        if code >> 16 != 3:
            raise ParseError(f"postgres: unsupported protocol {code >> 16}.{code & 0xFFFF}")
        params: dict[str, str] = {}
        pos = 4
        while pos < len(body) and body[pos] != 0:
            k, pos = _cstr(body, pos)
            v, pos = _cstr(body, pos)
            params[k] = text(v.encode(), 256)
        req: dict[str, Any] = {
            "method": "STARTUP",
            "kind": "startup",
            "user": params.get("user", ""),
            "database": params.get("database", params.get("user", "")),
            "parameters": params,
            "protocol": f"{code >> 16}.{code & 0xFFFF}",
        }
        if "application_name" in params:
            req["application_name"] = params["application_name"]
        self._units.append(_Unit("startup", ts, req))
        self._started = True

    def _answer_byte(self, b: bytes, ts: float) -> None:
        kind = self._await_byte
        self._await_byte = ""
        u = self._units.popleft() if self._units else _Unit(kind, ts, {"kind": kind})
        accepted = b in (b"S", b"G")
        if b not in (b"S", b"N", b"G"):
            if b == b"E":  # an old server answering with an ErrorResponse: reparse it
                self._units.appendleft(u)
                raise ParseError("postgres: server refused the request with an error")
            raise ParseError(f"postgres: bad answer {b!r} to {u.request.get('method')}")
        resp = {"accepted": accepted, "encrypted": accepted}
        what = "accepted, encrypted from here" if accepted else "refused"
        self._done.append(
            Exchange("postgres", u.ts, ts, u.request, resp, f"{u.request['method']} → {what}")
        )
        if accepted:
            self._stopped = True
        else:
            self._started = False  # the StartupMessage (or another request) follows

    def _c_password(self, body: bytes, ts: float) -> None:
        u = next((x for x in self._units if x.kind == "startup"), None)
        if u is None:
            raise ParseError("postgres: password message outside authentication")
        auth = u.response.get("auth", "")
        if auth.startswith("sasl") or auth == "":
            # SASLInitialResponse: mechanism\0 int32 len, data; SASLResponse: data
            if "sasl_mechanism" not in u.request and b"\0" in body[:64]:
                mech, pos = _cstr(body, 0)
                u.request["sasl_mechanism"] = mech
                data = body[pos + 4 :]
            else:
                data = body
            secret = data.decode("utf-8", "backslashreplace")
        else:
            secret = body.rstrip(b"\0").decode("utf-8", "backslashreplace")
        old = u.request.get("password")
        u.request["password"] = secret if old is None else f"{old}\n{secret}"

    # -- queries --

    def _c_query(self, body: bytes, ts: float) -> None:
        q = body.rstrip(b"\0").decode("utf-8", "backslashreplace")
        self._push(_Unit("simple", ts, self._req(q, "simple")))

    def _c_function(self, body: bytes, ts: float) -> None:
        oid = _I32.unpack_from(body, 0)[0] if len(body) >= 4 else 0
        self._push(_Unit("simple", ts, {"method": "FUNCTION", "kind": "function", "oid": oid}))

    def _req(self, q: str, kind: str) -> dict[str, Any]:
        limit = self.limits.max_body
        return {
            "method": sql_verb(q) or "QUERY",
            "kind": kind,
            "query": q if len(q) <= limit else q[:limit] + "…",
        }

    def _push(self, u: _Unit) -> None:
        if len(self._units) >= self.limits.max_pending:
            old = self._units.popleft()
            self._emit(old, None, "no response (too many pending requests)")
        self._units.append(u)

    def _c_parse(self, body: bytes, ts: float) -> None:
        if self._batch_ts is None:
            self._batch_ts = ts
        name, pos = _cstr(body, 0)
        q, pos = _cstr(body, pos)
        nparams = _I16.unpack_from(body, pos)[0] if len(body) >= pos + 2 else 0
        if len(self._statements) >= _MAX_NAMED and name not in self._statements:
            del self._statements[next(iter(self._statements))]  # the oldest goes
        self._statements[name] = (q, nparams)
        u = _Unit("prepare", self._batch_ts, self._req(q, "prepare"))
        u.request["statement"] = name
        self._batch_parse.append(u)

    def _c_bind(self, body: bytes, ts: float) -> None:
        if self._batch_ts is None:
            self._batch_ts = ts
        portal, pos = _cstr(body, 0)
        stmt, pos = _cstr(body, pos)
        nfmt = _I16.unpack_from(body, pos)[0] if len(body) >= pos + 2 else 0
        pos += 2 + 2 * max(0, nfmt)
        nparams = _I16.unpack_from(body, pos)[0] if len(body) >= pos + 2 else 0
        q = self._statements.get(stmt, ("", 0))[0]
        if len(self._portals) >= _MAX_NAMED and portal not in self._portals:
            del self._portals[next(iter(self._portals))]
        self._portals[portal] = (stmt, q, nparams)

    def _c_close(self, body: bytes, ts: float) -> None:
        """Close of a prepared statement ('S') or portal ('P'): forget its text."""
        if len(body) >= 2:
            name = _cstr(body, 1)[0]
            (self._statements if body[:1] == b"S" else self._portals).pop(name, None)

    def _c_execute(self, body: bytes, ts: float) -> None:
        if self._batch_ts is None:
            self._batch_ts = ts
        portal, pos = _cstr(body, 0)
        stmt, q, nparams = self._portals.get(portal, ("", "", 0))
        req = self._req(q, "extended")
        req.update(statement=stmt, portal=portal, params=nparams)
        if not q:
            req["method"] = "EXECUTE"
        self._batch_exec = True
        self._push(_Unit("extended", self._batch_ts, req))

    def _c_sync(self, body: bytes, ts: float) -> None:
        if not self._batch_exec:
            for u in self._batch_parse:
                self._push(u)
        self._push(_Unit("sync", ts, {}))
        self._batch_ts = None
        self._batch_parse = []
        self._batch_exec = False

    # -- backend --

    def _head(self) -> _Unit | None:
        for u in self._units:
            if u.kind != "sync" and not u.skipped:
                return u
            if u.kind == "sync":
                return None
        return None

    def _s_auth(self, body: bytes, ts: float) -> None:
        u = self._units[0] if self._units and self._units[0].kind == "startup" else None
        if u is None:
            return
        code = _I32.unpack_from(body, 0)[0] if len(body) >= 4 else -1
        name = _AUTH.get(code, str(code))
        if code == 10:  # AuthenticationSASL: list of mechanisms
            mechs = [m.decode("utf-8", "replace") for m in body[4:].split(b"\0") if m]
            u.response["sasl_mechanisms"] = mechs
        if code in (0, 8, 11, 12):  # outcomes and continuations: keep the method asked
            u.response.setdefault("auth", name)
        else:
            u.response["auth"] = name

    def _s_param(self, body: bytes, ts: float) -> None:
        u = self._units[0] if self._units and self._units[0].kind == "startup" else None
        if u is not None and body.startswith(b"server_version\0"):
            u.response["server_version"] = _cstr(body, 15)[0]

    def _s_rowdesc(self, body: bytes, ts: float) -> None:
        u = self._head()
        if u is None or len(body) < 2:
            return
        n = _I16.unpack_from(body, 0)[0]
        cols: list[str] = []
        pos = 2
        for _ in range(min(n, self.limits.max_args)):
            name, pos = _cstr(body, pos)
            cols.append(name)
            pos += 18
        u.response["columns"] = cols

    def _s_datarow(self, body: bytes, ts: float) -> None:
        u = self._head()
        if u is not None:
            u.rows += 1

    def _s_complete(self, body: bytes, ts: float) -> None:
        u = self._head()
        if u is None:
            return
        tag = body.rstrip(b"\0").decode("utf-8", "backslashreplace")
        u.response["tag"] = tag
        last = tag.rsplit(" ", 1)[-1]
        u.response["rows"] = int(last) if last.isdigit() else u.rows
        if u.kind == "extended":
            self._finish(u, ts)

    def _s_empty(self, body: bytes, ts: float) -> None:
        u = self._head()
        if u is not None:
            u.response["tag"] = ""
            u.response["rows"] = 0
            if u.kind == "extended":
                self._finish(u, ts)

    def _s_suspended(self, body: bytes, ts: float) -> None:
        u = self._head()
        if u is not None and u.kind == "extended":
            u.response.update(tag="", rows=u.rows, suspended=True)
            self._finish(u, ts)

    def _s_error(self, body: bytes, ts: float) -> None:
        f = _fields(body)
        err = {
            "sqlstate": f.get("C", ""),
            "message": f.get("M", ""),
            "severity": f.get("V", f.get("S", "")),
        }
        if "D" in f:
            err["detail"] = f["D"]
        u = self._head()
        if u is None:
            summary = f"→ {err['severity']} {err['sqlstate']} {err['message']}"
            self._done.append(Exchange("postgres", ts, ts, {}, err, summary, error="no request"))
            return
        u.response.update(err)
        if u.kind == "extended":
            self._finish(u, ts)
            # the backend ignores the rest of the batch until Sync (§55.2.3)
            for v in self._units:
                if v.kind == "sync":
                    break
                v.skipped = True
        elif u.kind == "startup":
            self._finish(u, ts)

    def _s_ready(self, body: bytes, ts: float) -> None:
        while self._units:
            u = self._units.popleft()
            if u.kind == "sync":
                return
            if u.skipped:
                self._emit(u, None, "not executed: an earlier statement in the batch failed")
                continue
            self._emit(u, ts)
            if u.kind in ("simple", "startup"):
                return

    def _finish(self, u: _Unit, ts: float) -> None:
        self._units.remove(u)
        self._emit(u, ts)

    def _emit(self, u: _Unit, end: float | None, error: str = "") -> None:
        r = u.response
        if u.kind in ("simple", "extended", "prepare") and "tag" not in r and u.rows:
            r["rows"] = u.rows
        req = u.request
        if u.kind == "startup":
            head = f"STARTUP {req.get('user', '')}@{req.get('database', '')}"
        else:
            q = " ".join(str(req.get("query", "")).split())
            head = q[:80] + ("…" if len(q) > 80 else "") if q else str(req.get("method", ""))
        if "sqlstate" in r:
            tail = f"{r['severity']} {r['sqlstate']} {r['message']}"
        elif u.kind == "startup":
            tail = f"ready (auth {r.get('auth', 'none')})"
        elif "tag" in r:
            tail = r["tag"] or "empty"
        elif u.kind == "prepare":
            tail = "parsed"
        else:
            tail = ""
        summary = f"{head} → {tail}" if end is not None else head
        self._done.append(Exchange("postgres", u.ts, end, req, r, summary, error=error))

    def close(self, ts: float) -> None:
        while self._units:
            u = self._units.popleft()
            if u.kind != "sync":
                self._emit(u, None, "no response")

    def take(self) -> list[Exchange]:
        out, self._done = self._done, []
        return out


_MIDSTREAM_FIRST = frozenset(b"QPBEDSCHXF")
"""Frontend message types that can open a capture taken mid-connection (a startup
message's first byte is 0: its length is below 16 MiB)."""
_SQL_START = re.compile(rb"\s*(?:--|/\*|\(|[A-Za-z]{2,})")


def detect(data: bytes, direction: Direction) -> Verdict:
    """The client's first message: a StartupMessage (protocol 3.x), SSLRequest,
    GSSENCRequest or CancelRequest — or, mid-connection, a simple Query or a Parse whose
    text starts like SQL."""
    if direction is not Direction.CLIENT:
        return Verdict.NO
    if data[:1] in (b"Q", b"P"):
        if len(data) < 9:
            return Verdict.MORE
        (length,) = _I32.unpack_from(data, 1)
        if not 8 <= length <= _MAX_MSG:
            return Verdict.NO
        text_at = 5 if data[:1] == b"Q" else data.find(b"\0", 5) + 1
        if text_at <= 0:
            return Verdict.MORE if len(data) < 64 else Verdict.NO
        sql = data[text_at:]
        if len(sql) < 4 and len(data) < 64 and text_at + 4 < length + 1:
            return Verdict.MORE
        return Verdict.YES if _SQL_START.match(sql) else Verdict.NO
    if len(data) < 8:
        return Verdict.MORE
    length, code = _I32I32.unpack_from(data, 0)
    if length == 8 and code in (_SSL, _GSSENC):
        return Verdict.YES
    if length == 16 and code == _CANCEL:
        return Verdict.YES
    if code == _PROTO3 and 8 < length <= 10240:
        # parameters are NUL-terminated names: "user\0..."
        rest = data[8:]
        if not rest:
            return Verdict.MORE
        return Verdict.YES if rest[:1].isalpha() or rest[:1] == b"_" else Verdict.NO
    return Verdict.NO


PROTOCOL = StreamProtocol(
    name="postgres",
    factory=PostgresParser,
    detect=detect,
    ports=frozenset({5432}),
    midstream=True,
)
