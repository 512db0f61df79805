"""Conversion between entries and the storage columns.

Ingest: a decoded batch becomes one Arrow table (no per-row SQL); measured here, one
JSON text per entry turned into columns by the database's vectorised JSON reader is
~2x faster than filling 35 Python lists per entry.
Reads: a row of the ``entries`` table becomes the Entry JSON shape again.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pyarrow as pa

from kubeweir.entry import Entry

__all__ = ["BatchError", "datetime_to_ts", "entries_to_arrow", "row_to_entry", "ts_to_datetime"]

_EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)
_json = msgspec.json.Encoder()
_TS_MIN, _TS_MAX = 0.0, 253402300799.0  # 1970 .. 9999-12-31


class BatchError(ValueError):
    """The batch cannot be stored as sent; the message says why."""


def entries_to_arrow(entries: Sequence[Entry]) -> pa.Table:
    """The batch as an Arrow table of one JSON text column ``e``; the back end turns it
    into the storage columns in one vectorised statement."""
    for e in entries:
        if not (_TS_MIN <= e.ts <= _TS_MAX):
            raise BatchError(f"entry {e.id!r}: ts {e.ts!r} is not a time between 1970 and 9999")
    return pa.table({"e": pa.array([_json.encode(e) for e in entries], type=pa.string())})


def ts_to_datetime(ts: float) -> datetime:
    """Epoch seconds as a naive UTC datetime (the ``ts`` column's type)."""
    return _EPOCH + timedelta(microseconds=round(ts * 1e6))


def datetime_to_ts(dt: datetime) -> float:
    return ((dt.replace(tzinfo=None) - _EPOCH) // _US) / 1e6


def _body_text(meta: dict[str, Any], body: bytes | None) -> str | None:
    if body is None:
        return None
    if meta.get("body_encoding") == "base64":
        return base64.b64encode(body).decode("ascii")
    return body.decode("utf-8", "replace")


def row_to_entry(
    row: Mapping[str, Any], *, with_bodies: bool, with_headers: bool = True
) -> dict[str, Any]:
    """A stored row (column name -> value) as Entry JSON (plain dicts)."""
    out: dict[str, Any] = {
        "id": row["id"],
        "ts": datetime_to_ts(row["ts"]),
        "proto": row["proto"],
    }
    for side in ("src", "dst"):
        out[side] = {
            "ip": row[f"{side}_ip"] or "",
            "port": row[f"{side}_port"] or 0,
            "pod": row[f"{side}_pod"] or "",
            "namespace": row[f"{side}_namespace"] or "",
            "workload": row[f"{side}_workload"] or "",
            "service": row[f"{side}_service"] or "",
            "labels": dict(row[f"{side}_labels"] or {}),
            "node": row[f"{side}_node"] or "",
        }
    out["elapsed"] = row["elapsed"]
    for key, body_col in (("request", "req_body"), ("response", "resp_body")):
        raw = row.get(key)
        msg: dict[str, Any] = msgspec.json.decode(raw) if raw else {}
        if not with_headers:
            msg.pop("headers", None)
        if with_bodies:
            text = _body_text(msg, row.get(body_col))
            if text is not None:
                msg["body"] = text
        out[key] = msg
    out.update(
        summary=row["summary"] or "",
        redacted=list(row["redacted"] or []),
        tls=bool(row["tls"]),
        error=row["error"] or "",
        gaps=row["gaps"] or 0,
        stream=row["stream"] or "",
        index=row["idx"] or 0,
        node=row["node"] or "",
    )
    return out


def iter_rows(names: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterable[dict[str, Any]]:
    for r in rows:
        yield dict(zip(names, r, strict=True))
