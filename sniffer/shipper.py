"""Ship entries to the hub: batch, seal into the spool, POST, delete on acknowledgement.

The capture thread only appends entries to an in-memory queue (it never blocks on disk or
network). A sealer thread cuts batches bounded in entries, bytes and age, encodes them
(msgpack ``Batch``, each entry encoded once, zstd level 1) and writes them durably to the
``Spool``; ``senders`` sender threads (2 by default) each claim the oldest unclaimed
spooled batch, POST it to ``/api/v1/ingest`` and delete it once the hub answers 2xx — two
batches in flight let the hub commit them as one group while the next is on the wire.
Failures back off exponentially with full jitter. Entry ids are deterministic, so a batch
resent after a lost acknowledgement is stored once (the hub dedupes by id).
"""

from __future__ import annotations

import collections
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import zstandard

from kubeweir.entry import SCHEMA_VERSION, Entry, decode_batch
from sniffer import profiling
from sniffer.spool import Spool, SpooledBatch

__all__ = ["ShipperConfig", "Shipper", "TokenSource"]

log = logging.getLogger("kubeweir.sniffer.shipper")

_entry_enc = msgspec.msgpack.Encoder()


class _EncodedBatch(msgspec.Struct, kw_only=True):
    """``kubeweir.entry.Batch`` with its entries already encoded (one msgpack array):
    encodes to the same bytes as ``encode_batch`` without encoding each entry again."""

    v: int
    entries: msgspec.Raw
    sniffer: str = ""


class TokenSource:
    """The bearer credential: a fixed shared token, or a file re-read when it changes
    (a projected ServiceAccount token is rotated by the kubelet)."""

    def __init__(self, token: str | None = None, path: Path | None = None) -> None:
        self._token = token or ""
        self.path = path
        self._mtime: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        if self.path is None:
            return self._token
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime_ns
                if mtime != self._mtime:
                    self._token = self.path.read_text().strip()
                    self._mtime = mtime
            except OSError as exc:
                log.error("cannot read the token file %s: %s", self.path, exc)
            return self._token


@dataclass(frozen=True, slots=True)
class ShipperConfig:
    hub_url: str
    node: str = ""
    ca_file: Path | None = None
    """CA bundle for the hub's TLS certificate; None: the system store."""
    max_batch_entries: int = 5000
    max_batch_bytes: int = 8 << 20
    """Encoded (uncompressed) bytes of a batch (the hub takes up to 16 MiB by default)."""
    max_batch_age: float = 1.0
    """Seconds the first entry of a batch waits for more before the batch is sealed."""
    senders: int = 2
    """Batches POSTed at the same time (each by its own thread, oldest first)."""
    zstd_level: int = 1
    max_queue: int = 200_000
    """Entries waiting in memory to be sealed; past this, new entries are dropped (counted)."""
    timeout: float = 10.0
    backoff_min: float = 0.2
    backoff_max: float = 30.0


