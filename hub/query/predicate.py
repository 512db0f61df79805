"""AST -> Python predicate over entry dicts (``entry_to_builtins``), for the live stream.

The AST is turned into nested closures once; a call does no parsing or dispatch on node
types. Semantics mirror ``sqlgen`` exactly: a missing value, JSON null, or a value of
another type than the comparison's makes the atomic predicate false; defaults of the
entry struct (empty strings, port 0, no labels, empty body) count as present.
"""

from __future__ import annotations

import base64
import binascii
import operator
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.query import ast as a
from hub.query.catalog import BOOL, BYTES, DURATION, INT, LIST, MAP, STRING, TIMESTAMP
from hub.query.clock import shifted
from hub.query.regex import compile_pattern

__all__ = ["Predicate", "body_bytes", "to_predicate", "ts_datetime"]

Entry = dict[str, Any]
Predicate = Callable[[Entry, datetime], bool]
Getter = Callable[[Entry], Any]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def body_bytes(side: Any) -> bytes:
    """The body of a request/response map as stored in ``req_body``/``resp_body``:
    UTF-8 bytes of the text, or the decoded bytes when ``body_encoding`` is base64
    (the text's own bytes when it is not valid base64); empty when there is none."""
    if not isinstance(side, dict):
        return b""
    body = side.get("body")
    if not isinstance(body, str):
        return b""
    if side.get("body_encoding") == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            pass
    return body.encode("utf-8", "surrogatepass")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT32 = (-(2**31), 2**31 - 1)


def ts_datetime(ts: Any) -> datetime | None:
    """Epoch seconds as stored in the ``ts`` column: rounded (half to even) to the µs."""
    if type(ts) not in (int, float):
        return None
    try:
        return _EPOCH + timedelta(microseconds=round(ts * 1e6))
    except (OverflowError, ValueError):
        return None


def _canonical_index(key: str) -> int | None:
    """A JSON-pointer array index: ``0`` or digits without a leading zero."""
    if key == "0" or (key[:1] in "123456789" and key.isascii() and key.isdigit()):
        return int(key)
    return None


def _walk(value: Any, keys: tuple[str | int, ...]) -> Any:
    """JSON-pointer lookup with the same rules as DuckDB's ``json_type(col, '/a/0')``."""
    for key in keys:
        if isinstance(value, dict):
            value = value.get(str(key))
        elif isinstance(value, list):
            idx = key if isinstance(key, int) else (_canonical_index(key) if key else None)
            if idx is None or idx >= len(value):
                return None
            value = value[idx]
        else:
            return None
    return value


def _typed(typ: str) -> Callable[[Any], bool]:
    if typ == STRING:
        return lambda v: type(v) is str
    if typ in (INT,):
        return lambda v: type(v) is int
    if typ == DURATION:
        return lambda v: type(v) in (int, float)
    if typ == BOOL:
        return lambda v: type(v) is bool
    if typ == MAP:
        return lambda v: type(v) is dict
    if typ == LIST:
        return lambda v: type(v) is list
    return lambda v: True


def _raw(f: a.Field) -> Getter:
    """The field's raw value: defaults applied, None when missing."""
    spec = f.spec
    path = (*spec.path, *f.keys)
    head, rest = path[0], path[1:]
    if spec.type == TIMESTAMP:
        return lambda e: ts_datetime(e.get("ts"))
    if spec.type == BYTES:
        return lambda e: body_bytes(e.get(str(head)))
    if spec.json:
        return lambda e: _walk(e.get(str(head)), rest)
    ok = _typed(spec.type) if not f.keys else _typed(STRING)
    default = spec.default if not f.keys else None
    if spec.column == "status":  # an INTEGER column: other numbers are not stored
        ok = lambda v: type(v) is int and _INT32[0] <= v <= _INT32[1]  # noqa: E731
    if spec.fallback:
        other = (*path[:-1], spec.fallback)[1:]

        def get_or(e: Entry) -> Any:
            side = e.get(str(head))
            v = _walk(side, rest)
            if v is None:
                v = _walk(side, other)
            return v if type(v) is str else None

        return get_or

    top = str(head)
    if not rest:

        def get_top(e: Entry) -> Any:
            v = e.get(top)
            if v is None:
                return default
            return v if ok(v) else None

        return get_top
    if len(rest) == 1:  # src.namespace, request.method: one dict below the entry
        key = str(rest[0])

        def get_one(e: Entry) -> Any:
            d = e.get(top)
            v = d.get(key) if type(d) is dict else None
            if v is None:
                return default
            return v if ok(v) else None

        return get_one

    def get(e: Entry) -> Any:
        v = _walk(e.get(top), rest)
        if v is None:
            return default
        return v if ok(v) else None

    return get


