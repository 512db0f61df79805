"""The redaction engine: pure functions from an entry to its redacted copy.

``Engine(config).apply(entry)`` replaces every sensitive value with ``[REDACTED]`` and
appends the path of each replacement to ``entry.redacted``. It never mutates its input,
does no I/O, and keeps no per-call state on the engine (its caches only grow, under the
GIL, and are bounded), so one engine serves many threads.

Work is skipped where it can't find anything. Headers are redacted by name first (the
usual find); then one RE2 search (``_triage``, ``_Gate``) over the JSON encoding of the
heads (each message without its body: every pattern's hint, every sensitive query/form/
field name, and whatever could hide one: percent-encoding, escapes, base64, multipart)
and over the response's JSON body (hints, sensitive key names as keys, escapes) decides
which of them could hold anything else. Most entries stop there. A side whose head was
flagged gets the full look; a flagged JSON body (and a request's JSON body, always) gets
the JSON look, parsed only when a sensitive key may be in it; other bodies get their own
checks. Python regexes run only at the anchors of patterns whose hint matched
(``_spans``). A property test checks that the gate skips only what holds nothing.

Order of work for each of ``request`` and ``response``:

1. by name: headers (``cookie`` keeps the cookie names, ``set-cookie`` the attributes,
   ``authorization`` the scheme), query parameters (also in ``:path``, ``location`` and
   ``referer`` URLs), form fields (urlencoded and multipart), JSON body keys, protocol
   fields (``password``, ``auth_bytes``), Redis ``AUTH`` arguments, SQL ``PASSWORD '...'``;
2. by value: the patterns over every other string (header values, the URL path, query
   values, JSON strings, text and binary bodies); a body that can't be parsed falls back
   to the patterns plus a scan for ``"key": value`` pairs with sensitive keys;
3. echoes: each value replaced in 1–2 is also replaced wherever else it appears in the
   entry (a token in the query echoed in a ``location`` header or in the ``summary``).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

import msgspec

from kubeweir.entry import REDACTED, Entry
from redaction._compiled import (
    _UNANCHORED,
    _URL_HEADERS,
    FAST_AUTH,
    FAST_KEYS,
    FAST_NO,
    FAST_URL,
    _display,
    _Gate,
    _Link,
    _path_match,
    _RuleSet,
    _spans,
)
from redaction._config import RedactionConfig
from redaction._rules import BUILTIN_PATTERNS, PatternRule, Rule, normalize

__all__ = ["Engine"]

_json_encode = msgspec.json.encode
_json_decode = msgspec.json.decode

_AUTH_HEADERS = frozenset({"authorization", "proxyauthorization"})
_AUTH = 2  # ``_RuleSet.header_kind`` of a sensitive auth header
_AUTH_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +\S")
# RFC 8259 member with a sensitive key in text that isn't valid JSON (truncated, NDJSON).
_JSONISH_MEMBER = re.compile(
    r'"((?:[^"\\\n]|\\.){1,128})"\s*:\s*("(?:[^"\\]|\\.)*(?:"|$)|[^\s,}\]]+)', re.DOTALL
)
# SQL: CREATE/ALTER ROLE|USER ... [ENCRYPTED] PASSWORD 'literal' (PostgreSQL, MySQL IDENTIFIED BY).
_SQL_PASSWORD = re.compile(
    r"(?i)\b(?:PASSWORD|IDENTIFIED\s+BY)\s*(?:=\s*)?'((?:[^']|'')*)'?", re.ASCII
)
_SQL_PROTOS = frozenset({"postgres", "mysql"})
_FULL_PROTOS = frozenset({"redis", "postgres", "mysql"})
_IN_STRING = frozenset({"jwt", "bearer", "email", "aws-access-key", "iban", "us-ssn"})
_IN_STRING_RULES = frozenset(BUILTIN_PATTERNS[n] for n in _IN_STRING)
"""Builtin patterns whose matches can't be a bare JSON value or contain a quote or a
backslash: replaced in JSON text without parsing it (a card may be a bare number, a
truncated private key may run past its string's end)."""
"""Protocols whose credentials are found by position, not by name or pattern."""
_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)
_PART_NAME = re.compile(r'\bname="([^"]*)"', re.IGNORECASE)
_NO_SHAPE = 1 << 62  # ``_Job.leaf_min`` when no pattern found is found by shape
_MIN_ECHO = 6
"""Values shorter than this are replaced only where found, not as echoes elsewhere
(``1`` would otherwise wipe every digit); the summary takes any length as a whole token."""


