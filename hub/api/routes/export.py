"""``GET /api/v1/export.har`` and ``GET /api/v1/export.pcap`` of the matching entries."""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response

from hub.api.deps import EntryFilterDep, SettingsDep, StorageDep
from hub.export import entries_to_har, entries_to_pcap
from hub.scope import DOWNLOAD_PCAP, EXPORT, VIEW_BODIES
from hub.storage.rows import row_to_entry

router = APIRouter(tags=["export"])

Limit = Annotated[int | None, Query(ge=1, description="at most this many (oldest first)")]


@router.get(
    "/export.har",
    summary="Matching HTTP entries as HAR 1.2",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}},
        403: {"description": "the viewer may not export"},
    },
)
def export_har(
    f: EntryFilterDep, storage: StorageDep, settings: SettingsDep, limit: Limit = None
) -> Response:
    """Needs the ``export`` permission; headers and bodies only with ``view-bodies``."""
    if not f.viewer.may(EXPORT):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="export permission needed")
    may = f.viewer.may(VIEW_BODIES)
    n = min(limit or settings.export_max, settings.export_max)
    rows = storage.iter_rows(f.where, n, with_bodies=may)
    har = entries_to_har(row_to_entry(r, with_bodies=may, with_headers=may) for r in rows)
    return Response(
        msgspec.json.encode(har),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="kubeweir.har"'},
    )


@router.get(
    "/export.pcap",
    summary="Matching HTTP/1.x and DNS entries re-synthesized as PCAP",
    response_class=Response,
    responses={
        200: {"content": {"application/vnd.tcpdump.pcap": {}}},
        403: {"description": "the viewer may not download PCAP"},
    },
)
def export_pcap(
    f: EntryFilterDep, storage: StorageDep, settings: SettingsDep, limit: Limit = None
) -> Response:
    """Needs ``download-pcap``; headers and bodies only with ``view-bodies``."""
    if not f.viewer.may(DOWNLOAD_PCAP):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="download-pcap permission needed")
    may = f.viewer.may(VIEW_BODIES)
    n = min(limit or settings.export_max, settings.export_max)
    rows = storage.iter_rows(f.where, n, with_bodies=may)
    data, count = entries_to_pcap(row_to_entry(r, with_bodies=may, with_headers=may) for r in rows)
    return Response(
        data,
        media_type="application/vnd.tcpdump.pcap",
        headers={
            "Content-Disposition": 'attachment; filename="kubeweir.pcap"',
            "X-Kubeweir-Entries": str(count),
        },
    )
