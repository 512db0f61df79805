"""``kubeweir read FILE``: parse a pcap/pcapng file into entries on stdout.

Entries stream out while the file is read (NDJSON, one per line, or an aligned table).
On stderr: a progress bar when stderr is a terminal, damage found in the file (with its
byte offset), and the final counters. Exit status is non-zero only when nothing could be
read.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

import click
import msgspec

from kubeweir.entry import Entry, entry_to_json
from sniffer.capture import CaptureError, CaptureReader, open_capture
from sniffer.pipeline import Pipeline, PipelineSettings

__all__ = ["read", "format_counters", "table_header", "table_row"]

PROGRESS_EVERY = 4096
_WRITE_BLOCK = 1 << 16
_ENCODER = msgspec.json.Encoder()
"""Encodes as ``entry_to_json`` does (a default ``msgspec.json.Encoder``)."""


def _port_hints(values: tuple[str, ...]) -> dict[int, str]:
    hints: dict[int, str] = {}
    for v in values:
        port, sep, name = v.partition("=")
        if not sep or not port.strip().isdigit() or not name.strip():
            raise click.BadParameter(f"{v!r}: expected PORT=PROTOCOL, e.g. 29518=http2")
        p = int(port)
        if not 0 < p < 65536:
            raise click.BadParameter(f"{v!r}: port out of range")
        hints[p] = name.strip()
    return hints


def _redactor(enabled: bool, config: str | None = None) -> Callable[[Entry], Entry] | None:
    if not enabled:
        return None
    import redaction

    try:
        engine = (
            redaction.Engine(redaction.load_config(config))
            if config
            else redaction.default_engine()
        )
    except redaction.RedactionConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--redaction-config") from exc
    apply: Callable[[Entry], Entry] = engine.apply
    return apply


def table_header() -> str:
    return (
        f"{'TIME (UTC)':<23} {'PROTO':<8} {'SOURCE':<28} {'DESTINATION':<28} "
        f"{'ELAPSED':>9}  SUMMARY"
    )


def table_row(e: Entry) -> str:
    t = datetime.fromtimestamp(e.ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
    src = f"{_host(e.src.ip)}:{e.src.port}"
    dst = f"{_host(e.dst.ip)}:{e.dst.port}"
    el = "" if e.elapsed is None else f"{e.elapsed * 1000:.1f}ms"
    summary = e.summary
    if e.error:
        summary = f"{summary}  [{e.error}]" if summary else f"[{e.error}]"
    if e.gaps:
        summary += f"  [gap {e.gaps} B]"
    return f"{t:<23} {e.proto:<8} {src:<28} {dst:<28} {el:>9}  {summary}"


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def format_counters(c: dict[str, int]) -> str:
    bounds = {k[6:]: v for k, v in c.items() if k.startswith("bound_") and v}
    parts = [
        f"packets {c.get('packets', 0)}",
        f"flows {c.get('flows', 0)}",
        f"entries {c.get('entries', 0)}",
        f"parse errors {c.get('parse_errors', 0)}",
        f"gaps {c.get('gaps', 0)} ({c.get('gap_bytes', 0)} B)",
        "bound hits "
        + (", ".join(f"{k} {v}" for k, v in sorted(bounds.items())) if bounds else "none"),
    ]
    extra = [
        f"{k.replace('_', ' ')} {c[k]}"
        for k in ("retransmissions", "out_of_order", "malformed", "parser_bugs")
        if c.get(k)
    ]
    return "  ".join(parts + extra)


def _records(reader: CaptureReader, tick: Callable[[int], None] | None) -> Iterable[Any]:
    if tick is None:
        return reader  # no generator in between on the hot path
    return _ticking(reader, tick)


def _ticking(reader: CaptureReader, tick: Callable[[int], None]) -> Iterator[Any]:
    n = 0
    for rec in reader:
        yield rec
        n += 1
        if n == PROGRESS_EVERY:
            n = 0
            tick(reader.offset)
    tick(reader.size)


def _write_all(
    entries: Iterator[Entry], out: IO[bytes], fmt: str, flush_each: bool, header: bool = True
) -> None:
    if fmt == "table":
        if header:
            out.write(table_header().encode() + b"\n")
        for e in entries:
            out.write(table_row(e).encode() + b"\n")
            if flush_each:
                out.flush()
        return
    if flush_each:
        for e in entries:
            out.write(entry_to_json(e) + b"\n")
            out.flush()
        return
    # the same bytes as entry_to_json per line, encoded into one buffer written in blocks
    encode_into = _ENCODER.encode_into
    write = out.write
    buf = bytearray()
    whole = 0  # bytes of buf that are whole lines
    try:
        for e in entries:
            encode_into(e, buf, -1)
            buf.append(10)
            whole = len(buf)
            if whole >= _WRITE_BLOCK:
                write(buf)
                buf.clear()
                whole = 0
    except BaseException:
        del buf[whole:]  # an entry that failed to encode left half a line and spare bytes
        raise
    finally:
        if buf:  # what was encoded still goes out, even if reading failed
            write(buf)


@click.command(help="Parse a pcap/pcapng FILE into entries (NDJSON or a table) on stdout.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ndjson", "table"]),
    default="ndjson",
    show_default=True,
    help="One JSON entry per line, or aligned columns for people.",
)
@click.option(
    "--port-hint",
    "port_hints",
    multiple=True,
    metavar="PORT=PROTO",
    help="Treat PORT as PROTO when content alone does not tell (repeatable), "
    "e.g. --port-hint 29518=http2.",
)
@click.option("--no-redact", is_flag=True, help="Do not apply the default redaction rules.")
@click.option(
    "--redaction-config",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="YAML file of redaction rules (defaults, disable, rules, namespaces) instead of "
    "the built-in defaults.",
)
@click.option("--node", default="", help="Node name to put on the entries.")
@click.option(
    "--to-hub",
    metavar="URL",
    default=None,
    help="Send the entries to this hub (POST /api/v1/ingest) instead of stdout.",
)
@click.option(
    "--token",
    envvar="KUBEWEIR_INGEST_TOKEN",
    default=None,
    help="The hub's ingest token for --to-hub (or $KUBEWEIR_INGEST_TOKEN).",
)
@click.option(
    "--jobs",
    "-j",
    default="auto",
    show_default=True,
    metavar="N|auto",
    help="Worker processes, each reading the file and parsing its share of the "
    "connections (auto: the CPUs idle at the start, at most 4, for a regular file of "
    "4 MiB or more, else 1). Entries of one connection keep their order; different "
    "connections may interleave differently from --jobs 1.",
)
def read(
    file: str,
    fmt: str,
    port_hints: tuple[str, ...],
    no_redact: bool,
    redaction_config: str | None,
    node: str,
    to_hub: str | None,
    token: str | None,
    jobs: str,
) -> None:
    from sniffer.read_jobs import CpuWatch, auto_jobs

    watch = CpuWatch()  # --jobs auto: how busy the CPUs are, measured over the set-up
    if to_hub and not token:
        raise click.UsageError("--to-hub needs --token (or $KUBEWEIR_INGEST_TOKEN)")
    asked = _jobs(jobs, file, to_hub is not None)
    hints = _port_hints(port_hints)
    redact = _redactor(not no_redact, redaction_config)
    try:
        settings = PipelineSettings(port_hints=hints, node=node, redact=redact)
        pipe = Pipeline(settings)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--port-hint") from exc
    n_jobs = asked if asked is not None else auto_jobs(file, watch)
    err = sys.stderr
    try:
        reader = open_capture(file)
    except CaptureError as exc:
        click.echo(f"kubeweir read: {file}: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"kubeweir read: {exc}", err=True)
        sys.exit(2)
    out = sys.stdout.buffer
    flush_each = out.isatty()
    # what is loaded now lives to the end: the collector need not walk it again and again
    gc.freeze()
    started = time.monotonic()
    progress: Any = None
    tick: Callable[[int], None] | None = None
    if err.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        task = progress.add_task("reading", total=reader.size)

        def _tick(offset: int) -> None:
            progress.update(task, completed=offset)

        tick = _tick

    if n_jobs > 1:
        reader.close()  # each worker opens the file itself
        _read_jobs(file, settings, n_jobs, fmt, out, flush_each, tick, progress, started)
        return
    if progress is not None:
        progress.start()
    try:
        with reader:
            if to_hub:
                from hub.client import HubError, ship

                try:
                    shipped = ship(
                        pipe.run(_records(reader, tick)), to_hub, token or "", sniffer=node
                    )
                except (HubError, OSError) as exc:
                    raise click.ClickException(f"--to-hub {to_hub}: {exc}") from exc
                click.echo(
                    f"kubeweir read: hub stored {shipped.accepted} entries "
                    f"({shipped.duplicates} already there) in {shipped.batches} batches",
                    err=True,
                )
            else:
                _write_all(pipe.run(_records(reader, tick)), out, fmt, flush_each)
                out.flush()
    except BrokenPipeError:  # `kubeweir read f | head`
        sys.stderr.close()
        sys.exit(0)
    finally:
        if progress is not None:
            progress.stop()
    _report(file, reader.errors, pipe.counters, reader.records, started)


def _report(
    file: str,
    errors: list[CaptureError],
    counters: dict[str, int],
    records: int,
    started: float,
    more: str = "",
) -> None:
    """The end of a read on stderr: damage found in the file, the counters; exit 1 when
    nothing could be read."""
    for e in errors:
        click.echo(f"kubeweir read: {file}: {e}", err=True)
    secs = time.monotonic() - started
    click.echo(f"kubeweir read: {format_counters(counters)}  ({secs:.2f} s{more})", err=True)
    if records == 0 and errors:
        click.echo(f"kubeweir read: {file}: nothing could be read", err=True)
        sys.exit(1)


def _jobs(value: str, file: str, to_hub: bool) -> int | None:
    """--jobs checked; None: auto, decided once the set-up is done."""
    if value.strip().lower() == "auto":
        return 1 if to_hub else None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise click.BadParameter(f"{value!r}: a number of processes (1 or more) or auto",
                                 param_hint="--jobs")  # fmt: skip
    if to_hub and n > 1:
        raise click.BadParameter("--to-hub reads with one process", param_hint="--jobs")
    if n > 1 and os.path.exists(file) and not os.path.isfile(file):
        raise click.BadParameter(
            f"{n} processes each read the file: {file} is not a regular file (use --jobs 1)",
            param_hint="--jobs",
        )
    return n


def _read_jobs(
    file: str,
    settings: PipelineSettings,
    jobs: int,
    fmt: str,
    out: IO[bytes],
    flush_each: bool,
    tick: Callable[[int], None] | None,
    progress: Any,
    started: float,
) -> None:
    from sniffer.read_jobs import WorkerFailed, read_with_jobs

    def write(entries: Iterator[Entry], sink: Any) -> None:
        _write_all(entries, sink, fmt, flush_each, header=False)

    try:
        if fmt == "table":
            out.write(table_header().encode() + b"\n")
        result = read_with_jobs(
            file,
            settings,
            jobs,
            write,
            out,
            flush_each=flush_each,
            tick=tick,
            before_start=progress.start if progress is not None else None,
        )
        out.flush()
    except BrokenPipeError:  # `kubeweir read f | head`: the workers are stopped
        sys.stderr.close()
        sys.exit(0)
    except WorkerFailed as exc:
        click.echo(f"kubeweir read: {file}: {exc}", err=True)
        sys.exit(1)
    finally:
        if progress is not None:
            progress.stop()
    rss = f"; jobs {jobs}, peak RSS summed over the processes {result.rss_kib / 1024:.0f} MiB"
    _report(file, result.errors, result.counters, result.records, started, rss)
