"""An ingest batch from request body to storage columns, in the hub or in worker processes.

The route (``hub.api.routes.ingest``) hands a sniffer's request body to ``to_table``:
decompress, decode, check and turn into one Arrow table in the storage columns, a chunk of
entries at a time (the route enriches the table). That work is pure Python and C
extensions holding the interpreter lock; in the hub's own process it takes turns with the
HTTP server and DuckDB's writes. In a burst, ``ConversionPool`` runs it in worker
processes instead, which send the table back as Arrow IPC (a copy of its buffers, read
back without another), so the hub process only serves HTTP and writes.
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import math
import multiprocessing
import os
import threading
import time
import zlib
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import msgspec
import pyarrow as pa
import zstandard

from hub.storage.rows import BatchError, entries_to_arrow, first_seen, gc_paused
from kubeweir.entry import SCHEMA_VERSION, Entry

__all__ = [
    "ConversionPool",
    "Refused",
    "WorkerFailed",
    "cpu_budget",
    "decode_entries",
    "decompress",
    "too_large",
    "default_workers",
    "to_table",
]

log = logging.getLogger(__name__)

_TOO_LARGE = 413
_UNSUPPORTED = 415


class Refused(Exception):
    """The batch is refused: the HTTP status, the reason told to the sniffer, and the
    metrics label."""

    def __init__(self, code: int, reason: str, label: str) -> None:
        super().__init__(reason)
        self.code, self.reason, self.label = code, reason, label

    def __reduce__(self) -> tuple[type[Refused], tuple[int, str, str]]:
        # raised in a worker process, pickled back to the hub with its three fields
        return Refused, (self.code, self.reason, self.label)


class WorkerFailed(Exception):
    """A worker process died while converting batches (it is replaced); the batch was not
    stored and the sniffer should send it again."""


def too_large(what: str, limit: int) -> Refused:
    """413: ``what`` is over ``limit`` bytes."""
    return Refused(_TOO_LARGE, f"{what} is over the limit of {limit} bytes", "size")


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body decoded per Content-Encoding, never more than ``limit`` bytes out."""
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        d = zlib.decompressobj(wbits=31)
        try:
            out = d.decompress(body, limit + 1)
        except zlib.error as exc:
            raise Refused(400, f"malformed gzip body: {exc}", "gzip") from exc
        if len(out) > limit or d.unconsumed_tail:
            raise too_large("the decompressed batch", limit)
        if not d.eof:
            raise Refused(400, "malformed gzip body: truncated", "gzip")
        return out
    if encoding == "zstd":
        try:
            with zstandard.ZstdDecompressor().stream_reader(
                io.BytesIO(body), read_across_frames=True
            ) as reader:
                out = reader.read(limit + 1)
        except zstandard.ZstdError as exc:
            raise Refused(400, f"malformed zstd body: {exc}", "zstd") from exc
        if len(out) > limit:
            raise too_large("the decompressed batch", limit)
        return out
    raise Refused(
        _UNSUPPORTED,
        f"unsupported Content-Encoding {encoding!r}: use zstd, gzip or none",
        "encoding",
    )


class _RawBatch(msgspec.Struct, kw_only=True):
    """A ``Batch`` whose entries are left as their msgpack bytes (checked for framing,
    not yet for the entry schema), to be decoded a chunk at a time."""

    v: int
    entries: list[msgspec.Raw]
    sniffer: str = ""


_raw_batch = msgspec.msgpack.Decoder(_RawBatch)
_entry = msgspec.msgpack.Decoder(Entry)

CHUNK = 1000
"""Entries decoded and turned into columns at a time: a 5,000-entry batch of rich entries
as Python objects outgrows the CPU's cache; in chunks its conversion costs ~16% less
(measured here: 11.7 -> 9.8 us per entry)."""


def _decode(data: bytes, max_entries: int) -> _RawBatch:
    try:
        batch = _raw_batch.decode(data)
    except msgspec.ValidationError as exc:
        # A batch of another schema version may not validate: name both versions.
        v = _peek_version(data)
        if v is not None and v != SCHEMA_VERSION:
            raise _version_refused(v) from exc
        raise Refused(400, f"batch does not match the entry schema: {exc}", "schema") from exc
    except msgspec.DecodeError as exc:
        raise Refused(400, f"malformed msgpack batch: {exc}", "msgpack") from exc
    if batch.v != SCHEMA_VERSION:
        raise _version_refused(batch.v)
    if len(batch.entries) > max_entries:
        raise Refused(
            _TOO_LARGE,
            f"batch has {len(batch.entries)} entries, over the limit of {max_entries}",
            "size",
        )
    return batch


