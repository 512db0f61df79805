"""The sniffer process's garbage collection (``sniffer.agent.tune_gc``): the automatic
collector off, a timer thread freeing cycles within about a second."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from sniffer.agent import GC_FULL_EVERY, GC_YOUNG_EVERY


def _run(code: str) -> str:
    # a process of its own: switching the collector off inside pytest would change
    # every other test's process
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_timed_collector_frees_cycles() -> None:
    out = _run(
        """
        import gc, time, weakref
        from sniffer.agent import GC_YOUNG_EVERY, tune_gc

        class Conn:  # a closed connection: it and its halves refer to each other
            pass

        tune_gc()
        assert not gc.isenabled()
        assert any(t.name == "gc" for t in __import__("threading").enumerate())
        refs = []
        for _ in range(1000):
            c = Conn()
            c.half = Conn()
            c.half.conn = c
            refs.append(weakref.ref(c))
            del c
        assert all(r() is not None for r in refs)  # only a collection frees them
        deadline = time.monotonic() + 5 * GC_YOUNG_EVERY
        while any(r() is not None for r in refs) and time.monotonic() < deadline:
            time.sleep(0.05)
        print(sum(r() is not None for r in refs), gc.get_freeze_count() > 0)
        """
    )
    assert out == "0 True"


def test_every_nth_timed_collection_is_full() -> None:
    out = _run(
        f"""
        import gc
        from sniffer.agent import gc_step

        gc.disable()
        seen = []
        def note(phase, info):
            if phase == "start":
                seen.append(info["generation"])

        gc.callbacks.append(note)
        for count in range(1, {2 * GC_FULL_EVERY + 1}):
            gc_step(count)
        print(seen.count(2), seen.count(1))
        """
    )
    assert out == f"2 {2 * GC_FULL_EVERY - 2}"
    assert 0 < GC_YOUNG_EVERY <= 1.0


def test_thresholds_mode_keeps_the_automatic_collector() -> None:
    out = _run(
        """
        import gc
        from sniffer.agent import GC_THRESHOLDS, tune_gc

        tune_gc(timed=False)
        print(gc.isenabled(), gc.get_threshold() == GC_THRESHOLDS)
        """
    )
    assert out == "True True"
