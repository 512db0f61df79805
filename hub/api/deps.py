"""Typed dependencies: settings, storage, the viewer, the sniffer credential, filters.

Routes never check identity or scope themselves: they take ``CurrentViewer`` and an
``EntryFilterDep`` whose ``where`` already has the viewer's scope ANDed in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Query, Request, status
from sqlalchemy.sql.elements import ColumnElement

from hub.auth.service import AuthService
from hub.core.config import Settings, get_settings
from hub.core.security import ingest_token_ok
from hub.scope import VIEW_BODIES, Viewer, in_scope, scope_clause
from hub.storage.base import Storage

if TYPE_CHECKING:
    from hub.enrich import Enricher
    from hub.metrics import HubMetrics
    from hub.sniffers import SnifferRegistry
    from hub.stream import Broadcaster

__all__ = [
    "CurrentIdentity",
    "CurrentViewer",
    "EntryFilter",
    "EntryFilterDep",
    "SettingsDep",
    "SnifferCredential",
    "StorageDep",
    "compile_filter",
    "current_viewer",
    "parse_time",
    "settings_of",
]


def settings_of(app: Any) -> Settings:
    """An app's settings: an override of ``get_settings`` (tests install one), else those
    the app was made with."""
    get: Callable[[], Settings] | None = app.dependency_overrides.get(get_settings)
    if get is not None:
        return get()
    settings: Settings = app.state.settings
    return settings


async def app_settings(request: Request) -> Settings:
    """``settings_of`` the request's app. The app does not install its settings as an
    override of ``get_settings``: while any override is installed, FastAPI re-inspects the
    signature of every dependency of every request (measured here: ~1 ms of CPU per
    ingest request)."""
    return settings_of(request.app)


SettingsDep = Annotated[Settings, Depends(app_settings)]

# The getters below read the app's state: ``async`` so that FastAPI calls them in the event
# loop rather than handing each to a worker thread (~0.1 ms a hop).


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


StorageDep = Annotated[Storage, Depends(get_storage)]


async def get_broadcaster(request: Request) -> Broadcaster:
    b: Broadcaster = request.app.state.broadcaster
    return b


async def get_sniffers(request: Request) -> SnifferRegistry:
    r: SnifferRegistry = request.app.state.sniffers
    return r


async def get_metrics(request: Request) -> HubMetrics:
    m: HubMetrics = request.app.state.metrics
    return m


async def get_enricher(request: Request) -> Enricher | None:
    e: Enricher | None = request.app.state.enricher
    return e


def _auth(request: Request) -> AuthService:
    auth: AuthService = request.app.state.auth
    return auth


async def get_auth(request: Request) -> AuthService:
    return _auth(request)


def _bearer(auth: str | None) -> str | None:
    if not auth:
        return None
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_viewer(request: Request) -> Viewer:
    """The authenticated viewer with a non-empty scope, or 401/403/429 (audited)."""
    return _auth(request).authenticate(request)


def current_identity(request: Request) -> Viewer:
    """The authenticated viewer even without any role (for ``whoami``, which must be
    able to say what is missing)."""
    return _auth(request).authenticate(request, require_scope=False)


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
CurrentIdentity = Annotated[Viewer, Depends(current_identity)]


@dataclass(frozen=True, slots=True)
class Sniffer:
    """An authenticated sniffer."""

    name: str


def sniffer_credential(request: Request, settings: SettingsDep) -> Sniffer:
    """The sniffer credential: the shared ingest token, or a sniffer ServiceAccount's
    projected token validated by TokenReview."""
    auth = _auth(request)
    auth.check_rate(request)
    token = _bearer(request.headers.get("authorization"))
    if token is None:
        raise auth.refuse(
            request, 401,
            "sniffer credential required: Authorization: Bearer <ingest token>",
            "no sniffer credential",
        )  # fmt: skip
    if ingest_token_ok(settings, token):
        return Sniffer(name="token")
    if settings.sniffer_service_accounts:
        from hub.core.sniffer_auth import SnifferAuthError, reviewer_for

        try:
            identity = reviewer_for(request.app, settings).authenticate(token)
        except SnifferAuthError as exc:
            if exc.status in (401, 403):
                raise auth.refuse(request, 401, exc.reason, f"sniffer: {exc.reason}") from exc
            raise HTTPException(exc.status, detail=exc.reason) from exc
        return Sniffer(name=identity.username)
    raise auth.refuse(request, 401, "unknown sniffer credential", "unknown sniffer credential")


SnifferCredential = Annotated[Sniffer, Depends(sniffer_credential)]


_EPOCH_RX = re.compile(r"^[+-]?\d+(\.\d+)?$")


def parse_time(value: str | None, name: str) -> datetime | None:
    """RFC 3339 or epoch seconds, as a naive UTC datetime; 400 when neither."""
    if value is None or value == "":
        return None
    try:
        if _EPOCH_RX.match(value):
            secs = float(value)
            if not math.isfinite(secs):
                raise ValueError
            dt = datetime.fromtimestamp(secs, UTC)
        else:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"'{name}' must be RFC 3339 (2024-05-01T12:00:00Z) or epoch seconds",
        ) from exc
    return dt.astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class EntryFilter:
    """A viewer's compiled filter: SQL ``where`` (scope AND time AND query) and the same
    predicate in Python for live entries."""

    viewer: Viewer
    text: str
    where: ColumnElement[bool]
    start: datetime | None
    end: datetime | None
    predicate: Callable[[dict[str, Any], datetime], bool]

    def matches(self, entry: dict[str, Any], now: datetime | None = None) -> bool:
        return in_scope(self.viewer, entry) and self.predicate(entry, now or datetime.now(UTC))


def query_error(exc: Exception) -> HTTPException:
    detail = getattr(exc, "as_dict", None)
    body = (
        detail()
        if callable(detail)
        else {"message": str(exc), "position": getattr(exc, "position", 0), "hint": ""}
    )
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail=body)


WITHHELD_FIELDS = frozenset(
    {"request.body", "response.body", "request.headers", "response.headers"}
)
"""Fields withheld from viewers without ``view-bodies``: they may not filter on them."""


def compile_filter(
    viewer: Viewer,
    table: sa.Table,
    q: str,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> EntryFilter:
    """Compile ``q`` (CEL) for this viewer; raises HTTPException 400 on a bad query."""
    if start is not None and end is not None and start > end:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="'from' is after 'to'")
    now = now or datetime.now(UTC)
    conds: list[ColumnElement[bool]] = [scope_clause(viewer, table)]
    if start is not None:
        conds.append(table.c.ts >= start)
    if end is not None:
        conds.append(table.c.ts < end)
    predicate: Callable[[dict[str, Any], datetime], bool] = _match_all
    if q.strip():
        from hub.query import QueryError, compile_query  # the CEL compiler

        try:
            compiled = compile_query(q)
            conds.append(compiled.where(table, now))
        except QueryError as exc:
            raise query_error(exc) from exc
        withheld = compiled.fields_used & WITHHELD_FIELDS
        if withheld and not viewer.may(VIEW_BODIES):
            # A filter on a withheld value would reveal it one match at a time.
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail={
                    "message": f"filtering on {', '.join(sorted(withheld))} needs the "
                    "view-bodies permission",
                    "position": 0,
                    "hint": "",
                },
            )
        predicate = compiled.matches
    return EntryFilter(viewer, q, sa.and_(*conds), start, end, predicate)


def _match_all(entry: dict[str, Any], now: datetime) -> bool:
    return True


def entry_filter(
    viewer: CurrentViewer,
    storage: StorageDep,
    q: Annotated[str, Query(description="CEL filter; empty matches everything")] = "",
    from_: Annotated[
        str | None, Query(alias="from", description="RFC 3339 or epoch seconds")
    ] = None,
    to: Annotated[str | None, Query(description="RFC 3339 or epoch seconds")] = None,
) -> EntryFilter:
    return compile_filter(viewer, storage.table, q, parse_time(from_, "from"), parse_time(to, "to"))


EntryFilterDep = Annotated[EntryFilter, Depends(entry_filter)]
