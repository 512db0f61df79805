"""``kubeweir read --jobs N``: one capture file read by N worker processes.

There are no packets between processes: every worker (a forked copy of the command, its
imports and redaction rules already loaded) reads the whole file itself, decodes every
frame, and keeps only the connections and UDP flows that its ``FlowShare`` owns (both
directions of a connection always go to the same worker; IP fragments are reassembled
before the decision). It formats its entries (NDJSON or table rows) and sends them to
the parent through a pipe in blocks of whole lines; the parent writes the blocks to
stdout as they come and sums the end counters (frame-level ones — packets, bytes,
decoder counters, damage in the file — are taken once, from worker 0, since every worker
sees every frame).

The entries of one connection keep their order; entries of different connections may
interleave differently from ``--jobs 1``. The bounds (flows, buffered bytes) are split
between the workers, so the memory bound of the whole stays that of one process.

Frames on a worker's pipe (``Connection.send_bytes``; the first byte says what follows):
``D`` output bytes (whole lines), ``P`` progress (file offset, worker 0 only), ``E`` the
end (JSON: counters, damage found, records read, peak RSS), ``X`` a failure (the text).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import resource
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from kubeweir.entry import Entry
from sniffer.capture import CaptureError, PacketDecoder, open_capture
from sniffer.pipeline import FlowShare, Pipeline, PipelineSettings
from sniffer.read_cmd import _records

if TYPE_CHECKING:  # multiprocessing is imported when workers start, not for --jobs 1
    from multiprocessing.connection import Connection

__all__ = ["CpuWatch", "JobsResult", "WorkerFailed", "auto_jobs", "idle_cpus", "read_with_jobs"]

AUTO_MIN_BYTES = 4 << 20
"""Files smaller than this are read by one process under ``--jobs auto``."""
AUTO_MAX_JOBS = 4
"""``--jobs auto`` stops here: each process holds its own interpreter (≈ 30 MiB resident),
so the summed peak RSS stays under 200 MiB whatever the CPU count."""
BLOCK = 1 << 16
"""Output sent to the parent in blocks of about this many bytes (whole lines)."""

_FRAME_LEVEL = frozenset({"packets", "bytes", *PacketDecoder().counters})
"""Counters every worker counts the same (each sees every frame): taken from worker 0."""

WriteEntries = Callable[[Iterator[Entry], Any], None]
"""Writes formatted entries to a binary sink (``write``, ``flush``)."""


class WorkerFailed(Exception):
    """A worker process failed; the message says which and why."""


@dataclasses.dataclass
class JobsResult:
    counters: dict[str, int]
    errors: list[CaptureError]
    """Damage found in the file (worker 0's list; every worker meets the same)."""
    records: int
    rss_kib: int
    """Peak RSS of the parent plus every worker's, summed (KiB)."""


def auto_jobs(path: str, watch: CpuWatch | None = None) -> int:
    """``--jobs auto``: for a regular file of at least ``AUTO_MIN_BYTES``, as many
    workers as CPUs are idle right now (at most ``AUTO_MAX_JOBS``, at least 1); 1 for
    pipes, small files and one CPU. A worker on a CPU that other work keeps busy only
    adds its share of the duplicated reading and decoding: on a loaded machine one
    process finishes first. ``watch`` (started before the caller's set-up) measures over
    that set-up instead of a pause of its own."""
    try:
        st = os.stat(path)
    except OSError:
        return 1
    import stat

    if not stat.S_ISREG(st.st_mode) or st.st_size < AUTO_MIN_BYTES:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    if cpus < 2:
        return 1
    idle = idle_cpus() if watch is None else watch.available()
    if idle is not None:
        # each worker reads and decodes every frame (about a quarter of the work on a
        # keep-alive HTTP capture): a second worker pays off from ~1.25 idle CPUs on
        cpus = min(cpus, int(idle + 0.75))
    return max(1, min(cpus, AUTO_MAX_JOBS))


IDLE_SAMPLE = 0.05
"""Seconds over which ``idle_cpus`` watches the CPUs."""


def _cpu_times() -> tuple[int, int]:
    """(idle + iowait, total) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        fields = f.readline().split()
    ticks = [int(x) for x in fields[1:]]
    return ticks[3] + ticks[4], sum(ticks[:8])  # guest time is already in user


def idle_cpus(sample: float = IDLE_SAMPLE) -> float | None:
    """How many CPUs were idle over the last ``sample`` seconds (None without
    /proc/stat)."""
    import time

    try:
        idle0, total0 = _cpu_times()
        time.sleep(sample)
        idle1, total1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (os.cpu_count() or 1) * (idle1 - idle0) / (total1 - total0)


class CpuWatch:
    """The CPUs free for this process, measured over whatever it does from the watch's
    start (its own set-up): the CPUs /proc/stat found idle meanwhile, plus the share of a
    CPU this process itself kept busy (that one is free again when it forks workers)."""

    def __init__(self) -> None:
        import time

        self._t0 = time.monotonic()
        self._own0 = time.process_time()
        try:
            self._ticks0: tuple[int, int] | None = _cpu_times()
        except (OSError, ValueError, IndexError):
            self._ticks0 = None

    def available(self, least: float = IDLE_SAMPLE) -> float | None:
        """Free CPUs over the time since the start, waiting until at least ``least``
        seconds have passed (None without /proc/stat)."""
        import time

        if self._ticks0 is None:
            return None
        wait = least - (time.monotonic() - self._t0)
        if wait > 0:
            time.sleep(wait)
        try:
            idle1, total1 = _cpu_times()
        except (OSError, ValueError, IndexError):
            return None
        idle0, total0 = self._ticks0
        elapsed = time.monotonic() - self._t0
        if total1 <= total0 or elapsed <= 0:
            return None
        own = (time.process_time() - self._own0) / elapsed
        return (os.cpu_count() or 1) * (idle1 - idle0) / (total1 - total0) + min(1.0, own)


class _Blocks:
    """A binary sink that sends what is written to the parent in blocks of lines."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._buf = bytearray(b"D")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        buf = self._buf
        buf += data
        if len(buf) > BLOCK:
            self._send()
        return len(data)

    def flush(self) -> None:
        if len(self._buf) > 1:
            self._send()

    def _send(self) -> None:
        # writers hand over whole lines only, so a block always ends at a line end
        self._conn.send_bytes(self._buf)
        self._buf = bytearray(b"D")


def _peak_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _worker(
    index: int,
    count: int,
    path: str,
    settings: PipelineSettings,
    write: WriteEntries,
    flush_each: bool,
    progress: bool,
    conn: Connection,
    parent: int,
) -> None:
    """Body of worker ``index``: its share of the file's flows, formatted, to ``conn``."""
    # Ctrl-C reaches the whole process group: the parent decides, workers don't die first
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    code = 0
    sink = _Blocks(conn)
    try:
        pipe = Pipeline(settings)
        with open_capture(path) as reader:
            tick = (lambda offset: conn.send_bytes(b"P%d" % offset)) if progress else None
            write(pipe.run(_records(reader, tick), FlowShare(index, count)), sink)
            sink.flush()
        end = {
            "counters": pipe.counters,
            "errors": [[e.message, e.offset] for e in reader.errors],
            "records": reader.records,
            "rss_kib": _peak_rss_kib(),
        }
        conn.send_bytes(b"E" + json.dumps(end).encode())
    except BrokenPipeError:  # the parent is gone or gave up: nobody to tell
        code = 1
    except BaseException as exc:  # noqa: B036 - reported to the parent, then exit
        code = 1
        with contextlib.suppress(Exception):
            sink.flush()  # the whole lines written before the failure still go out
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        if not isinstance(exc, CaptureError | OSError):
            text += "\n" + "".join(traceback.format_exception(exc))
        with contextlib.suppress(OSError):
            conn.send_bytes(b"X" + text.encode(errors="replace"))
    finally:
        with contextlib.suppress(OSError):
            conn.close()
    # no interpreter teardown in a forked child (the parent's buffers and atexit hooks)
    os._exit(code)


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM to this worker when the parent dies, however it dies (a killed
    parent leaves no worker running on)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere: a worker stops at its next write to the closed pipe
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _merge(ends: list[dict[str, Any]]) -> dict[str, int]:
    total = dict(ends[0]["counters"])
    for end in ends[1:]:
        for k, v in end["counters"].items():
            if k not in _FRAME_LEVEL:
                total[k] = total.get(k, 0) + v
    return total


def read_with_jobs(
    path: str,
    settings: PipelineSettings,
    jobs: int,
    write: WriteEntries,
    out: IO[bytes],
    *,
    flush_each: bool = False,
    tick: Callable[[int], None] | None = None,
    before_start: Callable[[], None] | None = None,
) -> JobsResult:
    """Read ``path`` with ``jobs`` worker processes, their output to ``out`` as it comes.

    ``write(entries, sink)`` formats entries in a worker (the same function ``--jobs 1``
    uses, header-less). ``before_start`` runs in the parent after the workers are forked
    (start threads there, not before). Raises ``WorkerFailed`` after every other worker's
    output has been written when a worker failed; ``BrokenPipeError`` (stdout closed) and
    ``KeyboardInterrupt`` stop the workers and propagate. No worker outlives the call."""
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    per = dataclasses.replace(
        settings,
        max_flows=max(1, settings.max_flows // jobs),
        max_total_bytes=max(settings.max_flow_bytes, settings.max_total_bytes // jobs),
    )
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("fork")
    procs: list[Any] = []
    live: dict[Connection, int] = {}
    live_conn: dict[object, Connection] = {}
    ends: list[dict[str, Any] | None] = [None] * jobs
    failures: dict[int, str] = {}
    out.flush()  # a forked child must not inherit unwritten output
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()  # the children don't copy the parent's pages by collecting them (kept frozen)
    try:
        for i in range(jobs):
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(
                target=_worker,
                args=(
                    i,
                    jobs,
                    path,
                    per,
                    write,
                    flush_each,
                    tick is not None and i == 0,
                    w,
                    os.getpid(),
                ),  # fmt: skip
                name=f"kubeweir-read-{i}",
                daemon=True,
            )
            p.start()
            w.close()
            procs.append(p)
            live[r] = i
            live_conn[r] = r
        if before_start is not None:
            before_start()
        write_out = out.write
        while live:
            for ready in wait(list(live)):
                r = live_conn[ready]
                i = live[r]
                try:
                    msg = r.recv_bytes()
                except (EOFError, OSError):
                    del live[r]
                    r.close()
                    if ends[i] is None and i not in failures:
                        procs[i].join(5)
                        failures[i] = f"exited unexpectedly (exit code {procs[i].exitcode})"
                    continue
                kind = msg[:1]
                if kind == b"D":
                    write_out(memoryview(msg)[1:])
                    if flush_each:
                        out.flush()
                elif kind == b"P":
                    if tick is not None:
                        tick(int(msg[1:]))
                elif kind == b"E":
                    ends[i] = json.loads(msg[1:])
                elif kind == b"X":
                    failures[i] = msg[1:].decode(errors="replace")
    finally:
        for p in procs:
            if p.is_alive() and (live or failures):
                p.terminate()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
        for r in live:
            r.close()
    if failures:
        raise WorkerFailed(
            "; ".join(f"worker {i} of {jobs}: {why}" for i, why in sorted(failures.items()))
        )
    done = [e for e in ends if e is not None]
    assert len(done) == jobs
    return JobsResult(
        counters=_merge(done),
        errors=[CaptureError(m, o) for m, o in done[0]["errors"]],
        records=int(done[0]["records"]),
        rss_kib=_peak_rss_kib() + sum(int(e["rss_kib"]) for e in done),
    )
