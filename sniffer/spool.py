"""The on-disk spool: sealed batches wait here, fsynced, until the hub acknowledges them.

Each batch is one file, ``<seq>-<entries>.zst``, holding the exact request body to send
(a zstd-compressed msgpack ``Batch``). It is written to a temporary name, fsynced,
renamed into place and the directory fsynced, so a crash leaves either the whole batch or
nothing. The spool is bounded in bytes: when a new batch does not fit, the oldest batches
are evicted — counted and logged, never silently. On start the spool picks up whatever a
previous run left (those batches are sent first, oldest first).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from mypy_extensions import mypyc_attr

__all__ = ["Spool", "SpooledBatch"]

log = logging.getLogger("kubeweir.sniffer.spool")

_NAME = re.compile(r"^(\d{16})-(\d+)\.zst$")


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    name: str
    seq: int
    entries: int
    size: int


@mypyc_attr(allow_interpreted_subclasses=True)  # tests subclass it to inject I/O errors
class Spool:
    """A bounded directory of sealed batches, oldest first; thread-safe."""

    def __init__(self, directory: Path, max_bytes: int = 256 << 20) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Condition()
        self._batches: dict[str, SpooledBatch] = {}
        self._claimed: set[str] = set()
        """Batches a sender is POSTing now (``claim`` → ``ack``/``drop``/``release``)."""
        self.bytes = 0
        self.evicted_batches = 0
        self.evicted_entries = 0
        self.written_batches = 0
        self.acked_batches = 0
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)  # a write that never completed
        for path in sorted(self.dir.iterdir()):
            m = _NAME.match(path.name)
            if m is None:
                continue
            b = SpooledBatch(path.name, int(m.group(1)), int(m.group(2)), path.stat().st_size)
            self._batches[b.name] = b
            self.bytes += b.size
        self._seq = max((b.seq for b in self._batches.values()), default=0)
        self.resumed = len(self._batches)
        if self.resumed:
            log.info("spool %s: resuming %d unsent batches", self.dir, self.resumed)

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def pending_entries(self) -> int:
        with self._lock:
            return sum(b.entries for b in self._batches.values())

    def put(self, body: bytes, entries: int) -> SpooledBatch:
        """Seal one batch to disk (durably); evict the oldest to stay under the bound."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        name = f"{seq:016d}-{entries}.zst"
        tmp = self.dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(body)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.dir / name)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        batch = SpooledBatch(name, seq, entries, len(body))
        with self._lock:
            self._batches[name] = batch
            self.bytes += batch.size
            self.written_batches += 1
            self._evict(keep=name)
            self._lock.notify_all()
        return batch

    def _evict(self, keep: str) -> None:
        while self.bytes > self.max_bytes and len(self._batches) > 1:
            oldest = min(self._batches.values(), key=lambda b: b.seq)
            if oldest.name == keep:
                break
            self._remove(oldest)
            self.evicted_batches += 1
            self.evicted_entries += oldest.entries
            log.error(
                "spool full (%d > %d bytes): dropped the oldest batch %s with %d entries "
                "(%d entries dropped so far)",
                self.bytes + oldest.size,
                self.max_bytes,
                oldest.name,
                oldest.entries,
                self.evicted_entries,
            )

    def _remove(self, batch: SpooledBatch) -> None:
        self._claimed.discard(batch.name)
        if self._batches.pop(batch.name, None) is not None:
            self.bytes -= batch.size
            (self.dir / batch.name).unlink(missing_ok=True)

    def oldest(self, wait: float = 0.0) -> tuple[SpooledBatch, bytes] | None:
        """The oldest unacknowledged batch and its body, held by a sender or not; waits up
        to ``wait`` seconds for one."""
        return self._pick(wait, claim=False)

    def claim(self, wait: float = 0.0) -> tuple[SpooledBatch, bytes] | None:
        """Like ``oldest`` but over the batches no other sender holds, and marks the one
        returned as held until ``ack``, ``drop``, ``replace`` or ``release``."""
        return self._pick(wait, claim=True)

    def _pick(self, wait: float, claim: bool) -> tuple[SpooledBatch, bytes] | None:
        with self._lock:
            waited = False
            while True:
                free = [
                    b for b in self._batches.values() if not claim or b.name not in self._claimed
                ]
                if not free:
                    if waited or wait <= 0:
                        return None
                    self._lock.wait(wait)
                    waited = True
                    continue
                batch = min(free, key=lambda b: b.seq)
                try:
                    body = (self.dir / batch.name).read_bytes()
                except FileNotFoundError:
                    self._remove(batch)  # removed behind our back: nothing to send
                    continue
                if claim:
                    self._claimed.add(batch.name)
                return batch, body

    def release(self, batch: SpooledBatch) -> None:
        """Give a claimed batch back (its POST failed: another try will claim it again)."""
        with self._lock:
            if batch.name in self._claimed:
                self._claimed.discard(batch.name)
                self._lock.notify_all()

    def ack(self, batch: SpooledBatch) -> None:
        """The hub stored the batch: delete it."""
        with self._lock:
            self._remove(batch)
            self.acked_batches += 1

    def drop(self, batch: SpooledBatch, reason: str) -> None:
        """A batch the hub will never accept (bad request): delete it, loudly."""
        log.error("dropping batch %s (%d entries): %s", batch.name, batch.entries, reason)
        with self._lock:
            self._remove(batch)
            self.evicted_batches += 1
            self.evicted_entries += batch.entries

    def replace(self, batch: SpooledBatch, parts: list[tuple[bytes, int]]) -> None:
        """Split a batch the hub found too large into smaller ones (written first)."""
        for body, n in parts:
            self.put(body, n)
        with self._lock:
            self._remove(batch)

    def adopt(self, directory: Path) -> int:
        """Move the batches another spool left in ``directory`` into this one (a restart
        with a different number of capture workers); returns how many were taken."""
        src = Path(directory)
        if not src.is_dir() or src.resolve() == self.dir.resolve():
            return 0
        taken = 0
        for path in sorted(src.iterdir()):
            m = _NAME.match(path.name)
            if m is None:
                continue
            with self._lock:
                self._seq += 1
                seq = self._seq
            name = f"{seq:016d}-{m.group(2)}.zst"
            os.rename(path, self.dir / name)
            batch = SpooledBatch(name, seq, int(m.group(2)), (self.dir / name).stat().st_size)
            with self._lock:
                self._batches[name] = batch
                self.bytes += batch.size
                self._lock.notify_all()
            taken += 1
        if taken:
            log.info("spool %s: took over %d unsent batches from %s", self.dir, taken, src)
        return taken
