"""Conversion between entries and the storage columns.

Ingest: a decoded batch becomes one Arrow table, column by column (one list
comprehension per column; no per-row SQL). Measured here, that is 3-4x faster than one
JSON text per entry turned into columns by DuckDB's JSON functions.
Reads: a row of the ``entries`` table becomes the Entry JSON shape again.
"""

from __future__ import annotations

import base64
import gc
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import repeat
from math import isfinite
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from kubeweir.entry import Endpoint, Entry

__all__ = [
    "ARROW_SCHEMA",
    "BatchError",
    "batch_to_arrow",
    "datetime_to_ts",
    "entries_to_arrow",
    "first_seen",
    "gc_paused",
    "row_to_entry",
    "ts_to_datetime",
]

_EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)
_json = msgspec.json.Encoder()
_TS_MAX_US = (253402300799 - 86400) * 10**6  # 9999-12-30 23:59:59
"""The last ts accepted: a day short of the end of 9999, so that a dedupe window around
it (minutes) is still a ``datetime`` (a later ts made the check overflow: a 500 the
sniffer would retry forever)."""

_S = pa.string()
_I32 = pa.int32()
_MAP = pa.map_(pa.string(), pa.string())
_INT32 = (-(2**31), 2**31 - 1)
_INT_OR_NONE = {int, type(None)}

ARROW_SCHEMA = pa.schema(
    [
        ("id", _S),
        ("ts", pa.timestamp("us")),
        ("elapsed", pa.float64()),
        ("proto", _S),
        *[
            (f"{side}_{name}", typ)
            for side in ("src", "dst")
            for name, typ in (
                ("ip", _S),
                ("port", _I32),
                ("pod", _S),
                ("namespace", _S),
                ("workload", _S),
                ("service", _S),
                ("node", _S),
                ("labels", _MAP),
            )  # fmt: skip
        ],
        ("method", _S),
        ("path", _S),
        ("status", _I32),
        ("summary", _S),
        ("error", _S),
        ("tls", pa.bool_()),
        ("node", _S),
        ("stream", _S),
        ("idx", _I32),
        ("gaps", _I32),
        ("redacted", pa.list_(_S)),
        ("request", _S),
        ("response", _S),
        ("req_body", pa.binary()),
        ("resp_body", pa.binary()),
    ]
)
"""The storage columns as Arrow types, in table order."""


