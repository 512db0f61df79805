"""``GET /auth/token-login``: trade a viewer token for a session cookie (browser links)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import RedirectResponse

from hub.api.deps import SettingsDep
from hub.core.security import SESSION_COOKIE, session_signer, token_digest, viewer_for_token

router = APIRouter(tags=["auth"])


def _safe_next(path: str) -> str:
    """Only a local path: no scheme, no host, no ``//`` (no open redirect)."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//"):
        return "/"
    if "\\" in path:
        return "/"
    return path


@router.get(
    "/auth/token-login",
    summary="Log in with a viewer token; sets the session cookie and redirects",
    responses={303: {"description": "to next"}, 401: {"description": "unknown token"}},
)
def token_login(
    settings: SettingsDep,
    token: Annotated[str, Query()],
    next: Annotated[str, Query()] = "/",
) -> RedirectResponse:
    viewer = viewer_for_token(settings, token)
    if viewer is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="unknown token")
    resp = RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    resp.set_cookie(
        SESSION_COOKIE,
        session_signer(settings).dumps({"t": token_digest(token)}),
        max_age=settings.session_max_age,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    return resp
