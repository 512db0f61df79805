"""The live sniffer's per-request CPU, in-process: a paced wrk → nginx run's frames replayed
through the same code the agent's threads run, by stage, in CPU time.

    # once, as root: record the frames of a paced wrk run between two netns pods
    .venv/bin/python -m benchmarks.sniffer_replay --record /tmp/wrk-paced.pcap
    # then, as often as wanted (no root, no network; CPU time, so a busy machine is fine)
    .venv/bin/python -m benchmarks.sniffer_replay /tmp/wrk-paced.pcap [--rounds 3] [--profile]

Recording: a test node (netns pods on a bridge), Debian's nginx-light in one pod, wrk in
another (-t1, keep-alive, each connection paced by a Lua ``delay()`` of 1 ms, as
``benchmarks.live_capture`` runs it), frames read from the AF_PACKET TPACKET_V3 ring with
the target filter and written as a LINKTYPE_RAW pcap — exactly what the live capture
thread is handed.

Replay, with the sniffer's GC settings (``sniffer.agent.tune_gc``) and the default
redaction rules, stage by stage as the agent's threads run them:

- **capture**: the capture thread's loop — frames in ring-block-sized chunks into
  ``Pipeline.feed``, then ``Pipeline.take`` and ``Shipper.add`` after each chunk;
- **sealer**: ``Shipper`` cuts batches of 5,000 entries, encodes (msgpack), compresses
  (zstd) and writes them durably to a ``Spool`` in a temporary directory, then the
  entries are freed (as the sealer frees them).

Prints µs per request (= per entry: one HTTP exchange each) for each stage, the best of
``--rounds`` (each round a fresh Pipeline/Shipper), and with ``--profile`` the top of a
cProfile of one round.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

PACE_MS = 1
CHUNK = 1000
"""Frames per hand-off: a 256 KiB ring block holds about a thousand of these frames."""
GC_STEP_ENTRIES = 20_000
"""Entries between two timed collections in the replay (the sniffer's timer: 1 s)."""


def record(path: Path, conns: int = 30, secs: int = 3) -> int:
    """Frames of a paced wrk run (AF_PACKET ring, target filter) into ``path``."""
    from kubeweir.pcapgen import write_pcap
    from sniffer.sources.afpacket import AfPacketSource
    from sniffer.testing.node import TestNode, cleanup_leftovers, require_root

    reason = require_root()
    if reason:
        raise SystemExit(f"recording {reason}")
    cleanup_leftovers()
    frames: list[tuple[float, bytes]] = []
    with TemporaryDirectory() as td, TestNode("node-a") as node:
        pace = Path(td) / "pace.lua"
        pace.write_text(f"function delay()\n  return {PACE_MS}\nend\n")
        server = node.add_pod("nginx", "bench", {"app": "nginx"})
        client = node.add_pod("wrk", "bench", {"app": "wrk"})
        server.nginx(80)
        src = AfPacketSource()
        try:
            src.set_targets([server.ip])
            proc = client.popen("wrk", "-t1", f"-c{conns}", f"-d{secs}s", "-s", str(pace),
                                f"http://{server.ip}/")  # fmt: skip
            end = time.monotonic() + secs + 1.5
            while time.monotonic() < end:
                src.dispatch(lambda ts, lt, fr: frames.append((ts, bytes(fr))), 0.1)
            proc.wait(timeout=30)
        finally:
            src.close()
    write_pcap(path, frames, link="raw", nanosecond=True)
    return len(frames)


def load(path: Path) -> list[tuple[float, int, bytes]]:
    from sniffer.capture import open_capture

    with open_capture(path) as reader:
        return [(ts, lt, bytes(fr)) for ts, lt, fr in reader]


def _parts(spool_dir: Path, redact: bool = True) -> tuple[Any, Any]:
    import redaction
    from sniffer.pipeline import Pipeline, PipelineSettings
    from sniffer.shipper import Shipper, ShipperConfig
    from sniffer.spool import Spool

    info = {"pod": "nginx", "namespace": "bench", "labels": {"app": "nginx"}}
    pipe = Pipeline(PipelineSettings(redact=redaction.default_engine().apply if redact else None,
                                     endpoint_info=lambda ip: info, node="node-a"))  # fmt: skip
    # never started: its threads' work is called directly below
    shipper = Shipper(ShipperConfig(hub_url="https://127.0.0.1:1", node="node-a"),
                      Spool(spool_dir), lambda: "")  # fmt: skip
    return pipe, shipper


def replay(pipe: Any, shipper: Any, frames: list[tuple[float, int, bytes]],
           timed_gc: bool) -> dict[str, float]:  # fmt: skip
    """The capture thread's work on these frames (``Agent._capture``: frames in ring-block
    chunks, then ``take`` and ``Shipper.add``), with the sealer's (``Shipper._cut``,
    ``_seal``, ``Spool.put``, the entries freed) done whenever a full batch is queued, as
    at these rates. With ``timed_gc`` the sniffer's timed collections (``gc_step``) come
    every ``GC_STEP_ENTRIES`` entries (a second at 20,000 requests/s). CPU seconds of each."""

    feed = pipe.feed
    take = pipe.take
    add = shipper.add
    full = shipper.config.max_batch_entries
    clock = time.process_time
    capture = sealer = collect = 0.0
    batches = entries = steps = made = 0
    for i in range(0, len(frames) + CHUNK, CHUNK):
        t0 = clock()
        if i < len(frames):
            for ts, lt, fr in frames[i : i + CHUNK]:
                feed(ts, lt, fr)
        else:
            pipe.close()
        out = take()
        if out:
            add(out)
            made += len(out)
        t1 = clock()
        capture += t1 - t0
        if timed_gc and made >= (steps + 1) * GC_STEP_ENTRIES:
            from sniffer.agent import gc_step  # (absent before the timed collector)

            steps += 1
            gc_step(steps)
            t2 = clock()
            collect += t2 - t1
            t1 = t2
        while shipper.queued >= full or (i >= len(frames) and shipper.queued):
            batch, body = shipper._cut()
            shipper.spool.put(shipper._seal(body), len(batch))
            entries += len(batch)
            del batch  # the entries are freed here, as in the sealer thread
            batches += 1
        sealer += clock() - t1
    return {"capture": capture, "sealer": sealer, "gc": collect, "entries": entries,
            "batches": batches}  # fmt: skip


def one_round(frames: list[tuple[float, int, bytes]], redact: bool = True,
              timed_gc: bool = True) -> dict[str, float]:  # fmt: skip
    with TemporaryDirectory() as td:
        pipe, shipper = _parts(Path(td), redact)
        gc.collect()
        gc.freeze()
        r = replay(pipe, shipper, frames, timed_gc)
        gc.unfreeze()
    n = max(1, r["entries"])
    return {"entries": n, "batches": r["batches"], "capture": r["capture"] / n * 1e6,
            "sealer": r["sealer"] / n * 1e6, "gc": r["gc"] / n * 1e6}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap", type=Path, nargs="?")
    ap.add_argument("--record", type=Path, help="record a paced wrk run into this pcap")
    ap.add_argument("--conns", type=int, default=30)
    ap.add_argument("--secs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile one round")
    ap.add_argument("--no-redact", action="store_true", help="without the redaction engine")
    ap.add_argument("--frames", type=int, default=0, help="only the first N frames")
    ap.add_argument(
        "--gc",
        choices=("timed", "thresholds"),
        default="timed",
        help="the sniffer's collector: timed (now) or by thresholds (before)",
    )
    args = ap.parse_args()
    if args.record is not None:
        n = record(args.record, args.conns, args.secs)
        print(f"{n} frames written to {args.record}", file=sys.stderr)  # noqa: T201
        return
    if args.pcap is None:
        ap.error("a pcap to replay, or --record PATH")
    from sniffer.agent import GC_THRESHOLDS

    frames = load(args.pcap)
    if args.frames:
        frames = frames[: args.frames]
    # as sniffer.agent.tune_gc, without its timer thread (collections come by entries here)
    gc.collect()
    gc.freeze()
    timed = args.gc == "timed"
    if timed:
        gc.disable()
    else:
        gc.set_threshold(*GC_THRESHOLDS)
    if args.rounds == 0:  # a baseline for instruction counts: loading and set-up only
        one_round([], not args.no_redact, timed)
        return
    rounds = [one_round(frames, not args.no_redact, timed) for _ in range(args.rounds)]
    best = {k: min(r[k] for r in rounds) for k in ("capture", "sealer", "gc")}
    r0 = rounds[0]
    native = "compiled" if _compiled() else "pure"
    print(f"{args.pcap.name}: {len(frames):,} frames, {int(r0['entries']):,} entries, "  # noqa: T201
          f"{int(r0['batches'])} batches; {native}; load {os.getloadavg()[0]:.1f}\n"
          f"µs per request (best of {args.rounds}): capture {best['capture']:.1f}, "
          f"sealer {best['sealer']:.1f}, gc {best['gc']:.1f}, "
          f"total {best['capture'] + best['sealer'] + best['gc']:.1f}\n"
          f"rounds: " + "; ".join(f"{r['capture']:.1f} + {r['sealer']:.1f} + {r['gc']:.1f}"
                                  for r in rounds))  # fmt: skip
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        one_round(frames, not args.no_redact, timed)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)


def _compiled() -> bool:
    import sniffer.pipeline

    return not str(sniffer.pipeline.__file__).endswith(".py")


if __name__ == "__main__":
    main()
