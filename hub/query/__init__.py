"""The query language: CEL over entry fields, one AST, two back ends.

``compile_query(text)`` parses with cel-python's Lark parser into our AST (``ast``),
checking fields (``catalog``), types, limits and regex cost; the result gives a
SQLAlchemy WHERE clause with bound parameters (``where``, history) and a Python
predicate (``matches``, live stream) that agree on every entry. ``fields()``,
``macros()`` and ``functions()`` come from the same definitions and feed
``/api/v1/query/fields``.
"""

from hub.query.catalog import (
    FieldInfo,
    FunctionInfo,
    MacroInfo,
    fields,
    functions,
    macros,
)
from hub.query.compiler import CompiledQuery, compile_query
from hub.query.errors import QueryError
from hub.query.parse import MAX_DEPTH, MAX_LIST, MAX_NODES, MAX_TEXT
from hub.query.regex import MAX_PATTERN

__all__ = [
    "MAX_DEPTH",
    "MAX_LIST",
    "MAX_NODES",
    "MAX_PATTERN",
    "MAX_TEXT",
    "CompiledQuery",
    "FieldInfo",
    "FunctionInfo",
    "MacroInfo",
    "QueryError",
    "compile_query",
    "fields",
    "functions",
    "macros",
]
