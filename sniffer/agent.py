"""The node agent (``kubeweir sniff``): targeting → capture → pipeline → spool → hub.

One capture thread owns the ``Pipeline`` (it is not thread-safe): it drains the capture
ring into ``Pipeline.feed``, applies time-outs, and hands completed entries to the
``Shipper`` (which seals and sends on threads of its own). Targeting changes arrive from
the pod watcher and the rules poller and go straight to the capture source's kernel
filter. A small HTTP server answers ``/healthz``, ``/readyz`` and ``/metrics``; a
heartbeat tells the hub how this sniffer is doing.
"""

from __future__ import annotations

import gc
import logging
import signal
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import httpx
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from kubeweir.entry import Entry
from sniffer import profiling
from sniffer.settings import SnifferSettings
from sniffer.shipper import Shipper, ShipperConfig, TokenSource
from sniffer.sources import CaptureSource, RingConfig, open_source
from sniffer.spool import Spool
from sniffer.targeting import PodWatcher, Targeting
from sniffer.workers import WorkerPool

__all__ = ["Agent", "sniff"]

log = logging.getLogger("kubeweir.sniffer.agent")


def _kube_client(settings: SnifferSettings) -> Any | None:
    if settings.kubeconfig is None and not settings.in_cluster:
        return None
    from kubernetes import client, config

    cfg = client.Configuration()
    if settings.kubeconfig is not None:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(settings.kubeconfig), client_configuration=cfg
        )
    else:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return client.ApiClient(cfg)


def _redactor(settings: SnifferSettings) -> Callable[[Entry], Entry] | None:
    if not settings.redact:
        return None
    import redaction

    engine = (
        redaction.Engine(redaction.load_config(settings.redaction_config))
        if settings.redaction_config
        else redaction.default_engine()
    )
    apply: Callable[[Entry], Entry] = engine.apply
    return apply


GC_THRESHOLDS = (10_000, 20, 20)
"""The cyclic GC's thresholds in a sniffer process (Python's are 700, 10, 10), used when
the automatic collector is on (``tune_gc(timed=False)``)."""
GC_YOUNG_EVERY = 1.0
"""Seconds between two collections of the young generations (``tune_gc``'s timer)."""
GC_FULL_EVERY = 30
"""Every this many timed collections is a full one (every 30 s)."""


def gc_step(count: int) -> None:
    """The ``count``-th timed collection: the young generations, or every
    ``GC_FULL_EVERY``-th time all of them."""
    gc.collect(2 if count % GC_FULL_EVERY == 0 else 1)


def _gc_timer() -> None:
    count = 0
    while True:
        time.sleep(GC_YOUNG_EVERY)
        count += 1
        gc_step(count)
        profiling.tick()  # its CPU in kubeweir_sniffer_thread_cpu like the other threads'


def tune_gc(timed: bool = True) -> None:
    """Make the cyclic garbage collector cheap for a long-running capture process.

    The capture path keeps creating container objects (segments, parser state, entries
    and their maps, the ship queue), none of them in a cycle except a closed connection
    (a connection and its two halves refer to each other). ``gc.freeze()`` moves
    everything that exists after start-up (the Kubernetes client, the redaction rules,
    httpx, prometheus) out of the collector's sight. Then, ``timed``, the automatic
    collector is switched off and a timer thread collects the young generations once a
    second (``GC_YOUNG_EVERY``) and everything every 30 s (``GC_FULL_EVERY``): cycles
    are still freed within a second, but the entries waiting in the ship queue (a
    second's worth) are no longer walked by a collection every ~200 requests and
    promoted into full collections that walk them again. Without ``timed``, larger
    thresholds (``GC_THRESHOLDS``) make automatic collections rarer. Called from
    ``run()`` and the capture workers, not from ``start()`` (tests run agents inside
    the pytest process)."""
    gc.collect()
    gc.freeze()
    if timed:
        gc.disable()
        profiling.thread("gc", _gc_timer).start()
    else:
        gc.set_threshold(*GC_THRESHOLDS)


