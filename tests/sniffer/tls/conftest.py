"""TLS capture set-up: a node of netns pods with an HTTPS server (uvicorn) and clients.
Needs root and eBPF uprobes (skips otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sniffer.testing.node import TestNode, cleanup_leftovers, require_root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.netns)


@pytest.fixture(scope="session", autouse=True)
def _tls_preconditions() -> None:
    reason = require_root()
    if reason:
        pytest.skip(f"TLS capture tests {reason}")
    try:
        import bcc  # noqa: F401
    except ImportError:
        pytest.skip("bcc is not installed")
    cleanup_leftovers()


@pytest.fixture
def node() -> Iterator[TestNode]:
    with TestNode("node-a") as n:
        yield n
