"""The field/macro/function catalog is the compiler's own table: everything it lists
compiles, and everything the storage contract names is listed."""

from __future__ import annotations

import dataclasses

import pytest

from hub.query import compile_query, fields, functions, macros
from hub.storage.schema import COLUMNS
from tests.hub.query.conftest import NOW

SAMPLE = {
    "string": '{f} == "x"',
    "int": "{f} > 1",
    "double": "{f} > 1.5",
    "bool": "{f} == true",
    "duration": '{f} > duration("1s")',
    "timestamp": '{f} > timestamp("2026-01-01T00:00:00Z")',
    "bytes": '{f}.contains("x")',
    "map(string, string)": '"k" in {f}',
    "list": '"k" in {f}',
    "dyn": "{f} == 1",
}


def test_every_field_has_type_and_doc_and_compiles() -> None:
    infos = fields()
    assert len({i.name for i in infos}) == len(infos)
    for info in infos:
        assert info.doc, info
        q = compile_query(SAMPLE[info.type].format(f=info.name))
        assert q.matches({"id": "1", "ts": 0.0, "proto": "x", "src": {}, "dst": {}}, NOW) in (
            True,
            False,
        )


def test_every_storage_column_is_reachable() -> None:
    names = {i.name for i in fields()}
    reach = {
        "idx": "index", "req_body": "request.body", "resp_body": "response.body",
        "method": "request.method", "path": "request.path", "status": "response.status",
    }  # fmt: skip
    for col in COLUMNS:
        if col in ("request", "response"):
            continue
        name = reach.get(col) or col.replace("src_", "src.").replace("dst_", "dst.")
        assert name in names, col


def test_macros_are_protocols() -> None:
    names = [m.name for m in macros()]
    for p in ("http", "http2", "grpc", "dns", "redis", "postgres", "kafka", "mqtt", "amqp", "tcp"):
        assert p in names
    for m in macros():
        assert compile_query(m.name).ast == compile_query(m.expands_to).ast or m.expands_to


@pytest.mark.parametrize("info", functions(), ids=lambda i: i.name)
def test_functions_are_documented(info: object) -> None:
    d = dataclasses.asdict(info)  # type: ignore[call-overload]
    assert d["name"] and d["signature"] and d["doc"]


def test_catalog_serialises_for_the_api() -> None:
    for item in [*fields(), *macros(), *functions()]:
        assert all(isinstance(v, str) for v in dataclasses.asdict(item).values())


def test_protocol_macro_equals_proto_comparison() -> None:
    entry = {"id": "1", "ts": 0.0, "proto": "grpc", "src": {}, "dst": {}}
    assert compile_query("grpc").matches(entry, NOW)
    assert compile_query('proto == "grpc"').matches(entry, NOW)
    assert not compile_query("http").matches(entry, NOW)


def test_fields_used_lets_the_hub_refuse_body_probes() -> None:
    q = compile_query('http && request.body.contains("token") || src.labels["app"] == "x"')
    assert q.fields_used == {"proto", "request.body", "src.labels"}
    assert compile_query("").fields_used == frozenset()
    assert "response.body" in compile_query("size(response.body) > 0").fields_used