class _Job:
    """The state of one ``apply`` call (never shared between calls or threads)."""

    __slots__ = ("rs", "active", "hits", "secrets", "leaf_anchors", "leaf_min")

    def __init__(self, rs: _RuleSet, active: tuple[PatternRule, ...]) -> None:
        self.rs = rs
        self.active = active
        self.hits: dict[str, None] = {}
        self.secrets: set[str] = set()
        self.leaf_anchors: tuple[str, ...] | None = None
        self.leaf_min = 0

    # -- bookkeeping ---------------------------------------------------------------------

    def hit(self, path: str, value: object) -> None:
        self.hits[path] = None
        if type(value) is str:
            if value and value != REDACTED:
                self.secrets.add(value)
        else:
            self.secret(value)

    def secret(self, value: object) -> None:
        if isinstance(value, str):
            if value and value != REDACTED:
                self.secrets.add(value)
        elif isinstance(value, dict):
            for v in value.values():
                self.secret(v)
        elif isinstance(value, list):
            for v in value:
                self.secret(v)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self.secrets.add(str(value))

    # -- value patterns ------------------------------------------------------------------

    def scan(self, text: str, where: str | _Link) -> str:
        """Replace every validated pattern hit in ``text``; record ``where`` on a hit
        (a path, or a link whose path is worked out only then)."""
        if not self.active:
            return text
        if len(text) < 256:  # short: the anchors alone are cheap
            found = _spans(self.active, text)
        else:
            maybe = self.rs.maybe(text)
            if not maybe:
                return text
            active = self.active
            found = _spans(tuple(p for p in maybe if p in active), text)
        return self.replace(text, found, where)

    def replace(self, text: str, found: list[tuple[int, int]], where: str | _Link) -> str:
        """``text`` with each span replaced; ``where`` recorded when there is one."""
        if not found:
            return text
        pieces: list[str] = []
        last = 0
        for start, end in found:
            pieces.append(text[last:start])
            pieces.append(REDACTED)
            self.secrets.add(text[start:end])
            last = end
        pieces.append(text[last:])
        self.hits[where if isinstance(where, str) else _display(where)] = None
        return "".join(pieces)

    def finds(self, text: str) -> tuple[PatternRule, ...]:
        """The active patterns that have a validated hit in ``text`` (empty: none)."""
        if not self.active:
            return ()
        maybe = self.rs.maybe(text)
        if not maybe:
            return ()
        active = self.active
        hit: list[PatternRule] = []
        _spans(tuple(p for p in maybe if p in active), text, hit)
        return tuple(hit)

    # -- messages ------------------------------------------------------------------------

    def headers_first(self, msg: dict[str, Any], prefix: str) -> dict[str, Any]:
        """``msg`` with its headers redacted by name only (the same object if unchanged)."""
        headers = msg.get("headers") if msg else None
        if not headers:
            return msg
        if type(headers) is dict:
            new = self.headers_by_name(headers, f"{prefix}.headers.")
        else:
            saved, self.active = self.active, ()
            try:
                new = self.headers(headers, f"{prefix}.headers")
            finally:
                self.active = saved
        if new is headers:
            return msg
        out = dict(msg)
        out["headers"] = new
        return out

    def headers_by_name(self, headers: dict[Any, Any], prefix: str) -> dict[Any, Any]:
        """What ``headers`` finds by name alone, with the names' kinds cached: most names
        are known to need nothing (one set difference), most of the rest are
        ``Authorization``."""
        rs = self.rs
        todo = headers.keys() - rs.plain_headers
        if not todo:
            return headers
        out: dict[Any, Any] | None = None
        kinds = rs.header_kinds
        for name in todo if len(todo) == 1 else [n for n in headers if n in todo]:
            kind = kinds.get(name)
            if kind is None:
                kind = rs.header_kind(name)
            if not kind:
                continue
            value = headers[name]
            if kind == _AUTH and type(value) is str:
                m = _AUTH_SCHEME.match(value)
                if m is not None:  # scheme kept: "Bearer [REDACTED]"
                    rest = value[m.end(1) :].strip()
                    if rest == REDACTED:
                        continue
                    new = f"{m.group(1)} {REDACTED}"
                    self.hits[prefix + name] = None
                    self.secrets.add(rest)
                    self.secrets.add(value)
                else:
                    new = self.header(name, value, prefix + name)
            else:
                new = self.header(name, value, prefix + name)
            if new is not value:
                if out is None:
                    out = dict(headers)
                out[name] = new
        return headers if out is None else out

    def fast_headers(
        self, headers: dict[Any, Any], prefix: str, fresh: list[str]
    ) -> dict[Any, Any] | None:
        """The fast path's headers: by name (as ``headers_by_name``), each value as it is
        then added to ``fresh`` unless known to be clean. The headers, or their copy with
        values replaced; ``None`` when the entry needs the full path (a URL header with a
        query, a name or value that isn't a string)."""
        rs = self.rs
        kinds = rs.fast_kinds
        clean = rs.clean_values
        out: dict[Any, Any] | None = None
        for name, value in headers.items():
            if type(value) is not str:
                return None
            kind = kinds.get(name)
            if kind is None:
                kind = rs.fast_kind(name)
            if kind:
                if kind == FAST_NO:
                    return None
                if kind == FAST_URL:
                    if "?" in value:
                        return None
                else:
                    new = value
                    m = _AUTH_SCHEME.match(value) if kind == FAST_AUTH else None
                    if m is not None:  # scheme kept: "Bearer [REDACTED]"
                        rest = value[m.end(1) :].strip()
                        if rest != REDACTED:
                            new = f"{m.group(1)} {REDACTED}"
                            self.hits[prefix + name] = None
                            self.secrets.add(rest)
                            if len(rest) < _MIN_ECHO:  # (else: where it isn't, the whole isn't)
                                self.secrets.add(value)
                    else:
                        new = self.header(name, value, prefix + name)
                    if new is not value:
                        if out is None:
                            out = dict(headers)
                        out[name] = value = new
            if value not in clean:
                fresh.append(value)
        return headers if out is None else out

    def body_only(
        self, msg: dict[str, Any], path: str, proto: str, raw: bytes | None
    ) -> dict[str, Any]:
        """``msg`` with its body looked at (``raw``: a JSON body's bytes as the gate
        searched them; else the body's own checks)."""
        body = msg["body"]
        new = self.json_text(body, path, raw) if raw is not None else None
        if new is None:
            return self.message(msg, path[: -len(".body")], proto, head=False)
        if new is body:
            return msg
        return {**msg, "body": new}

    def message(
        self, msg: dict[str, Any], prefix: str, proto: str, head: bool = True
    ) -> dict[str, Any]:
        """The redacted copy of one request/response map (the same object if unchanged);
        with ``head`` false, the body only (a gate found nothing elsewhere)."""
        if not head:
            body = msg.get("body")
            if isinstance(body, str) and body:
                new_body = self.body(msg, body, f"{prefix}.body")
                if new_body is not body:
                    copy = dict(msg)
                    copy["body"] = new_body
                    return copy
            return msg
        rs = self.rs
        sql = proto in _SQL_PROTOS
        # The value patterns look at all the short strings of the message at once (header
        # values, path, query, plain fields); only the patterns that hit there are tried
        # on each string, and none at all when nothing hit (the usual case).
        texts: list[str] = []
        nested = False
        for key, value in msg.items():
            t = type(value)
            if t is str:
                if key == "body" or key.endswith("_encoding") or f"{key}_encoding" in msg:
                    continue
                if key == "query" and not sql:
                    texts.append(unquote_plus(value) if "%" in value or "+" in value else value)
                elif key == "path" and "%" in value:
                    texts.append(value)
                    texts.append(unquote(value))
                else:
                    texts.append(value)
            elif key == "headers" and t is dict:
                for name, hv in value.items():
                    if type(hv) is str and normalize(str(name)) not in rs.headers:
                        texts.append(hv)
            elif key == "args" and t is list:
                texts.extend(a for a in value if type(a) is str)
            elif t is dict or t is list:
                nested = True  # walked with every pattern (field)
        full = self.active
        hit = self.finds("\n".join(texts)) if full and texts else ()
        out: dict[str, Any] | None = None
        self.active = hit
        try:
            for key, value in msg.items():
                if key == "body" or key.endswith("_encoding") or key == "content_type":
                    continue
                path = f"{prefix}.{key}"
                if key == "headers":
                    new = self.headers(value, path)
                elif key == "path" and type(value) is str:
                    new = self.url_path(value, path)
                elif key == "query" and not sql:
                    new = self.query(value, path, rs.query)
                elif key == "args" and proto == "redis" and type(value) is list:
                    new = self.redis_args(msg, value, path)
                elif (nested and type(value) in (dict, list)) or f"{key}_encoding" in msg:
                    self.active = full  # nested fields and base64 ones: every pattern
                    try:
                        new = self.field(key, value, (None, path, ""), msg)
                    finally:
                        self.active = hit
                elif type(value) is not str and type(value) not in (dict, list):
                    if normalize(key) not in rs.fields:
                        continue  # numbers, flags: only a field rule could name them
                    new = self.field(key, value, (None, path, ""), msg)
                elif type(value) is str and not hit and key != "query":
                    if normalize(key) not in rs.fields or value in ("", REDACTED):
                        continue
                    new = self.field(key, value, (None, path, ""), msg)
                else:
                    new = self.field(key, value, (None, path, ""), msg)
                if new is not value:
                    if out is None:
                        out = dict(msg)
                    out[key] = new
        finally:
            self.active = full
        body = msg.get("body")
        if isinstance(body, str) and body:
            new_body = self.body(msg, body, f"{prefix}.body")
            if new_body is not body:
                if out is None:
                    out = dict(msg)
                out["body"] = new_body
        return msg if out is None else out

    def field(self, key: str, value: Any, link: _Link, parent: dict[str, Any]) -> Any:
        """A protocol field (any depth): by name, then by value patterns."""
        nk = normalize(key) if isinstance(key, str) else ""
        if nk in self.rs.fields:
            if value in (REDACTED, None, "", b""):
                return value
            self.hit(_display(link), value)
            return REDACTED
        t = type(value)
        if t is str:
            if parent.get(f"{key}_encoding") == "base64":
                where = _display(link)
                return self.base64_text(value, lambda text: self.plain_text(text, where))
            if nk == "query" and ("assword" in value or "ASSWORD" in value or "DENTIFIED" in value):
                value = self.sql_password(value, _display(link))
            if self.active:
                return self.scan(value, link)
            return value
        if t is dict:
            out = None
            for k, v in value.items():
                nv = self.field(k, v, (link, k, ""), value)
                if nv is not v:
                    if out is None:
                        out = dict(value)
                    out[k] = nv
            return value if out is None else out
        if t is list:
            lout = None
            for i, v in enumerate(value):
                nv = self.field("", v, (link, i, ""), {})
                if nv is not v:
                    if lout is None:
                        lout = list(value)
                    lout[i] = nv
            return value if lout is None else lout
        return value

    def sql_password(self, sql: str, path: str) -> str:
        def repl(m: re.Match[str]) -> str:
            if m.group(1) in ("", REDACTED):
                return m.group(0)
            self.hit(path, m.group(1))
            whole = m.group(0)
            start = m.start(1) - m.start(0)
            return whole[:start] + REDACTED + whole[start + len(m.group(1)) :]

        return _SQL_PASSWORD.sub(repl, sql)

    # -- HTTP ------------------------------------------------------------------------------

    def headers(self, headers: Any, prefix: str) -> Any:
        if isinstance(headers, dict):
            out: dict[str, Any] | None = None
            rs = self.rs
            # header names seen before to need nothing are skipped with one set difference
            todo = headers.keys() - rs.plain_headers
            for name in (n for n in headers if n in todo) if todo else ():
                nk = normalize(name) if type(name) is str else ""
                if nk not in rs.headers and nk not in _URL_HEADERS:
                    if len(rs.plain_headers) < 4096:
                        rs.plain_headers.add(name)
                    continue
                value = headers[name]
                new = self.header(name, value, f"{prefix}.{name}")
                if new is not value:
                    if out is None:
                        out = dict(headers)
                    out[name] = new
            # by value: one look at all values together, one by one only on a hit
            if not self.active:
                return headers if out is None else out
            current = headers if out is None else out
            values = [v for v in current.values() if isinstance(v, str)]
            hit = self.finds("\n".join(values)) if values else ()
            if hit:
                saved, self.active = self.active, hit
                try:
                    for name, value in current.items():
                        if isinstance(value, str):
                            new = self.scan(value, f"{prefix}.{name}")
                            if new is not value:
                                if out is None:
                                    out = dict(headers)
                                out[name] = new
                finally:
                    self.active = saved
            return headers if out is None else out
        if isinstance(headers, list):  # [[name, value], ...]
            lout: list[Any] | None = None
            for i, pair in enumerate(headers):
                if isinstance(pair, list | tuple) and len(pair) == 2:
                    new = self.header(pair[0], pair[1], f"{prefix}.{pair[0]}")
                    if self.active and isinstance(new, str):
                        new = self.scan(new, f"{prefix}.{pair[0]}")
                    if new is not pair[1]:
                        if lout is None:
                            lout = list(headers)
                        lout[i] = [pair[0], new]
            return headers if lout is None else lout
        return headers

    def header(self, name: Any, value: Any, path: str) -> Any:
        if not isinstance(value, str) or not isinstance(name, str):
            return value
        nk = normalize(name)
        new = value
        if nk in self.rs.headers:
            if nk == "cookie":
                new = self.cookie(value, path)
            elif nk == "setcookie":
                new = "\n".join(self.set_cookie(line, path) for line in value.split("\n"))
            elif value and value != REDACTED:
                m = _AUTH_SCHEME.match(value) if nk in _AUTH_HEADERS else None
                if m is not None:
                    rest = value[m.end(1) :].strip()
                    if rest != REDACTED:
                        new = f"{m.group(1)} {REDACTED}"
                        self.hit(path, rest)
                        self.secrets.add(value)
                else:
                    new = REDACTED
                    self.hit(path, value)
            return new
        if nk in _URL_HEADERS and "?" in value:
            base, _, qs = value.partition("?")
            new_qs = self.query_string(qs, path, self.rs.query, per_name=False)
            if new_qs is not qs:
                new = f"{base}?{new_qs}"
        return new

    def cookie(self, value: str, path: str) -> str:
        parts = value.split(";")
        changed = False
        for i, part in enumerate(parts):
            name, eq, val = part.partition("=")
            val = val.strip()
            if eq and val and val != REDACTED:
                self.hits[path] = None
                self.secrets.add(val)
                parts[i] = f"{name}={REDACTED}"
                changed = True
        return ";".join(parts) if changed else value

    def set_cookie(self, line: str, path: str) -> str:
        first, sep, attrs = line.partition(";")
        name, eq, val = first.partition("=")
        if not eq or not val.strip() or val.strip() == REDACTED:
            return line
        self.hit(path, val.strip())
        return f"{name}={REDACTED}{sep}{attrs}"

    def url_path(self, value: str, path: str) -> str:
        new = value
        if "?" in new:  # a parser that kept the query on the path
            base, _, qs = new.partition("?")
            new_qs = self.query_string(qs, path, self.rs.query, per_name=False)
            if new_qs is not qs:
                new = f"{base}?{new_qs}"
        if not self.active:
            return new
        new = self.scan(new, path)
        if "%" in new:  # percent-encoded values (/users/jane%40example.com)
            segments = new.split("/")
            changed = False
            for i, seg in enumerate(segments):
                if "%" in seg:
                    raw = unquote(seg)
                    red = self.scan(raw, path)
                    if red is not raw and red != raw:
                        segments[i] = quote(red, safe="[]@!$&'()*+,;=:~")
                        self.secrets.add(seg)  # the encoded form, as the summary shows it
                        changed = True
            if changed:
                new = "/".join(segments)
        return new

    def query(self, value: Any, path: str, names: frozenset[str]) -> Any:
        if isinstance(value, str):
            return self.query_string(value, path, names) if value else value
        if isinstance(value, dict):  # name -> value or [values]
            out: dict[str, Any] | None = None
            for k, v in value.items():
                nv = v
                if isinstance(k, str) and normalize(k) in names:
                    if v not in (REDACTED, "", None, []):
                        self.hit(f"{path}.{k}", v)
                        nv = [REDACTED] * len(v) if isinstance(v, list) else REDACTED
                elif self.active:
                    nv = self.field("", v, (None, f"{path}.{k}", ""), {})
                if nv is not v:
                    if out is None:
                        out = dict(value)
                    out[k] = nv
            return value if out is None else out
        return value

    def query_string(
        self, qs: str, path: str, names: frozenset[str], *, per_name: bool = True
    ) -> str:
        """``a=1&b=2`` (query or urlencoded form): by name, then values by pattern."""
        parts = qs.split("&")
        changed = False
        decoded = unquote_plus(qs) if "%" in qs or "+" in qs else qs
        hit = self.finds(decoded) if self.active else ()
        saved, self.active = self.active, hit
        try:
            for i, part in enumerate(parts):
                name, eq, value = part.partition("=")
                if not eq or not value:
                    continue
                dname = unquote_plus(name) if ("%" in name or "+" in name) else name
                dname = dname.strip()  # (a form body may start with a line break)
                where = f"{path}.{dname}" if per_name else path
                if normalize(dname) in names:
                    if value != REDACTED:
                        self.hit(where, value)
                        self.secret(unquote_plus(value))
                        parts[i] = f"{name}={REDACTED}"
                        changed = True
                    continue
                if hit:
                    raw = unquote_plus(value) if ("%" in value or "+" in value) else value
                    red = self.scan(raw, where)
                    if red != raw:
                        parts[i] = f"{name}={quote(red, safe='[]@!$()*,;:/~')}"
                        changed = True
        finally:
            self.active = saved
        return "&".join(parts) if changed else qs

    # -- bodies --------------------------------------------------------------------------

    def body(self, msg: dict[str, Any], body: str, path: str) -> str:
        raw_ctype = _raw_ctype(msg)
        ctype = raw_ctype.lower()
        truncated = bool(msg.get("body_truncated"))

        def process(text: str) -> str:
            return self.text_body(text, ctype, path, truncated, raw_ctype)

        if msg.get("body_encoding") == "base64":
            return self.base64_text(body, process)
        return process(body)

    def base64_text(self, value: str, process: Callable[[str], str]) -> str:
        """Decode, redact as text (bytes kept as they are via surrogateescape), re-encode.
        Text that isn't valid base64 is redacted as it is (never passed through)."""
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return process(value)
        text = raw.decode("utf-8", "surrogateescape")
        new = process(text)
        if new is text:
            return value
        return base64.b64encode(new.encode("utf-8", "surrogateescape")).decode("ascii")

    def plain_text(self, text: str, path: str) -> str:
        return self.scan(text, path) if self.active else text

    def text_body(
        self, text: str, ctype: str, path: str, truncated: bool, raw_ctype: str = ""
    ) -> str:
        if "json" in ctype or (
            not ctype and text.startswith(("{", "[")) and text.endswith(("}", "]"))
        ):
            return self.json_text(text, path)
        if "x-www-form-urlencoded" in ctype:
            return self.query_string(text, path, self.rs.form)
        if "multipart/" in ctype:
            m = _BOUNDARY.search(raw_ctype or ctype)  # the boundary is case-sensitive
            if m:
                return self.multipart(text, m.group(1), path)
            return self.fallback(text, path)
        if not ctype and (truncated or text.startswith(("{", "["))):
            return self.fallback(text, path)
        return self.scan(text, path) if self.active else text

    def json_text(self, text: str, path: str, raw: bytes | None = None) -> str:
        """A JSON body's text (``raw``: its UTF-8 bytes, if at hand): keys by name, values
        by pattern; parsed only when a sensitive key name may be there or a hit may not
        sit in a JSON string."""
        # by value only where the text has a hit (or escapes that could hide one)
        escapes = "\\" in text  # \u escapes could hide a key or a value from the checks
        spans: list[tuple[int, int]] = []
        if escapes:
            hit, names = self.active, True
        else:
            maybe, names = self.rs.body_look(text, raw)
            found: list[PatternRule] = []
            active = self.active
            if maybe and active:
                if active is not self.rs.patterns:
                    maybe = tuple(p for p in maybe if p in active)
                spans = _spans(maybe, text, found)
            hit = tuple(found)
        if not names:
            if not hit:
                return text  # no sensitive key, no pattern hit: nothing to do
            if _IN_STRING_RULES.issuperset(hit):
                # these hits can only sit inside JSON strings and hold no character
                # JSON escapes: replaced in the text, no parse ("request.body")
                return self.replace(text, spans, path)
        try:
            obj = _json_decode(text)
        except (msgspec.DecodeError, UnicodeEncodeError):
            return self.fallback(text, path)
        saved, self.active = self.active, hit
        # a JSON string is scanned only if it holds an anchor of a pattern found in the
        # body or is as long as the shortest shape of one (a card number: 13 characters)
        self.leaf_anchors = (
            tuple(a for p in hit for a in p.anchors)
            if all(p.anchors or p.shapes for p in hit)
            else None
        )
        self.leaf_min = min(
            (len(x) for p in hit if not p.anchors for x in p.shapes), default=_NO_SHAPE
        )
        try:
            new = self.json(obj, (None, path, ""), bool(hit))
        finally:
            self.active = saved
        if new is obj:
            return text
        return _json_encode(new).decode("utf-8", "surrogateescape")

    def json(self, node: Any, link: _Link, leaves: bool) -> Any:
        """A parsed JSON value: keys by name at any depth; with ``leaves``, string (and
        big integer) values by pattern too."""
        t = type(node)
        rs = self.rs
        if t is dict:
            out: dict[str, Any] | None = None
            keys = rs.keys
            for k, v in node.items():
                c = keys.get(k)
                if c is None:
                    c = rs.key_class(k) if type(k) is str else 0
                if c and (c == 1 or _path_match(link, normalize(k), rs)):
                    if v != REDACTED and v is not None:
                        self.hit(_display((link, k, normalize(k))), v)
                        if out is None:
                            out = dict(node)
                        out[k] = REDACTED
                    continue
                tv = type(v)
                if tv is dict or tv is list or (leaves and (tv is str or tv is int)):
                    nv = self.json(v, (link, k, normalize(k)), leaves)
                    if nv is not v:
                        if out is None:
                            out = dict(node)
                        out[k] = nv
            return node if out is None else out
        if t is list:
            lout: list[Any] | None = None
            for i, v in enumerate(node):
                tv = type(v)
                if tv is dict or tv is list or (leaves and (tv is str or tv is int)):
                    nv = self.json(v, (link, i, ""), leaves)
                    if nv is not v:
                        if lout is None:
                            lout = list(node)
                        lout[i] = nv
            return node if lout is None else lout
        if t is str and leaves:
            anchors = self.leaf_anchors
            if (
                anchors is not None
                and len(node) < self.leaf_min
                and not any(a in node for a in anchors)
            ):
                return node  # none of the patterns found in this body can be here
            return self.scan(node, link)
        if t is int and leaves and abs(node) >= 10**12:  # a card number sent as a number
            s = str(node)
            if self.scan(s, link) is not s:
                return REDACTED
        return node

    def fallback(self, text: str, path: str) -> str:
        """A body that should be structured but isn't parseable: sensitive ``"key": value``
        members by name, then the value patterns; never passed through untouched."""
        names = self.rs.json_names

        def repl(m: re.Match[str]) -> str:
            key = m.group(1)
            value = m.group(2)
            if normalize(key) not in names or value in (f'"{REDACTED}"', "null"):
                return m.group(0)
            self.hit(f"{path}.{key}", value.strip('"'))
            start = m.start(2) - m.start(0)
            closed = value.endswith('"') and len(value) > 1
            return m.group(0)[:start] + f'"{REDACTED}' + ('"' if closed else "")

        if '"' in text and names:
            text = _JSONISH_MEMBER.sub(repl, text)
        return self.scan(text, path) if self.active else text

    def multipart(self, text: str, boundary: str, path: str) -> str:
        """RFC 7578 multipart/form-data: part content by the part's name, else patterns."""
        delim = f"--{boundary}"
        pieces = text.split(delim)
        changed = False
        for i in range(1, len(pieces)):
            piece = pieces[i]
            sep = "\r\n\r\n" if "\r\n\r\n" in piece else "\n\n"
            head, found, content = piece.partition(sep)
            if not found:
                continue
            m = _PART_NAME.search(head)
            name = m.group(1) if m else ""
            where = f"{path}.{name}" if name else path
            tail = "\r\n" if content.endswith("\r\n") else ("\n" if content.endswith("\n") else "")
            value = content[: len(content) - len(tail)]
            if name and normalize(name) in self.rs.form:
                if value and value != REDACTED:
                    self.hit(where, value)
                    pieces[i] = f"{head}{sep}{REDACTED}{tail}"
                    changed = True
            elif self.active:
                new = self.scan(value, where)
                if new != value:
                    pieces[i] = f"{head}{sep}{new}{tail}"
                    changed = True
        return delim.join(pieces) if changed else text

    # -- other protocols -----------------------------------------------------------------

    def redis_args(self, msg: dict[str, Any], args: list[Any], path: str) -> list[Any]:
        """Redis AUTH, HELLO ... AUTH, MIGRATE ... AUTH/AUTH2, CONFIG SET requirepass,
        ACL SETUSER >password: the credential arguments."""
        command = str(msg.get("command") or msg.get("method") or "").upper()
        upper = [a.upper() if isinstance(a, str) else "" for a in args]
        secret_idx: list[int] = []
        # A parser that moves the password to its own field (``password``, redacted by the
        # field rule) has already taken it out of ``args``; only the name is left there.
        separated = "password" in msg
        if command == "AUTH" and not separated and args:
            secret_idx = [len(args) - 1]  # AUTH [username] password
        elif command in ("HELLO", "MIGRATE") and not separated:
            for i, a in enumerate(upper):
                if a == "AUTH":  # HELLO ... AUTH username password; MIGRATE ... AUTH password
                    j = i + 2 if command == "HELLO" else i + 1
                    if j < len(args):
                        secret_idx.append(j)
                elif a == "AUTH2" and i + 2 < len(args):  # MIGRATE ... AUTH2 username password
                    secret_idx.append(i + 2)
        elif command in ("CONFIG", "CONFIG SET"):
            for i, a in enumerate(upper):
                if a in ("REQUIREPASS", "MASTERAUTH") and i + 1 < len(args):
                    secret_idx.append(i + 1)
        elif command in ("ACL", "ACL SETUSER"):
            for i, a in enumerate(args):  # >password, <password, #hash, !hash
                if isinstance(a, str) and a[:1] in (">", "<", "#", "!") and len(a) > 1:
                    secret_idx.append(i)
        out = list(args)
        changed = False
        for i in secret_idx:
            if out[i] not in (REDACTED, "", None):
                self.hit(f"{path}[{i}]", out[i])
                out[i] = REDACTED
                changed = True
        if self.active:
            for i, a in enumerate(out):
                if isinstance(a, str) and a != REDACTED:
                    new = self.scan(a, f"{path}[{i}]")
                    if new is not a and new != a:
                        out[i] = new
                        changed = True
        return out if changed else args

    # -- echoes --------------------------------------------------------------------------

    def echo_secrets(self) -> list[str]:
        """The values replaced so far that are long enough to look for elsewhere (longest
        first)."""
        secrets = [s for s in self.secrets if len(s) >= _MIN_ECHO and s not in REDACTED]
        if len(secrets) > 1:
            secrets.sort(key=len, reverse=True)
        return secrets

    def echoes(
        self, msg: dict[str, Any], prefix: str, echo: list[tuple[str, bytes]]
    ) -> dict[str, Any]:
        """Replace the values redacted elsewhere wherever they still appear."""
        if not echo:
            return msg
        # one look at the whole message first: most have no echo and no base64 field
        try:
            blob = _json_encode(msg)
        except UnicodeEncodeError:  # lone surrogates: look everywhere
            blob = b"".join(esc for _, esc in echo)
        if not any(esc in blob for _, esc in echo) and not any(
            v == "base64" and k.endswith("_encoding") for k, v in msg.items()
        ):
            return msg
        escaped = [(s, esc.decode("utf-8", "surrogateescape")) for s, esc in echo]

        def sweep(value: Any, path: str, base64_encoded: bool = False) -> Any:
            if isinstance(value, str):
                if base64_encoded:
                    try:
                        raw = base64.b64decode(value, validate=True)
                    except (binascii.Error, ValueError):
                        return sweep(value, path)
                    text = raw.decode("utf-8", "surrogateescape")
                    new = sweep(text, path)
                    if new is text:
                        return value
                    return base64.b64encode(new.encode("utf-8", "surrogateescape")).decode()
                new = value
                for s, esc in escaped:
                    if s in new:
                        new = new.replace(s, REDACTED)
                    if esc != s and esc in new:
                        new = new.replace(esc, REDACTED)
                if new != value:
                    self.hits[path] = None
                    return new
                return value
            if isinstance(value, dict):
                out = None
                for k, v in value.items():
                    nv = sweep(v, f"{path}.{k}", value.get(f"{k}_encoding") == "base64")
                    if nv is not v:
                        if out is None:
                            out = dict(value)
                        out[k] = nv
                return value if out is None else out
            if isinstance(value, list):
                lout = None
                for i, v in enumerate(value):
                    nv = sweep(v, f"{path}[{i}]")
                    if nv is not v:
                        if lout is None:
                            lout = list(value)
                        lout[i] = nv
                return value if lout is None else lout
            return value

        result: dict[str, Any] = sweep(msg, prefix)
        return result

    def summary(self, summary: str) -> str:
        new = summary
        if "?" in new:
            head, _, rest = new.partition("?")
            qs, space, tail = rest.partition(" ")
            new_qs = self.query_string(qs, "summary", self.rs.query, per_name=False)
            if new_qs is not qs:
                new = f"{head}?{new_qs}{space}{tail}"
        for s in sorted(self.secrets, key=len, reverse=True):
            if s in REDACTED or not s.strip():
                continue
            if len(s) >= _MIN_ECHO:
                new = new.replace(s, REDACTED)
            elif s in new:
                new = re.sub(rf"(?<![\w]){re.escape(s)}(?![\w])", REDACTED, new)
        if self.active:
            new = self.scan(new, "summary")
        if new != summary:
            self.hits["summary"] = None
            return new
        return summary