class BatchError(ValueError):
    """The batch cannot be stored as sent; the message says why."""


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a batch is decoded or turned into columns.

    A 1000-entry batch allocates ~10,000 dicts, lists and structs, none of them in a
    cycle; each 700 allocations trigger a collection, and in the hub's large heap the
    full ones are costly. Measured here: msgspec decode 37 -> 10 us per entry with the
    collector held. Nested and concurrent holds count; the collector resumes (if it
    was on) when the last one ends, so it only ever pauses for CPU-bound batch work.
    """
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _int32(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int):
        return None
    return v if _INT32[0] <= v <= _INT32[1] else None


def _column(values: list[Any], typ: pa.DataType, clean: Any = None) -> pa.Array:
    """Fast path: Arrow converts the list as is; when a value doesn't fit (a protocol put a
    string where a number belongs, a number out of range) fall back to cleaning each."""
    if clean is not None and pa.types.is_integer(typ):
        # Arrow would truncate a float (0.5 -> 0) into an integer column: only exact ints
        # (not bools, not floats) take the fast path
        if not set(map(type, values)) <= _INT_OR_NONE:
            return pa.array([clean(v) for v in values], typ)
    try:
        return pa.array(values, typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        if clean is None:
            raise
        return pa.array([clean(v) for v in values], typ)


def _port(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535 else 0


def _ports(values: Sequence[Any]) -> pa.Array:
    """A port column: a value that is not a port (out of 0-65535, not an int) is 0, as
    it is for any other batch (a port over 65535 that fits int32 was stored as sent)."""
    if set(map(type, values)) <= {int} and 0 <= min(values) and max(values) <= 65535:
        return pa.array(values, _I32)
    return pa.array([_port(v) for v in values], _I32)


def _split_body(msg: dict[str, Any]) -> tuple[bytes, bytes | None]:
    """The map as JSON without its body, and the body as bytes. The map is left as it
    was (equal; ``body`` is put back as its last key) and no copy of it is made."""
    if not msg:
        return b"{}", None
    if "body" not in msg:
        return _json.encode(msg), None
    body = msg.pop("body")
    try:
        meta = _json.encode(msg)
    finally:
        msg["body"] = body
    return meta, _body_bytes(body, msg.get("body_encoding"))


def _body_bytes(body: Any, encoding: Any) -> bytes | None:
    if not isinstance(body, str) or not body:
        return None
    if encoding == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            pass  # not base64 after all: keep the text as sent
    return body.encode("utf-8", "surrogatepass")


def _maps_and_bodies(msgs: list[dict[str, Any]], restore: bool = True) -> tuple[pa.Array, pa.Array]:
    """The request (or response) maps as JSON without their bodies, and the bodies as
    bytes: ``_split_body`` for a whole column, with the bodies taken out of every map
    (and, with ``restore``, put back as their last key) around one C-level pass of the
    JSON encoder. Without ``restore`` the maps are left without their bodies (for a
    caller that drops the entries next)."""
    bodies = list(map(dict.pop, msgs, repeat("body"), repeat(None)))
    try:
        metas = list(map(_json.encode, msgs))
    finally:
        if restore:
            for m, b in zip(msgs, bodies, strict=True):
                if b is not None:
                    m["body"] = b
    blobs: pa.Array | None = None
    encodings = map(dict.get, msgs, repeat("body_encoding"))
    if "base64" not in encodings:
        if "" in bodies:  # an empty body is no body
            bodies = [b or None for b in bodies]
        try:  # all text (or absent): Arrow encodes it to UTF-8 itself
            blobs = pa.array(bodies, _S).cast(pa.binary())
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError):
            blobs = None  # a non-string body, or lone surrogates: one by one below
    if blobs is None:
        blobs = pa.array(
            [_body_bytes(b, m.get("body_encoding")) for b, m in zip(bodies, msgs, strict=True)],
            pa.binary(),
        )
    return pa.array(metas, pa.binary()).cast(_S), blobs


def _values(msgs: list[dict[str, Any]], key: str) -> list[Any]:
    """``[m.get(key) for m in msgs]``, in C."""
    return list(map(dict.get, msgs, repeat(key)))


def _paths(reqs: list[dict[str, Any]]) -> list[Any]:
    """The ``path`` column: request.path, or the DNS name when there is no path."""
    paths = _values(reqs, "path")
    if None in paths:
        paths = [p if p is not None else r.get("name") for p, r in zip(paths, reqs, strict=True)]
    return paths


def batch_to_arrow(entries: Sequence[Entry], *, keep: bool = True) -> tuple[pa.Table, int]:
    """A batch as sent, in the storage columns: an id repeated within the batch is kept
    from its first entry. Returns the table and the number of entries sent. Without
    ``keep`` the entries' request/response maps lose their bodies (a caller that drops
    the entries next saves putting them back)."""
    return entries_to_arrow(first_seen(entries, set()), keep=keep), len(entries)


def first_seen(entries: Sequence[Entry], seen: set[str]) -> Sequence[Entry]:
    """The entries whose id is neither in ``seen`` nor earlier in ``entries`` (the same
    sequence when all are new); adds their ids to ``seen``."""
    ids = [e.id for e in entries]
    if seen.isdisjoint(ids) and len(set(ids)) == len(ids):
        seen.update(ids)
        return entries
    out = []
    for e in entries:
        if e.id not in seen:
            seen.add(e.id)
            out.append(e)
    return out


def entries_to_arrow(entries: Sequence[Entry], *, keep: bool = True) -> pa.Table:
    """The batch as one Arrow table in the storage columns, built column by column
    (``keep``: see ``batch_to_arrow``)."""
    with gc_paused():
        return _entries_to_arrow(entries, keep)


_astuple = msgspec.structs.astuple
# _entries_to_arrow unpacks entries and endpoints by field position: fail at import, not
# with shifted columns, if the contract's field order ever changes
_ENTRY_FIELDS = (
    "id", "ts", "proto", "src", "dst", "elapsed", "request", "response",
    "summary", "redacted", "tls", "error", "gaps", "stream", "index", "node",
)  # fmt: skip
_ENDPOINT_FIELDS = ("ip", "port", "pod", "namespace", "workload", "service", "labels", "node")
if Entry.__struct_fields__ != _ENTRY_FIELDS or Endpoint.__struct_fields__ != _ENDPOINT_FIELDS:
    raise ImportError("kubeweir.entry's field order changed: update hub.storage.rows")


def _entries_to_arrow(entries: Sequence[Entry], restore: bool) -> pa.Table:
    if not entries:
        return ARROW_SCHEMA.empty_table()
    # the fields of every entry, column-wise, in C: Entry.__struct_fields__ order
    (ids, tss, protos, srcs, dsts, elapsed, reqs, resps, summaries, redacted, tls, errors,
     gaps, streams, indexes, nodes) = zip(*map(_astuple, entries), strict=True)  # fmt: skip
    cols: list[pa.Array] = []
    try:
        ts_f = pa.array(tss, pa.float64())
        ts_us = pc.round(pc.multiply(ts_f, 1e6))
        bounds = pc.min_max(ts_us).as_py()
        if not (all(map(isfinite, tss)) and 0 <= bounds["min"] and bounds["max"] <= _TS_MAX_US):
            raise BatchError("an entry's ts is not a time between 1970 and 9999")
        cols += [
            pa.array(ids, _S),
            ts_us.cast(pa.int64()).cast(pa.timestamp("us")),
            pa.array(elapsed, pa.float64()),
            pa.array(protos, _S),
        ]
        for eps in (srcs, dsts):
            # Endpoint.__struct_fields__: ip, port, pod, namespace, workload, service,
            # labels, node
            ip, port, pod, ns, workload, service, labels, node = zip(
                *map(_astuple, eps), strict=True
            )
            cols += [
                pa.array(ip, _S),
                _ports(port),
                pa.array(pod, _S),
                pa.array(ns, _S),
                pa.array(workload, _S),
                pa.array(service, _S),
                pa.array(node, _S),
                pa.array(labels, _MAP),
            ]
        reqs_l, resps_l = list(reqs), list(resps)
        req_json, req_body = _maps_and_bodies(reqs_l, restore)
        resp_json, resp_body = _maps_and_bodies(resps_l, restore)
        cols += [
            _column(_values(reqs_l, "method"), _S, _text),
            _column(_paths(reqs_l), _S, _text),
            _column(_values(resps_l, "status"), _I32, _int32),
            pa.array(summaries, _S),
            pa.array(errors, _S),
            pa.array(tls, pa.bool_()),
            pa.array(nodes, _S),
            pa.array(streams, _S),
            _column(list(indexes), _I32, lambda v: _int32(v) or 0),
            _column(list(gaps), _I32, lambda v: _int32(v) or 0),
            pa.array(redacted, pa.list_(_S)),
            req_json,
            resp_json,
            req_body,
            resp_body,
        ]
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise BatchError(f"entries do not fit the storage columns: {exc}") from exc
    return pa.Table.from_arrays(cols, schema=ARROW_SCHEMA)


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
