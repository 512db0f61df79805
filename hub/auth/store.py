"""API tokens and the audit log, stored with SQLAlchemy Core next to the entries.

Tokens are shown once at creation (``kw_<id>_<secret>``) and stored as the SHA-256 of
the secret; each carries its owner's scope at creation, which is re-checked against the
owner's current roles whenever it is used. Every audit record is also written as one
JSON log line for a SIEM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["AuditRecord", "AuthStore", "IssuedToken", "TokenError", "TokenInfo"]

audit_log = logging.getLogger("kubeweir.audit")

metadata = sa.MetaData()

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("secret_sha256", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("owner", sa.String, nullable=False),
    sa.Column("groups", sa.String, nullable=False),
    sa.Column("namespaces", sa.String, nullable=False),
    sa.Column("permissions", sa.String, nullable=False),
    sa.Column("created", sa.DateTime, nullable=False),
    sa.Column("expires", sa.DateTime, nullable=False),
    sa.Column("revoked", sa.DateTime, nullable=True),
    sa.Column("last_used", sa.DateTime, nullable=True),
)

audit = sa.Table(
    "audit_log",
    metadata,
    sa.Column("ts", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("target", sa.String, nullable=False),
    sa.Column("result", sa.String, nullable=False),
    sa.Column("detail", sa.String, nullable=False),
)


class TokenError(Exception):
    """The token is malformed, unknown, expired or revoked (the message says which
    only in the audit log; callers answer a plain 401)."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    name: str
    owner: str
    groups: tuple[str, ...]
    namespaces: tuple[str, ...]
    permissions: tuple[str, ...]
    created: dt.datetime
    expires: dt.datetime
    revoked: dt.datetime | None
    last_used: dt.datetime | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "namespaces": list(self.namespaces),
            "permissions": list(self.permissions),
            "created": self.created.isoformat() + "Z",
            "expires": self.expires.isoformat() + "Z",
            "revoked": self.revoked.isoformat() + "Z" if self.revoked else None,
            "last_used": self.last_used.isoformat() + "Z" if self.last_used else None,
        }


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    """The only time the secret is seen."""
    info: TokenInfo


@dataclass(frozen=True, slots=True)
class AuditRecord:
    ts: dt.datetime
    actor: str
    source: str
    action: str
    target: str
    result: str
    detail: dict[str, Any]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _row_info(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        owner=row.owner,
        groups=tuple(json.loads(row.groups)),
        namespaces=tuple(json.loads(row.namespaces)),
        permissions=tuple(json.loads(row.permissions)),
        created=row.created,
        expires=row.expires,
        revoked=row.revoked,
        last_used=row.last_used,
    )


class AuthStore:
    """Tokens and audit records in the hub's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        metadata.create_all(engine)

    # -- tokens
    def issue(
        self,
        owner: str,
        groups: tuple[str, ...],
        name: str,
        namespaces: tuple[str, ...],
        permissions: tuple[str, ...],
        lifetime: dt.timedelta,
    ) -> IssuedToken:
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = _utcnow()
        values = {
            "id": token_id,
            "secret_sha256": _hash(secret),
            "name": name,
            "owner": owner,
            "groups": json.dumps(list(groups)),
            "namespaces": json.dumps(list(namespaces)),
            "permissions": json.dumps(sorted(permissions)),
            "created": now,
            "expires": now + lifetime,
            "revoked": None,
            "last_used": None,
        }
        with self._lock, self.engine.begin() as conn:
            conn.execute(api_tokens.insert().values(**values))
        info = self.get(token_id)
        assert info is not None
        return IssuedToken(f"kw_{token_id}_{secret}", info)

    def get(self, token_id: str) -> TokenInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).first()
        return _row_info(row) if row else None

    def verify(self, token: str) -> TokenInfo:
        """The token's record; raises ``TokenError`` saying why it is refused."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "kw" or len(parts[1]) != 16:
            raise TokenError("malformed token")
        token_id, secret = parts[1], parts[2]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise TokenError("unknown token")
        if not hmac.compare_digest(row.secret_sha256, _hash(secret)):
            raise TokenError("wrong token secret")
        info = _row_info(row)
        now = _utcnow()
        if info.revoked is not None:
            raise TokenError("revoked token")
        if info.expires <= now:
            raise TokenError("expired token")
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                api_tokens.update().where(api_tokens.c.id == token_id).values(last_used=now)
            )
        return info

    def list_tokens(self, owner: str | None = None) -> list[TokenInfo]:
        q = sa.select(api_tokens).order_by(api_tokens.c.created)
        if owner is not None:
            q = q.where(api_tokens.c.owner == owner)
        with self.engine.connect() as conn:
            return [_row_info(r) for r in conn.execute(q)]

    def revoke(self, token_id: str) -> bool:
        with self._lock, self.engine.begin() as conn:
            result = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked.is_(None))
                .values(revoked=_utcnow())
            )
        return bool(result.rowcount)

    # -- audit
    def audit(
        self,
        actor: str,
        source: str,
        action: str,
        target: str = "",
        result: str = "ok",
        **detail: Any,
    ) -> None:
        """Record one event in the table and as a JSON log line."""
        now = _utcnow()
        record = {
            "ts": now.isoformat() + "Z",
            "actor": actor,
            "source": source,
            "action": action,
            "target": target,
            "result": result,
            "detail": detail,
        }
        audit_log.info(json.dumps(record, default=str, sort_keys=True))
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                audit.insert().values(
                    ts=now,
                    actor=actor,
                    source=source,
                    action=action,
                    target=target,
                    result=result,
                    detail=json.dumps(detail, default=str, sort_keys=True),
                )
            )

    def audit_records(
        self,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
        since: dt.datetime | None = None,
    ) -> list[AuditRecord]:
        q = sa.select(audit).order_by(audit.c.ts.desc()).limit(limit)
        if actor:
            q = q.where(audit.c.actor == actor)
        if action:
            q = q.where(audit.c.action == action)
        if since:
            q = q.where(audit.c.ts >= since)
        with self.engine.connect() as conn:
            return [
                AuditRecord(
                    r.ts, r.actor, r.source, r.action, r.target, r.result, json.loads(r.detail)
                )
                for r in conn.execute(q)
            ]
