"""``GET /api/v1/whoami`` and ``GET /api/v1/status``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from hub.api.deps import CurrentViewer, get_sniffers
from hub.sniffers import SnifferRegistry, SnifferStatus

router = APIRouter(tags=["viewer"])


class WhoAmI(BaseModel):
    name: str
    namespaces: list[str]
    permissions: list[str]


@router.get("/whoami", response_model=WhoAmI, summary="The current viewer and its scope")
def whoami(viewer: CurrentViewer) -> WhoAmI:
    return WhoAmI(
        name=viewer.name,
        namespaces=list(viewer.namespaces),
        permissions=sorted(viewer.permissions),
    )


class Status(BaseModel):
    sniffers: list[SnifferStatus]


@router.get("/status", response_model=Status, summary="Sniffers and what they last reported")
def hub_status(
    viewer: CurrentViewer, sniffers: Annotated[SnifferRegistry, Depends(get_sniffers)]
) -> Status:
    return Status(sniffers=[SnifferStatus(**s) for s in sniffers.snapshot()])
