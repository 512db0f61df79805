"""``GET /auth/token-login``: trade a configured viewer token for a session cookie
(browser links, as ``kubeweir tap`` prints one)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import RedirectResponse

from hub.api.deps import get_auth
from hub.auth.service import AuthService
from hub.auth.sessions import COOKIE

router = APIRouter(tags=["auth"])


def safe_next(path: str) -> str:
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
    request: Request,
    auth: Annotated[AuthService, Depends(get_auth)],
    token: Annotated[str, Query()],
    next: Annotated[str, Query()] = "/",
) -> RedirectResponse:
    auth.check_rate(request)
    viewer = auth.config_viewer(token)
    if viewer is None:
        raise auth.refuse(request, status.HTTP_401_UNAUTHORIZED, "unknown token", "link token")
    auth.store.audit(viewer.name, auth.source(request), "login", "link", "ok")
    resp = RedirectResponse(safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    cookie = auth.new_session(
        viewer.name, (), "link",
        namespaces=viewer.namespaces, permissions=tuple(sorted(viewer.permissions)),
    )  # fmt: skip
    resp.set_cookie(COOKIE, cookie, **auth.session_cookie_kwargs())
    return resp
