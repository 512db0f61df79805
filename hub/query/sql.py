"""Dialect helpers: every SQL function name the compiler emits is here (DuckDB today).

A ClickHouse back end replaces this module only. Every value the user typed arrives as
a bound parameter (``bind``); JSON pointers are built from field names and keys and
bound too, never spliced into SQL text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

__all__ = [
    "bind",
    "blob_contains",
    "blob_ends_with",
    "blob_size",
    "blob_starts_with",
    "blob_text",
    "contains",
    "ends_with",
    "json_bool",
    "json_exists",
    "json_has_key",
    "json_is",
    "json_list_has",
    "json_number",
    "json_pointer",
    "json_size",
    "json_text",
    "list_has",
    "list_size",
    "map_get",
    "map_has",
    "map_size",
    "regex_match",
    "starts_with",
    "text_size",
]

Expr = ColumnElement[Any]

_NUMERIC_JSON = ("BIGINT", "UBIGINT", "DOUBLE", "HUGEINT")


def bind(value: Any) -> Expr:
    """A bound parameter with an explicit type (DuckDB infers badly from NULL context)."""
    if isinstance(value, bool):
        return sa.literal(value, sa.Boolean())
    if isinstance(value, int):
        return sa.literal(value, sa.BigInteger())
    if isinstance(value, float):
        return sa.literal(value, sa.Double())
    if isinstance(value, bytes):
        return sa.literal(value, sa.LargeBinary())
    if isinstance(value, datetime):
        return sa.literal(value, sa.DateTime())
    return sa.literal(value, sa.String())


def json_pointer(path: Sequence[str | int]) -> str:
    """RFC 6901 pointer: ``("headers", "x-id")`` -> ``/headers/x-id``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _jtype(col: Expr, pointer: str) -> Expr:
    return sa.func.json_type(col, bind(pointer), type_=sa.String())


def json_text(col: Expr, pointer: str) -> Expr:
    """The value at ``pointer`` as text (any scalar); pair it with ``json_is(.., "string")``.

    Value and type test are separate conjuncts rather than one CASE: DuckDB then runs the
    selective comparison first and the type test only on the rows that pass (2x faster).
    """
    return sa.func.json_extract_string(col, bind(pointer), type_=sa.String())


def json_number(col: Expr, pointer: str) -> Expr:
    """The value at ``pointer`` as DOUBLE, NULL when it does not convert; pair it with
    ``json_is(.., "number")``."""
    return sa.try_cast(sa.func.json_extract(col, bind(pointer)), sa.Double())


def json_bool(col: Expr, pointer: str) -> Expr:
    """The value at ``pointer`` as BOOLEAN; pair it with ``json_is(.., "bool")``."""
    return sa.try_cast(sa.func.json_extract(col, bind(pointer)), sa.Boolean())


def json_is(col: Expr, pointer: str, kind: str) -> Expr:
    """The value at ``pointer`` is a JSON string / number / bool (``kind``)."""
    t = _jtype(col, pointer)
    if kind == "number":
        return t.in_(_NUMERIC_JSON)
    return t == ("VARCHAR" if kind == "string" else "BOOLEAN")


def json_exists(col: Expr, pointer: str) -> Expr:
    """Present and not JSON null."""
    return _jtype(col, pointer) != "NULL"


def json_size(col: Expr, pointer: str) -> Expr:
    """Characters of a string, items of an array, keys of an object; else NULL."""
    t = _jtype(col, pointer)
    return sa.case(
        (
            t == "VARCHAR",
            sa.func.length(sa.func.json_extract_string(col, bind(pointer), type_=sa.String())),
        ),
        (t == "ARRAY", sa.func.json_array_length(col, bind(pointer))),
        (t == "OBJECT", sa.func.len(sa.func.json_keys(col, bind(pointer)))),
        else_=sa.null(),
    )


def json_has_key(col: Expr, pointer: str, key: str) -> Expr:
    """The value at ``pointer`` is an object with ``key``."""
    return sa.and_(
        _jtype(col, pointer) == "OBJECT",
        _jtype(col, pointer + json_pointer([key])).is_not(None),
    )


def json_list_has(col: Expr, pointer: str, item: str) -> Expr:
    """The value at ``pointer`` is an array holding the string ``item``."""
    items = sa.try_cast(sa.func.json_extract(col, bind(pointer)), sa.ARRAY(sa.JSON()))
    has = sa.func.list_contains(items, sa.func.to_json(sa.cast(bind(item), sa.String())))
    # CASE, not AND: the cast must only run on arrays
    return sa.case((_jtype(col, pointer) == "ARRAY", has), else_=sa.false())


def map_get(col: Expr, key: str) -> Expr:
    return sa.func.map_extract_value(col, bind(key), type_=sa.String())


def map_has(col: Expr, key: str) -> Expr:
    return sa.func.map_contains(col, bind(key), type_=sa.Boolean())


def map_size(col: Expr) -> Expr:
    return sa.func.coalesce(sa.func.cardinality(col), 0)


def list_has(col: Expr, item: str) -> Expr:
    return sa.func.list_contains(col, bind(item), type_=sa.Boolean())


def list_size(col: Expr) -> Expr:
    return sa.func.coalesce(sa.func.len(col), 0)


def text_size(expr: Expr) -> Expr:
    """Unicode code points, as CEL's ``size`` of a string."""
    return sa.func.length(expr)


def starts_with(expr: Expr, prefix: str) -> Expr:
    return sa.func.starts_with(expr, bind(prefix), type_=sa.Boolean())


def ends_with(expr: Expr, suffix: str) -> Expr:
    return sa.func.ends_with(expr, bind(suffix), type_=sa.Boolean())


def contains(expr: Expr, needle: str) -> Expr:
    return sa.func.contains(expr, bind(needle), type_=sa.Boolean())


def regex_match(expr: Expr, pattern: str) -> Expr:
    """Unanchored RE2 search, as ``re2.search``."""
    return sa.func.regexp_matches(expr, bind(pattern), type_=sa.Boolean())


# Bodies are BLOBs: DuckDB has no BLOB search, so compare hex text aligned on bytes.


def _hex(expr: Expr) -> Expr:
    return sa.func.hex(expr, type_=sa.String())


def blob_text(expr: Expr) -> Expr:
    """The blob as UTF-8 text, NULL when it is not valid UTF-8."""
    return sa.func.try_(sa.func.decode(expr, type_=sa.String()), type_=sa.String())


def blob_contains(expr: Expr, needle: bytes) -> Expr:
    # valid UTF-8 is self-synchronising, so a text search equals a byte search;
    # other blobs: the hex text, anchored so matches start on a byte boundary.
    pattern = "^(?:..)*?" + needle.hex().upper()
    try:
        text_needle = needle.decode("utf-8")
    except UnicodeDecodeError:
        return regex_match(_hex(expr), pattern)
    return sa.func.coalesce(
        contains(blob_text(expr), text_needle), regex_match(_hex(expr), pattern)
    )


def blob_starts_with(expr: Expr, prefix: bytes) -> Expr:
    return starts_with(_hex(expr), prefix.hex().upper())


def blob_ends_with(expr: Expr, suffix: bytes) -> Expr:
    return ends_with(_hex(expr), suffix.hex().upper())


def blob_size(expr: Expr) -> Expr:
    return sa.func.octet_length(expr)
