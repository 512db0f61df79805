"""Who is looking, and what they may see: the viewer and its namespace scope.

Every query, stream, detail view, statistic, service map and export is ANDed with
``scope_clause(viewer, table)`` (SQL) or filtered by ``in_scope(viewer, entry)``
(live stream). An entry is visible when its source or destination namespace matches one
of the viewer's namespace globs. Identity sources (config tokens today; SAML, issued
tokens and Kubernetes RBAC later) only have to produce a ``Viewer``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

__all__ = [
    "ADMIN",
    "DOWNLOAD_PCAP",
    "EXPORT",
    "VIEW_BODIES",
    "Viewer",
    "glob_to_like",
    "in_scope",
    "scope_clause",
]

VIEW_BODIES = "view-bodies"
DOWNLOAD_PCAP = "download-pcap"
EXPORT = "export"
ADMIN = "admin"

_LIKE_ESCAPE = "\\"


@dataclass(frozen=True, slots=True)
class Viewer:
    """An authenticated viewer: a name, namespace globs and permissions."""

    name: str
    namespaces: tuple[str, ...]
    permissions: frozenset[str] = frozenset()

    def may(self, permission: str) -> bool:
        return permission in self.permissions or ADMIN in self.permissions

    @property
    def sees_everything(self) -> bool:
        return "*" in self.namespaces


def glob_to_like(glob: str) -> str:
    """A namespace glob (``*`` any run, ``?`` one character; nothing else is special) as a
    LIKE pattern with ``\\`` as the escape character."""
    out = []
    for ch in glob:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append(_LIKE_ESCAPE + ch)
        else:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=1024)
def _glob_regex(globs: tuple[str, ...]) -> re.Pattern[str]:
    parts = [
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in g) for g in globs
    ]
    return re.compile("(?:" + "|".join(parts) + r")\Z", re.DOTALL) if parts else re.compile("(?!)")


def _one_side(column: ColumnElement[Any], globs: Iterable[str]) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    exact = [g for g in globs if "*" not in g and "?" not in g]
    if exact:
        out.append(column.in_(exact))
    for g in globs:
        if "*" in g or "?" in g:
            out.append(column.like(glob_to_like(g), escape=_LIKE_ESCAPE))
    return out


def scope_clause(viewer: Viewer, table: sa.Table) -> ColumnElement[bool]:
    """The SQL condition for the entries this viewer may see."""
    if viewer.sees_everything:
        return sa.true()
    if not viewer.namespaces:
        return sa.false()
    conds = _one_side(table.c.src_namespace, viewer.namespaces) + _one_side(
        table.c.dst_namespace, viewer.namespaces
    )
    return sa.or_(*conds)


def in_scope(viewer: Viewer, entry: Mapping[str, Any]) -> bool:
    """The same condition in Python, for an entry as plain dicts."""
    if viewer.sees_everything:
        return True
    rx = _glob_regex(viewer.namespaces)
    for side in ("src", "dst"):
        ep = entry.get(side) or {}
        if rx.match(ep.get("namespace") or ""):
            return True
    return False