class Engine:
    """Applies one redaction config to entries; immutable and safe to share across threads."""

    def __init__(self, config: RedactionConfig | None = None) -> None:
        self.config = config if config is not None else RedactionConfig()
        self._base = _RuleSet(self.config.rules)
        self._by_ns: dict[tuple[str, str], _RuleSet] = {}
        # namespace pairs with the same rules share one rule set (and its caches, each
        # a few MB: one per pair would grow with the namespaces an override's glob takes)
        self._by_rules: dict[tuple[Rule, ...], _RuleSet] = {}
        self._lock = threading.Lock()
        self._ns = bool(self.config.namespaces)

    def _rules(self, src_ns: str, dst_ns: str) -> _RuleSet:
        if not self.config.namespaces or not (src_ns or dst_ns):
            return self._base
        key = (src_ns, dst_ns)
        rs = self._by_ns.get(key)
        if rs is None:
            rules = self.config.rules_for(src_ns, dst_ns)
            with self._lock:
                if rules is self.config.rules:
                    rs = self._base
                else:
                    rs = self._by_rules.get(rules)
                    if rs is None:
                        rs = self._by_rules[rules] = _RuleSet(rules)
                if len(self._by_ns) > 4096:
                    self._by_ns.clear()
                self._by_ns[key] = rs
        return rs

    def apply(self, entry: Entry) -> Entry:
        """The entry with sensitive values replaced and their paths added to ``redacted``;
        the same object when nothing was replaced. Never mutates ``entry``."""
        rs = self._rules(entry.src.namespace, entry.dst.namespace) if self._ns else self._base
        proto = entry.proto
        job: _Job | None = None
        request, response, summary = entry.request, entry.response, entry.summary
        # Headers by name first (the usual find: authorization, cookie).
        plain = rs.plain_headers  # (what ``headers_first`` would look at first)
        if request:
            h = request.get("headers")
            if h and not (type(h) is dict and _known(h, plain)):
                # the fast path pays where a request header needs something by name (the
                # usual secret: Authorization, Cookie); an entry with nothing by name costs
                # the full path one encoding and one search (head and short body at once)
                if type(h) is dict and rs.fast and rs.gate is not None:
                    if proto not in _FULL_PROTOS:
                        fast = _fast(rs, rs.gate, entry)
                        if fast is not None:
                            return fast
                job = _Job(rs, rs.patterns)
                request = job.headers_first(request, "request")
        if response:
            h = response.get("headers")
            if h and not (type(h) is dict and _known(h, plain)):
                job = job or _Job(rs, rs.patterns)
                response = job.headers_first(response, "response")
        # What each side needs: its head (every field but the body) and its body looked at
        # in full (2), its body alone (1), or nothing (0); and whether the summary needs a
        # look. One RE2 search over the heads and the JSON bodies decides (``_triage``).
        gate = rs.gate
        if gate is None or proto in _FULL_PROTOS:
            work = [2 if request else 0, 2 if response else 0, 1, 0]
            heads: bytes | None = None
            raws: list[bytes | None] = [None, None]
        else:
            work, heads, raws = _triage(gate, request, response, summary, rs.seen_texts)
            if job is None and not (work[0] or work[1]):
                return entry  # the usual answer: nothing by name, nothing the gate found
        if job is None:
            job = _Job(rs, rs.patterns)
        if work[0] == 2:
            new = job.message(request, "request", proto)
            if new is not request:
                heads = None  # changed since it was searched
            request = new
        elif work[0]:
            request = job.body_only(request, "request.body", proto, raws[0])
        if work[1] == 2:
            new = job.message(response, "response", proto)
            if new is not response:
                heads = None
            response = new
        elif work[1]:
            response = job.body_only(response, "response.body", proto, raws[1])
        if summary and work[2]:  # the summary repeats the request's path and query
            summary = job.summary(summary)
        if job.secrets:
            # echoes: a value replaced in one place may still sit in another
            secrets = job.echo_secrets()
            if secrets and _echoed(
                secrets if len(secrets) == 1 else _minimal(secrets),
                request,
                response,
                summary,
                heads,
                rs.hinted_value if heads is not None and work[0] < 2 and work[1] < 2 else None,
                work[3],
            ):
                echo = [(s, _json_encode(s)[1:-1]) for s in secrets]
                request = job.echoes(request, "request", echo)
                response = job.echoes(response, "response", echo)
                if summary:
                    summary = job.summary(summary)
        if not job.hits:
            return entry
        redacted = _redacted_paths(entry.redacted, job.hits)
        return msgspec.structs.replace(
            entry, request=request, response=response, summary=summary, redacted=redacted
        )


