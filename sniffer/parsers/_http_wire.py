"""HTTP/1.x wire details shared by the reader: finding and splitting a message head,
field lines, request targets, and content detection (RFC 9112). Pure functions."""

from __future__ import annotations

from itertools import repeat
from typing import Final

from sniffer.parsers.base import Direction, ParseError
from sniffer.parsers.registry import Verdict

__all__ = [
    "METHODS",
    "MAX_METHOD",
    "content_length",
    "decode_head",
    "detect",
    "find_head_end",
    "looks_like_request_line",
    "parse_fields",
    "split_target",
]

# RFC 9110 §9 and the registered WebDAV/other methods: what detection and
# re-synchronisation accept as a request start. (Parsing itself accepts any token.)
METHODS = frozenset(
    b"GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PROPFIND PROPPATCH MKCOL COPY "
    b"MOVE LOCK UNLOCK REPORT SEARCH MKCALENDAR MKACTIVITY CHECKOUT MERGE PURGE "
    b"LINK UNLINK ACL BIND REBIND UNBIND ORDERPATCH UPDATE LABEL VERSION-CONTROL".split()
)
MAX_METHOD = max(len(m) for m in METHODS)


def content_length(value: str) -> int:
    """RFC 9110 §8.6: one non-negative integer; a list of identical values is accepted."""
    if value.isdigit() and value.isascii():
        return int(value)
    parts = {p.strip() for p in value.split(",")}
    if len(parts) == 1:
        (p,) = parts
        if p.isdigit() and p.isascii():
            return int(p)
    raise ParseError(f"invalid Content-Length {value[:40]!r}")


def decode_head(raw: bytes | bytearray) -> list[str]:
    """Header bytes → lines. UTF-8 when valid, else latin-1 (never fails). RFC 9112 §2.2
    lets a recipient accept a bare LF as a line terminator."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text.split("\n")


def parse_fields(lines: list[str], start: int) -> dict[str, str]:
    """RFC 9112 §5: field lines. Names lower-cased; repeats joined (RFC 9110 §5.3)."""
    headers: dict[str, str] = {}
    n = len(lines)
    i = start
    # The common case, one plain loop (no tuple or list per line: compiled, this is the
    # parser's busiest function): every line has a colon after a non-empty name that
    # holds no space or tab (space before the colon, an obs-fold line) and ends in no
    # other white space, and no name is repeated (the map has a key per line). Anything
    # else goes to the slow path, which decides from the start: the same answers.
    while i < n:
        line = lines[i]
        colon = line.find(":")
        if colon < 0:
            break
        name = line[:colon]
        if not name or " " in name or "\t" in name or name[-1].isspace():
            break
        headers[name.lower()] = line[colon + 1 :].strip()
        i += 1
    else:
        if len(headers) == n - start:  # no name repeated
            return headers
    return _parse_fields_slow(list(map(str.partition, lines[start:], repeat(":"))))


_WS: Final = (" ", "\t")


def _parse_fields_slow(items: list[tuple[str, str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = ""
    for name, colon, value in items:
        if not name and not colon:
            continue  # an empty line
        if name[:1] in _WS:
            # RFC 9112 §5.2: obs-fold, replaced by a space
            if not last:
                raise ParseError("continuation line before any header field")
            headers[last] = headers[last] + " " + (name + colon + value).strip()
            continue
        if not colon:
            raise ParseError(f"header line without a colon: {name[:60]!r}")
        # RFC 9112 §5.1: no whitespace is allowed before the colon; we tolerate it
        name = name.rstrip().lower()
        if not name:
            raise ParseError("header field with an empty name")
        value = value.strip()
        old = headers.get(name)
        if old is None:
            headers[name] = value
        elif name == "set-cookie":
            headers[name] = old + "\n" + value
        else:
            headers[name] = old + ", " + value
        last = name
    return headers


def find_head_end(buf: bytes | bytearray, pos: int, scan: int) -> tuple[int, int]:
    """(end of the header section, start of what follows) or (-1, -1)."""
    end = buf.find(b"\r\n\r\n", scan)
    if end >= 0:
        # a bare-LF message earlier in the buffer ends first
        lf = buf.find(b"\n\n", pos, end)
        if lf >= 0:
            return lf, lf + 2
        return end, end + 4
    lf = buf.find(b"\n\n", scan)
    if lf >= 0:
        return lf, lf + 2
    return -1, -1


def split_target(target: str) -> tuple[str, str, str]:
    """(path, query, host-from-target) — RFC 9112 §3.2 request-target forms."""
    host = ""
    if target[:1] != "/" and "://" in target:
        # absolute-form (§3.2.2): the authority is in the target
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        if slash < 0:
            host, target = rest, "/"
        else:
            host, target = rest[:slash], rest[slash:]
    path, _, query = target.partition("?")
    return path, query, host


def looks_like_request_line(line: bytes | bytearray) -> bool:
    sp = line.find(b" ")
    return 0 < sp <= MAX_METHOD and bytes(line[:sp]) in METHODS and b" HTTP/1." in line


_HTTP1: Final = b"HTTP/1."


def detect(data: bytes, direction: Direction) -> Verdict:
    """Content detector: a request-line start (known method + space) from the client,
    ``HTTP/1.`` from the server."""
    if direction == Direction.SERVER:
        head = data[:7]
        if head == _HTTP1:
            return Verdict.YES
        return Verdict.MORE if _HTTP1.startswith(head) else Verdict.NO
    sp = data.find(b" ", 0, MAX_METHOD + 1)
    if sp < 0:
        if len(data) > MAX_METHOD:
            return Verdict.NO
        word = bytes(data)
        return Verdict.MORE if any(m.startswith(word) for m in METHODS) else Verdict.NO
    if bytes(data[:sp]) not in METHODS:
        return Verdict.NO
    # request-target: origin-form "/", absolute-form "http...", asterisk "*", or authority
    nxt = data[sp + 1 : sp + 2]
    if not nxt:
        return Verdict.MORE
    return Verdict.YES if nxt > b" " and nxt != b"\x7f" else Verdict.NO
