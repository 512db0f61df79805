"""Live-capture set-up: a node of netns pods, kmock as the Kubernetes API, a real hub over
TLS, and the sniffer agent wired to all three. Needs root (skips otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sniffer.testing.cluster import Cluster, running_cluster
from sniffer.testing.node import cleanup_leftovers, require_root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.netns)


@pytest.fixture(scope="session", autouse=True)
def _live_preconditions() -> None:
    reason = require_root()
    if reason:
        pytest.skip(f"live capture tests {reason}")
    cleanup_leftovers()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path) as c:
        yield c