def _entries(raws: list[msgspec.Raw], first: int) -> list[Entry]:
    """Entries ``first``... of a batch, decoded and validated."""
    out: list[Entry] = []
    for i, raw in enumerate(raws, first):
        try:
            out.append(_entry.decode(raw))
        except msgspec.ValidationError as exc:
            raise Refused(
                400, f"batch does not match the entry schema: {exc} (entry {i})", "schema"
            ) from exc
        except msgspec.DecodeError as exc:  # (the framing was checked: not expected)
            raise Refused(400, f"malformed msgpack batch: {exc} (entry {i})", "msgpack") from exc
    return out


class _Version(msgspec.Struct):
    v: int


def _peek_version(data: bytes) -> int | None:
    try:
        return msgspec.msgpack.decode(data, type=_Version).v
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _version_refused(v: int) -> Refused:
    return Refused(
        400,
        f"batch schema version {v} is not supported: this hub speaks version {SCHEMA_VERSION}",
        "version",
    )


def decode_entries(
    body: bytes, encoding: str, max_decompressed: int, max_entries: int
) -> list[Entry]:
    """The batch's entries, decompressed, decoded and checked (``to_table`` without the
    columns)."""
    with gc_paused():
        raws = _decode(decompress(body, encoding, max_decompressed), max_entries).entries
        return _entries(raws, 0)


def to_table(
    body: bytes,
    encoding: str,
    max_decompressed: int,
    max_entries: int,
    *,
    keep_entries: bool = False,
) -> tuple[str, pa.Table, int, list[Entry]]:
    """The batch decompressed, decoded, checked and turned into the storage columns, a
    ``CHUNK`` of entries at a time (an id repeated within the batch is kept from its first
    entry). Returns the sniffer's name, the table, the number of entries sent, and (with
    ``keep_entries``: for live viewers) the entries."""
    data = decompress(body, encoding, max_decompressed)
    # The cyclic collector is held from decode until the batch's ~10 containers per entry
    # (none in a cycle) are freed again: otherwise every collection while they live walks
    # them all (measured here: one young collection per batch, ~1.5 ms each, and the
    # survivors promoted into costly older collections).
    with gc_paused():
        batch = _decode(data, max_entries)
        raws, sniffer = batch.entries, batch.sniffer
        total = len(raws)
        kept: list[Entry] = []
        tables: list[pa.Table] = []
        seen: set[str] = set()
        try:
            for first in range(0, total, CHUNK):
                entries = first_seen(_entries(raws[first : first + CHUNK], first), seen)
                tables.append(entries_to_arrow(entries, keep=keep_entries))
                if keep_entries:
                    kept += entries
                del entries
        except BatchError as exc:
            raise Refused(400, str(exc), "columns") from exc
        del batch, raws
    if len(tables) > 1:
        return sniffer, pa.concat_tables(tables), total, kept
    return sniffer, tables[0] if tables else entries_to_arrow([]), total, kept


# -- worker processes -------------------------------------------------------------------


