"""``GET /api/v1/whoami`` and ``GET /api/v1/status``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from hub.api.deps import CurrentIdentity, CurrentViewer, get_sniffers
from hub.sniffers import SnifferRegistry, SnifferStatus

router = APIRouter(tags=["viewer"])


class WhoAmI(BaseModel):
    name: str
    namespaces: list[str]
    permissions: list[str]
    csrf: str | None = None
    """Echo it in the X-CSRF-Token header of state-changing requests (session logins)."""
    message: str = ""
    """Why the viewer sees nothing, when it has no role."""


@router.get("/whoami", response_model=WhoAmI, summary="The current viewer and its scope")
def whoami(request: Request, viewer: CurrentIdentity) -> WhoAmI:
    session = getattr(request.state, "refresh_session", None)
    message = ""
    if not viewer.namespaces:
        message = (
            "No role grants you any namespace: ask an admin to map one of your groups to a "
            "role (or, with Kubernetes RBAC, to bind the traffic-viewer ClusterRole)."
        )
    return WhoAmI(
        name=viewer.name,
        namespaces=list(viewer.namespaces),
        permissions=sorted(viewer.permissions),
        csrf=session.csrf if session is not None else None,
        message=message,
    )


@router.get("/openapi.json", summary="The hub's OpenAPI document", include_in_schema=False)
def openapi(request: Request, viewer: CurrentIdentity) -> dict[str, Any]:
    spec: dict[str, Any] = request.app.openapi()
    return spec


class Status(BaseModel):
    sniffers: list[SnifferStatus]


@router.get("/status", response_model=Status, summary="Sniffers and what they last reported")
def hub_status(
    viewer: CurrentViewer, sniffers: Annotated[SnifferRegistry, Depends(get_sniffers)]
) -> Status:
    return Status(sniffers=[SnifferStatus(**s) for s in sniffers.snapshot()])
