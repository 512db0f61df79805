"""API tokens for the query API and the CLI: created by a logged-in viewer (shown once),
listed and revoked by their owner or an admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from hub.api.deps import CurrentViewer, get_auth
from hub.auth.service import AuthService
from hub.scope import ADMIN

router = APIRouter(tags=["tokens"])
AuthDep = Annotated[AuthService, Depends(get_auth)]


class TokenRequest(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    expires_in: float | None = Field(
        default=None, description="seconds; at most the configured maximum (the default)"
    )


class TokenOut(BaseModel):
    id: str
    name: str
    owner: str
    namespaces: list[str]
    permissions: list[str]
    created: str
    expires: str
    revoked: str | None = None
    last_used: str | None = None


class NewToken(TokenOut):
    token: str = Field(description="the secret: shown this once, store it now")


@router.post("/tokens", response_model=NewToken, status_code=201, summary="Create an API token")
def create_token(
    body: TokenRequest, request: Request, viewer: CurrentViewer, auth: AuthDep
) -> NewToken:
    session = getattr(request.state, "refresh_session", None)
    if session is None:
        raise auth.refuse(request, 403, "API tokens are created from a login session",
                          "token from token", viewer.name)  # fmt: skip
    issued = auth.store.issue(
        viewer.name,
        session.groups,
        body.name,
        viewer.namespaces,
        tuple(sorted(viewer.permissions)),
        auth.token_lifetime(body.expires_in),
    )
    auth.store.audit(viewer.name, auth.source(request), "token-create", issued.info.id, "ok",
                     name=body.name)  # fmt: skip
    return NewToken(token=issued.token, **issued.info.public())


@router.get("/tokens", response_model=list[TokenOut], summary="Your tokens (all, for admins)")
def list_tokens(viewer: CurrentViewer, auth: AuthDep) -> list[TokenOut]:
    owner = None if ADMIN in viewer.permissions else viewer.name
    return [TokenOut(**t.public()) for t in auth.store.list_tokens(owner)]


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke a token")
def revoke_token(token_id: str, request: Request, viewer: CurrentViewer, auth: AuthDep) -> None:
    info = auth.store.get(token_id)
    if info is None or (info.owner != viewer.name and ADMIN not in viewer.permissions):
        auth.store.audit(viewer.name, auth.source(request), "token-revoke", token_id, "denied")
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such token")
    auth.store.revoke(token_id)
    auth.store.audit(viewer.name, auth.source(request), "token-revoke", token_id, "ok")
