"""Per-thread CPU accounting and the optional per-thread cProfile of the sniffer."""

from __future__ import annotations

import pstats
import time
from pathlib import Path

import pytest

from sniffer import profiling


def _busy() -> None:
    end = time.thread_time() + 0.05
    while time.thread_time() < end:
        profiling.tick()


def test_thread_cpu_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEWEIR_SNIFFER_PROFILE_DIR", raising=False)
    t = profiling.thread("test-busy", _busy)
    t.start()
    t.join(5)
    assert profiling.THREAD_CPU["test-busy"] >= 0.05


def test_profile_dump_per_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEWEIR_SNIFFER_PROFILE_DIR", str(tmp_path / "prof"))
    t = profiling.thread("test-profiled", _busy)
    t.start()
    t.join(5)
    (dump,) = (tmp_path / "prof").glob("test-profiled-*.prof")
    names = {fn for (_, _, fn) in pstats.Stats(str(dump)).stats}  # type: ignore[attr-defined]
    assert "_busy" in names and "tick" in names
