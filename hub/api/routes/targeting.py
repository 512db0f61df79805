"""``GET``/``PUT /api/v1/targeting``: the pod targeting rules sniffers pick up.

Admins set the rules here; every sniffer receives them (with their version) in the answer
to its heartbeat and applies them over its own rules file while the hub has rules
(version > 0). The rules are kept in memory and in a one-row table on the hub's SQL engine
(the one the auth store uses), so they survive a restart. They are validated with the
sniffer's own parser, ``sniffer.targeting.Rules.from_mapping``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from hub.api.deps import CurrentViewer, get_auth
from hub.auth.service import AuthService
from hub.scope import ADMIN
from sniffer.targeting import Rules, RulesError

__all__ = ["TargetingState", "get_targeting", "router"]

RULE_KEYS = ("namespaces", "excludedNamespaces", "podRegex", "labelSelector")

_metadata = sa.MetaData()
_table = sa.Table(
    "targeting_rules",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("rules", sa.String, nullable=False),
    sa.Column("updated", sa.DateTime, nullable=False),
    sa.Column("updated_by", sa.String, nullable=False),
)


def normalize(data: Any) -> dict[str, Any]:
    """The rules mapping, validated with the sniffer's parser, in its canonical form
    (every key present); ``ValueError`` naming the problem."""
    if not isinstance(data, dict):
        raise ValueError("the targeting rules must be a JSON object")
    try:
        Rules.from_mapping(data)
    except RulesError as exc:
        raise ValueError(str(exc)) from exc

    def names(v: Any) -> list[str]:
        return [v] if isinstance(v, str) else list(v or [])

    return {
        "namespaces": names(data.get("namespaces")),
        "excludedNamespaces": names(data.get("excludedNamespaces")),
        "podRegex": data.get("podRegex") or "",
        "labelSelector": data.get("labelSelector") or "",
    }


class TargetingState:
    """The hub's current rules and their version (0: none set), persisted."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        _metadata.create_all(engine)
        self.version = 0
        self.rules: dict[str, Any] | None = None
        self.updated: str | None = None
        self.updated_by = ""
        with engine.connect() as conn:
            row = conn.execute(sa.select(_table).where(_table.c.id == 1)).first()
        if row is not None:
            self.version = int(row.version)
            self.rules = json.loads(row.rules)
            self.updated = row.updated.isoformat() + "Z"
            self.updated_by = str(row.updated_by)

    def set(self, rules: dict[str, Any], actor: str) -> int:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with self._lock:
            version = self.version + 1
            values = {
                "version": version,
                "rules": json.dumps(rules, sort_keys=True),
                "updated": now,
                "updated_by": actor,
            }
            with self.engine.begin() as conn:
                if self.version == 0:
                    conn.execute(_table.delete())
                    conn.execute(_table.insert().values(id=1, **values))
                else:
                    conn.execute(_table.update().where(_table.c.id == 1).values(**values))
            self.version, self.rules = version, rules
            self.updated, self.updated_by = now.isoformat() + "Z", actor
            return version

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": self.version,
                "rules": dict(self.rules) if self.rules is not None else None,
                "updated": self.updated,
                "updated_by": self.updated_by,
            }


_create_lock = threading.Lock()


def get_targeting(request: Request) -> TargetingState:
    """The app's targeting state, opened on first use on the storage's SQL engine."""
    state: TargetingState | None = getattr(request.app.state, "targeting", None)
    if state is None:
        with _create_lock:
            state = getattr(request.app.state, "targeting", None)
            if state is None:
                state = TargetingState(request.app.state.storage.sql_engine())
                request.app.state.targeting = state
    return state


TargetingDep = Annotated[TargetingState, Depends(get_targeting)]

router = APIRouter(tags=["targeting"])


class TargetingAnswer(BaseModel):
    version: int
    """0 while the hub has no rules (sniffers then use their own rules files)."""
    rules: dict[str, Any] | None
    updated: str | None = None
    updated_by: str = ""


@router.get("/targeting", response_model=TargetingAnswer, summary="The pod targeting rules")
def get_rules(viewer: CurrentViewer, targeting: TargetingDep) -> TargetingAnswer:
    return TargetingAnswer(**targeting.snapshot())


@router.put("/targeting", response_model=TargetingAnswer, summary="Set the targeting rules")
def put_rules(
    request: Request,
    viewer: CurrentViewer,
    targeting: TargetingDep,
    auth: Annotated[AuthService, Depends(get_auth)],
    body: Annotated[Any, Body()],
) -> TargetingAnswer:
    """Admins only. Body: ``{namespaces, excludedNamespaces, podRegex, labelSelector}``."""
    if ADMIN not in viewer.permissions:
        raise auth.refuse(request, 403, "changing targeting rules needs the admin permission",
                          "targeting without admin", viewer.name)  # fmt: skip
    try:
        rules = normalize(body)
    except ValueError as exc:
        auth.store.audit(viewer.name, auth.source(request), "targeting.set", "targeting",
                         "invalid", reason=str(exc))  # fmt: skip
        raise HTTPException(400, detail=f"invalid targeting rules: {exc}") from exc
    version = targeting.set(rules, viewer.name)
    auth.store.audit(viewer.name, auth.source(request), "targeting.set", "targeting",
                     version=version, rules=rules)  # fmt: skip
    return TargetingAnswer(**targeting.snapshot())