_HEAD, _BODY, _END = _Gate.HEAD, _Gate.BODY, b"\0"


def _known(headers: dict[Any, Any], plain: set[Any]) -> bool:
    """Whether every name in ``headers`` is known to need nothing (``headers.keys() <=
    plain``, without the keys view and the generic comparison)."""
    for name in headers:
        if name not in plain:
            return False
    return True


def _redacted_paths(before: list[str], hits: Iterable[str]) -> list[str]:
    """The entry's ``redacted`` list with this pass's paths added (each once, in order)."""
    if not before:
        return list(hits)
    seen = set(before)
    return [*before, *(p for p in hits if p not in seen)]


def _fast(rs: _RuleSet, gate: _Gate, entry: Entry) -> Entry | None:
    """``Engine.apply`` for the usual HTTP exchange, with only the work it needs; ``None``
    when the entry needs more than this path does (the full path then runs from the start).

    Headers by name: one set difference leaves the names not known to need nothing, each
    then one cached lookup. The heads' strings as they are then (header values, method,
    path, query, host..., the summary) that weren't found clean before are searched in one
    RE2 pass for the patterns' hints and the sensitive query names (``_Gate.fast``), joined
    by line breaks, with no JSON encoding of the heads: on this path a head's keys are
    known, so only its strings can hold anything. A hint's hit is checked with the
    patterns themselves; only a validated one, or a query name, sends the entry to the
    full path. Strings found clean are remembered (``_RuleSet.clean_values``): a User-Agent
    or Accept header seen before isn't searched again. Bodies get what the full path gives
    them: a request's its look, a response's JSON body the gate's body members first. A
    replaced value found anywhere else (an echo) sends the entry to the full path too.
    The result is the full path's: test_gate compares the two on generated entries."""
    request, response, summary = entry.request, entry.response, entry.summary
    if not (request and response):
        return None
    clean = rs.clean_values
    fresh: list[str] = []  # the heads' strings not known to be clean
    # the messages' own fields: known keys, strings (but the body) to search
    for msg in (request, response):
        for key, value in msg.items():
            if key not in FAST_KEYS:
                return None
            t = type(value)
            if t is str:
                if key != "body" and value not in clean:
                    if key == "path":
                        if "%" in value or "?" in value:
                            return None  # a URL to decode, a query on the path
                    elif key == "query" and ("%" in value or "+" in value):
                        return None
                    fresh.append(value)
            elif t is dict:
                if key != "headers":
                    return None  # a nested field: the full path walks it
            elif t is list or (key == "headers" or key == "path" or key == "query"):
                return None
    if "%" in summary or "+" in summary:
        return None
    rh: dict[Any, Any] | None = request.get("headers")
    sh: dict[Any, Any] | None = response.get("headers")
    if rh is None or sh is None:
        return None
    job = _Job(rs, rs.patterns)
    rh = job.fast_headers(rh, "request.headers.", fresh)
    if rh is None:
        return None
    sh = job.fast_headers(sh, "response.headers.", fresh)
    if sh is None:
        return None
    text = "\n".join(fresh)
    try:
        data = b"\n".join((text.encode(), summary.encode()))
        marked = b"\0" not in data  # (what the one search over heads and body needs)
    except UnicodeEncodeError:
        try:
            data = b"\n".join(
                (
                    text.encode("utf-8", "surrogateescape"),
                    summary.encode("utf-8", "surrogateescape"),
                )
            )
        except UnicodeEncodeError:
            return None  # a lone surrogate
        marked = False
    sb = response.get("body")
    raw: bytes | None = None  # the response's JSON body as the gate searches it
    if (
        sb
        and type(sb) is str
        and (
            (
                response.get("body_encoding") == "utf8"
                and response.get("content_type") in _JSON_TYPES
            )
            or _json_text(response, sb)
        )
    ):
        raw = _utf8(sb)
    body_clean = False
    if marked and raw is not None:
        heads_clean, body_clean = gate.fast_and_body(data, raw)
    else:
        heads_clean = gate.fast.Match(_UNANCHORED, data, 0, len(data))[0][0] < 0
        if raw is not None:
            body_clean = gate.body.Match(_UNANCHORED, raw, 0, len(raw))[0][0] < 0
    if not heads_clean:
        # a query name, or a hint's hit: the full path unless the patterns find nothing
        if gate.names.Match(_UNANCHORED, data, 0, len(data))[0][0] >= 0:
            return None
        both = f"{text}\n{summary}"
        if _spans(rs.maybe(both), both):
            return None
    if fresh:
        rs.remember_clean(fresh)
    rb = request.get("body")
    # bodies, as the full path does them after its gate (``_triage``)
    if rb:
        rraw = _utf8(rb) if type(rb) is str and _is_json(request, rb) else None
        request = job.body_only(request, "request.body", entry.proto, rraw)
    response_clean = False
    if sb:
        if body_clean:
            response_clean = True  # nothing the JSON look could find
        else:
            response = job.body_only(response, "response.body", entry.proto, raw)
    if not job.hits:
        return entry
    if job.secrets and _fast_echo(
        job,
        rs,
        rh,
        sh,
        summary,
        request,
        response,
        heads_clean,
        response_clean,
    ):
        return None  # an echo: the full path replaces it everywhere
    if rh is not request["headers"]:
        request = {**request, "headers": rh}
    if sh is not response["headers"]:
        response = {**response, "headers": sh}
    redacted = _redacted_paths(entry.redacted, job.hits)
    return msgspec.structs.replace(entry, request=request, response=response, redacted=redacted)


