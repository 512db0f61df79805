"""``/healthz``, ``/readyz`` and ``/metrics`` (no identity needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.ingest import ConversionPool
from hub.metrics import HubMetrics
from hub.storage.base import Storage

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Storage answers and the ingest workers are up",
    responses={503: {"description": "not ready"}},
)
def readyz(request: Request) -> Response:
    storage: Storage | None = getattr(request.app.state, "storage", None)
    if storage is None or not storage.ready():
        return JSONResponse({"status": "not ready"}, status_code=503)
    pool: ConversionPool | None = getattr(request.app.state, "ingest_pool", None)
    if pool is not None and not pool.ready():
        return JSONResponse({"status": "ingest workers starting"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    m: HubMetrics = request.app.state.metrics
    storage: Storage = request.app.state.storage
    if storage.ready():
        m.stored_entries.set(storage.count())
        m.storage_bytes.set(storage.size_bytes())
        m.retention_deleted.set(getattr(storage, "retention_deleted", 0))
        m.ingest_writes.set(getattr(storage, "writes", 0))
        m.ingest_written_batches.set(getattr(storage, "written_batches", 0))
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
