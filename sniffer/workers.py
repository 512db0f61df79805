"""Capture workers: the capture path spread over processes (``--workers N``).

One Python process parses a few thousand exchanges a second; past that, the agent starts
N worker processes, each with its own ring in one ``PACKET_FANOUT_HASH`` group (the kernel
splits the traffic by the symmetric flow hash, so a connection's two directions always
reach the same worker), its own Pipeline, and its own Shipper and spool directory
(``<spool>/worker-<i>``). The agent keeps targeting and sends each worker the target IPs
and the ip → endpoint map on every change; workers send back counters once a second.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sniffer import profiling
from sniffer.settings import SnifferSettings

__all__ = ["WorkerPool", "worker_main"]

log = logging.getLogger("kubeweir.sniffer.workers")

STATS_EVERY = 1.0


def worker_main(index: int, workers: int, settings_json: str, group: int,
                conn: Connection) -> None:  # fmt: skip
    """Body of one worker process."""
    from sniffer.agent import _redactor, tune_gc
    from sniffer.pipeline import Pipeline, PipelineSettings
    from sniffer.shipper import Shipper, ShipperConfig, TokenSource
    from sniffer.sources import RingConfig, open_source
    from sniffer.spool import Spool

    fmt = f"%(asctime)s %(levelname)s worker-{index} %(name)s: %(message)s"
    logging.basicConfig(level=logging.WARNING, format=fmt)
    s = SnifferSettings.model_validate_json(settings_json)
    endpoints: list[dict[str, dict[str, Any]]] = [{}]

    def info(ip: str) -> dict[str, Any]:
        return endpoints[0].get(ip, {})

    ring = RingConfig(interface=s.interface, block_size=1 << 18, block_count=4 * s.ring_mb,
                      fanout_group=group)  # fmt: skip
    source, _ = open_source(s.capture, ring)
    pipeline = Pipeline(PipelineSettings(port_hints=dict(s.port_hints), node=s.node,
                                         redact=_redactor(s), endpoint_info=info,
                                         max_flows=max(1, s.max_flows // workers)))  # fmt: skip
    spool = Spool(Path(s.spool_dir) / f"worker-{index}", s.spool_max_bytes // workers)
    token = TokenSource(s.token.get_secret_value() if s.token else None, s.token_file)
    shipper = Shipper(ShipperConfig(hub_url=s.hub, node=s.node, ca_file=s.ca_file,
                                    max_batch_entries=s.batch_entries,
                                    max_batch_age=s.batch_age), spool, token)  # fmt: skip
    latencies: list[float] = []
    shipper.on_latency = latencies.append
    shipper.start()
    stop = threading.Event()

    def reader() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                stop.set()
                return
            if msg[0] == "update":
                endpoints[0] = msg[2]
                source.set_targets(msg[1])
            elif msg[0] == "stop":
                stop.set()
                return

    threading.Thread(target=reader, name="control", daemon=True).start()

    def snapshot() -> dict[str, Any]:
        tcp = getattr(pipeline, "_tcp", None)
        lat = latencies[:]
        del latencies[: len(lat)]
        return {
            "source": source.stats(),
            "pipeline": pipeline.counters,
            "open_flows": len(getattr(tcp, "conns", ())),
            "entries_sent": shipper.entries_sent,
            "send_errors": shipper.send_errors,
            "dropped_queue": shipper.entries_dropped_queue,
            "queued": shipper.queued,
            "spool_bytes": spool.bytes,
            "spool_batches": len(spool),
            "spool_evicted": spool.evicted_entries,
            "latencies": lat,
            "thread_cpu": dict(profiling.THREAD_CPU),
        }

    def loop() -> None:
        next_stats = 0.0
        next_advance = 0.0
        while not stop.is_set():
            profiling.tick()
            n = source.dispatch(pipeline.feed, 0.1)
            now = time.time()
            if n == 0 or now >= next_advance:
                pipeline.advance(now)
                next_advance = now + 0.5
            out = pipeline.take()
            if out:
                shipper.add(out)
            if now >= next_stats:
                conn.send(("stats", snapshot()))
                next_stats = now + STATS_EVERY

    tune_gc()
    try:
        profiling.run_thread("capture", loop)
    finally:
        pipeline.close()
        shipper.add(pipeline.take())
        shipper.stop(drain_timeout=3.0)
        try:
            conn.send(("stats", snapshot()))
        except OSError:
            pass
        source.close()


class WorkerPool:
    """The worker processes, fed from the agent's Targeting; their counters summed."""

    def __init__(self, settings: SnifferSettings, workers: int) -> None:
        self.settings = settings
        self.n = workers
        self.group = (os.getpid() & 0x7FFF) | 0x4000
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        self._stats: list[dict[str, Any]] = [{} for _ in range(workers)]
        self._lock = threading.Lock()
        self.on_latency: Any = None

    def start(self) -> WorkerPool:
        data = self.settings.model_dump(mode="json")
        if self.settings.token is not None:  # dumped masked; the workers need the secret
            data["token"] = self.settings.token.get_secret_value()
        js = json.dumps(data)
        for i in range(self.n):
            parent, child = self._ctx.Pipe()
            p = self._ctx.Process(target=worker_main, args=(i, self.n, js, self.group, child),
                                  name=f"kubeweir-capture-{i}", daemon=True)  # fmt: skip
            p.start()
            child.close()
            self._procs.append(p)
            self._conns.append(parent)
            threading.Thread(target=self._collect, args=(i, parent), daemon=True).start()
        return self

    def _collect(self, i: int, conn: Connection) -> None:
        while True:
            try:
                kind, body = conn.recv()
            except (EOFError, OSError):
                return
            if kind == "stats":
                with self._lock:
                    self._stats[i] = body
                if self.on_latency is not None:
                    for v in body.get("latencies", ()):
                        self.on_latency(v)

    def update(self, targets: frozenset[str], endpoints: dict[str, dict[str, Any]]) -> None:
        for conn in self._conns:
            try:
                conn.send(("update", sorted(targets), endpoints))
            except OSError:
                log.error("a capture worker is gone")

    def alive(self) -> bool:
        return bool(self._procs) and all(p.is_alive() for p in self._procs)

    def stats(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(s) for s in self._stats]

    def stop(self, timeout: float = 15.0) -> None:
        for conn in self._conns:
            try:
                conn.send(("stop",))
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for p in self._procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