def _fast_echo(
    job: _Job,
    rs: _RuleSet,
    rh: dict[Any, Any],
    sh: dict[Any, Any],
    summary: str,
    request: dict[str, Any],
    response: dict[str, Any],
    heads_clean: bool,
    response_clean: bool,
) -> bool:
    """Whether a value the fast path replaced is found again: in a head's string (as
    it is now), the summary, or a body (as it is now). A value holding a JWT's or an
    e-mail's hint is not looked for where the fast path's searches found none."""
    secrets = job.echo_secrets()
    if not secrets:
        return False
    rb = request.get("body")
    sb = response.get("body")
    heads: str | None = None
    hinted = rs.hinted_value
    for s in secrets if len(secrets) == 1 else _minimal(secrets):
        skip = (
            hinted is not None
            and (s.startswith("eyJ") or "@" in s)
            and hinted.search(s) is not None
        )
        if (type(rb) is str and s in rb) or (
            type(sb) is str and not (skip and response_clean) and s in sb
        ):
            return True
        if skip and heads_clean:
            continue
        if heads is None:
            strings = [summary]
            for m in (request, response, rh, sh):
                for v in m.values():
                    if type(v) is str and v is not rb and v is not sb:
                        strings.append(v)
            heads = "\n".join(strings)
        if s in heads:
            return True
    return False


