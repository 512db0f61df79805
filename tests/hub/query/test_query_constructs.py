"""Each construct of the query language, on both back ends (DuckDB SQL and Python)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from hub.query import compile_query
from kubeweir.entry import Entry
from kubeweir.testing import make_endpoint, make_entry, make_http_entry
from tests.hub.query.conftest import NOW, Both

T0 = NOW.timestamp()


def _entries() -> dict[str, Entry]:
    web = make_http_entry(
        "GET",
        "/api/orders/7?full=1",
        503,
        src_ns="shop",
        dst_ns="payments",
        elapsed=0.3,
        request_headers={"x-id": "abc-1", "host": "payments"},
        request_body='{"order": 7, "note": "hello world"}',
        response_body="upstream timeout",
        ts=T0 - 60,
        tls=True,
        redacted=["request.headers.authorization"],
    )
    web.src.labels = {"app": "checkout", "tier": "web"}
    web.src.workload = "Deployment/checkout"
    health = make_http_entry(
        "POST", "/healthz", 200, elapsed=0.01, ts=T0 - 3600, src_ns="shop", dst_ns="shop"
    )
    dns = make_entry(
        proto="dns",
        ts=T0 - 30,
        elapsed=0.002,
        request={"id": 4711, "name": "orders.shop.svc.cluster.local", "type": "A"},
        response={
            "rcode": "NOERROR",
            "answers": [{"name": "orders", "type": "A", "ttl": 30, "data": "10.0.0.9"}],
        },
        src=make_endpoint("10.0.0.5", 5353, namespace="shop", pod="checkout-1"),
        dst=make_endpoint("10.0.0.10", 53, namespace="kube-system"),
    )
    redis = make_entry(
        proto="redis",
        ts=T0 - 10,
        request={"method": "MGET", "command": "MGET", "keys": ["user:1", "user:2"]},
        error="no response",
        src=make_endpoint("10.0.0.5", 40001, namespace="shop"),
        dst=make_endpoint("10.0.0.20", 6379, namespace="cache", labels={"app": "redis"}),
    )
    binary = make_http_entry(
        "PUT", "/upload", 201, elapsed=2.5, ts=T0 - 5, src_ns="batch", dst_ns="payments"
    )
    binary.request["body"] = base64.b64encode(b"\xff\x00PNG\x12\x34end").decode()
    binary.request["body_encoding"] = "base64"
    tcp = make_entry(
        proto="tcp",
        ts=T0 - 1,
        request={"bytes": 12, "preview": "\\x16\\x03"},
        src=make_endpoint("10.0.0.7", 41000),
        dst=make_endpoint("10.0.0.8", 443),
        gaps=3,
    )
    return {
        "web": web,
        "health": health,
        "dns": dns,
        "redis": redis,
        "binary": binary,
        "tcp": tcp,
    }


CASES: list[tuple[str, set[str]]] = [
    # empty, constants
    ("", {"web", "health", "dns", "redis", "binary", "tcp"}),
    ("true", {"web", "health", "dns", "redis", "binary", "tcp"}),
    ("false", set()),
    # protocol macros
    ("http", {"web", "health", "binary"}),
    ("dns || redis", {"dns", "redis"}),
    ("tcp", {"tcp"}),
    ("grpc || kafka || mqtt || amqp || postgres || http2", set()),
    ('proto == "dns"', {"dns"}),
    # comparisons on columns
    ("response.status >= 500", {"web"}),
    ("response.status == 200 || response.status == 201", {"health", "binary"}),
    ("response.status != 200", {"web", "binary"}),  # missing status: false
    ("!(response.status == 200)", {"web", "dns", "redis", "binary", "tcp"}),
    ("response.status < 300 && response.status > 199", {"health", "binary"}),
    ('request.method == "GET"', {"web"}),
    ('request.method in ["GET", "MGET"]', {"web", "redis"}),
    ('dst.namespace == "payments"', {"web", "binary"}),
    ('src.namespace != "shop"', {"binary", "tcp"}),
    ('src.pod == ""', {"redis", "tcp"}),
    ("dst.port == 6379", {"redis"}),
    ("src.port >= 41000 && src.port < 41001", {"tcp"}),
    ('src.workload.startsWith("Deployment/")', {"web"}),
    ("gaps > 0", {"tcp"}),
    ("index == 0", {"web", "health", "dns", "redis", "binary", "tcp"}),
    # request.path: the path, or the DNS name
    ('request.path.startsWith("/api/")', {"web"}),
    ('request.path.endsWith(".svc.cluster.local")', {"dns"}),
    ('dns && request.name.endsWith(".svc.cluster.local")', {"dns"}),
    ('!(request.path in ["/healthz", "/readyz"])', {"web", "dns", "redis", "binary", "tcp"}),
    ('request.path.contains("order")', {"web", "dns"}),
    ('request.path.matches("^/api/[a-z]+/[0-9]+$")', {"web"}),
    ('request.query == "full=1"', {"web"}),
    # labels (MAP column)
    ('src.labels["app"] == "checkout"', {"web"}),
    ("src.labels.app == 'checkout'", {"web"}),
    ('dst.labels["app"] == "redis"', {"redis"}),
    ('"tier" in src.labels', {"web"}),
    ('!("tier" in src.labels)', {"health", "dns", "redis", "binary", "tcp"}),
    ("size(src.labels) == 2", {"web"}),
    ("size(dst.labels) == 0", {"web", "health", "dns", "binary", "tcp"}),
    ('src.labels["nope"] == ""', set()),
    # headers (JSON), names lower-cased
    ('request.headers["x-id"] == "abc-1"', {"web"}),
    ('request.headers["X-Id"].startsWith("abc")', {"web"}),
    ('"X-ID" in request.headers', {"web"}),
    ('"content-type" in response.headers', {"web", "health", "binary"}),
    ("size(request.headers) == 2", {"web"}),
    ('has(request.headers["host"])', {"web", "health", "binary"}),
    # other protocol fields through JSON
    ("request.id == 4711", {"dns"}),
    ("request.id > 4000.5", {"dns"}),
    ('response.rcode == "NOERROR"', {"dns"}),
    ('response.answers[0].data == "10.0.0.9"', {"dns"}),
    ("response.answers[0].ttl <= 30", {"dns"}),
    ("size(response.answers) == 1", {"dns"}),
    ('"user:2" in request.keys', {"redis"}),
    ('"user:3" in request.keys', set()),
    ("size(request.keys) == 2", {"redis"}),
    ("request.bytes == 12", {"tcp"}),
    ('request.preview.startsWith("\\\\x16")', {"tcp"}),
    ("request.body_size > 10", {"web"}),
    ("response.nothing == 1 || response.nothing == 'x' || response.nothing", set()),
    ("has(response.rcode)", {"dns"}),
    ("response.rcode != null", {"dns"}),
    ("response.status == null", {"dns", "redis", "tcp"}),
    ("has(elapsed)", {"web", "health", "dns", "binary"}),
    # bodies (BLOB columns)
    ('request.body.contains("hello")', {"web"}),
    ('request.body.contains("\\xff")', set()),  # U+00FF is two UTF-8 bytes, not 0xff
    ("request.body.contains(b'\\xff\\x00PNG')", {"binary"}),
    ("request.body.contains(b'\\x00P')", {"binary"}),
    ("request.body.contains(b'\\x12\\x34')", {"binary"}),
    ("request.body.contains(b'\\x23')", set()),  # not at a byte boundary in the hex text
    ('request.body.startsWith("{")', {"web"}),
    ('request.body.endsWith("end")', {"binary"}),
    ("request.body.startsWith(b'\\xff')", {"binary"}),
    ('request.body == ""', {"health", "dns", "redis", "tcp"}),
    ("size(request.body) == 10", {"binary"}),
    ('request.body.matches("note.*world")', {"web"}),
    ('request.body.matches("PNG")', set()),  # not UTF-8: no text to search
    ('response.body.contains("timeout")', {"web"}),
    # bool and list columns
    ("tls", {"web"}),
    ("!tls", {"health", "dns", "redis", "binary", "tcp"}),
    ("tls == false", {"health", "dns", "redis", "binary", "tcp"}),
    ('"request.headers.authorization" in redacted', {"web"}),
    ("size(redacted) > 0", {"web"}),
    ('error == "no response"', {"redis"}),
    ('error != ""', {"redis"}),
    ('summary.startsWith("GET ")', {"web"}),
    # durations and timestamps
    ('elapsed > duration("250ms")', {"web", "binary"}),
    ("elapsed > 0.25", {"web", "binary"}),
    ('elapsed <= duration("10ms")', {"health", "dns"}),
    ('elapsed >= duration("1s") + duration("1.5s")', {"binary"}),
    ('ts > now() - duration("5m")', {"web", "dns", "redis", "binary", "tcp"}),
    ('ts > now() - duration("20s")', {"redis", "binary", "tcp"}),
    ('ts < timestamp("2026-01-01T11:01:00Z")', {"health"}),
    ('ts >= timestamp("2026-01-01T13:59:45+02:00")', {"redis", "binary", "tcp"}),
    ('now() - duration("1h") >= ts', {"health"}),
    # logic
    ('http && response.status >= 500 && dst.namespace == "payments"', {"web"}),
    ('(dns || redis) && src.namespace == "shop"', {"dns", "redis"}),
    ("!!http", {"web", "health", "binary"}),
    ("src.namespace == dst.namespace", {"health", "tcp"}),  # tcp: both empty
    ("size(request.method) == 4", {"redis", "health"}),
    (
        'size("abc") == 3 && "abc".startsWith("a")',
        {"web", "health", "dns", "redis", "binary", "tcp"},
    ),
    ("1 + 2 == 3 && http", {"web", "health", "binary"}),
    ('"GET" in ["GET"] && http', {"web", "health", "binary"}),
]


@pytest.mark.parametrize("nulls", [False, True], ids=["stored", "defaults-null"])
@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] or "<empty>" for c in CASES])
def test_construct_on_both_back_ends(
    both: Both, text: str, expected: set[str], nulls: bool
) -> None:
    entries = _entries()
    both.load(list(entries.values()), defaults_as_null=nulls)
    names = {e.id: name for name, e in entries.items()}
    got = both.run(text)
    assert {names[i] for i in got} == expected


def test_now_is_a_parameter_of_each_call(both: Both) -> None:
    entries = _entries()
    both.load(list(entries.values()))
    q = 'ts > now() - duration("30s")'
    assert len(both.run(q)) == 3
    assert len(both.run(q, NOW + timedelta(hours=1))) == 0
    assert len(both.run(q, NOW.replace(tzinfo=None))) == 3  # naive now is UTC
    assert len(both.run('ts < now() - duration("87000000h")')) == 0  # clamped, no overflow


def test_injection_attempts_are_just_strings(both: Both) -> None:
    entries = _entries()
    evil = make_http_entry("GET", '/"); DROP TABLE entries; --', 200)
    both.load([*entries.values(), evil])
    for text in (
        'request.path == "/\\"); DROP TABLE entries; --"',
        "request.path == '/\"); DROP TABLE entries; --'",
        'request.path.contains("DROP TABLE")',
        "request.headers[\"'; DROP TABLE entries; --\"] == 'x' || request.path.endsWith('--')",
        'src.labels["\') OR 1=1 --"] == "x" || request.path.startsWith("/\\"")',
    ):
        assert both.run(text) == {evil.id}
    assert both.run('request.path.matches("DROP")') == {evil.id}
    count = both.conn.exec_driver_sql("SELECT count(*) FROM entries").scalar()
    assert count == len(entries) + 1


def test_where_uses_only_bound_parameters() -> None:
    from hub.storage.schema import entries_table

    secret = "zz-user-text-zz"
    q = compile_query(
        f'request.path == "{secret}" && src.labels["{secret}"] == "{secret}" && '
        f'request.headers["{secret}"].matches("{secret}") && request.body.contains("{secret}")'
        f' && request.{secret[:2]}x["{secret}"] in ["{secret}"]'
    )
    sql_text = str(q.where(entries_table, NOW))
    assert secret not in sql_text


def test_matches_accepts_entry_dicts_without_defaults() -> None:
    q = compile_query('src.namespace == "" && size(src.labels) == 0 && !tls && gaps == 0')
    entry = {"id": "x", "ts": T0, "proto": "tcp", "src": {"ip": "1.2.3.4"}, "dst": {"ip": "::1"}}
    assert q.matches(entry, NOW)
    assert not compile_query("response.status == 200").matches(entry, NOW)
    assert compile_query("!(response.status == 200)").matches(entry, NOW)
