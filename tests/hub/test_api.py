"""Viewer routes: results, scope on every route, bad queries, cursors, time ranges."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from hub.storage.duckdb import DuckDBStorage
from kubeweir.testing import make_entry, make_http_entry
from tests.hub.conftest import ADMIN, ALICE, BOB, ingest
from tests.hub.routes import walk_routes

# Health, metrics and the login endpoints (SAML and the login link) are the only public ones.
PUBLIC = {
    "/healthz", "/readyz", "/metrics", "/auth/token-login",
    "/saml/metadata", "/saml/login", "/saml/acs", "/saml/slo",
}  # fmt: skip


@pytest.fixture
def data(client: TestClient) -> dict[str, list[str]]:
    pay = [
        make_http_entry(
            "GET", f"/pay/{i}", 500 if i % 4 == 0 else 200, src_ns="payments", dst_ns="payments-db",
            elapsed=0.001 * (i + 1), request_body="card=[REDACTED]",
            request_headers={"x-id": str(i)}, response_body="ok",
        )
        for i in range(12)
    ]  # fmt: skip
    shop = [
        make_http_entry("POST", f"/cart/{i}", 201, src_ns="shop", dst_ns="shop") for i in range(5)
    ]
    cross = [make_http_entry("GET", "/charge", 200, src_ns="shop", dst_ns="payments")]
    other = [make_entry(proto="dns", request={"name": "x.svc"}, response={"rcode": "NOERROR"})]
    ingest(client, pay + shop + cross + other)
    return {
        "pay": [e.id for e in pay],
        "shop": [e.id for e in shop],
        "cross": [e.id for e in cross],
        "other": [e.id for e in other],
    }


def _ids(client: TestClient, headers: dict[str, str], **params: object) -> list[str]:
    r = client.get("/api/v1/entries", headers=headers, params=params)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    return [e["id"] for e in r.json()["entries"]]


def test_every_route_needs_an_identity(app: FastAPI, client: TestClient) -> None:
    seen = 0
    for path, route in walk_routes(app.routes):
        if isinstance(route, APIRoute):
            if path in PUBLIC or path.startswith("/saml/") or path == "/{path:path}":
                continue
            url = re.sub(r"\{[^}]+\}", "x", path)
            for method in route.methods:
                r = client.request(method, url)
                assert r.status_code == 401, (method, path, r.status_code)
                seen += 1
        elif isinstance(route, APIWebSocketRoute):
            with pytest.raises(WebSocketDisconnect) as exc:
                with client.websocket_connect(path) as ws:
                    ws.receive_json()
            assert exc.value.code == 1008
            seen += 1
    assert seen >= 12
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200


def test_scope_on_every_data_route(client: TestClient, data: dict[str, list[str]]) -> None:
    bob_ids = set(_ids(client, BOB, limit=1000))
    assert bob_ids == set(data["shop"]) | set(data["cross"])
    alice_ids = set(_ids(client, ALICE, limit=1000))
    assert alice_ids == set(data["pay"]) | set(data["cross"])
    assert len(_ids(client, ADMIN, limit=1000)) == 19
    # detail: out of scope looks exactly like absent
    r_out = client.get(f"/api/v1/entries/{data['pay'][0]}", headers=BOB)
    r_absent = client.get("/api/v1/entries/nope", headers=BOB)
    assert r_out.status_code == r_absent.status_code == 404
    assert r_out.json() == r_absent.json()
    assert client.get(f"/api/v1/entries/{data['cross'][0]}", headers=BOB).status_code == 200
    # stats and service map
    st = client.get("/api/v1/stats", headers=BOB).json()
    assert st["total"] == 6 and set(st["by_namespace"]) == {"shop", "payments"}
    sm = client.get("/api/v1/servicemap", headers=BOB).json()
    assert sum(e["count"] for e in sm["edges"]) == 6
    # exports
    har = client.get("/api/v1/export.har", headers=BOB).json()
    assert {e["_kubeweir"]["id"] for e in har["log"]["entries"]} == bob_ids
    # a query cannot widen the scope
    assert set(_ids(client, BOB, q='dst.namespace == "payments-db"')) == set()
    assert set(_ids(client, BOB, q="true || true")) == bob_ids


def test_bodies_and_headers_need_view_bodies(
    client: TestClient, data: dict[str, list[str]]
) -> None:
    cross = data["cross"][0]
    full = client.get(f"/api/v1/entries/{data['pay'][1]}", headers=ALICE).json()
    assert full["request"]["headers"] == {"x-id": "1"} and full["response"]["body"] == "ok"
    assert full["request"]["body"] == "card=[REDACTED]"
    bare = client.get(f"/api/v1/entries/{cross}", headers=BOB).json()
    assert "headers" not in bare["request"] and "body" not in bare["response"]
    listed = client.get("/api/v1/entries", headers=ALICE).json()["entries"]
    assert all("body" not in e["request"] and "body" not in e["response"] for e in listed)
    har = client.get("/api/v1/export.har", headers=BOB).json()["log"]["entries"]
    assert all(not e["request"]["headers"] and "text" not in e["response"]["content"] for e in har)
    assert client.get("/api/v1/export.pcap", headers=BOB).status_code == 403


def test_query_filters_and_stats(client: TestClient, data: dict[str, list[str]]) -> None:
    errs = _ids(client, ADMIN, q="http && response.status >= 500")
    assert set(errs) == {data["pay"][i] for i in (0, 4, 8)}
    assert _ids(client, ADMIN, q='request.headers["x-id"] == "3"') == [data["pay"][3]]
    assert set(_ids(client, ADMIN, q="dns")) == set(data["other"])
    st = client.get("/api/v1/stats", headers=ADMIN, params={"q": "http"}).json()
    assert st["total"] == 18 and st["by_status_class"] == {"2xx": 15, "5xx": 3}
    assert st["by_proto"] == {"http": 18}


def test_servicemap_edges(client: TestClient, data: dict[str, list[str]]) -> None:
    sm = client.get("/api/v1/servicemap", headers=ADMIN, params={"q": "http"}).json()
    edges = {(e["source"], e["target"]): e for e in sm["edges"]}
    e = edges[("payments/client", "payments-db/server")]
    assert e["count"] == 12 and e["errors"] == 3 and e["error_rate"] == pytest.approx(0.25)
    assert e["p50"] == pytest.approx(0.0065) and e["p99"] <= 0.012 and e["rate"] > 0
    nodes = {n["id"]: n for n in sm["nodes"]}
    assert nodes["payments/client"]["count"] == 12


def test_pagination_with_cursor(client: TestClient, data: dict[str, list[str]]) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, object] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/api/v1/entries", headers=ADMIN, params=params).json()  # type: ignore[arg-type]
        seen += [e["id"] for e in body["entries"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 19


def test_tampered_cursor(client: TestClient, data: dict[str, list[str]]) -> None:
    cur = client.get("/api/v1/entries", headers=ADMIN, params={"limit": 2}).json()["next_cursor"]
    bad = cur[:-2] + ("AA" if not cur.endswith("AA") else "BB")
    for c in (bad, "garbage", "", "x" * 5000):
        r = client.get("/api/v1/entries", headers=ADMIN, params={"cursor": c, "limit": 2})
        assert r.status_code in (200, 400)
        if c:
            assert r.status_code == 400 and "cursor" in r.json()["detail"]


def test_time_range(client: TestClient, data: dict[str, list[str]]) -> None:
    all_ids = _ids(client, ADMIN, limit=100)
    r = client.get("/api/v1/entries", headers=ADMIN, params={"from": "2030-01-01T00:00:00Z"})
    assert r.json()["entries"] == []
    assert len(_ids(client, ADMIN, **{"from": "0", "to": "4102444800"})) == len(all_ids)
    r = client.get(
        "/api/v1/entries", headers=ADMIN, params={"from": "2024-01-02", "to": "2024-01-01"}
    )
    assert r.status_code == 400 and "after" in r.json()["detail"]
    r = client.get("/api/v1/stats", headers=ADMIN, params={"from": "yesterday"})
    assert r.status_code == 400 and "RFC 3339" in r.json()["detail"]


BAD_QUERIES = [
    '"); DROP TABLE entries; --',
    'request.path == "\'); DROP TABLE entries; --" || ',
    "(" * 500 + "true" + ")" * 500,
    " || ".join(["http"] * 5000),
    'request.path.matches("(a+)+$")',
    'request.path.matches("(a*)*b")',
    "nosuchfield == 1",
    'response.status == "500"',
    "x" * 30_000,
]


@pytest.mark.parametrize("q", BAD_QUERIES, ids=range(len(BAD_QUERIES)))
def test_bad_queries_are_400_and_lose_nothing(
    client: TestClient, data: dict[str, list[str]], storage: DuckDBStorage, q: str
) -> None:
    before = storage.count()
    for path in (
        "/api/v1/entries",
        "/api/v1/stats",
        "/api/v1/servicemap",
        "/api/v1/query/validate",
    ):
        r = client.get(path, headers=ADMIN, params={"q": q})
        assert r.status_code == 400, (path, r.status_code, r.text[:200])
        detail = r.json()["detail"]
        assert set(detail) == {"message", "position", "hint"}
        assert isinstance(detail["position"], int) and 0 <= detail["position"] <= len(q)
    assert storage.count() == before
    assert client.get("/api/v1/stats", headers=ADMIN).json()["total"] == before


def test_injection_text_is_only_ever_a_value(
    client: TestClient, data: dict[str, list[str]]
) -> None:
    q = 'request.path == "\'); DROP TABLE entries; --"'
    r = client.get("/api/v1/entries", headers=ADMIN, params={"q": q})
    assert r.status_code == 200 and r.json()["entries"] == []
    assert client.get("/api/v1/stats", headers=ADMIN).json()["total"] == 19


def test_validate_and_fields(client: TestClient) -> None:
    assert client.get("/api/v1/query/validate", headers=ADMIN, params={"q": "http"}).json() == {
        "valid": True
    }
    r = client.get("/api/v1/query/validate", headers=ADMIN, params={"q": "reqest.path == 1"})
    assert r.status_code == 400 and r.json()["detail"]["position"] == 0
    f = client.get("/api/v1/query/fields", headers=ADMIN).json()
    names = {x["name"] for x in f["fields"]}
    assert {"request.path", "src.namespace", "elapsed"} <= names
    assert f["macros"] and f["functions"]


def test_whoami_and_token_login(client: TestClient) -> None:
    me = client.get("/api/v1/whoami", headers=ALICE).json()
    assert (me["name"], me["namespaces"], me["permissions"]) == (
        "alice", ["payments*"], ["export", "view-bodies"]
    )  # fmt: skip
    r = client.get(
        "/auth/token-login",
        params={"token": "bob-token", "next": "https://evil.example/x"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert client.get("/api/v1/whoami").json()["name"] == "bob"  # the cookie now works
    client.cookies.set("kubeweir_session", "forged")
    assert client.get("/api/v1/whoami").status_code == 401
    r = client.get("/auth/token-login", params={"token": "nope"}, follow_redirects=False)
    assert r.status_code == 401


def test_front_fallback(client: TestClient) -> None:
    r = client.get("/some/spa/route")
    assert r.status_code == 200 and "<html" in r.text.lower()
    assert client.get("/api/v1/nope", headers=ADMIN).status_code == 404


def test_metrics_count_queries_and_ingest(client: TestClient, data: dict[str, list[str]]) -> None:
    client.get("/api/v1/entries", headers=ADMIN)
    client.get("/api/v1/servicemap", headers=ADMIN)
    text = client.get("/metrics").text
    assert 'kubeweir_query_seconds_count{route="entries"} 1.0' in text
    assert 'kubeweir_query_seconds_count{route="servicemap"} 1.0' in text
    assert "kubeweir_ingest_entries_total 19.0" in text
    assert "kubeweir_stored_entries 19.0" in text
