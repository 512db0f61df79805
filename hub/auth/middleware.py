"""HTTP middleware of the hub: security headers on every response, the sliding session
cookie, and the audit record of every viewer request."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.auth.service import AuthService
from hub.auth.sessions import COOKIE

__all__ = ["SecurityMiddleware", "install"]

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


class SecurityMiddleware:
    """Plain ASGI (not ``BaseHTTPMiddleware``, whose task group and body streams cost
    ~0.3 ms of the event loop per request): adds the security headers and the refreshed
    session cookie to the response's head, and audits the viewer request as its head goes
    out (as before: the record is written whatever becomes of the body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auth: AuthService | None = getattr(scope["app"].state, "auth", None)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if auth is not None:
                    self._session_and_audit(scope, auth, message["status"], headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _session_and_audit(
        scope: Scope, auth: AuthService, status: int, headers: MutableHeaders
    ) -> None:
        """At the response's head (its status known, before any of its body): the
        refreshed session cookie, and the audit record of a viewer request."""
        state = scope.get("state", {})
        session = state.get("refresh_session")
        if session is not None and status < 400:
            cookie = Response()
            cookie.set_cookie(COOKIE, auth.sessions.dumps(session), **auth.session_cookie_kwargs())
            headers.append("set-cookie", cookie.headers["set-cookie"])
        action = _action(scope["path"])
        identity = state.get("identity")
        if action and identity is not None:
            request = Request(scope)
            q = request.query_params.get("q", "")
            auth.store.audit(
                identity, auth.source(request), action, scope["path"], str(status), q=q
            )


def install(app: FastAPI) -> None:
    app.add_middleware(SecurityMiddleware)
