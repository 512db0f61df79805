"""Credentials: viewer tokens from config, signed session cookies and cursors."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer

from hub.core.config import Settings
from hub.scope import Viewer

__all__ = [
    "SESSION_COOKIE",
    "BadToken",
    "cursor_signer",
    "session_signer",
    "token_digest",
    "viewer_for_token",
    "viewer_for_session",
    "ingest_token_ok",
]

SESSION_COOKIE = "kubeweir_session"


class BadToken(Exception):
    """A cursor or cookie was not signed by this hub, or has expired."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def viewer_for_token(settings: Settings, token: str) -> Viewer | None:
    """The configured viewer of this API token (constant-time comparison)."""
    found = None
    given = token.encode("utf-8", "surrogateescape")
    for known, cfg in settings.viewer_tokens.items():
        if hmac.compare_digest(known.encode(), given):
            found = cfg
    if found is None:
        return None
    return Viewer(
        name=found.name,
        namespaces=tuple(found.namespaces),
        permissions=frozenset(found.permissions),
    )


def session_signer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt="session")


def viewer_for_session(settings: Settings, cookie: str) -> Viewer | None:
    """The viewer of a session cookie (it holds the digest of the token it came from)."""
    try:
        data: Any = session_signer(settings).loads(cookie, max_age=settings.session_max_age)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("t"), str):
        return None
    for known, cfg in settings.viewer_tokens.items():
        if hmac.compare_digest(token_digest(known), data["t"]):
            return Viewer(cfg.name, tuple(cfg.namespaces), frozenset(cfg.permissions))
    return None


def ingest_token_ok(settings: Settings, token: str) -> bool:
    expected = settings.ingest_token
    if expected is None:
        return False
    return hmac.compare_digest(
        expected.get_secret_value().encode(), token.encode("utf-8", "surrogateescape")
    )


def cursor_signer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret_key.get_secret_value(), salt="cursor")


def load_signed(signer: URLSafeSerializer, value: str) -> Any:
    try:
        return signer.loads(value)
    except BadSignature as exc:
        raise BadToken(str(exc)) from exc