def _coerce(domain: str) -> Callable[[Any], Any]:
    if domain == "string":
        return lambda v: v if type(v) is str else None
    if domain == "number":
        return lambda v: v if type(v) in (int, float) else None
    if domain == "bool":
        return lambda v: v if type(v) is bool else None
    if domain == "bytes":
        return lambda v: v if type(v) is bytes else None
    return lambda v: v if isinstance(v, datetime) else None


def _term(t: a.Term, domain: str) -> Getter:
    if isinstance(t, a.Size):
        raw = _raw(t.arg)

        def size(e: Entry) -> Any:
            v = raw(e)
            return len(v) if type(v) in (str, bytes, list, dict) else None

        return size
    raw = _raw(t)
    coerce = _coerce(domain)
    return lambda e: coerce(raw(e))


_DOMAIN_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "bool": (bool,),
    "bytes": (bytes,),
}


def _compare(p: a.Compare) -> Predicate:
    op = _OPS[p.op]
    left = _term(p.left, p.domain)
    right = p.right
    if isinstance(right, a.Const) and isinstance(p.left, a.Field) and p.domain in _DOMAIN_TYPES:
        # the hot case: a field against a literal, type check fused in
        raw, value, types = _raw(p.left), right.value, _DOMAIN_TYPES[p.domain]
        return lambda e, now: type(v := raw(e)) in types and op(v, value)
    if isinstance(right, a.Const):
        value = right.value
        return lambda e, now: (v := left(e)) is not None and op(v, value)
    if isinstance(right, a.NowOffset):
        offset = right.offset
        return lambda e, now: (v := left(e)) is not None and op(v, shifted(now, offset))
    other = _term(right, p.domain)
    return lambda e, now: (v := left(e)) is not None and (w := other(e)) is not None and op(v, w)


def _str_test(p: a.StrTest) -> Predicate:
    raw = _raw(p.field)
    if p.field.type == BYTES:
        if p.op == "matches":
            rx = compile_pattern(str(p.arg))

            def body_matches(e: Entry, now: datetime) -> bool:
                try:
                    text = raw(e).decode("utf-8")
                except UnicodeDecodeError:
                    return False
                return rx(text)

            return body_matches
        needle = p.arg if isinstance(p.arg, bytes) else p.arg.encode()
        if p.op == "contains":
            return lambda e, now: needle in raw(e)
        if p.op == "startsWith":
            return lambda e, now: bool(raw(e).startswith(needle))
        return lambda e, now: bool(raw(e).endswith(needle))
    arg = str(p.arg)

    def text(e: Entry) -> Any:
        v = raw(e)
        return v if type(v) is str else None

    if p.op == "matches":
        rx = compile_pattern(arg)
        return lambda e, now: (v := text(e)) is not None and rx(v)
    if p.op == "contains":
        return lambda e, now: (v := text(e)) is not None and arg in v
    if p.op == "startsWith":
        return lambda e, now: (v := text(e)) is not None and v.startswith(arg)
    return lambda e, now: (v := text(e)) is not None and v.endswith(arg)


def to_predicate(p: a.Predicate) -> Predicate:
    """A function ``(entry_dict, now) -> bool`` equivalent to ``to_sql(p)``."""
    if isinstance(p, a.And):
        parts = tuple(to_predicate(x) for x in p.args)

        def all_of(e: Entry, now: datetime) -> bool:
            for f in parts:
                if not f(e, now):
                    return False
            return True

        return all_of
    if isinstance(p, a.Or):
        parts = tuple(to_predicate(x) for x in p.args)

        def any_of(e: Entry, now: datetime) -> bool:
            for f in parts:
                if f(e, now):
                    return True
            return False

        return any_of
    if isinstance(p, a.Not):
        inner = to_predicate(p.arg)
        return lambda e, now: not inner(e, now)
    if isinstance(p, a.BoolConst):
        value = p.value
        return lambda e, now: value
    if isinstance(p, a.Compare):
        return _compare(p)
    if isinstance(p, a.InList):
        get = _term(p.left, p.domain)
        values = frozenset(p.values)
        return lambda e, now: (v := get(e)) is not None and v in values
    if isinstance(p, a.StrTest):
        return _str_test(p)
    if isinstance(p, a.Truth):
        get = _term(p.field, "bool")
        return lambda e, now: get(e) is True
    if isinstance(p, a.Exists):
        raw = _raw(p.field)
        return lambda e, now: raw(e) is not None
    if isinstance(p, a.HasKey):
        raw, key = _raw(p.field), p.key
        return lambda e, now: type(m := raw(e)) is dict and key in m
    if isinstance(p, a.ListHas):
        raw, item = _raw(p.field), p.value
        return lambda e, now: (
            type(xs := raw(e)) is list and any(type(x) is str and x == item for x in xs)
        )
    raise TypeError(f"unknown predicate {p!r}")  # pragma: no cover
