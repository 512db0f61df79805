"""``POST /api/v1/ingest`` (sniffer batches) and ``POST /api/v1/sniffers/heartbeat``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from hub.api.deps import SettingsDep, SnifferCredential, get_sniffers
from hub.api.routes.targeting import TargetingState, get_targeting
from hub.core.config import Settings
from hub.enrich import Enricher
from hub.ingest import (
    ConversionPool,
    Refused,
    WorkerFailed,
    decode_entries,
    to_table,
    too_large,
)
from hub.metrics import HubMetrics
from hub.sniffers import Heartbeat, SnifferRegistry
from hub.storage.base import IngestResult, Storage
from hub.storage.rows import BatchError, gc_paused
from hub.stream import Broadcaster
from kubeweir.entry import Entry

router = APIRouter(tags=["ingest"])


class IngestResponse(BaseModel):
    accepted: int
    """Entries stored now."""
    duplicates: int
    """Entries already stored (or repeated in the batch), skipped."""


def _store(
    body: bytes,
    encoding: str,
    settings: Settings,
    storage: Storage,
    enricher: Enricher | None,
    keep_entries: bool,
) -> tuple[str, IngestResult, list[Entry]]:
    """In the hub process: the batch turned into the storage columns (``to_table``),
    enriched and stored. Returns the sniffer's name, the result, and (``keep_entries``:
    for live viewers) the entries."""
    sniffer, table, total, entries = to_table(
        body,
        encoding,
        settings.max_decompressed_bytes,
        settings.max_batch_entries,
        keep_entries=keep_entries,
    )
    _enrich(entries, enricher)
    return sniffer, _write(table, total, storage, enricher), entries


def _enrich(entries: list[Entry], enricher: Enricher | None) -> None:
    """Entries as the live viewers will see them (the table is enriched apart)."""
    if enricher is not None:
        with gc_paused():
            for e in entries:
                enricher.enrich(e)


def _viewer_entries(
    body: bytes, encoding: str, settings: Settings, enricher: Enricher | None
) -> list[Entry]:
    """A batch a worker converted, decoded again here for the live viewers (decoding
    alone is a third of the conversion)."""
    entries = decode_entries(
        body, encoding, settings.max_decompressed_bytes, settings.max_batch_entries
    )
    _enrich(entries, enricher)
    return entries


def _write(
    table: pa.Table, total: int, storage: Storage, enricher: Enricher | None
) -> IngestResult:
    """The batch's table enriched and stored."""
    if enricher is not None:
        table = enricher.enrich_table(table)
    try:
        return storage.ingest_arrow(table, total)
    except BatchError as exc:
        raise Refused(400, str(exc), "columns") from exc


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise too_large("the request body", limit)
        except ValueError as exc:
            raise Refused(400, "bad Content-Length", "http") from exc
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise too_large("the request body", limit)
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
    pool: ConversionPool | None


async def ingest_context(request: Request, settings: SettingsDep) -> IngestContext:
    """The app's settings, storage, metrics, sniffer registry, broadcaster, enricher and
    conversion pool in one dependency, resolved in the event loop (FastAPI runs each plain
    ``def`` dependency in a worker thread: six of those cost more per batch than its
    zstd)."""
    state = request.app.state
    return IngestContext(
        settings,
        state.storage,
        state.metrics,
        state.sniffers,
        state.broadcaster,
        state.enricher,
        state.ingest_pool,
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
        503: {"description": "an ingest worker process died: send the batch again"},
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
    keep_entries = len(broadcaster) > 0
    pool = ctx.pool
    counted: ConversionPool | None = None  # the pool whose ``active`` counts this batch
    try:
        body = await _read_body(request, settings.max_batch_bytes)
        if pool is not None:
            pool.active += 1
            counted = pool
        if pool is None or not pool.wanted():
            sniffer_name, result, entries = await run_in_threadpool(
                _store, body, encoding, settings, storage, enricher, keep_entries
            )
        else:
            sniffer_name, table, total = await pool.convert(
                body, encoding, settings.max_decompressed_bytes, settings.max_batch_entries
            )
            result = await run_in_threadpool(_write, table, total, storage, enricher)
            entries = []
            if keep_entries and result.accepted:
                entries = await run_in_threadpool(
                    _viewer_entries, body, encoding, settings, enricher
                )
    except Refused as exc:
        metrics.ingest_rejected.labels(exc.label).inc()
        raise HTTPException(exc.code, detail=exc.reason) from exc
    except WorkerFailed as exc:
        metrics.ingest_rejected.labels("worker").inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"{exc}; the batch was not stored, send it again",
            headers={"Retry-After": "1"},
        ) from exc
    finally:
        if counted is not None:
            counted.active -= 1
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
