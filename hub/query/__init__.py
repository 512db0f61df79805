"""The query language: CEL over entry fields, one AST, two back ends.

``compile_query(text)`` parses with cel-python's Lark parser into our AST (``ast``),
checking fields (``catalog``), types, limits and regex cost; the result gives a
SQLAlchemy WHERE clause with bound parameters (``where``, history; dialect calls in
``sql``) and a Python predicate (``matches``, live stream) that agree on every entry
(a hypothesis property test checks it against DuckDB). ``fields()``, ``macros()`` and
``functions()`` come from the same definitions and feed ``/api/v1/query/fields``.

The language, briefly:

- Fields: ``id ts elapsed proto summary error tls redacted node stream index gaps``,
  ``src.``/``dst.`` + ``ip port pod namespace workload service node labels``,
  ``request.method request.path request.headers request.body response.status
  response.headers response.body`` and any other protocol field under ``request.`` /
  ``response.`` (JSON: ``response.answers[0].data``). Map keys: ``src.labels["app"]``
  or ``src.labels.app``; header names are matched lower-cased.
- ``request.path`` is the path, or for protocols without one (DNS) the request name
  (the ``path`` column holds the same).
- Operators ``== != < <= > >=``, ``&& || !``, ``x in [..]`` (literal list),
  ``"k" in src.labels`` / ``"k" in request.headers`` (key present),
  ``"item" in redacted`` / ``"item" in request.keys`` (list holds it); methods
  ``startsWith endsWith contains matches size``; ``has(f)``, ``f == null``;
  ``duration("250ms")``, ``timestamp("2026-01-01T00:00:00Z")``, ``now()`` with
  ``+``/``-`` of durations; macros ``http http2 grpc dns redis postgres kafka mqtt amqp
  tcp`` (= ``proto == "..."``). Arithmetic is on constants only.
- Types: ``elapsed`` compares with durations or seconds, ``ts`` with timestamps;
  bodies (bytes: UTF-8 text, or the base64-decoded bytes) with strings or ``b'..'``;
  a protocol field of unknown type (dyn) takes the type of the literal it meets.
- Missing values: an atomic test on a missing/null field, or on a value of another type
  than the comparison's, is **false**; ``!`` negates that. So without a response
  ``response.status != 200`` is false and ``!(response.status == 200)`` is true.
  Fields the entry struct defaults (``""``, ``0``, ``false``, ``{}``, ``[]``, empty
  body) are never missing: ``src.namespace == ""`` matches entries without one.
- ``matches`` is an unanchored RE2 search in both back ends; backreferences and
  lookaround are invalid, and an unbounded repeat over a repeat or an alternation
  (``(a+)+``, ``(a|ab)*``) is refused. Limits: ``MAX_TEXT`` characters, ``MAX_DEPTH``
  nesting, ``MAX_NODES`` nodes, ``MAX_LIST`` list items, ``MAX_PATTERN`` pattern length.
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
