"""The redaction engine: pure functions from an entry to its redacted copy.

``Engine(config).apply(entry)`` replaces every sensitive value with ``[REDACTED]`` and
appends the path of each replacement to ``entry.redacted``. It never mutates its input,
does no I/O, and keeps no per-call state on the engine, so one engine serves many
threads. Work is skipped where it can't find anything: the value patterns run only where
a cheap pre-check over the entry's JSON encoding says a candidate exists.

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
from urllib.parse import quote, unquote, unquote_plus, unquote_to_bytes

import msgspec

from kubeweir.entry import REDACTED, Entry
from redaction._config import RedactionConfig
from redaction._rules import NameRule, PatternRule, Rule, normalize
from redaction._validators import VALIDATORS

__all__ = ["Engine"]

_json_encode = msgspec.json.encode
_json_decode = msgspec.json.decode

# Pre-check map: digits → '0', capitals → 'A'; spaces and dashes are deleted.
_SHAPE = bytearray(range(256))
for _c in b"0123456789":
    _SHAPE[_c] = ord("0")
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _SHAPE[_c] = ord("A")
_SHAPE_TABLE = bytes(_SHAPE)
_SHAPE_DELETE = b" -+"  # '+' is a space in urlencoded text

_AUTH_HEADERS = frozenset({"authorization", "proxyauthorization"})
_URL_HEADERS = frozenset({":path", "location", "referer", "content-location"})
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
_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)
_PART_NAME = re.compile(r'\bname="([^"]*)"', re.IGNORECASE)
_MIN_ECHO = 6
"""Values shorter than this are replaced only where found, not as echoes elsewhere
(``1`` would otherwise wipe every digit); the summary takes any length as a whole token."""

_Link = tuple[Any, Any, str]  # (parent link, display key: str | int, normalized key or "")


class _RuleSet:
    """Rules compiled for lookup: name sets per kind and the active patterns."""

    __slots__ = (
        "headers",
        "query",
        "form",
        "fields",
        "json_names",
        "json_paths",
        "patterns",
        "pre",
    )

    def __init__(self, rules: Iterable[Rule]) -> None:
        names: dict[str, set[str]] = {k: set() for k in ("header", "query", "form", "field")}
        json_names: set[str] = set()
        json_paths: dict[str, list[tuple[str, ...]]] = {}
        patterns: dict[str, PatternRule] = {}
        for rule in rules:
            if isinstance(rule, NameRule):
                if rule.kind == "json":
                    if len(rule.key) == 1:
                        json_names.add(rule.key[0])
                    else:
                        json_paths.setdefault(rule.key[-1], []).append(rule.key[:-1])
                else:
                    names[rule.kind].add(rule.key[0])
            else:
                patterns[rule.name] = rule
        self.headers = frozenset(names["header"])
        self.query = frozenset(names["query"])
        self.form = frozenset(names["form"])
        self.fields = frozenset(names["field"])
        self.json_names = frozenset(json_names)
        self.json_paths = {k: tuple(v) for k, v in json_paths.items()}
        self.patterns = tuple(patterns.values())
        self.pre = tuple(
            (p, tuple(lit.encode() for lit in p.literals), p.shape.encode()) for p in self.patterns
        )

    def candidates(self, blob: bytes) -> tuple[PatternRule, ...]:
        """The patterns that may match somewhere in ``blob`` (a superset, never fewer)."""
        shaped: bytes | None = None
        out: list[PatternRule] = []
        for pattern, literals, shape in self.pre:
            if literals:
                if any(lit in blob for lit in literals):
                    out.append(pattern)
            elif shape:
                if shaped is None:
                    shaped = blob.translate(_SHAPE_TABLE, _SHAPE_DELETE)
                if shape in shaped:
                    out.append(pattern)
            else:
                out.append(pattern)
        return tuple(out)


class _Job:
    """The state of one ``apply`` call (never shared between calls or threads)."""

    __slots__ = ("rs", "active", "hits", "secrets")

    def __init__(self, rs: _RuleSet, active: tuple[PatternRule, ...]) -> None:
        self.rs = rs
        self.active = active
        self.hits: dict[str, None] = {}
        self.secrets: set[str] = set()

    # -- bookkeeping ---------------------------------------------------------------------

    def hit(self, path: str, value: object) -> None:
        self.hits[path] = None
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

    def scan(self, text: str, path: str, patterns: tuple[PatternRule, ...] | None = None) -> str:
        """Replace every validated pattern hit in ``text``; record ``path`` on a hit."""
        if patterns is None:
            patterns = self.active
        if len(text) > 256:
            patterns = self.rs_candidates(text, patterns)
        for p in patterns:
            if p.literals and not any(lit in text for lit in p.literals):
                continue
            validate = VALIDATORS[p.validator]
            group = p.group
            pieces: list[str] | None = None
            last = 0
            for m in p.regex.finditer(text):
                value = m.group(group)
                if not value:
                    continue
                span = validate(value)
                if span is None:
                    continue
                base = m.start(group)
                if pieces is None:
                    pieces = []
                pieces.append(text[last : base + span[0]])
                pieces.append(REDACTED)
                last = base + span[1]
                self.secrets.add(value[span[0] : span[1]])
            if pieces is not None:
                pieces.append(text[last:])
                text = "".join(pieces)
                self.hits[path] = None
        return text

    def rs_candidates(
        self, text: str, patterns: tuple[PatternRule, ...]
    ) -> tuple[PatternRule, ...]:
        blob = text.encode("utf-8", "surrogateescape")
        shaped: bytes | None = None
        out = []
        for p in patterns:
            if p.shape and not p.literals:
                if shaped is None:
                    shaped = blob.translate(_SHAPE_TABLE, _SHAPE_DELETE)
                if p.shape.encode() not in shaped:
                    continue
            out.append(p)
        return tuple(out)

    # -- messages ------------------------------------------------------------------------

    def message(self, msg: dict[str, Any], prefix: str, proto: str) -> dict[str, Any]:
        """The redacted copy of one request/response map (the same object if unchanged)."""
        out: dict[str, Any] | None = None
        for key, value in msg.items():
            if key == "body" or key.endswith("_encoding") or key == "content_type":
                continue
            path = f"{prefix}.{key}"
            if key == "headers":
                new = self.headers(value, path)
            elif key == "path" and isinstance(value, str):
                new = self.url_path(value, path)
            elif key == "query" and proto not in _SQL_PROTOS:
                new = self.query(value, path, self.rs.query)
            elif key == "args" and proto == "redis" and isinstance(value, list):
                new = self.redis_args(msg, value, path)
            else:
                new = self.field(key, value, (None, f"{prefix}.{key}", ""), msg)
            if new is not value:
                if out is None:
                    out = dict(msg)
                out[key] = new
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
                return self.scan(value, _display(link))
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
            for name, value in headers.items():
                new = self.header(name, value, f"{prefix}.{name}")
                if new is not value:
                    if out is None:
                        out = dict(headers)
                    out[name] = new
            return headers if out is None else out
        if isinstance(headers, list):  # [[name, value], ...]
            lout: list[Any] | None = None
            for i, pair in enumerate(headers):
                if isinstance(pair, list | tuple) and len(pair) == 2:
                    new = self.header(pair[0], pair[1], f"{prefix}.{pair[0]}")
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
        if name.lower() in _URL_HEADERS and "?" in value:
            base, _, qs = value.partition("?")
            new_qs = self.query_string(qs, path, self.rs.query, per_name=False)
            if new_qs is not qs:
                new = f"{base}?{new_qs}"
        if self.active:
            new = self.scan(new, path)
        return new

    def cookie(self, value: str, path: str) -> str:
        parts = value.split(";")
        changed = False
        for i, part in enumerate(parts):
            name, eq, val = part.partition("=")
            if eq and val.strip() and val.strip() != REDACTED:
                self.hit(path, val.strip())
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
        for i, part in enumerate(parts):
            name, eq, value = part.partition("=")
            if not eq or not value:
                continue
            dname = unquote_plus(name) if ("%" in name or "+" in name) else name
            where = f"{path}.{dname}" if per_name else path
            if normalize(dname) in names:
                if value != REDACTED:
                    self.hit(where, value)
                    self.secret(unquote_plus(value))
                    parts[i] = f"{name}={REDACTED}"
                    changed = True
                continue
            if self.active:
                raw = unquote_plus(value) if ("%" in value or "+" in value) else value
                red = self.scan(raw, where)
                if red != raw:
                    parts[i] = f"{name}={quote(red, safe='[]@!$()*,;:/~')}"
                    changed = True
        return "&".join(parts) if changed else qs

    # -- bodies --------------------------------------------------------------------------

    def body(self, msg: dict[str, Any], body: str, path: str) -> str:
        ctype = msg.get("content_type") or ""
        if not ctype:
            headers = msg.get("headers")
            if isinstance(headers, dict):
                ctype = headers.get("content-type") or ""
        raw_ctype = ctype if isinstance(ctype, str) else ""
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
            saved = self.active
            self.active = self.rs.candidates(value.encode("utf-8", "surrogateescape"))
            try:
                return process(value)
            finally:
                self.active = saved
        text = raw.decode("utf-8", "surrogateescape")
        # the entry-wide pre-check saw only base64: look at the decoded bytes here
        saved = self.active
        self.active = self.rs.candidates(raw)
        try:
            new = process(text)
        finally:
            self.active = saved
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
            try:
                obj = _json_decode(text)
            except (msgspec.DecodeError, UnicodeEncodeError):
                return self.fallback(text, path)
            new = self.json(obj, (None, path, ""))
            if new is obj:
                return text
            return _json_encode(new).decode("utf-8", "surrogateescape")
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

    def json(self, node: Any, link: _Link) -> Any:
        t = type(node)
        rs = self.rs
        if t is dict:
            out: dict[str, Any] | None = None
            for k, v in node.items():
                nk = normalize(k)
                if nk in rs.json_names or (nk in rs.json_paths and _path_match(link, nk, rs)):
                    if v != REDACTED and v is not None:
                        self.hit(_display((link, k, nk)), v)
                        if out is None:
                            out = dict(node)
                        out[k] = REDACTED
                    continue
                tv = type(v)
                if tv is dict or tv is list or (self.active and (tv is str or tv is int)):
                    nv = self.json(v, (link, k, nk))
                    if nv is not v:
                        if out is None:
                            out = dict(node)
                        out[k] = nv
            return node if out is None else out
        if t is list:
            lout: list[Any] | None = None
            for i, v in enumerate(node):
                tv = type(v)
                if tv is dict or tv is list or (self.active and (tv is str or tv is int)):
                    nv = self.json(v, (link, i, ""))
                    if nv is not v:
                        if lout is None:
                            lout = list(node)
                        lout[i] = nv
            return node if lout is None else lout
        if t is str and self.active:
            new = self.scan(node, _display(link))
            return node if new == node else new
        if t is int and self.active and abs(node) >= 10**12:  # a card number sent as a number
            s = str(node)
            if self.scan(s, _display(link)) != s:
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

    def echoes(self, msg: dict[str, Any], prefix: str) -> dict[str, Any]:
        """Replace the values redacted elsewhere wherever they still appear."""
        secrets = [s for s in self.secrets if len(s) >= _MIN_ECHO and s not in REDACTED]
        if not secrets:
            return msg
        secrets.sort(key=len, reverse=True)
        escaped = [(s, _json_encode(s)[1:-1].decode("utf-8", "surrogateescape")) for s in secrets]

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


def _path_match(link: _Link, nk: str, rs: _RuleSet) -> bool:
    """Whether the keys leading to ``nk`` end with one of the dotted paths ending in ``nk``
    (list levels are transparent: ``items.card.number`` matches ``card.number``)."""
    for prefix in rs.json_paths[nk]:
        node: Any = link
        ok = True
        for want in reversed(prefix):
            while node is not None and not node[2]:
                node = node[0]  # skip list indices and the root
            if node is None or node[2] != want:
                ok = False
                break
            node = node[0]
        if ok:
            return True
    return False


def _display(link: _Link) -> str:
    parts: list[str] = []
    node: Any = link
    while node is not None:
        key = node[1]
        if node[0] is None:
            parts.append(str(key))
        elif isinstance(key, int):
            parts.append(f"[{key}]")
        else:
            parts.append(f".{key}")
        node = node[0]
    return "".join(reversed(parts))


class Engine:
    """Applies one redaction config to entries; immutable and safe to share across threads."""

    def __init__(self, config: RedactionConfig | None = None) -> None:
        self.config = config if config is not None else RedactionConfig()
        self._base = _RuleSet(self.config.rules)
        self._by_ns: dict[tuple[str, str], _RuleSet] = {}
        self._lock = threading.Lock()

    def _rules(self, src_ns: str, dst_ns: str) -> _RuleSet:
        if not self.config.namespaces or not (src_ns or dst_ns):
            return self._base
        key = (src_ns, dst_ns)
        rs = self._by_ns.get(key)
        if rs is None:
            rules = self.config.rules_for(src_ns, dst_ns)
            rs = self._base if rules is self.config.rules else _RuleSet(rules)
            with self._lock:
                if len(self._by_ns) > 4096:
                    self._by_ns.clear()
                self._by_ns[key] = rs
        return rs

    def apply(self, entry: Entry) -> Entry:
        """The entry with sensitive values replaced and their paths added to ``redacted``;
        the same object when nothing was replaced. Never mutates ``entry``."""
        rs = self._rules(entry.src.namespace, entry.dst.namespace)
        active: tuple[PatternRule, ...] = ()
        if rs.patterns:
            blob = _json_encode((entry.request, entry.response, entry.summary))
            if b"%" in blob:  # percent-encoded values are scanned decoded
                blob += b"\n" + unquote_to_bytes(blob)
            active = rs.candidates(blob)
        job = _Job(rs, active)
        proto = entry.proto
        request = job.message(entry.request, "request", proto) if entry.request else entry.request
        response = (
            job.message(entry.response, "response", proto) if entry.response else entry.response
        )
        if job.secrets:
            request = job.echoes(request, "request")
            response = job.echoes(response, "response")
        summary = job.summary(entry.summary) if entry.summary else entry.summary
        if not job.hits:
            return entry
        redacted = list(entry.redacted)
        seen = set(redacted)
        redacted.extend(p for p in job.hits if p not in seen)
        return msgspec.structs.replace(
            entry, request=request, response=response, summary=summary, redacted=redacted
        )
