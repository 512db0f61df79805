"""Factories for entries and endpoints, shared by every test and benchmark."""

from __future__ import annotations

import itertools
from typing import Any

from kubeweir.entry import Endpoint, Entry

__all__ = ["make_endpoint", "make_entry", "make_http_entry", "make_viewer"]

_counter = itertools.count()


def make_endpoint(ip: str = "10.0.0.1", port: int = 0, **fields: Any) -> Endpoint:
    return Endpoint(ip=ip, port=port, **fields)


def make_entry(**fields: Any) -> Entry:
    """An entry with every required field filled; any field may be overridden."""
    n = next(_counter)
    defaults: dict[str, Any] = {
        "id": f"{n:024x}",
        "ts": 1_700_000_000.0 + n,
        "proto": "tcp",
        "src": make_endpoint("10.0.0.1", 40000 + n % 20000),
        "dst": make_endpoint("10.0.0.2", 80),
    }
    defaults.update(fields)
    return Entry(**defaults)


def make_http_entry(
    method: str = "GET",
    path: str = "/",
    status: int = 200,
    *,
    src_ns: str = "default",
    dst_ns: str = "default",
    elapsed: float = 0.01,
    request_headers: dict[str, str] | None = None,
    response_headers: dict[str, str] | None = None,
    request_body: str = "",
    response_body: str = "",
    **fields: Any,
) -> Entry:
    """An HTTP/1.1 entry shaped as the sniffer makes them."""
    req = {
        "method": method,
        "path": path.split("?", 1)[0],
        "query": path.split("?", 1)[1] if "?" in path else "",
        "version": "HTTP/1.1",
        "headers": request_headers or {"host": "svc"},
        "body": request_body,
        "body_size": len(request_body.encode()),
    }
    resp = {
        "status": status,
        "reason": "OK" if status < 400 else "Error",
        "version": "HTTP/1.1",
        "headers": response_headers or {"content-type": "application/json"},
        "body": response_body,
        "body_size": len(response_body.encode()),
    }
    base: dict[str, Any] = {
        "proto": "http",
        "elapsed": elapsed,
        "request": req,
        "response": resp,
        "summary": f"{method} {path} → {status}",
        "src": make_endpoint("10.0.0.1", 40000, namespace=src_ns, pod="client"),
        "dst": make_endpoint("10.0.0.2", 80, namespace=dst_ns, pod="server"),
    }
    base.update(fields)
    return make_entry(**base)


def make_viewer(
    name: str = "viewer",
    namespaces: tuple[str, ...] = ("*",),
    permissions: frozenset[str] | set[str] = frozenset(),
) -> Any:
    """A hub ``Viewer`` (``hub.scope``): a name, namespace globs and permissions."""
    from hub.scope import Viewer

    return Viewer(name=name, namespaces=tuple(namespaces), permissions=frozenset(permissions))
