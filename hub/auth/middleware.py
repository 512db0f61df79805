"""HTTP middleware of the hub: security headers on every response, the sliding session
cookie, and the audit record of every viewer request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from hub.auth.service import AuthService
from hub.auth.sessions import COOKIE

__all__ = ["install"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}

# What each viewer route counts as in the audit log; routes not listed audit themselves
# (tokens, stream, login) or are not worth a record per call (validation as one types).
_ACTIONS = (
    ("/api/v1/entries/", "detail"),
    ("/api/v1/entries", "query"),
    ("/api/v1/stats", "query"),
    ("/api/v1/servicemap", "query"),
    ("/api/v1/export", "export"),
)


def _action(path: str) -> str | None:
    for prefix, action in _ACTIONS:
        if path.startswith(prefix):
            return action
    return None


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def kubeweir_security(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        auth: AuthService | None = getattr(request.app.state, "auth", None)
        if auth is None:
            return response
        session = getattr(request.state, "refresh_session", None)
        if session is not None and response.status_code < 400:
            response.set_cookie(
                COOKIE, auth.sessions.dumps(session), **auth.session_cookie_kwargs()
            )
        action = _action(request.url.path)
        identity = getattr(request.state, "identity", None)
        if action and identity is not None:
            q = request.query_params.get("q", "")
            auth.store.audit(
                identity, auth.source(request), action, request.url.path,
                str(response.status_code), q=q,
            )  # fmt: skip
        return response
