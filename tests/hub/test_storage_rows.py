"""Ingest columns (``hub.storage.rows``): the C-level column paths give the same table as a
plain per-entry construction, ``keep=False`` only drops bodies from maps it owns, and
odd values (empty, base64, non-text and lone-surrogate bodies, DNS names, bad numbers)
take their slow paths."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pyarrow as pa
import pytest

from hub.storage.rows import ARROW_SCHEMA, BatchError, batch_to_arrow, entries_to_arrow
from kubeweir.entry import Endpoint, Entry
from kubeweir.testing import make_entry, make_http_entry


def _int32(v: Any) -> int | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31
    return v if ok else None


def _body(msg: dict[str, Any]) -> bytes | None:
    body = msg.get("body")
    if not isinstance(body, str) or not body:
        return None
    if msg.get("body_encoding") == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            pass
    return body.encode("utf-8", "surrogatepass")


def _meta(msg: dict[str, Any]) -> str:
    rest = {k: v for k, v in msg.items() if k != "body"}
    return json.dumps(rest, separators=(",", ":"), ensure_ascii=False)


def _oracle(entries: list[Entry]) -> pa.Table:
    """The storage columns built one entry at a time, in plain Python."""
    rows: list[dict[str, Any]] = []
    for e in entries:
        row: dict[str, Any] = {
            "id": e.id,
            "ts": round(e.ts * 1e6),
            "elapsed": e.elapsed,
            "proto": e.proto,
        }
        for side, ep in (("src", e.src), ("dst", e.dst)):
            port = ep.port if isinstance(ep.port, int) and 0 <= ep.port <= 65535 else 0
            row |= {
                f"{side}_ip": ep.ip,
                f"{side}_port": port,
                f"{side}_pod": ep.pod,
                f"{side}_namespace": ep.namespace,
                f"{side}_workload": ep.workload,
                f"{side}_service": ep.service,
                f"{side}_node": ep.node,
                f"{side}_labels": list(ep.labels.items()),
            }
        method, path = e.request.get("method"), e.request.get("path")
        if path is None:
            path = e.request.get("name")
        row |= {
            "method": method if isinstance(method, str) else None,
            "path": path if isinstance(path, str) else None,
            "status": _int32(e.response.get("status")),
            "summary": e.summary,
            "error": e.error,
            "tls": e.tls,
            "node": e.node,
            "stream": e.stream,
            "idx": _int32(e.index) or 0,
            "gaps": _int32(e.gaps) or 0,
            "redacted": e.redacted,
            "request": _meta(e.request) if e.request else "{}",
            "response": _meta(e.response) if e.response else "{}",
            "req_body": _body(e.request),
            "resp_body": _body(e.response),
        }
        rows.append(row)
    cols = {name: [r[name] for r in rows] for name in ARROW_SCHEMA.names}
    cols["ts"] = pa.array(cols["ts"], pa.int64()).cast(pa.timestamp("us"))
    return pa.Table.from_pydict(cols, schema=ARROW_SCHEMA)


def _odd_entries() -> list[Entry]:
    es = [
        make_http_entry(
            "POST",
            "/a",
            201,
            request_body='{"x": 1}',
            response_body="ok",
            request_headers={"x-id": "1"},
        ),
        make_http_entry(response_body=""),  # empty body: no body
        make_http_entry(response_body="AAEC/w=="),
        make_http_entry(response_body="not base64!"),
        make_http_entry(response_body="cafe"),
        make_entry(proto="dns", request={"name": "example.com", "type": "A"}),
        make_entry(proto="redis", request={"command": "GET"}, response={"status": "OK"}),
        make_entry(request={"method": 7, "path": ["x"], "body": 12}, response={"status": 2**40}),
        make_entry(request={}, response={}),
    ]
    es[4].response["body"] = "caf\udce9"  # a lone surrogate
    es[2].response["body_encoding"] = "base64"
    es[3].response["body_encoding"] = "base64"
    es[0].src = Endpoint(ip="10.0.0.9", port=70000, labels={"app": "web", "tier": "f"})
    es[1].gaps, es[1].index = 2**40, -3
    es[1].redacted = ["request.headers.authorization"]
    return es


@pytest.mark.parametrize("keep", [True, False])
def test_columns_equal_a_per_entry_construction(keep: bool) -> None:
    entries = _odd_entries()
    expected = _oracle(copy.deepcopy(entries))
    table, total = batch_to_arrow(entries, keep=keep)
    assert total == len(entries)
    assert table.schema == ARROW_SCHEMA
    for name in ARROW_SCHEMA.names:
        assert table.column(name).to_pylist() == expected.column(name).to_pylist(), name


def test_all_text_bodies_take_the_column_path_and_match() -> None:
    entries = [
        make_http_entry(request_body=f"req {i}", response_body="" if i % 3 else f"r{i}")
        for i in range(50)
    ]
    expected = _oracle(copy.deepcopy(entries))
    assert entries_to_arrow(entries).equals(expected)


def test_keep_leaves_the_entries_as_they_were() -> None:
    entries = _odd_entries()
    before = copy.deepcopy(entries)
    entries_to_arrow(entries)
    assert entries == before


def test_without_keep_only_the_bodies_leave_the_maps() -> None:
    entries = _odd_entries()
    before = copy.deepcopy(entries)
    entries_to_arrow(entries, keep=False)
    for e, b in zip(entries, before, strict=True):
        for msg, was in ((e.request, b.request), (e.response, b.response)):
            assert "body" not in msg
            assert msg == {k: v for k, v in was.items() if k != "body"}


def test_a_repeated_id_is_kept_from_its_first_entry() -> None:
    a, b = make_http_entry(response_body="first"), make_http_entry(response_body="second")
    b.id = a.id
    table, total = batch_to_arrow([a, b])
    assert total == 2 and table.num_rows == 1
    assert table.column("resp_body").to_pylist() == [b"first"]


@pytest.mark.parametrize("ts", [float("nan"), float("inf"), -1.0, 1e13])
def test_a_ts_outside_1970_to_9999_is_refused(ts: float) -> None:
    e = make_http_entry()
    e.ts = ts
    with pytest.raises(BatchError, match="ts"):
        entries_to_arrow([make_http_entry(), e])
