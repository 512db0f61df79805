"""Renders the Helm chart offline with Helm's Go SDK (helm-python-sdk; no helm binary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "kubeweir"
VALUES_FILES = {
    "default": None,
    "production": CHART / "ci" / "production-values.yaml",
    "airgapped": CHART / "ci" / "airgapped-values.yaml",
}


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every manifest the chart renders for these values, as dicts."""
    helm = pytest.importorskip("helm_python")
    chart = helm.Chart.load(CHART)
    out = chart.render(values or {}, name="kw", namespace="kubeweir", is_install=True)
    docs: list[dict[str, Any]] = []
    for text in out.values():
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def load_values(name: str) -> dict[str, Any]:
    path = VALUES_FILES[name]
    return yaml.safe_load(path.read_text()) if path else {}


@pytest.fixture(scope="module", params=sorted(VALUES_FILES))
def rendered(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    values = load_values(request.param)
    return request.param, values, render(values)


def containers(docs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container of every workload."""
    out = []
    for d in docs:
        spec = d.get("spec", {}).get("template", {}).get("spec")
        if spec:
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                out.append((d, c))
    return out