def _triage(
    gate: _Gate,
    request: dict[str, Any],
    response: dict[str, Any],
    summary: str,
    seen: dict[int, str] | None = None,
) -> tuple[list[int], bytes, list[bytes | None]]:
    """``(work, heads, raws)``: what each of request and response needs (0 nothing, 1 the
    body, 2 everything), then whether the summary needs a look (0/1), then what the
    gate's search found nothing in (``_CLEAN_HEADS``: the heads and the summary;
    ``_CLEAN_RESPONSE``: the response's body); the JSON encoding of the heads and the
    summary, as searched; and the JSON bodies' UTF-8 bytes.

    A request's body and bodies that aren't JSON text always get their look. A response's
    JSON body is searched too: a short one inside its head's encoding (escaped: the head's
    members cover it, ``\\"key\\":`` included), a longer one on its own as text (no
    escaping to pay for, no copy of the head with the body in it)."""
    rb = request.get("body") if request else None
    sb = response.get("body") if response else None
    work = [0, 0, 0, 0]
    raws: list[bytes | None] = [None, None]
    if rb:
        # a request's JSON body usually holds something (a login, a form, an order with
        # an e-mail): its own look (one RE2 set pass) at once
        work[0] = 1
        if type(rb) is str and _is_json(request, rb):
            raws[0] = _utf8(rb)
    inline = False
    raw = None
    if sb:
        if type(sb) is str and (
            (
                response.get("body_encoding") == "utf8"
                and response.get("content_type") in _JSON_TYPES
            )
            or _json_text(response, sb)
        ):
            if len(sb) <= _INLINE:
                inline = True
            else:
                raw = _utf8(sb)
        if not inline and raw is None:
            # (a text body seen clean before: its look would find nothing, ``_seen_text``)
            if not (seen is not None and type(sb) is str and _seen_text(seen, response, sb)):
                work[1] = 1
    heads = _json_encode(
        (
            {**request, "body": ""} if rb else request,
            {**response, "body": ""} if sb and not inline else response,
            summary,
        )
    )
    if raw is None:
        # clean: the heads (and an inline body), the response body if it isn't looked at
        work[3] = _CLEAN_HEADS | (_CLEAN_RESPONSE if inline else 0)
        if gate.heads_clean(heads):
            return work, heads, raws  # the usual answer
        work[3] = 0
        found = [0]
    else:
        raws[1] = raw
        data = b"".join((_HEAD, heads, _END, _BODY, raw, _END))
        work[3] = _CLEAN_HEADS | _CLEAN_RESPONSE
        if gate.regexp.Match(_UNANCHORED, data, 0, len(data))[0][0] < 0:
            return work, heads, raws  # the usual answer
        found = gate.which([_HEAD, heads, _END, _BODY, raw, _END])
        if found[-1] == 1:
            work[1] = 1
            work[3] = _CLEAN_HEADS
        if found[0] == 0 and gate.no_card(heads):
            found = found[1:]
        if found and found[0] == 0:
            work[3] &= ~_CLEAN_HEADS
    if found and found[0] == 0:  # in the heads: each alone (the summary goes with the request)
        alone: list[bytes] = []
        if request:
            alone += (
                _HEAD,
                _json_encode(({**request, "body": ""} if rb else request, summary)),
                _END,
            )
        elif summary:
            alone += (_HEAD, _json_encode(summary), _END)
        if response:
            alone += (
                _HEAD,
                _json_encode(({**response, "body": ""} if sb else response, None)),
                _END,
            )
        hit = [k for k in gate.which(alone) if not gate.no_card(alone[3 * k + 1])]
        if inline:
            work[1] = max(work[1], 1)  # (the hit may be in the body searched in its head)
        elif not hit:  # only across the two: all
            hit = list(range(len(alone) // 3))
        if request:
            if 0 in hit:
                work[0] = work[2] = 2
        elif summary and 0 in hit:
            work[2] = 1
        if response and (len(alone) // 3 - 1) in hit:
            work[1] = 2
    return work, heads, raws


_INLINE = 1024
"""A response's JSON body up to this many characters is searched inside its head's JSON
encoding, longer ones on their own."""


def _raw_ctype(msg: dict[str, Any]) -> str:
    """The content type ``_Job.body`` goes by, as written (the message's, else its
    ``content-type`` header's; "" for none)."""
    ctype = msg.get("content_type") or ""
    if not ctype:
        headers = msg.get("headers")
        if isinstance(headers, dict):
            ctype = headers.get("content-type") or ""
    return ctype if isinstance(ctype, str) else ""


def _seen_text(seen: dict[int, str], msg: dict[str, Any], body: str) -> bool:
    """Whether ``body`` is a text the value patterns' hints were found nowhere in before
    (``_RuleSet.seen_texts``) and ``_Job.body`` would only scan it for those patterns (it
    isn't base64, JSON, a form, multipart or what ``fallback`` takes): its look would
    find nothing (a rule set with a gate has no pattern without a hint)."""
    if seen.get(len(body)) != body or msg.get("body_encoding") == "base64":
        return False
    ctype = _raw_ctype(msg).lower()
    if "json" in ctype or "x-www-form-urlencoded" in ctype or "multipart/" in ctype:
        return False
    return bool(ctype) or not (msg.get("body_truncated") or body.startswith(("{", "[")))


def _is_json(msg: dict[str, Any], body: str) -> bool:
    """Whether ``_Job.body`` takes ``body`` for JSON text."""
    if msg.get("body_encoding") == "utf8" and msg.get("content_type") in _JSON_TYPES:
        return True
    return _json_text(msg, body)


def _utf8(text: str) -> bytes | None:
    """``text`` as the gate searches it (None: it can't be, having a NUL or a lone
    surrogate, which would be invalid UTF-8 in the search; then its look is in full)."""
    try:
        raw = text.encode()  # (strict: the gate's marks don't cross invalid UTF-8)
    except UnicodeEncodeError:
        return None
    return None if 0 in raw else raw


def _minimal(secrets: list[str]) -> list[str]:
    """The values (longest first) holding no other (``<token>``, not ``Bearer <token>``),
    shortest first: where none of them is, none of the others can be."""
    out: list[str] = []
    for s in reversed(secrets):
        for t in out:
            if t in s:
                break
        else:
            out.append(s)
    return out


def _echoed(
    secrets: list[str],
    request: dict[str, Any],
    response: dict[str, Any],
    summary: str,
    heads: bytes | None,
    hinted: re.Pattern[str] | None = None,
    clean: int = 0,
) -> bool:
    """Whether a value replaced somewhere is still found elsewhere: in the heads (their
    encoding as the gate searched it, if still current), a body, or the summary.

    ``clean`` says where the gate's search found none of its members (``_CLEAN_HEADS``,
    ``_CLEAN_RESPONSE``); a value in which ``hinted`` (hints of patterns the gate searched
    for there: a JWT's, an e-mail's) finds something can't be in those, and isn't looked
    for there."""
    if heads is None:
        heads = _json_encode(
            tuple({k: v for k, v in m.items() if k != "body"} for m in (request, response) if m)
        )
    rb = request.get("body") if request else None
    sb = response.get("body") if response else None
    if type(rb) is not str:
        rb = ""
    if type(sb) is not str:
        sb = ""
    for s in secrets:
        skip = clean if hinted is not None and hinted.search(s) is not None else 0
        if (
            (rb and s in rb)
            or (sb and not skip & _CLEAN_RESPONSE and s in sb)
            or (not skip & _CLEAN_HEADS and (s in summary or _json_encode(s)[1:-1] in heads))
        ):
            return True
    return False


_CLEAN_HEADS = 1
_CLEAN_RESPONSE = 2


_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})
"""Common content types of JSON text (a shortcut for ``_json_text``)."""


def _json_text(msg: dict[str, Any], body: str) -> bool:
    """Whether ``_Job.body`` takes ``body`` for JSON text (what the gate's body part is for)."""
    if msg.get("body_encoding") == "base64":
        return False
    ctype = _raw_ctype(msg)
    if ctype:
        return "json" in ctype.lower()
    return body.startswith(("{", "[")) and body.endswith(("}", "]"))
