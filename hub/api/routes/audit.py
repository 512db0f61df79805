"""``GET /api/v1/audit``: the audit log, for admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from hub.api.deps import CurrentViewer, get_auth, parse_time
from hub.auth.service import AuthService
from hub.scope import ADMIN

router = APIRouter(tags=["audit"])


@router.get("/audit", summary="Logins, queries, exports, token changes and denials (admins)")
def audit_log(
    request: Request,
    viewer: CurrentViewer,
    auth: Annotated[AuthService, Depends(get_auth)],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    actor: str | None = None,
    action: str | None = None,
    since: str | None = None,
) -> dict[str, Any]:
    if ADMIN not in viewer.permissions:
        raise auth.refuse(request, 403, "reading the audit log needs the admin permission",
                          "audit without admin", viewer.name)  # fmt: skip
    records = auth.store.audit_records(limit, actor, action, parse_time(since, "since"))
    return {
        "records": [
            {
                "ts": r.ts.isoformat() + "Z",
                "actor": r.actor,
                "source": r.source,
                "action": r.action,
                "target": r.target,
                "result": r.result,
                "detail": r.detail,
            }
            for r in records
        ]
    }
