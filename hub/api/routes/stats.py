"""``GET /api/v1/stats`` and ``GET /api/v1/servicemap``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from hub.api.deps import EntryFilterDep, StorageDep, get_metrics
from hub.metrics import HubMetrics

router = APIRouter(tags=["stats"])

Metrics = Annotated[HubMetrics, Depends(get_metrics)]


class Stats(BaseModel):
    total: int
    by_proto: dict[str, int]
    by_status_class: dict[str, int]
    """``2xx``, ``4xx``, ... and ``none`` for entries without a status."""
    by_namespace: dict[str, int]
    """By destination namespace (the source's when the destination has none)."""


@router.get("/stats", response_model=Stats, summary="Counts over a window")
def stats(f: EntryFilterDep, storage: StorageDep, metrics: Metrics) -> Stats:
    with metrics.query_seconds.labels("stats").time():
        return Stats(**storage.stats(f.where))


class MapNode(BaseModel):
    id: str
    """``namespace/workload``."""
    namespace: str
    workload: str
    count: int


class MapEdge(BaseModel):
    source: str
    target: str
    count: int
    errors: int
    """Entries with status >= 500 or an error."""
    error_rate: float
    rate: float
    """Entries per second over the window."""
    p50: float | None
    p95: float | None
    p99: float | None
    """Latencies in seconds."""


class ServiceMap(BaseModel):
    nodes: list[MapNode]
    edges: list[MapEdge]


@router.get("/servicemap", response_model=ServiceMap, summary="Workload-to-workload edges")
def servicemap(f: EntryFilterDep, storage: StorageDep, metrics: Metrics) -> ServiceMap:
    with metrics.query_seconds.labels("servicemap").time():
        rows = storage.servicemap(f.where)
    if not rows:
        return ServiceMap(nodes=[], edges=[])
    first = f.start or min(r["first"] for r in rows)
    last = f.end or max(r["last"] for r in rows)
    span = max((last - first).total_seconds(), 1.0)
    nodes: dict[str, dict[str, Any]] = {}
    edges = []
    for r in rows:
        src = f"{r['source_namespace']}/{r['source_workload']}"
        dst = f"{r['target_namespace']}/{r['target_workload']}"
        for nid, ns, wl in (
            (src, r["source_namespace"], r["source_workload"]),
            (dst, r["target_namespace"], r["target_workload"]),
        ):
            node = nodes.setdefault(nid, {"id": nid, "namespace": ns, "workload": wl, "count": 0})
            node["count"] += r["count"]
        if src == dst:
            nodes[src]["count"] -= r["count"]  # a self-edge counts once
        edges.append(
            MapEdge(
                source=src,
                target=dst,
                count=r["count"],
                errors=r["errors"],
                error_rate=r["errors"] / r["count"] if r["count"] else 0.0,
                rate=r["count"] / span,
                p50=r["p50"],
                p95=r["p95"],
                p99=r["p99"],
            )
        )
    return ServiceMap(nodes=[MapNode(**n) for n in nodes.values()], edges=edges)
