"""The query AST: small frozen nodes, typed and resolved, that both back ends walk.

Values (``Field``, ``Size``, ``Const``, ``NowOffset``) appear only inside predicates.
Every comparison carries its ``domain``: the type both sides are compared as
(``string``, ``number``, ``bool``, ``bytes``, ``timestamp``).

Missing values: an atomic predicate (``Compare``, ``InList``, ``HasKey``, ``ListHas``,
``StrTest``, ``Truth``) whose field is missing, null or of another type than the domain
is **false**; ``Not``, ``And``, ``Or`` are plain two-valued logic over those results.
So ``response.status != 200`` is false without a response while
``!(response.status == 200)`` is true.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hub.query.catalog import FieldSpec

__all__ = [
    "And",
    "BoolConst",
    "Compare",
    "Const",
    "Exists",
    "Field",
    "HasKey",
    "InList",
    "ListHas",
    "Not",
    "NowOffset",
    "Operand",
    "Or",
    "Predicate",
    "Size",
    "StrTest",
    "Term",
    "Truth",
]


@dataclass(frozen=True, slots=True)
class Field:
    """A value of the entry: ``spec`` plus ``keys`` below it (map key, JSON sub-path)."""

    spec: FieldSpec
    keys: tuple[str | int, ...]
    type: str
    pos: int


@dataclass(frozen=True, slots=True)
class Size:
    """``size(field)``: characters, bytes, items or keys; missing when the field is."""

    arg: Field
    pos: int


@dataclass(frozen=True, slots=True)
class Const:
    """A literal already converted to the comparison domain (durations to seconds,
    timestamps to aware UTC datetimes, text to bytes for bodies)."""

    value: Any
    type: str
    pos: int


@dataclass(frozen=True, slots=True)
class NowOffset:
    """``now() + offset``: evaluated at each ``where``/``matches`` call."""

    offset: timedelta
    pos: int


Term = Field | Size
Operand = Field | Size | Const | NowOffset


@dataclass(frozen=True, slots=True)
class BoolConst:
    value: bool
    pos: int


@dataclass(frozen=True, slots=True)
class Truth:
    """A bool field used as a condition (``tls``)."""

    field: Field
    pos: int


@dataclass(frozen=True, slots=True)
class Exists:
    """``has(field)`` / ``field != null``: present and not null."""

    field: Field
    pos: int


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # == != < <= > >=
    left: Term
    right: Operand
    domain: str
    pos: int


@dataclass(frozen=True, slots=True)
class InList:
    """``term in [c1, c2, ...]`` (constants of ``domain``)."""

    left: Term
    values: tuple[Any, ...]
    domain: str
    pos: int


@dataclass(frozen=True, slots=True)
class HasKey:
    """``"key" in map`` (labels, headers, a JSON object)."""

    field: Field
    key: str
    pos: int


@dataclass(frozen=True, slots=True)
class ListHas:
    """``"item" in list`` (``redacted``, a JSON list of strings)."""

    field: Field
    value: str
    pos: int


@dataclass(frozen=True, slots=True)
class StrTest:
    """``field.startsWith/endsWith/contains/matches(arg)``; ``arg`` is ``bytes`` for
    bodies (except ``matches``, always text)."""

    op: str
    field: Field
    arg: str | bytes
    pos: int


@dataclass(frozen=True, slots=True)
class Not:
    arg: Predicate
    pos: int


@dataclass(frozen=True, slots=True)
class And:
    args: tuple[Predicate, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Or:
    args: tuple[Predicate, ...]
    pos: int


Predicate = (
    BoolConst | Truth | Exists | Compare | InList | HasKey | ListHas | StrTest | Not | And | Or
)
