"""Types of the query language: which comparisons are legal and in what domain they run,
literal conversions (durations to seconds, text to bytes), and constant folding
(numbers, durations, timestamps, ``now()``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import celpy.celtypes

from hub.query import ast as a
from hub.query.catalog import (
    BOOL,
    BYTES,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    NUMBER_TYPES,
    STRING,
    TIMESTAMP,
)
from hub.query.errors import QueryError
from hub.query.regex import compile_pattern

__all__ = [
    "check_int",
    "const_compare",
    "const_str_test",
    "convert",
    "describe",
    "domain",
    "fold",
    "kind",
    "time_literal",
]

_INT64 = (-(2**63), 2**63 - 1)


def check_int(value: int, pos: int) -> None:
    if not _INT64[0] <= value <= _INT64[1]:
        raise QueryError("integer out of the 64-bit range", pos)


def time_literal(name: str, text: str, pos: int) -> a.Const:
    try:
        if name == "duration":
            d = celpy.celtypes.DurationType(text)
            return a.Const(
                timedelta(seconds=d.seconds, days=d.days, microseconds=d.microseconds),
                DURATION,
                pos,
            )
        t = celpy.celtypes.TimestampType(text)
        utc = t.astimezone(UTC)
        value = datetime(
            utc.year,
            utc.month,
            utc.day,
            utc.hour,
            utc.minute,
            utc.second,
            utc.microsecond,
            tzinfo=UTC,
        )
        return a.Const(value, TIMESTAMP, pos)
    except Exception as exc:  # celpy/pendulum raise various errors for bad text
        example = '"250ms", "1h30m"' if name == "duration" else '"2026-01-01T00:00:00Z"'
        raise QueryError(
            f"invalid {name} {text[:40]!r}: {exc}", pos, f"for example {name}({example})"
        ) from None


def kind(x: a.Operand) -> str:
    if isinstance(x, a.Field):
        return x.type
    if isinstance(x, a.Size):
        return INT
    if isinstance(x, a.NowOffset):
        return TIMESTAMP
    return x.type


def describe(x: a.Operand) -> str:
    if isinstance(x, a.Field):
        return f"{x.spec.name} ({x.type})"
    if isinstance(x, a.Size):
        return "size() (int)"
    if isinstance(x, a.NowOffset):
        return "now() (timestamp)"
    value = x.value.isoformat() if isinstance(x.value, datetime) else repr(x.value)
    return f"{value} ({x.type})"


def domain(lhs: a.Operand, rhs: a.Operand, pos: int) -> str:
    """The type both sides compare as, or a QueryError."""
    lt, rt = kind(lhs), kind(rhs)
    simple = {STRING: "string", INT: "number", DOUBLE: "number", BOOL: "bool"}
    if lt == DYN and rt == DYN:
        raise QueryError("compare a protocol field with a literal", pos)
    if lt == DYN and rt in simple:
        return simple[rt]
    if rt == DYN and lt in simple:
        return simple[lt]
    if lt == rt and lt in (STRING, BOOL, TIMESTAMP):
        return {STRING: "string", BOOL: "bool", TIMESTAMP: "timestamp"}[lt]
    numeric = NUMBER_TYPES | {DURATION}
    if lt in numeric and rt in numeric and (DURATION not in (lt, rt) or lt == DURATION):
        return "number"
    if lt == BYTES and rt in (STRING, BYTES):
        return "bytes"
    hint = ""
    if lt == DURATION or rt == DURATION:
        hint = 'durations compare with duration("250ms") or seconds'
    elif lt == TIMESTAMP or rt == TIMESTAMP:
        hint = 'timestamps compare with timestamp("2026-01-01T00:00:00Z") or now()'
    raise QueryError(f"cannot compare {describe(lhs)} with {describe(rhs)}", pos, hint)


def convert(x: a.Operand, domain: str) -> a.Operand:
    """Constants in the comparison domain: durations in seconds, text as bytes."""
    if not isinstance(x, a.Const):
        return x
    if x.type == DURATION:
        return a.Const(x.value.total_seconds(), DOUBLE, x.pos)
    if domain == "bytes" and isinstance(x.value, str):
        return a.Const(x.value.encode("utf-8"), BYTES, x.pos)
    return x


def const_compare(op: str, lhs: a.Operand, rhs: a.Operand, pos: int) -> bool:
    if not isinstance(lhs, a.Const) or not isinstance(rhs, a.Const):
        raise QueryError("compare a field with a value; both sides are constant", pos)
    lv, rv = lhs.value, rhs.value
    if lhs.type != rhs.type and not (lhs.type in NUMBER_TYPES and rhs.type in NUMBER_TYPES):
        if op in ("==", "!="):
            return op == "!="
        raise QueryError(f"cannot compare {describe(lhs)} with {describe(rhs)}", pos)
    try:
        return bool(
            {"==": lv == rv, "!=": lv != rv}.get(op)
            if op in ("==", "!=")
            else {"<": lv < rv, "<=": lv <= rv, ">": lv > rv, ">=": lv >= rv}[op]
        )
    except TypeError:
        raise QueryError(f"{op} does not apply to {lhs.type} values", pos) from None


def const_str_test(name: str, value: Any, arg: Any) -> bool:
    if isinstance(value, bytes) != isinstance(arg, bytes):
        value = value.encode() if isinstance(value, str) else value
        arg = arg.encode() if isinstance(arg, str) else arg
    if name == "startsWith":
        return bool(value.startswith(arg))
    if name == "endsWith":
        return bool(value.endswith(arg))
    if name == "contains":
        return arg in value
    if isinstance(value, bytes):
        return False
    return compile_pattern(arg)(value)


def fold(op: str, left: a.Operand, right: a.Operand | None, pos: int) -> a.Operand:
    """Constant arithmetic: numbers, durations, timestamps and now()."""
    for x in (left, right):
        if isinstance(x, a.Field | a.Size):
            raise QueryError(
                f"arithmetic on fields is not supported ({describe(x)})",
                pos,
                "compare the field with a constant expression instead",
            )
    if op == "neg":
        assert isinstance(left, a.Const)
        if left.type in NUMBER_TYPES | {DURATION}:
            value = -left.value
            if left.type == INT:
                check_int(value, pos)
            return a.Const(value, left.type, pos)
        raise QueryError(f"cannot negate a {left.type}", pos)
    assert right is not None
    lt, rt = kind(left), kind(right)
    try:
        if isinstance(left, a.NowOffset) and rt == DURATION and op in ("add", "sub"):
            assert isinstance(right, a.Const)
            delta = right.value if op == "add" else -right.value
            return a.NowOffset(left.offset + delta, left.pos)
        if isinstance(right, a.NowOffset) and lt == DURATION and op == "add":
            assert isinstance(left, a.Const)
            return a.NowOffset(right.offset + left.value, right.pos)
        if not isinstance(left, a.Const) or not isinstance(right, a.Const):
            raise QueryError(f"cannot apply {op} to {describe(left)} and {describe(right)}", pos)
        lv, rv = left.value, right.value
        if lt in NUMBER_TYPES and rt in NUMBER_TYPES:
            typ = INT if lt == rt == INT else DOUBLE
            if op == "add":
                value = lv + rv
            elif op == "sub":
                value = lv - rv
            elif op == "mul":
                value = lv * rv
            elif op == "div":
                if rv == 0:
                    raise QueryError("division by zero", pos)
                value = int(lv / rv) if typ == INT else lv / rv
            else:
                if typ != INT or rv == 0:
                    raise QueryError("% needs non-zero integers", pos)
                value = int(math.fmod(lv, rv))
            if typ == INT:
                check_int(value, pos)
            elif not math.isfinite(value):
                raise QueryError("number out of range", pos)
            return a.Const(value, typ, pos)
        if op in ("add", "sub") and rt == DURATION and lt in (DURATION, TIMESTAMP):
            value = lv + rv if op == "add" else lv - rv
            return a.Const(value, lt, pos)
        if op == "add" and lt == DURATION and rt == TIMESTAMP:
            return a.Const(lv + rv, TIMESTAMP, pos)
        if op == "sub" and lt == TIMESTAMP and rt == TIMESTAMP:
            return a.Const(lv - rv, DURATION, pos)
    except OverflowError:
        raise QueryError("time out of range", pos) from None
    raise QueryError(f"cannot apply {op} to {describe(left)} and {describe(right)}", pos)
