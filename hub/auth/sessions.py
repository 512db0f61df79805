"""Browser sessions after login: a signed cookie with idle and absolute time-outs, and a
CSRF token that state-changing requests must echo in a header.

The cookie holds who the viewer is and when the session started; it is signed with the
hub's secret (itsdangerous), ``HttpOnly``, ``Secure`` and ``SameSite=Lax``. The idle
time-out is enforced by re-issuing the cookie with a fresh ``seen`` time on use.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

__all__ = ["COOKIE", "CSRF_HEADER", "Session", "SessionCodec", "SessionError"]

COOKIE = "kubeweir_session"
CSRF_HEADER = "X-CSRF-Token"


class SessionError(Exception):
    """The cookie is missing, forged, or expired."""


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    groups: tuple[str, ...]
    source: str
    """``saml`` or ``link`` (the standalone one-time link)."""
    started: float
    seen: float
    csrf: str
    namespaces: tuple[str, ...] = ()
    """Only for ``link`` sessions: the scope the link granted."""
    permissions: tuple[str, ...] = ()
    session_index: str | None = None


class SessionCodec:
    def __init__(self, secret: str, idle: float, absolute: float) -> None:
        self._s = URLSafeSerializer(secret, salt="kubeweir-session")
        self.idle = idle
        self.absolute = absolute

    def new(
        self,
        user: str,
        groups: tuple[str, ...],
        source: str,
        now: float | None = None,
        **extra: Any,
    ) -> Session:
        now = time.time() if now is None else now
        return Session(user, groups, source, now, now, secrets.token_urlsafe(24), **extra)

    def dumps(self, session: Session) -> str:
        data = asdict(session)
        return self._s.dumps(data)

    def loads(self, cookie: str | None, now: float | None = None) -> Session:
        if not cookie:
            raise SessionError("no session")
        try:
            data = self._s.loads(cookie)
            session = Session(
                **{
                    **data,
                    "groups": tuple(data["groups"]),
                    "namespaces": tuple(data.get("namespaces", ())),
                    "permissions": tuple(data.get("permissions", ())),
                }
            )
        except (BadSignature, TypeError, KeyError, ValueError):
            raise SessionError("invalid session cookie") from None
        now = time.time() if now is None else now
        if now - session.started > self.absolute:
            raise SessionError("session expired (absolute time-out); log in again")
        if now - session.seen > self.idle:
            raise SessionError("session expired (idle time-out); log in again")
        return session

    def touch(self, session: Session, now: float | None = None) -> Session:
        return replace(session, seen=time.time() if now is None else now)

    @staticmethod
    def csrf_ok(session: Session, header: str | None) -> bool:
        return bool(header) and hmac.compare_digest(session.csrf, header or "")
