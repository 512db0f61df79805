"""``POST /api/v1/ingest`` (sniffer batches) and ``POST /api/v1/sniffers/heartbeat``."""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import zstandard
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from hub.api.deps import SnifferCredential, get_sniffers
from hub.api.routes.targeting import TargetingState, get_targeting
from hub.core.config import Settings, get_settings
from hub.enrich import Enricher
from hub.metrics import HubMetrics
from hub.sniffers import Heartbeat, SnifferRegistry
from hub.storage.base import IngestResult, Storage
from hub.storage.rows import BatchError, batch_to_arrow, gc_paused
from hub.stream import Broadcaster
from kubeweir.entry import SCHEMA_VERSION, Batch, Entry, decode_batch

router = APIRouter(tags=["ingest"])


class IngestResponse(BaseModel):
    accepted: int
    """Entries stored now."""
    duplicates: int
    """Entries already stored (or repeated in the batch), skipped."""


class _Refused(Exception):
    def __init__(self, code: int, reason: str, label: str) -> None:
        super().__init__(reason)
        self.code, self.reason, self.label = code, reason, label


def _too_large(what: str, limit: int) -> _Refused:
    return _Refused(
        status.HTTP_413_CONTENT_TOO_LARGE, f"{what} is over the limit of {limit} bytes", "size"
    )


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body decoded per Content-Encoding, never more than ``limit`` bytes out."""
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        d = zlib.decompressobj(wbits=31)
        try:
            out = d.decompress(body, limit + 1)
        except zlib.error as exc:
            raise _Refused(400, f"malformed gzip body: {exc}", "gzip") from exc
        if len(out) > limit or d.unconsumed_tail:
            raise _too_large("the decompressed batch", limit)
        if not d.eof:
            raise _Refused(400, "malformed gzip body: truncated", "gzip")
        return out
    if encoding == "zstd":
        try:
            with zstandard.ZstdDecompressor().stream_reader(
                io.BytesIO(body), read_across_frames=True
            ) as reader:
                out = reader.read(limit + 1)
        except zstandard.ZstdError as exc:
            raise _Refused(400, f"malformed zstd body: {exc}", "zstd") from exc
        if len(out) > limit:
            raise _too_large("the decompressed batch", limit)
        return out
    raise _Refused(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        f"unsupported Content-Encoding {encoding!r}: use zstd, gzip or none",
        "encoding",
    )


def _decode(data: bytes, settings: Settings) -> Batch:
    try:
        batch = decode_batch(data)
    except msgspec.ValidationError as exc:
        # A batch of another schema version may fail validation: name both versions.
        v = _peek_version(data)
        if v is not None and v != SCHEMA_VERSION:
            raise _version_refused(v) from exc
        raise _Refused(400, f"batch does not match the entry schema: {exc}", "schema") from exc
    except msgspec.DecodeError as exc:
        raise _Refused(400, f"malformed msgpack batch: {exc}", "msgpack") from exc
    if batch.v != SCHEMA_VERSION:
        raise _version_refused(batch.v)
    if len(batch.entries) > settings.max_batch_entries:
        raise _Refused(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"batch has {len(batch.entries)} entries, over the limit of "
            f"{settings.max_batch_entries}",
            "size",
        )
    return batch


class _Version(msgspec.Struct):
    v: int


def _peek_version(data: bytes) -> int | None:
    try:
        return msgspec.msgpack.decode(data, type=_Version).v
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _version_refused(v: int) -> _Refused:
    return _Refused(
        400,
        f"batch schema version {v} is not supported: this hub speaks version {SCHEMA_VERSION}",
        "version",
    )


def _store(
    body: bytes,
    encoding: str,
    settings: Settings,
    storage: Storage,
    enricher: Enricher | None,
    keep_entries: bool,
) -> tuple[str, IngestResult, list[Entry]]:
    """The batch decoded, checked, enriched, turned into the storage columns and stored.
    Returns the sniffer's name, the result, and (``keep_entries``: for live viewers) the
    entries."""
    data = decompress(body, encoding, settings.max_decompressed_bytes)
    # The cyclic collector is held from decode until the batch's ~10 containers per entry
    # (none in a cycle) are freed again: otherwise every collection while they live walks
    # them all (measured here: one young collection per batch, ~1.5 ms each, and the
    # survivors promoted into costly older collections).
    with gc_paused():
        batch = _decode(data, settings)
        if enricher is not None:
            for e in batch.entries:
                enricher.enrich(e)
        try:
            table, total = batch_to_arrow(batch.entries, keep=keep_entries)
        except BatchError as exc:
            raise _Refused(400, str(exc), "columns") from exc
        sniffer, entries = batch.sniffer, batch.entries if keep_entries else []
        del batch
    try:
        result = storage.ingest_arrow(table, total)
    except BatchError as exc:
        raise _Refused(400, str(exc), "columns") from exc
    return sniffer, result, entries


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large("the request body", limit)
        except ValueError as exc:
            raise _Refused(400, "bad Content-Length", "http") from exc
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise _too_large("the request body", limit)
    return bytes(buf)


@dataclass(frozen=True, slots=True)
class IngestContext:
    """What the ingest route works with, besides the sniffer credential."""

    settings: Settings
    storage: Storage
    metrics: HubMetrics
    sniffers: SnifferRegistry
    broadcaster: Broadcaster
    enricher: Enricher | None


async def ingest_context(request: Request) -> IngestContext:
    """The app's settings (honouring an override of ``get_settings``), storage, metrics,
    sniffer registry, broadcaster and enricher in one dependency, resolved in the event
    loop. Ingest is the hub's hot route: FastAPI runs each plain ``def`` dependency in a
    worker thread, and while any override is installed it re-inspects every dependency's
    signature on every request; six of those cost more per batch than its zstd."""
    app = request.app
    state = app.state
    get: Callable[[], Settings] = app.dependency_overrides.get(get_settings, get_settings)
    return IngestContext(
        get(), state.storage, state.metrics, state.sniffers, state.broadcaster, state.enricher
    )


IngestContextDep = Annotated[IngestContext, Depends(ingest_context)]


@router.post(
    "/ingest",
    response_model=IngestResponse,
    summary="Store a batch of entries from a sniffer",
    responses={
        400: {"description": "malformed batch, wrong schema version (reason in detail)"},
        401: {"description": "no sniffer credential"},
        403: {"description": "unknown sniffer credential"},
        413: {"description": "batch over the size limit (raw or decompressed)"},
        415: {"description": "unsupported Content-Encoding"},
    },
)
async def ingest(
    request: Request, sniffer: SnifferCredential, ctx: IngestContextDep
) -> IngestResponse:
    """A msgpack ``Batch`` (optionally ``Content-Encoding: zstd|gzip``), stored
    all-or-nothing and idempotently (entries already stored are counted as duplicates)."""
    settings, storage, metrics = ctx.settings, ctx.storage, ctx.metrics
    sniffers, broadcaster, enricher = ctx.sniffers, ctx.broadcaster, ctx.enricher
    started = time.perf_counter()
    encoding = request.headers.get("content-encoding", "").strip().lower()
    try:
        body = await _read_body(request, settings.max_batch_bytes)
        sniffer_name, result, entries = await run_in_threadpool(
            _store, body, encoding, settings, storage, enricher, len(broadcaster) > 0
        )
    except _Refused as exc:
        metrics.ingest_rejected.labels(exc.label).inc()
        raise HTTPException(exc.code, detail=exc.reason) from exc
    metrics.ingest_batches.inc()
    metrics.ingest_entries.inc(result.accepted)
    metrics.ingest_duplicates.inc(result.duplicates)
    metrics.ingest_seconds.observe(time.perf_counter() - started)
    sniffers.record_batch(sniffer_name or sniffer.name, result.accepted)
    if result.accepted and entries:
        broadcaster.publish([e for e in entries if e.id in result.new_ids])
    return IngestResponse(accepted=result.accepted, duplicates=result.duplicates)


class HeartbeatResponse(BaseModel):
    ok: bool = True
    targeting_version: int = 0
    """Version of the hub's targeting rules; 0: none set (the sniffer keeps its file's)."""
    targeting: dict[str, Any] | None = None
    """The hub's targeting rules, applied by the sniffer over its rules file."""


@router.post("/sniffers/heartbeat", response_model=HeartbeatResponse, summary="Sniffer status")
def heartbeat(
    hb: Heartbeat,
    sniffer: SnifferCredential,
    sniffers: Annotated[SnifferRegistry, Depends(get_sniffers)],
    targeting: Annotated[TargetingState, Depends(get_targeting)],
) -> HeartbeatResponse:
    """A sniffer reports its node, kernel drops, spool size and number of targets; the
    answer carries the hub's targeting rules (see ``/api/v1/targeting``)."""
    sniffers.heartbeat(hb)
    current = targeting.snapshot()
    return HeartbeatResponse(targeting_version=current["version"], targeting=current["rules"])
