"""``compile_query``: text -> checked AST -> SQL back end and Python predicate."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from hub.query import ast
from hub.query.parse import parse_query
from hub.query.predicate import Predicate, to_predicate
from hub.query.sqlgen import to_sql

__all__ = ["CompiledQuery", "compile_query"]


@dataclass(frozen=True)
class CompiledQuery:
    """A checked query, ready for both back ends."""

    text: str
    ast: ast.Predicate
    _predicate: Predicate = field(repr=False, compare=False)

    @property
    def match_all(self) -> bool:
        """True when the query filters nothing (empty text, ``true``)."""
        return isinstance(self.ast, ast.BoolConst) and self.ast.value

    @property
    def fields_used(self) -> frozenset[str]:
        """Catalog names of the fields the query reads (``request.body``, ``src.labels``...),
        so a caller can refuse fields a viewer may not probe (bodies without the
        view-bodies permission: a filter's match/no-match would leak their content)."""
        return _fields_used(self.ast)

    def where(self, table: sa.Table, now: datetime) -> ColumnElement[bool]:
        """The WHERE clause over the ``entries`` table; user values are bound parameters.
        ``now`` (aware, or naive UTC) is what ``now()`` means."""
        return to_sql(self.ast, table, now)

    def matches(self, entry: dict[str, Any], now: datetime) -> bool:
        """Whether an entry (``kubeweir.entry.entry_to_builtins``) matches."""
        return self._predicate(entry, now)


def _fields_used(node: object) -> frozenset[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Field):
            found.add(n.spec.name)
        elif isinstance(n, tuple):
            stack.extend(n)
        elif dataclasses.is_dataclass(n) and not isinstance(n, type):
            stack.extend(getattr(n, f.name) for f in dataclasses.fields(n))
    return frozenset(found)


def compile_query(text: str) -> CompiledQuery:
    """Compile CEL text; raises ``QueryError(message, position, hint)``.
    Empty text matches everything."""
    tree = parse_query(text)
    return CompiledQuery(text, tree, to_predicate(tree))
