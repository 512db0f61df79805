"""Regular expressions for ``matches()``: RE2 syntax, checked for cost at compile time.

Both back ends run RE2 (DuckDB's ``regexp_matches`` and the ``re2`` module), which is
linear-time, so a pattern can't hang the live stream. On top of that, and for any other
back end, patterns are bounded in length and shapes that make backtracking engines
explode are refused: an unbounded repeat (``*``, ``+``, ``{n,}``) over something that
itself repeats or alternates (``(a+)+``, ``(a|a)*``, ``(a*b?)*``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from re import _parser as _sre_parse  # the stdlib's regex parser, to walk the structure
from re._constants import MAXREPEAT
from typing import Any

import re2

from hub.query.errors import QueryError

__all__ = ["MAX_PATTERN", "check_pattern", "compile_pattern"]

MAX_PATTERN = 256
"""Longest accepted pattern, in characters."""

_MAX_MEM = 1 << 20  # RE2 program memory per pattern

_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
# A quantified group we could not parse structurally: refuse it when nested.
_QUANTIFIED_GROUP = re.compile(r"\)(?:[*+?]|\{\d)")


def _options() -> Any:
    opts = re2.Options()
    opts.log_errors = False
    opts.max_mem = _MAX_MEM
    return opts


def _risky(items: Any, inside_unbounded: bool) -> bool:
    """True when an unbounded repeat contains another repeat or an alternation."""
    for op, av in items:
        name = str(op)
        if name in _REPEATS:
            lo, hi, sub = av
            unbounded = hi == MAXREPEAT
            if inside_unbounded and hi > 1:
                return True
            if _risky(sub, inside_unbounded or unbounded):
                return True
        elif name == "BRANCH":
            if inside_unbounded:
                return True
            for alt in av[1]:
                if _risky(alt, inside_unbounded):
                    return True
        elif name == "SUBPATTERN":
            if _risky(av[-1], inside_unbounded):
                return True
        elif name in ("ASSERT", "ASSERT_NOT", "GROUPREF", "GROUPREF_EXISTS", "ATOMIC_GROUP"):
            return True
    return False


def check_pattern(pattern: str, position: int) -> None:
    """Raise ``QueryError`` unless ``pattern`` is a bounded, safe RE2 pattern."""
    if len(pattern) > MAX_PATTERN:
        raise QueryError(
            f"regular expression too long ({len(pattern)} > {MAX_PATTERN} characters)",
            position,
        )
    try:
        re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise QueryError(
            f"invalid regular expression: {reason}",
            position,
            "RE2 syntax: no backreferences or lookaround",
        ) from None
    try:
        tree = _sre_parse.parse(pattern)
    except Exception:  # RE2-only syntax (\pL, \z...): judge the text conservatively
        risky = bool(_QUANTIFIED_GROUP.search(pattern))
    else:
        risky = _risky(tree.data, False)
    if risky:
        raise QueryError(
            "regular expression too costly: an unbounded repeat over a repeat or an alternation",
            position,
            "rewrite without nesting, e.g. (a+)+ as a+, (a|ab)* as [ab]*",
        )


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """``search(text) -> bool`` for a checked pattern (call ``check_pattern`` first).

    Calls RE2's match directly (no capture groups, no match object): measured here,
    about 6x cheaper per call than ``re2.compile(p).search``; falls back to that API
    should the binding's internals change.
    """
    try:
        opts = _options()
        opts.never_capture = True
        prog = re2._re2.RE2(pattern.encode("utf-8"), opts)
        unanchored = re2._Anchor.UNANCHORED
        if not prog.ok():  # pragma: no cover - check_pattern compiled it already
            raise re2.error(prog.error())
    except AttributeError:  # pragma: no cover - another binding version
        rx = re2.compile(pattern, _options())
        return lambda text: rx.search(text) is not None
    match = prog.Match

    def search(text: str) -> bool:
        data = text.encode("utf-8", "surrogatepass")
        return bool(match(unanchored, data, 0, len(data))[0][0] >= 0)

    return search