class Shipper:
    """Queue → spool → hub, on two threads of its own."""

    def __init__(self, config: ShipperConfig, spool: Spool, token: Callable[[], str]) -> None:
        self.config = config
        self.spool = spool
        self.token = token
        self._queue: collections.deque[Entry] = collections.deque()
        self._queue_cv = threading.Condition()
        self._stop = threading.Event()
        self._draining = False
        self._zstd = zstandard.ZstdCompressor(level=config.zstd_level)
        self._count_lock = threading.Lock()
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(config.ca_file)) if config.ca_file else True
        )
        self._client = httpx.Client(
            base_url=config.hub_url.rstrip("/"), verify=verify, timeout=config.timeout
        )
        self.entries_queued = 0
        self.entries_dropped_queue = 0
        self.entries_sent = 0
        self.entries_accepted = 0
        self.entries_duplicate = 0
        self.batches_sent = 0
        self.send_errors = 0
        self.last_error = ""
        self.last_ack = 0.0
        self.latencies: collections.deque[float] = collections.deque(maxlen=1024)
        """Seconds per successful POST (the agent exports them as a histogram)."""
        self.on_latency: Callable[[float], None] | None = None
        self._threads = [profiling.thread("sealer", self._seal_loop)] + [
            profiling.thread("sender" if i == 0 else f"sender-{i}", self._send_loop)
            for i in range(max(1, config.senders))
        ]

    # --- capture side ------------------------------------------------------------------
    def add(self, entries: Iterable[Entry]) -> None:
        """Hand entries over (from the capture thread); never blocks."""
        q = self._queue
        was_empty = not q
        added = 0
        for e in entries:
            if len(q) >= self.config.max_queue:
                self.entries_dropped_queue += 1
                if self.entries_dropped_queue % 1000 == 1:
                    log.error(
                        "ship queue full (%d): entries dropped (%d so far)",
                        len(q),
                        self.entries_dropped_queue,
                    )
                continue
            q.append(e)
            added += 1
        if added:
            self.entries_queued += added
            # Wake the sealer only when it has something new to do: the first entry starts
            # a batch's age clock, a full batch is sealed at once; in between it sleeps
            # until the age is up (waking it on every hand-off cost the capture process
            # a thread switch per ring read).
            n = len(q)
            if was_empty or n - added < self.config.max_batch_entries <= n:
                with self._queue_cv:
                    self._queue_cv.notify()

    @property
    def queued(self) -> int:
        return len(self._queue)

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> Shipper:
        for t in self._threads:
            t.start()
        return self

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Seal what is queued into the spool, try to send for ``drain_timeout`` seconds,
        then stop. Whatever is still unsent stays in the spool for the next start."""
        self._draining = True
        with self._queue_cv:
            self._queue_cv.notify_all()
        deadline = time.monotonic() + drain_timeout
        while (self._queue or len(self.spool)) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        with self._queue_cv:
            self._queue_cv.notify_all()
        with self.spool._lock:
            self.spool._lock.notify_all()
        for t in self._threads:
            t.join(timeout=10)
        self._seal_all()  # anything that arrived after the sealer stopped
        self._client.close()

    # --- sealing -----------------------------------------------------------------------
    def _encode(self, entries: list[Entry]) -> bytes:
        return self._seal(_entry_enc.encode(entries))

    def _seal(self, encoded_entries: bytes) -> bytes:
        """The request body for entries already encoded as one msgpack array."""
        batch = _EncodedBatch(
            v=SCHEMA_VERSION, entries=msgspec.Raw(encoded_entries), sniffer=self.config.node
        )
        return self._zstd.compress(_entry_enc.encode(batch))

    def _cut(self) -> tuple[list[Entry], bytes]:
        """Up to one batch's worth from the queue, bounded in count and encoded bytes, and
        its entries encoded (one msgpack array). The whole count is encoded in one call;
        only a batch over the byte bound is measured entry by entry and cut shorter (the
        rest goes back to the front of the queue)."""
        q = self._queue
        cfg = self.config
        n = min(len(q), cfg.max_batch_entries)
        popleft = q.popleft
        out = [popleft() for _ in range(n)]
        body = _entry_enc.encode(out)
        if len(body) > cfg.max_batch_bytes and n > 1:
            size = keep = 0
            for e in out:
                m = len(_entry_enc.encode(e))
                if keep and size + m > cfg.max_batch_bytes:
                    break
                size += m
                keep += 1
            q.extendleft(reversed(out[keep:]))
            out = out[:keep]
            body = _entry_enc.encode(out)
        return out, body

    def _seal_all(self) -> None:
        while self._queue:
            batch, body = self._cut()
            self.spool.put(self._seal(body), len(batch))

    def _seal_loop(self) -> None:
        cfg = self.config
        first_at: float | None = None
        while not self._stop.is_set():
            profiling.tick()
            with self._queue_cv:
                idle = not self._queue
                if idle:
                    first_at = None
                    self._queue_cv.wait(0.5)
            if idle:  # (mypyc compiles no `continue` inside the with block)
                continue
            now = time.monotonic()
            if first_at is None:
                first_at = now
            full = len(self._queue) >= cfg.max_batch_entries
            if full or self._draining or now - first_at >= cfg.max_batch_age:
                batch: list[Entry] = []
                try:
                    batch, body = self._cut()
                    if batch:
                        self.spool.put(self._seal(body), len(batch))
                except OSError as exc:
                    # not sealed: back to the front of the queue, tried again (past
                    # max_queue, new entries are dropped and counted), never lost uncounted
                    self._queue.extendleft(reversed(batch))
                    log.error("cannot write to the spool %s: %s", self.spool.dir, exc)
                    self._stop.wait(1.0)
                first_at = time.monotonic() if self._queue else None
            else:
                with self._queue_cv:
                    self._queue_cv.wait(max(0.01, cfg.max_batch_age - (now - first_at)))

    # --- sending -----------------------------------------------------------------------
    def _send_loop(self) -> None:
        cfg = self.config
        failures = 0
        while not self._stop.is_set():
            profiling.tick()
            item = self.spool.claim(wait=0.5)
            if item is None:
                continue
            batch, body = item
            try:
                ok = self._send(batch, body)
            except Exception as exc:  # noqa: BLE001 - e.g. the spool full while splitting:
                ok = self._failed(f"{exc!r}")  # the batch stays; the sender must not die
            finally:
                self.spool.release(batch)  # no-op once acknowledged or dropped
            if ok:
                failures = 0
                continue
            failures += 1
            # Exponential back-off with full jitter (AWS architecture blog).
            cap = min(cfg.backoff_max, cfg.backoff_min * (2 ** min(failures, 16)))
            self._stop.wait(random.uniform(cfg.backoff_min / 2, cap))

    def _send(self, batch: SpooledBatch, body: bytes) -> bool:
        headers = {
            "Content-Type": "application/msgpack",
            "Content-Encoding": "zstd",
            "Authorization": f"Bearer {self.token()}",
        }
        started = time.perf_counter()
        try:
            resp = self._client.post("/api/v1/ingest", content=body, headers=headers)
        except httpx.HTTPError as exc:
            return self._failed(f"hub unreachable: {exc!r}")
        if resp.status_code < 300:
            elapsed = time.perf_counter() - started
            try:
                answer = resp.json()
            except ValueError:
                answer = {}
            self.spool.ack(batch)
            with self._count_lock:  # several sender threads
                self.batches_sent += 1
                self.entries_sent += batch.entries
                self.entries_accepted += int(answer.get("accepted", 0))
                self.entries_duplicate += int(answer.get("duplicates", 0))
                self.last_ack = time.time()
            self.latencies.append(elapsed)
            if self.on_latency is not None:
                self.on_latency(elapsed)
            return True
        detail = resp.text[:300]
        if resp.status_code == 413 and batch.entries > 1:
            self._split(batch, body)
            return True
        if resp.status_code in (400, 413, 415):
            # The hub will never take this batch: keeping it would block the spool forever.
            self.spool.drop(batch, f"hub refused it ({resp.status_code}): {detail}")
            return True
        return self._failed(f"hub answered {resp.status_code}: {detail}")

    def _split(self, batch: SpooledBatch, body: bytes) -> None:
        entries = decode_batch(zstandard.ZstdDecompressor().decompress(body)).entries
        half = len(entries) // 2
        parts = [(self._encode(p), len(p)) for p in (entries[:half], entries[half:])]
        log.warning("hub found batch %s too large: split in two", batch.name)
        self.spool.replace(batch, parts)

    def _failed(self, reason: str) -> bool:
        with self._count_lock:
            self.send_errors += 1
        if reason != self.last_error or self.send_errors % 50 == 1:
            log.warning("ship failed (%d so far), batch kept in the spool: %s",
                        self.send_errors, reason)  # fmt: skip
        self.last_error = reason
        return False
