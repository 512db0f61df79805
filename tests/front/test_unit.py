"""The dashboard's own unit tests (vitest: URL state, filter history, curl, bodies, live
rows, map layout), run from pytest so that `make test` and CI cover them."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .conftest import FRONT


def test_vitest_passes() -> None:
    if not (FRONT / "node_modules").is_dir() or shutil.which("npm") is None:
        pytest.fail("front/node_modules missing: run `make front` (scripts/setup.sh runs npm ci)")
    r = subprocess.run(
        ["npm", "run", "--silent", "test", "--", "--reporter=dot"],
        cwd=FRONT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "CI": "1", "NO_COLOR": "1"},
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "passed" in r.stdout