class Agent:
    """The running sniffer; ``start()`` then ``stop()`` (or ``run()`` until a signal)."""

    def __init__(self, settings: SnifferSettings, targeting: Targeting | None = None) -> None:
        from sniffer.pipeline import Pipeline, PipelineSettings

        self.settings = settings
        self.targeting = targeting or Targeting(settings.node, rules_path=settings.targeting)
        self.api_client = _kube_client(settings)
        self.watcher: PodWatcher | None = None
        self.spool = Spool(settings.spool_dir, settings.spool_max_bytes)
        token = TokenSource(
            token=settings.token.get_secret_value() if settings.token else None,
            path=settings.token_file,
        )
        self.token = token
        self.shipper = Shipper(
            ShipperConfig(
                hub_url=settings.hub,
                node=settings.node,
                ca_file=settings.ca_file,
                max_batch_entries=settings.batch_entries,
                max_batch_age=settings.batch_age,
            ),
            self.spool,
            token,
        )
        self.pipeline = Pipeline(
            PipelineSettings(
                port_hints=dict(settings.port_hints),
                node=settings.node,
                redact=_redactor(settings),
                endpoint_info=self.targeting.endpoint_info,
                max_flows=settings.max_flows,
            )
        )
        self.registry = CollectorRegistry()
        self.ship_latency = Histogram(
            "kubeweir_sniffer_ship_latency_seconds",
            "Time for the hub to acknowledge a batch.",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.shipper.on_latency = self.ship_latency.observe
        self.registry.register(_AgentCollector(self))
        self.source: CaptureSource | None = None
        self.pool: WorkerPool | None = None
        if settings.workers > 1:
            self.pool = WorkerPool(settings, settings.workers)
            self.pool.on_latency = self.ship_latency.observe
        # Batches left by a run with another number of workers: ship them from here.
        for leftover in sorted(Path(settings.spool_dir).glob("worker-*")):
            idx = leftover.name.removeprefix("worker-")
            if settings.workers == 1 or not idx.isdigit() or int(idx) >= settings.workers:
                self.spool.adopt(leftover)
        self.tls: Any = None
        self.source_reason = ""
        self._stop = threading.Event()
        self._capture_thread: threading.Thread | None = None
        self._heartbeat_thread: threading.Thread | None = None
        self._http: ThreadingHTTPServer | None = None
        self._block_timeout = 0.1
        self.capture_errors = 0
        self.heartbeats_sent = 0
        self.started = 0.0

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> Agent:
        s = self.settings
        ring = RingConfig(interface=s.interface, block_size=1 << 18, block_count=4 * s.ring_mb)
        self._block_timeout = ring.block_timeout_ms / 1000
        if self.pool is not None:
            self.source_reason = f"{s.capture}: {s.workers} worker processes (PACKET_FANOUT_HASH)"
            self.pool.start()
            self.targeting.on_change(self.pool.update)
        else:
            self.source, self.source_reason = open_source(s.capture, ring)
            log.info("capture source: %s (%s)", self.source.name, self.source_reason)
            self.targeting.on_targets(self._set_targets)
        if self.api_client is not None:
            self.watcher = PodWatcher(self.targeting, self.api_client).start()
        elif s.targeting is not None:
            self.watcher = None
            threading.Thread(target=self._poll_rules, name="rules", daemon=True).start()
        self.shipper.start()
        if s.tls:  # TLS plaintext through uprobes (see sniffer/tls/__init__.py)
            from sniffer.tls import start_for_agent

            self.tls = start_for_agent(self)
        if self.pool is None:
            self._capture_thread = profiling.thread("capture", self._capture)
            self._capture_thread.start()
        self._heartbeat_thread = threading.Thread(
            target=self._heartbeat, name="heartbeat", daemon=True
        )
        self._heartbeat_thread.start()
        self._serve_http()
        self.started = time.time()
        return self

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop capturing, flush what the pipeline holds into the spool, try to ship."""
        self._stop.set()
        if self._capture_thread is not None:
            self._capture_thread.join(timeout=10)
        if self.pool is not None:
            self.pool.stop()
        if self.tls is not None:
            self.tls.stop()  # probes detached; its last entries go to the shipper
        try:
            self.pipeline.close()
            self.shipper.add(self.pipeline.take())
        except Exception:  # noqa: BLE001 - flushing must not prevent the spool from sealing
            log.exception("flushing the pipeline failed")
        self.shipper.stop(drain_timeout=drain_timeout)
        if self.watcher is not None:
            self.watcher.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self.source is not None:
            self.source.close()

    def run(self) -> None:
        """Start, run until SIGTERM/SIGINT, stop."""
        self.start()
        tune_gc()
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        done.wait()
        log.info("stopping: flushing entries to the spool")
        self.stop()

    # --- threads ---------------------------------------------------------------------
    def _set_targets(self, ips: frozenset[str]) -> None:
        if self.source is not None:
            self.source.set_targets(ips)
            log.info("capturing %d addresses", len(ips))

    def _poll_rules(self) -> None:
        while not self._stop.wait(0.5):
            self.targeting.check_rules_file()

    def _capture(self) -> None:
        assert self.source is not None
        dispatch = self.source.dispatch
        feed = self.pipeline.feed
        take = self.pipeline.take
        advance = self.pipeline.advance
        add = self.shipper.add
        caught_up = self.pipeline.caught_up
        # a partly filled ring block reaches us at most this late (see RingConfig)
        lag = self._block_timeout
        next_advance = 0.0
        tick = profiling.tick
        while not self._stop.is_set():
            tick()
            try:
                before = time.time()
                n = dispatch(feed, 0.1)
                now = time.time()
                if n == 0:  # found empty: every frame stamped before `before - lag` is in
                    caught_up(before - lag)
                if n == 0 or now >= next_advance:
                    advance(now)  # time-outs while traffic is quiet
                    next_advance = now + 0.5
                out = take()
                if out:
                    add(out)
            except Exception:  # noqa: BLE001 - capture goes on; the error is counted
                self.capture_errors += 1
                log.exception("capture loop error (%d so far)", self.capture_errors)
                time.sleep(0.1)

    def _heartbeat(self) -> None:
        s = self.settings
        ctx: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(s.ca_file)) if s.ca_file else True
        )
        with httpx.Client(base_url=s.hub.rstrip("/"), verify=ctx, timeout=5) as client:
            while not self._stop.wait(s.heartbeat_interval):
                body = {
                    "node": s.node,
                    "drops": self.drops_total(),
                    "spool_bytes": int(self.snapshot()["spool_bytes"]),
                    "targets": len(self.targeting.targeted_pods),
                }
                try:
                    r = client.post(
                        "/api/v1/sniffers/heartbeat",
                        json=body,
                        headers={"Authorization": f"Bearer {self.token()}"},
                    )
                    if r.status_code < 300:
                        self.heartbeats_sent += 1
                        self.apply_heartbeat_answer(r.json())
                    else:
                        log.warning("heartbeat refused (%d): %s", r.status_code, r.text[:200])
                except (httpx.HTTPError, ValueError) as exc:
                    log.debug("heartbeat failed: %s", exc)

    def apply_heartbeat_answer(self, answer: Any) -> bool:
        """Apply the hub's targeting rules carried by a heartbeat answer (hub rules take
        precedence over the rules file while the hub has some: version > 0)."""
        if not isinstance(answer, dict) or "targeting_version" not in answer:
            return False  # an older hub: the rules file stays in charge
        version = answer.get("targeting_version")
        rules = answer.get("targeting")
        if not isinstance(version, int) or (rules is not None and not isinstance(rules, dict)):
            log.warning("heartbeat answer with malformed targeting: %r", answer)
            return False
        return self.targeting.apply_hub_rules(rules, version)

    # --- status ----------------------------------------------------------------------
    def source_stats(self) -> dict[str, int]:
        if self.pool is not None:
            out: dict[str, int] = {}
            for w in self.pool.stats():
                for k, v in w.get("source", {}).items():
                    out[k] = out.get(k, 0) + v
            return out
        return self.source.stats() if self.source is not None else {}

    def snapshot(self) -> dict[str, Any]:
        """Every counter, summed over the capture workers when there are several."""
        sh, sp = self.shipper, self.spool
        snap: dict[str, Any] = {
            "source": self.source_stats(),
            "pipeline": dict(self.pipeline.counters) if self.pool is None else {},
            "open_flows": len(getattr(getattr(self.pipeline, "_tcp", None), "conns", ())),
            "entries_sent": sh.entries_sent,
            "send_errors": sh.send_errors,
            "dropped_queue": sh.entries_dropped_queue,
            "queued": sh.queued,
            "spool_bytes": sp.bytes,
            "spool_batches": len(sp),
            "spool_evicted": sp.evicted_entries,
            "thread_cpu": dict(profiling.THREAD_CPU),
            "tls": dict(self.tls.counters) if self.tls is not None else {},
        }
        if self.pool is not None:
            snap["open_flows"] = 0
            for w in self.pool.stats():
                for k, v in w.get("thread_cpu", {}).items():
                    snap["thread_cpu"][k] = snap["thread_cpu"].get(k, 0.0) + v
                for k, v in w.get("pipeline", {}).items():
                    snap["pipeline"][k] = snap["pipeline"].get(k, 0) + v
                for k in ("open_flows", "entries_sent", "send_errors", "dropped_queue",
                          "queued", "spool_bytes", "spool_batches", "spool_evicted"):  # fmt: skip
                    snap[k] += w.get(k, 0)
        return snap

    def drops_total(self) -> int:
        return sum(self.drops().values())

    def drops(self) -> dict[str, int]:
        """Everything lost, by reason (kernel, parser bounds, ship queue, spool)."""
        snap = self.snapshot()
        out = {k: int(v) for k, v in snap["pipeline"].items() if k.startswith("bound_")}
        out["kernel"] = snap["source"].get("kernel_drops", 0)
        out["ship_queue_full"] = snap["dropped_queue"]
        out["spool_full"] = snap["spool_evicted"]
        tls = snap["tls"]
        if self.tls is not None:  # TLS plaintext the kernel side or the streams could not keep
            out["tls_ring_full"] = tls.get("kernel_ring_full", 0)
            out["tls_read_fault"] = tls.get("kernel_read_fault", 0)
        return out

    def healthy(self) -> tuple[bool, str]:
        if self.pool is not None:
            return (True, "ok") if self.pool.alive() else (False, "a capture worker died")
        if self._capture_thread is None or not self._capture_thread.is_alive():
            return False, "capture thread not running"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        ok, why = self.healthy()
        if not ok:
            return ok, why
        if self.watcher is not None and not self.targeting.synced:
            return False, "pods not listed yet"
        return True, "ok"

    def status(self) -> dict[str, Any]:
        return {
            "node": self.settings.node,
            "capture": {"source": getattr(self.source, "name", ""), "why": self.source_reason},
            "targeting": self.targeting.status(),
            "drops": self.drops(),
            "spool": {"bytes": self.spool.bytes, "batches": len(self.spool)},
            "workers": self.settings.workers,
        }

    def _serve_http(self) -> None:
        host, _, port = self.settings.listen.rpartition(":")
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(agent.registry), "text/plain; version=0.0.4")
                elif path in ("/healthz", "/readyz"):
                    ok, why = agent.healthy() if path == "/healthz" else agent.ready()
                    self._send(200 if ok else 503, why.encode() + b"\n", "text/plain")
                elif path == "/status":
                    import json

                    self._send(200, json.dumps(agent.status()).encode(), "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._http = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, name="http", daemon=True).start()

    @property
    def http_port(self) -> int:
        assert self._http is not None
        return int(self._http.server_address[1])


class _AgentCollector(Collector):
    """Reads the agent's counters at scrape time (no bookkeeping in the hot path)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Any]:
        a = self.agent
        snap = a.snapshot()
        src = snap["source"]
        c = snap["pipeline"]

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"kubeweir_sniffer_{name}", doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"kubeweir_sniffer_{name}", doc, value=value)

        yield counter("packets", "Packets captured.", src.get("packets", 0))
        yield counter("bytes", "Bytes captured (on the wire).", src.get("bytes", 0))
        yield counter("kernel_drops", "Packets the kernel dropped (ring full).",
                      src.get("kernel_drops", 0))  # fmt: skip
        drops = CounterMetricFamily(
            "kubeweir_sniffer_drops", "Data lost, by reason.", labels=["reason"]
        )
        for reason, v in sorted(a.drops().items()):
            drops.add_metric([reason], v)
        yield drops
        yield counter("flows", "TCP connections and UDP flows seen.", c.get("flows", 0))
        open_flows = snap["open_flows"]
        yield gauge("open_flows", "TCP connections tracked now.", open_flows)
        yield counter("entries", "Entries made.", c.get("entries", 0))
        yield counter("parse_errors", "Streams degraded to raw tcp entries.",
                      c.get("parse_errors", 0))  # fmt: skip
        yield counter("entries_shipped", "Entries acknowledged by the hub.", snap["entries_sent"])
        yield counter("ship_errors", "Failed attempts to ship a batch.", snap["send_errors"])
        yield gauge(
            "spool_bytes", "Bytes of sealed batches waiting in the spool.", snap["spool_bytes"]
        )
        yield gauge("spool_batches", "Batches waiting in the spool.", snap["spool_batches"])
        yield gauge("ship_queue", "Entries waiting to be sealed.", snap["queued"])
        yield gauge("targeted_pods", "Pods captured.", len(a.targeting.targeted_pods))
        yield gauge("untargetable_pods", "Selected pods on the host network (not captured).",
                    len(a.targeting.untargetable))  # fmt: skip
        yield gauge("target_addresses", "Addresses in the kernel filter.", len(a.targeting.targets))
        cpu = CounterMetricFamily("kubeweir_sniffer_thread_cpu",
                                  "CPU seconds used by each of the sniffer's busy threads "
                                  "(summed over capture workers).", labels=["thread"])  # fmt: skip
        for name, secs in sorted(snap["thread_cpu"].items()):
            cpu.add_metric([name], secs)
        yield cpu
        tls = snap["tls"]
        if a.tls is not None:
            yield counter("tls_events", "TLS plaintext events read from the probes' ring.",
                          tls.get("events", 0))  # fmt: skip
            yield counter("tls_entries", "Entries made from TLS plaintext.", tls.get("entries", 0))
            yield gauge("tls_processes", "Processes of targeted pods with libssl probed.",
                        tls.get("targeted_processes", 0))  # fmt: skip
            lost = CounterMetricFamily(
                "kubeweir_sniffer_tls_dropped_bytes",
                "TLS plaintext bytes dropped: no socket found for the SSL stream, or more "
                "held back than the per-stream bound while waiting for one.",
                labels=["reason"],
            )
            lost.add_metric(["unresolved"], tls.get("unresolved_dropped_bytes", 0))
            lost.add_metric(["held_overflow"], tls.get("held_overflow_bytes", 0))
            yield lost
        if a.watcher is not None:
            yield counter("pod_relists", "Full pod lists (start, 410 Gone).", a.watcher.relists)
            yield counter("pod_watch_errors", "Failed pod watches.", a.watcher.watch_errors)


