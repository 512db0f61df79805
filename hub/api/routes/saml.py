"""SAML 2.0 login for viewers: ``/saml/metadata``, ``/saml/login``, ``/saml/acs``,
``/saml/slo``; and ``POST /auth/logout``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from hub.api.deps import get_auth
from hub.api.routes.auth import safe_next
from hub.auth.saml import SamlError, SamlServiceProvider
from hub.auth.service import AuthService
from hub.auth.sessions import COOKIE

router = APIRouter(tags=["auth"])

PENDING = "kubeweir_saml_pending"
"""Cookie that carries the AuthnRequest id and the page wanted, for 10 minutes."""

AuthDep = Annotated[AuthService, Depends(get_auth)]


def _sp(auth: AuthService) -> SamlServiceProvider:
    if auth.saml is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="SAML login is not configured")
    return auth.saml


def _pending_signer(auth: AuthService) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(auth.secret_key, salt="kubeweir-saml-pending")


@router.get("/saml/metadata", summary="The service provider's signed SAML metadata")
def metadata(auth: AuthDep) -> Response:
    return Response(_sp(auth).metadata(), media_type="application/samlmetadata+xml")


@router.get("/saml/login", summary="Start a SAML login; the IdP sends the user back to next")
def login(auth: AuthDep, next: Annotated[str, Query()] = "/") -> RedirectResponse:
    url, request_id = _sp(auth).login_redirect(safe_next(next))
    resp = RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
    pending = _pending_signer(auth).dumps({"id": request_id, "next": safe_next(next)})
    resp.set_cookie(
        PENDING, pending, max_age=600, httponly=True, secure=auth.cookie_secure,
        samesite="none" if auth.cookie_secure else "lax", path="/saml/",
    )  # fmt: skip
    return resp


def _refused(reason: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><title>Login refused</title><h1>Login refused</h1>"
        "<p>The identity provider's answer was not accepted.</p><p><a href='/saml/login'>"
        "Try again</a></p>",
        status_code=status.HTTP_401_UNAUTHORIZED,
    )


@router.post("/saml/acs", summary="Assertion consumer: validates the IdP's response")
async def acs(request: Request, auth: AuthDep) -> Response:
    sp = _sp(auth)
    source = auth.source(request)
    auth.check_rate(request)
    form = {k: str(v) for k, v in (await request.form()).items()}
    pending: dict[str, str] = {}
    cookie = request.cookies.get(PENDING)
    if cookie:
        try:
            pending = _pending_signer(auth).loads(cookie, max_age=600)
        except BadSignature:
            pending = {}
    try:
        identity = sp.process_response(form, pending.get("id"))
    except SamlError as exc:
        auth.limiter.failed(f"ip:{source}")
        auth._count("auth_failures")
        auth.store.audit("anonymous", source, "login", "saml", "refused", reason=exc.reason)
        return _refused(exc.reason)
    auth.limiter.succeeded(f"ip:{source}")
    namespaces, permissions = auth.grant(identity.name, identity.groups)
    auth.store.audit(
        identity.name, source, "login", "saml", "ok",
        groups=list(identity.groups), namespaces=list(namespaces),
    )  # fmt: skip
    resp = RedirectResponse(
        safe_next(pending.get("next", "/")), status_code=status.HTTP_303_SEE_OTHER
    )
    session = auth.new_session(
        identity.name, identity.groups, "saml", session_index=identity.session_index
    )
    resp.set_cookie(COOKIE, session, **auth.session_cookie_kwargs())
    resp.delete_cookie(PENDING, path="/saml/")
    return resp


@router.get("/saml/slo", summary="Single logout: the IdP's LogoutResponse comes back here")
def slo(request: Request, auth: AuthDep) -> Response:
    sp = _sp(auth)
    try:
        url = sp.process_slo({k: v for k, v in request.query_params.items()})
    except SamlError as exc:
        auth.store.audit("anonymous", auth.source(request), "logout", "saml", "refused",
                         reason=exc.reason)  # fmt: skip
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=exc.reason) from exc
    resp = RedirectResponse(url or "/", status_code=status.HTTP_303_SEE_OTHER)
    resp.delete_cookie(COOKIE, path="/")
    return resp


@router.post("/auth/logout", summary="End the session (and the IdP session, with SAML)")
def logout(request: Request, auth: AuthDep) -> Response:
    viewer = auth.authenticate(request, require_scope=False)  # CSRF-checked
    session = getattr(request.state, "refresh_session", None)
    auth.store.audit(viewer.name, auth.source(request), "logout", "session", "ok")
    target = "/"
    if auth.saml is not None and session is not None and session.source == "saml":
        target = auth.saml.logout_redirect(session.user, session.session_index, "/")
    request.state.refresh_session = None
    resp = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    resp.delete_cookie(COOKIE, path="/")
    return resp
