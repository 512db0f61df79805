"""AST -> SQLAlchemy Core boolean expression over the ``entries`` table (history).

A missing value makes an atomic predicate false, as in the Python predicate. Under an
odd number of ``NOT`` the atom is wrapped in ``coalesce(..., false)`` so that ``NOT``
sees false rather than NULL. Elsewhere it is left bare: in a WHERE clause a NULL there
selects exactly what false would (AND/OR are monotone, and a NULL result is no match),
and a bare ``ts > ?`` keeps DuckDB's zone-map pruning. So the clause is meant for
WHERE/FILTER, where NULL means "no match".
"""

from __future__ import annotations

import operator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from hub.query import ast as a
from hub.query import sql
from hub.query.catalog import BYTES, LIST, MAP, STRING
from hub.query.clock import shifted

__all__ = ["to_sql"]

Expr = sql.Expr


class _Gen:
    def __init__(self, table: sa.Table, now: datetime) -> None:
        self.c = table.c
        self.now = now
        self.guards: list[Expr] = []
        self.bare = False

    def pred(self, p: a.Predicate, positive: bool = True) -> Expr:
        if isinstance(p, a.And):
            return sa.and_(*(self.pred(x, positive) for x in p.args))
        if isinstance(p, a.Or):
            return sa.or_(*(self.pred(x, positive) for x in p.args))
        if isinstance(p, a.Not):
            return sa.not_(self.pred(p.arg, not positive))
        if isinstance(p, a.BoolConst):
            return sa.true() if p.value else sa.false()
        if positive:
            return self.atom(p)
        return sa.func.coalesce(self.atom(p), sa.false(), type_=sa.Boolean())

    def atom(self, p: a.Predicate) -> Expr:
        """One test; JSON values add their type tests (``guards``) as extra conjuncts."""
        self.guards = []
        self.bare = not _true_on_default(p)
        expr = self._atom(p)
        return sa.and_(expr, *self.guards) if self.guards else expr

    def _atom(self, p: a.Predicate) -> Expr:
        if isinstance(p, a.Compare):
            left = self.term(p.left, p.domain)
            right = self.operand(p.right, p.domain)
            return _OPS[p.op](left, right)  # type: ignore[no-any-return]
        if isinstance(p, a.InList):
            return self.term(p.left, p.domain).in_([sql.bind(v) for v in p.values])
        if isinstance(p, a.StrTest):
            return self.str_test(p)
        if isinstance(p, a.Truth):
            return self.value(p.field, "bool") == sa.true()
        if isinstance(p, a.Exists):
            return self.exists(p.field)
        if isinstance(p, a.HasKey):
            f = p.field
            if f.spec.json:
                return sql.json_has_key(self.c[f.spec.column], self.pointer(f), p.key)
            return sql.map_has(self.c[f.spec.column], p.key)
        if isinstance(p, a.ListHas):
            f = p.field
            if f.spec.json:
                return sql.json_list_has(self.c[f.spec.column], self.pointer(f), p.value)
            return sql.list_has(self.c[f.spec.column], p.value)
        raise TypeError(f"unknown predicate {p!r}")  # pragma: no cover

    # -- values ---------------------------------------------------------------------

    @staticmethod
    def pointer(f: a.Field) -> str:
        return sql.json_pointer([*f.spec.path[1:], *f.keys])

    def column(self, f: a.Field) -> Expr:
        """The raw column, defaults applied, other protocols' values masked."""
        spec = f.spec
        col: Expr = self.c[spec.column]
        if spec.default is not None and spec.type not in (MAP, LIST) and not self.bare:
            col = sa.func.coalesce(col, sql.bind(spec.default), type_=col.type)
        return col

    def value(self, f: a.Field, domain: str) -> Expr:
        spec = f.spec
        if spec.json:
            col = self.c[spec.column]
            ptr = self.pointer(f)
            self.guards.append(sql.json_is(col, ptr, domain))
            if domain == "string":
                return sql.json_text(col, ptr)
            if domain == "number":
                return sql.json_number(col, ptr)
            return sql.json_bool(col, ptr)
        if spec.type == MAP and f.keys:
            return sql.map_get(self.c[spec.column], str(f.keys[0]))
        return self.column(f)

    def term(self, t: a.Term, domain: str) -> Expr:
        if isinstance(t, a.Size):
            return self.size(t.arg)
        return self.value(t, domain)

    def operand(self, x: a.Operand, domain: str) -> Expr:
        if isinstance(x, a.Const):
            value = x.value
            if isinstance(value, datetime):
                value = _naive_utc(value)
            return sql.bind(value)
        if isinstance(x, a.NowOffset):
            return sql.bind(_naive_utc(shifted(self.now, x.offset)))
        return self.term(x, domain)

    def size(self, f: a.Field) -> Expr:
        spec = f.spec
        if spec.json:
            return sql.json_size(self.c[spec.column], self.pointer(f))
        if f.type == STRING:
            return sql.text_size(self.value(f, "string"))
        if f.type == BYTES:
            return sql.blob_size(self.column(f))
        if f.type == MAP:
            return sql.map_size(self.c[spec.column])
        return sql.list_size(self.c[spec.column])

    def exists(self, f: a.Field) -> Expr:
        spec = f.spec
        if spec.json:
            return sql.json_exists(self.c[spec.column], self.pointer(f))
        if spec.type == MAP and f.keys:
            return sql.map_get(self.c[spec.column], str(f.keys[0])).is_not(None)
        if spec.default is not None:
            return sa.true()
        return self.column(f).is_not(None)

    def str_test(self, p: a.StrTest) -> Expr:
        f = p.field
        if f.type == BYTES:
            body = self.column(f)
            if p.op == "matches":
                return sql.regex_match(sql.blob_text(body), str(p.arg))
            needle = p.arg if isinstance(p.arg, bytes) else p.arg.encode()
            fn = {
                "contains": sql.blob_contains,
                "startsWith": sql.blob_starts_with,
                "endsWith": sql.blob_ends_with,
            }[p.op]
            return fn(body, needle)
        text = self.value(f, "string")
        fn2 = {
            "contains": sql.contains,
            "startsWith": sql.starts_with,
            "endsWith": sql.ends_with,
            "matches": sql.regex_match,
        }[p.op]
        return fn2(text, str(p.arg))


_OPS: dict[str, Any] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _true_on_default(p: a.Predicate) -> bool:
    """Whether the test could hold on the field's default value ("" for a namespace...).
    When it can't, a NULL column (a default the store did not fill in) already reads as
    no match and the column is compared bare (no ``coalesce``: cheaper, and DuckDB can
    push the filter into the scan)."""
    if isinstance(p, a.Compare) and isinstance(p.left, a.Field) and isinstance(p.right, a.Const):
        default = p.left.spec.default
        if default is None or p.left.spec.json or p.left.keys:
            return True
        try:
            return bool(_OPS[p.op](default, p.right.value))
        except TypeError:
            return True
    if isinstance(p, a.InList) and isinstance(p.left, a.Field):
        default = p.left.spec.default
        return default is None or default in p.values or bool(p.left.keys)
    if isinstance(p, a.StrTest) and p.op != "matches":
        return p.arg in ("", b"")
    if isinstance(p, a.Truth):
        return p.field.spec.default is not False
    return True


def _naive_utc(t: datetime) -> datetime:
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t


def to_sql(p: a.Predicate, table: sa.Table, now: datetime) -> Expr:
    """The WHERE clause for ``p`` over ``table`` (bound parameters only)."""
    return _Gen(table, now).pred(p)
