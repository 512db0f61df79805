"""One place that turns a request's credentials into a viewer, or refuses it.

Credentials, in order: an ``Authorization: Bearer`` token (an issued API token
``kw_...`` or a token from the config), else the session cookie (a SAML login or a
login link). Every refusal is counted, audited and rate limited per source address
and per user; the scope of issued tokens and SAML sessions is recomputed from the
current roles (or Kubernetes RBAC) on every use.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hmac
import ipaddress
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy.engine import Engine
from starlette.requests import HTTPConnection

from hub.auth.config import AuthSettings
from hub.auth.ratelimit import FailureLimiter
from hub.auth.rbac import RbacAuthorizer
from hub.auth.roles import grant_for_groups
from hub.auth.saml import SamlServiceProvider
from hub.auth.sessions import COOKIE, CSRF_HEADER, Session, SessionCodec, SessionError
from hub.auth.store import AuthStore, TokenError, TokenInfo
from hub.scope import Viewer

__all__ = ["AuthService", "Identity", "client_address"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is asking (before authorization)."""

    user: str
    groups: tuple[str, ...]
    via: str
    """``token`` (issued), ``config-token``, ``saml``, ``link``."""
    session: Session | None = None
    token: TokenInfo | None = None


def client_address(
    request: HTTPConnection, trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> str:
    """The client's address; ``X-Forwarded-For`` only from a trusted proxy."""
    peer = request.client.host if request.client else ""
    if trusted and peer:
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return peer
        if any(addr in net for net in trusted):
            fwd = request.headers.get("x-forwarded-for", "")
            hops = [h.strip() for h in fwd.split(",") if h.strip()]
            if hops:
                return hops[-1]
    return peer


def covered(glob: str, current: tuple[str, ...]) -> bool:
    """Whether everything ``glob`` names is still named by one of ``current`` (the glob
    is matched as a literal against each current pattern: ``payments-*`` is covered by
    ``payments-*`` and ``*``, not by ``payments``)."""
    return any(fnmatch.fnmatchcase(glob, c) for c in current)


class AuthService:
    """Authentication and authorization for viewers (one per app)."""

    def __init__(
        self,
        settings: AuthSettings,
        engine: Engine,
        secret_key: str,
        *,
        cookie_secure: bool = True,
        config_tokens: dict[str, Viewer] | None = None,
        kube_api_client: Any = None,
        metrics: Any = None,
    ) -> None:
        self.settings = settings
        self.store = AuthStore(engine)
        self.secret_key = secret_key
        self.sessions = SessionCodec(
            secret_key, settings.session_idle_timeout, settings.session_absolute_timeout
        )
        self.cookie_secure = cookie_secure
        self.config_tokens = dict(config_tokens or {})
        self.limiter = FailureLimiter(settings.failed_login_limit, settings.failed_login_window)
        self.trusted = [ipaddress.ip_network(c, strict=False) for c in settings.trusted_proxies]
        self.metrics = metrics
        self.saml = SamlServiceProvider(settings.saml) if settings.saml else None
        self.rbac: RbacAuthorizer | None = None
        if settings.authz == "kubernetes":
            if kube_api_client is None:
                from kubernetes import client, config

                try:
                    config.load_incluster_config()  # type: ignore[no-untyped-call]
                except config.ConfigException:
                    config.load_kube_config()  # type: ignore[no-untyped-call]
                kube_api_client = client.ApiClient()
            self.rbac = RbacAuthorizer(
                kube_api_client,
                resource=settings.rbac_resource,
                group=settings.rbac_group,
                ttl=settings.rbac_cache_ttl,
            )

    # -- counting and auditing ----------------------------------------------------
    def _count(self, name: str) -> None:
        counter = getattr(self.metrics, name, None)
        if counter is not None:
            counter.inc()

    def source(self, request: HTTPConnection) -> str:
        return client_address(request, self.trusted)

    def refuse(
        self,
        request: HTTPConnection,
        code: int,
        detail: str,
        reason: str,
        actor: str = "anonymous",
        keys: tuple[str, ...] = (),
    ) -> HTTPException:
        """Audit, count and build the refusal (401/403); failures feed the limiter."""
        source = self.source(request)
        if code == status.HTTP_401_UNAUTHORIZED:
            self._count("auth_failures")
            self.limiter.failed(f"ip:{source}", *keys)
        else:
            self._count("denials")
        self.store.audit(
            actor, source, "denied", request.url.path, str(code), reason=reason,
            method=getattr(request, "method", "WEBSOCKET"),
        )  # fmt: skip
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
        return HTTPException(code, detail=detail, headers=headers)

    def check_rate(self, request: HTTPConnection, *keys: str) -> None:
        """429 with Retry-After when this source (or user) failed too often."""
        source = self.source(request)
        wait = self.limiter.retry_after(f"ip:{source}", *keys)
        if wait:
            self._count("rate_limited")
            self.store.audit(
                "anonymous", source, "rate-limited", request.url.path, "429", keys=list(keys)
            )
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=f"too many failed attempts; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )

    # -- from an identity to a viewer ---------------------------------------------
    def grant(self, user: str, groups: tuple[str, ...]) -> tuple[tuple[str, ...], frozenset[str]]:
        """Namespaces and permissions the user has now (roles table or RBAC)."""
        if self.rbac is not None:
            decision = self.rbac.decide(user, groups)
            perms = {"view-bodies", "export"} if decision.namespaces else set()
            if decision.pcap_namespaces and set(decision.pcap_namespaces) == set(
                decision.namespaces
            ):
                perms.add("download-pcap")
            return decision.namespaces, frozenset(perms)
        g = grant_for_groups(self.settings, groups)
        return g.namespaces, g.permissions

    def viewer_for_token(self, info: TokenInfo) -> Viewer:
        """An issued token's scope, narrowed to what its owner may still see."""
        namespaces, permissions = self.grant(info.owner, info.groups)
        still = tuple(ns for ns in info.namespaces if covered(ns, namespaces))
        perms = frozenset(info.permissions) & permissions
        return Viewer(info.owner, still, perms)

    # -- the dependency -------------------------------------------------------------
    def authenticate(self, request: HTTPConnection, *, require_scope: bool = True) -> Viewer:
        """The viewer of this request, or an HTTPException (401/403/429)."""
        auth = request.headers.get("authorization")
        if auth:
            scheme, _, token = auth.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise self.refuse(request, 401, "use Authorization: Bearer <token>", "bad scheme")
            self.check_rate(request)
            viewer = self._bearer(request, token)
            request.state.identity = viewer.name
        else:
            cookie = request.cookies.get(COOKIE)
            if not cookie:
                raise self.refuse(
                    request, 401,
                    "authentication required: log in (SAML at /saml/login, or the login link) "
                    "or send Authorization: Bearer <token>",
                    "no credentials",
                )  # fmt: skip
            try:
                session = self.sessions.loads(cookie)
            except SessionError as exc:
                raise self.refuse(request, 401, str(exc), str(exc)) from None
            method = getattr(request, "method", "GET")
            if method not in SAFE_METHODS and not self.sessions.csrf_ok(
                session, request.headers.get(CSRF_HEADER)
            ):
                raise self.refuse(
                    request, 403, f"missing or wrong {CSRF_HEADER} header", "csrf", session.user
                )
            viewer = self._session_viewer(session)
            request.state.refresh_session = self.sessions.touch(session)
            request.state.identity = session.user
        request.state.viewer = viewer
        if require_scope and not viewer.namespaces:
            raise self.refuse(
                request, 403,
                f"{viewer.name} has no role that grants any namespace: ask an admin to map one "
                "of your groups to a role (or, with Kubernetes RBAC, to bind the "
                "traffic-viewer ClusterRole in a namespace)",
                "no role", viewer.name,
            )  # fmt: skip
        return viewer

    def _bearer(self, request: HTTPConnection, token: str) -> Viewer:
        if token.startswith("kw_"):
            # Failures count against the token's owner too (when the id is a real one),
            # so guessing at one user's token is limited from any number of addresses.
            parts = token.split("_", 2)
            known = self.store.get(parts[1]) if len(parts) == 3 else None
            keys = (f"user:{known.owner}",) if known else ()
            self.check_rate(request, *keys)
            try:
                info = self.store.verify(token)
            except TokenError as exc:
                raise self.refuse(
                    request, 401, "invalid or expired token", str(exc), keys=keys
                ) from None
            return self.viewer_for_token(info)
        found = self.config_viewer(token)
        if found is None:
            raise self.refuse(request, 401, "invalid or expired token", "unknown token")
        return found

    def config_viewer(self, token: str) -> Viewer | None:
        """The viewer of a token from the config (constant-time comparison)."""
        found = None
        given = token.encode("utf-8", "surrogateescape")
        for known, viewer in self.config_tokens.items():
            if hmac.compare_digest(known.encode(), given):
                found = viewer
        return found

    def _session_viewer(self, session: Session) -> Viewer:
        if session.source == "saml":
            namespaces, permissions = self.grant(session.user, session.groups)
            return Viewer(session.user, namespaces, permissions)
        return Viewer(session.user, session.namespaces, frozenset(session.permissions))

    # -- sessions -----------------------------------------------------------------
    def new_session(self, user: str, groups: tuple[str, ...], source: str, **extra: Any) -> str:
        return self.sessions.dumps(self.sessions.new(user, groups, source, **extra))

    def session_cookie_kwargs(self) -> dict[str, Any]:
        return {
            "httponly": True,
            "secure": self.cookie_secure,
            "samesite": "lax",
            "path": "/",
            "max_age": int(self.settings.session_absolute_timeout),
        }

    def token_lifetime(self, seconds: float | None) -> dt.timedelta:
        longest = self.settings.token_max_lifetime
        if seconds is None:
            seconds = longest
        if seconds <= 0 or seconds > longest:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail=f"expires_in must be between 1 and {int(longest)} seconds",
            )
        return dt.timedelta(seconds=seconds)