def _worker_start() -> None:
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    # what the imports left is kept out of every collection for the worker's life
    gc.collect()
    gc.freeze()


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """A worker outlives a hub that was killed (its queues' pipes stay open in the worker,
    so it would wait for work forever): it exits once it has another parent."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _ready() -> int:
    return os.getpid()


def _convert(
    body: bytes, encoding: str, max_decompressed: int, max_entries: int
) -> tuple[str, bytes, int]:
    """In a worker: ``to_table``, with the table as Arrow IPC stream bytes."""
    sniffer, table, total, _ = to_table(body, encoding, max_decompressed, max_entries)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sniffer, sink.getvalue().to_pybytes(), total


def _read_table(data: bytes) -> pa.Table:
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return reader.read_all()


MAX_DEFAULT_WORKERS = 4
"""Beyond this many, the single DuckDB writer is the limit, not the conversion."""


def cpu_budget(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may use: its affinity, bounded by a cgroup v2 CPU quota (a
    pod's CPU limit) when one is set."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota readable: the affinity stands
    return cpus


def default_workers(cpus: int | None = None) -> int:
    """One worker per CPU the hub may use (``cpu_budget``) when it has more than one, at
    most ``MAX_DEFAULT_WORKERS``; else none: on one CPU a worker only adds copies."""
    n = cpu_budget() if cpus is None else cpus
    return min(n, MAX_DEFAULT_WORKERS) if n > 1 else 0


class ConversionPool:
    """``to_table`` in ``workers`` processes (started with ``spawn``: the hub process runs
    threads, which ``fork`` would copy mid-flight). A worker that dies fails the batches
    it had (``WorkerFailed``: the sniffers resend them) and the pool is replaced.

    The workers take a batch only in a burst: while at least ``min_concurrent`` batches are
    being ingested at once (``active``, kept by the ingest route). A batch that arrives
    alone is converted in the hub process instead: a worker woken for it works on cold
    caches and page-faults its memory in again (measured on this project's 2-CPU machine:
    ~2x the CPU of a busy worker; sniffer-paced ingest cost 36-39 us of CPU per entry
    through workers against 27-29 in the hub process), while in a burst the workers run
    hot and in parallel (4 senders of 5,000-entry batches: 0.31 -> 0.54 of a bare DuckDB
    append's rate)."""

    def __init__(self, workers: int, min_concurrent: int = 2) -> None:
        if workers < 1:
            raise ValueError("a conversion pool needs at least one worker")
        self.workers = workers
        self.min_concurrent = min_concurrent
        self.active = 0
        """Batches being ingested now (the route counts them, in the event loop)."""
        self.converted = 0
        """Batches the workers converted."""
        self.restarts = 0
        self._lock = threading.Lock()
        self._closed = False
        self._executor: ProcessPoolExecutor | None = None
        self._starting: list[Future[int]] = []
        self._up: set[int] = set()
        """Worker pids that answered a start-up check."""

    def start(self) -> None:
        """Start the worker processes now (each takes ~1 s to import), not on the first
        batch."""
        self._current()

    def _current(self) -> ProcessPoolExecutor:
        """The running pool, started on first use."""
        executor = self._executor
        if executor is None:
            with self._lock:
                if self._closed:
                    raise WorkerFailed("the hub is shutting down")
                if self._executor is None:
                    self._executor = self._start()
                executor = self._executor
        return executor

    def _start(self) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_start,
        )
        # start every worker at once (each takes ~1 s to import), not one per new batch
        self._up = set()
        self._starting = [executor.submit(_ready) for _ in range(self.workers)]
        return executor

    def ready(self) -> bool:
        """Whether every worker is up (``/readyz`` waits for them: until then batches
        would queue behind the workers' start-up). A pool that broke (a worker died while
        starting or while idle) is replaced here, so that a hub nobody sends batches to
        (not ready: no traffic) still recovers."""
        executor = self._executor
        if executor is None:
            return False
        starting = self._starting
        if executor._broken or any(f.done() and f.exception() for f in starting):
            self._replace(executor)
            return False
        if not all(f.done() for f in starting):
            return False
        self._up.update(f.result() for f in starting)
        if len(self._up) < self.workers:
            # one worker answered for another still importing: ask again
            self._starting = [executor.submit(_ready) for _ in range(self.workers)]
            return False
        return True

    def pids(self) -> list[int]:
        """The worker processes' ids (none before ``start()`` or the first batch)."""
        executor = self._executor
        return sorted(executor._processes or ()) if executor is not None else []

    def wanted(self) -> bool:
        """Whether the batch being ingested should go to a worker (a burst)."""
        return self.active >= self.min_concurrent

    async def convert(
        self, body: bytes, encoding: str, max_decompressed: int, max_entries: int
    ) -> tuple[str, pa.Table, int]:
        """The sniffer's name, the batch as a table, and the number of entries sent.
        Raises ``Refused`` for a batch that cannot be stored as sent, ``WorkerFailed``
        when the worker died."""
        executor = self._current()
        try:
            future = executor.submit(_convert, body, encoding, max_decompressed, max_entries)
            sniffer, data, total = await asyncio.wrap_future(future)
        except BrokenProcessPool as exc:
            self._replace(executor)
            raise WorkerFailed(f"an ingest worker process died: {exc}") from exc
        self.converted += 1
        return sniffer, _read_table(data), total

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is not broken or self._closed:
                return  # another batch's failure already replaced it
            log.error("an ingest worker process died; starting a new pool")
            self.restarts += 1
            self._executor = self._start()
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
