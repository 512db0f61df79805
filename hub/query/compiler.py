"""``compile_query``: text -> checked AST -> SQL back end and Python predicate."""

from __future__ import annotations

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

    def where(self, table: sa.Table, now: datetime) -> ColumnElement[bool]:
        """The WHERE clause over the ``entries`` table; user values are bound parameters.
        ``now`` (aware, or naive UTC) is what ``now()`` means."""
        return to_sql(self.ast, table, now)

    def matches(self, entry: dict[str, Any], now: datetime) -> bool:
        """Whether an entry (``kubeweir.entry.entry_to_builtins``) matches."""
        return self._predicate(entry, now)


def compile_query(text: str) -> CompiledQuery:
    """Compile CEL text; raises ``QueryError(message, position, hint)``.
    Empty text matches everything."""
    tree = parse_query(text)
    return CompiledQuery(text, tree, to_predicate(tree))
