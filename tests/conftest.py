"""Shared test set-up: hypothesis profiles and the shared captures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "fast", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "deep", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

REPO = Path(__file__).resolve().parent.parent
PCAPS = REPO.parent / "shared" / "pcaps"


@pytest.fixture(scope="session")
def pcaps() -> Path:
    """The shared third-party captures (../shared/pcaps); tests skip where absent."""
    if not PCAPS.is_dir():
        pytest.skip(f"shared captures not found at {PCAPS}")
    return PCAPS


def pcap(name: str) -> Path:
    """Path of one shared capture, skipping the test if it is absent."""
    p = PCAPS / name
    if not p.is_file():
        pytest.skip(f"shared capture {name} not found at {p}")
    return p
