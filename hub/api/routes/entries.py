"""``GET /api/v1/entries`` (newest first, keyset cursor) and ``GET /api/v1/entries/{id}``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel

from hub.api.deps import (
    CurrentViewer,
    EntryFilterDep,
    SettingsDep,
    StorageDep,
    compile_filter,
    get_metrics,
)
from hub.core.config import Settings
from hub.core.security import BadToken, cursor_signer, load_signed
from hub.metrics import HubMetrics
from hub.scope import VIEW_BODIES
from hub.storage.rows import row_to_entry

router = APIRouter(tags=["entries"])

_EPOCH = datetime(1970, 1, 1)


class EntryPage(BaseModel):
    entries: list[dict[str, Any]]
    """Entry JSON without bodies (and without headers unless the viewer may view bodies)."""
    next_cursor: str | None
    """Pass as ``cursor`` for the next (older) page; null when there is none."""


def encode_cursor(settings: Settings, ts: datetime, entry_id: str) -> str:
    us = (ts - _EPOCH) // timedelta(microseconds=1)
    return str(cursor_signer(settings).dumps([us, entry_id]))


def decode_cursor(settings: Settings, cursor: str) -> tuple[datetime, str]:
    try:
        data = load_signed(cursor_signer(settings), cursor)
        us, entry_id = data
        if not isinstance(us, int) or not isinstance(entry_id, str):
            raise ValueError
        return _EPOCH + timedelta(microseconds=us), entry_id
    except (BadToken, ValueError, TypeError, OverflowError) as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="invalid cursor (not issued by this hub)"
        ) from exc


@router.get("/entries", response_model=EntryPage, summary="Entries matching a filter")
def list_entries(
    f: EntryFilterDep,
    storage: StorageDep,
    settings: SettingsDep,
    metrics: Annotated[HubMetrics, Depends(get_metrics)],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> EntryPage:
    """Newest first. ``q`` is CEL; ``from``/``to`` are RFC 3339 or epoch seconds."""
    after = decode_cursor(settings, cursor) if cursor else None
    limit = min(limit, settings.page_max)
    with metrics.query_seconds.labels("entries").time():
        rows = storage.page(f.where, limit, after)
    headers = f.viewer.may(VIEW_BODIES)
    entries = [row_to_entry(r, with_bodies=False, with_headers=headers) for r in rows]
    next_cursor = None
    if len(rows) == limit:
        last = rows[-1]
        next_cursor = encode_cursor(settings, last["ts"], last["id"])
    return EntryPage(entries=entries, next_cursor=next_cursor)


@router.get(
    "/entries/{entry_id}",
    response_model=dict[str, Any],
    summary="One entry",
    responses={404: {"description": "no such entry in the viewer's scope"}},
)
def get_entry(entry_id: str, viewer: CurrentViewer, storage: StorageDep) -> dict[str, Any]:
    """The full entry; bodies and headers only for viewers with ``view-bodies``."""
    f = compile_filter(viewer, storage.table, "")
    row = storage.get(entry_id, f.where)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such entry")
    may = viewer.may(VIEW_BODIES)
    return row_to_entry(row, with_bodies=may, with_headers=may)