def _parse_hints(values: tuple[str, ...]) -> dict[int, str]:
    hints: dict[int, str] = {}
    for v in values:
        port, sep, name = v.partition("=")
        if not sep or not port.strip().isdigit() or not name.strip():
            raise click.BadParameter(f"{v!r}: expected PORT=PROTOCOL", param_hint="--port-hint")
        hints[int(port)] = name.strip()
    return hints


@click.command("sniff")
@click.option("--hub", help="Hub base URL (https://...).")
@click.option("--ca-file", type=click.Path(dir_okay=False, path_type=Path),
              help="CA bundle of the hub's certificate.")  # fmt: skip
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Bearer token file (projected ServiceAccount token).")  # fmt: skip
@click.option("--node", help="This node's name (default: $NODE_NAME or the hostname).")
@click.option("--targeting", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML targeting rules, re-read when changed.")  # fmt: skip
@click.option("--capture", type=click.Choice(["afpacket", "ebpf", "auto"]))
@click.option("--interface", help="Device to capture on (default: any).")
@click.option("--spool-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--spool-max-bytes", type=int)
@click.option("--kubeconfig", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--in-cluster", is_flag=True, default=None,
              help="Watch pods with the pod's ServiceAccount.")  # fmt: skip
@click.option("--listen", help="host:port for /healthz, /readyz, /metrics.")
@click.option("--workers", type=click.IntRange(1, 64),
              help="Capture worker processes (flow-hash fanout); default 1.")  # fmt: skip
@click.option("--tls", is_flag=True, default=None,
              help="Also read TLS plaintext (OpenSSL uprobes; see sniffer.tls).")  # fmt: skip
@click.option("--port-hint", "port_hints", multiple=True, help="PORT=PROTOCOL (repeatable).")
@click.option("--log-level", default="info", show_default=True)
def sniff(log_level: str, port_hints: tuple[str, ...], **flags: Any) -> None:
    """Capture the targeted pods of this node and ship their API calls to the hub.

    Settings come from KUBEWEIR_SNIFFER_* environment variables; flags override them.
    The shared token (standalone mode) is KUBEWEIR_SNIFFER_TOKEN, never a flag.
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides = {k: v for k, v in flags.items() if v is not None}
    if port_hints:
        overrides["port_hints"] = _parse_hints(port_hints)
    try:
        settings = SnifferSettings(**overrides)
        agent = Agent(settings)
    except Exception as exc:  # noqa: BLE001 - every start-up failure gets a clear message
        raise click.ClickException(str(exc)) from exc
    click.echo(f"kubeweir sniffer on node {settings.node} → {settings.hub}", err=True)
    try:
        agent.run()
    except Exception as exc:  # noqa: BLE001
        raise click.ClickException(str(exc)) from exc
