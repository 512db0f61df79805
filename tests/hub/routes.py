"""Every route of a hub app, for tests that must cover all of them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def walk_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every route with its full path (FastAPI keeps included routers nested)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from walk_routes(inner.routes, prefix + r.include_context.prefix)
        else:
            yield prefix + getattr(r, "path", ""), r
