"""Where the live sniffer's CPU goes: per-thread CPU seconds, and optional cProfile.

Each of the agent's busy threads (capture, sealer, sender) runs through ``run_thread``,
which records the thread's own CPU time (``time.thread_time``, read by the thread itself
once per second at most) in ``THREAD_CPU`` — exported as
``kubeweir_sniffer_thread_cpu_total{thread=...}``: an unbiased split of the sniffer's CPU
between reading the ring + parsing (capture), batching + compressing + spooling (sealer)
and POSTing (sender). With ``KUBEWEIR_SNIFFER_PROFILE_DIR`` set, each such thread also runs
under its own ``cProfile.Profile`` and writes ``<dir>/<thread>-<pid>.prof`` when it ends
(cProfile inflates small calls: use it for shares, the CPU seconds for totals).
"""

from __future__ import annotations

import cProfile
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["THREAD_CPU", "profile_dir", "run_thread", "thread", "tick"]

THREAD_CPU: dict[str, float] = {}
"""Thread name → CPU seconds it used so far (updated by the thread itself)."""

_local = threading.local()


def profile_dir() -> Path | None:
    value = os.environ.get("KUBEWEIR_SNIFFER_PROFILE_DIR")
    return Path(value) if value else None


def tick() -> None:
    """Called from a ``run_thread`` loop: publish this thread's CPU time (at most once
    a second, so that it costs nothing in the per-batch path)."""
    now = time.monotonic()
    if now >= getattr(_local, "next", 0.0):
        _local.next = now + 1.0
        name = getattr(_local, "name", None)
        if name is not None:
            THREAD_CPU[name] = time.thread_time()


def run_thread(name: str, target: Callable[[], None]) -> None:
    """Run ``target`` (a thread's loop) with CPU accounting, and profiled when asked."""
    _local.name = name
    _local.next = 0.0
    out = profile_dir()
    prof = cProfile.Profile() if out is not None else None
    try:
        if prof is not None:
            prof.runcall(target)
        else:
            target()
    finally:
        THREAD_CPU[name] = time.thread_time()
        if prof is not None and out is not None:
            out.mkdir(parents=True, exist_ok=True)
            prof.dump_stats(out / f"{name}-{os.getpid()}.prof")


def thread(name: str, target: Callable[[], None]) -> threading.Thread:
    """A daemon thread named ``name`` running ``target`` through ``run_thread``."""
    return threading.Thread(target=run_thread, args=(name, target), name=name, daemon=True)
