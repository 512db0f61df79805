"""``GET /api/v1/query/validate`` and ``GET /api/v1/query/fields`` (for the dashboard)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from hub.api.deps import CurrentViewer, StorageDep, compile_filter

router = APIRouter(prefix="/query", tags=["query"])


class Valid(BaseModel):
    valid: bool


@router.get(
    "/validate",
    response_model=Valid,
    summary="Check a CEL filter",
    responses={400: {"description": '{"detail": {"message", "position", "hint"}}'}},
)
def validate(viewer: CurrentViewer, storage: StorageDep, q: Annotated[str, Query()] = "") -> Valid:
    compile_filter(viewer, storage.table, q)
    return Valid(valid=True)


class Fields(BaseModel):
    fields: list[dict[str, Any]]
    macros: list[dict[str, Any]]
    functions: list[dict[str, Any]]


def _plain(items: Any) -> list[dict[str, Any]]:
    out = []
    for item in items:
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            out.append(dataclasses.asdict(item))
        elif hasattr(item, "_asdict"):
            out.append(dict(item._asdict()))
        elif isinstance(item, dict):
            out.append(dict(item))
        else:
            out.append({"name": str(item)})
    return out


@router.get("/fields", response_model=Fields, summary="What a filter can use")
def fields(viewer: CurrentViewer) -> Fields:
    """Fields, macros and functions, from the compiler's own definitions."""
    from hub.query import fields as q_fields
    from hub.query import functions as q_functions
    from hub.query import macros as q_macros

    return Fields(
        fields=_plain(q_fields()), macros=_plain(q_macros()), functions=_plain(q_functions())
    )
