"""Reproducible measurements, each side by side with a peer where one exists.

Each ``benchmarks/<name>.py`` runs as ``python -m benchmarks.<name>`` and prints a markdown
section for ``BENCHMARKS.md``; ``python -m benchmarks`` runs those listed in
``benchmarks/__main__.py``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_for_hub(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until the hub at ``url`` answers ``/readyz``; raise if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("hub did not start")
        time.sleep(0.2)


def child_pids(pid: int, *, workers_only: bool = False) -> list[int]:
    """The processes a process started (the hub's ingest workers and multiprocessing's
    resource tracker; ``workers_only``: not the tracker)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    if workers_only:
        out = [c for c in out if b"resource_tracker" not in _cmdline(c)]
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
