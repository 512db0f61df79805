"""Viewers through the hub's HTTP API: SAML logins with a real IdP, the authorization
matrix over every route, tokens, CSRF, rate limits, audit and security headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from hub.auth.config import AuthSettings
from hub.core.config import Settings
from hub.main import create_app
from kubeweir.entry import encode_batch
from kubeweir.testing import make_http_entry
from tests.hub.auth.conftest import SamlPair, make_pair
from tests.hub.auth.idp import post_form, strip_signatures, wrap_signature
from tests.hub.routes import walk_routes

BASE = "https://kubeweir.test.internal"
INGEST = {"Authorization": "Bearer ingest-secret"}
ROLES = {
    "roles": {
        "team-a": {"namespaces": ["team-a"], "permissions": ["view-bodies", "export"]},
        "team-b": {"namespaces": ["team-b"], "permissions": ["view-bodies", "export"]},
        "ops": {"namespaces": ["*"], "permissions": ["admin"]},
    },
    "group_roles": {"a": ["team-a"], "b": ["team-b"], "ops": ["ops"]},
}
# Each entry carries a marker in its path; a viewer's answers must never hold a marker of
# an entry outside its scope.
MARK_A, MARK_B, MARK_AB = "mark-aaaa", "mark-bbbb", "mark-abab"


@dataclass
class Hub:
    app: FastAPI
    pair: SamlPair
    client: TestClient
    ids: dict[str, str]


def _settings(pair: SamlPair, **auth: Any) -> Settings:
    saml = pair.settings.model_copy(update={"public_url": BASE})
    return Settings(
        db=":memory:",
        ingest_token="ingest-secret",
        secret_key="test-secret-key-0123456789",
        retention_max_age=None,
        retention_max_bytes=None,
        auth=AuthSettings(saml=saml, **{**ROLES, **auth}),
    )  # type: ignore[arg-type]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    pair = make_pair(tmp_path, public_url=BASE)
    app = create_app(_settings(pair))
    with TestClient(app, base_url=BASE) as client:
        entries = {
            MARK_A: make_http_entry(path=f"/{MARK_A}", src_ns="team-a", dst_ns="team-a",
                                    request_body="secret-a"),
            MARK_B: make_http_entry(path=f"/{MARK_B}", src_ns="team-b", dst_ns="team-b",
                                    request_body="secret-b"),
            MARK_AB: make_http_entry(path=f"/{MARK_AB}", src_ns="team-a", dst_ns="team-b"),
        }  # fmt: skip
        r = client.post("/api/v1/ingest", content=encode_batch(list(entries.values())),
                        headers=INGEST)  # fmt: skip
        assert r.status_code == 200, r.text
        yield Hub(app, pair, client, {k: e.id for k, e in entries.items()})


def saml_login(hub: Hub, user: str, groups: tuple[str, ...], next: str = "/") -> TestClient:
    """A fresh browser that logs in through the IdP."""
    browser = TestClient(hub.app, base_url=BASE)
    r = browser.get("/saml/login", params={"next": next}, follow_redirects=False)
    assert r.status_code == 303, r.text
    req = hub.pair.idp.read_authn_request(r.headers["location"])
    xml = hub.pair.idp.response_xml(req, user, groups)
    r = browser.post("/saml/acs", data=post_form(xml, req.relay_state), follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == next
    return browser


def test_saml_login_gives_a_scoped_session(hub: Hub) -> None:
    browser = saml_login(hub, "alice", ("a",), next="/traffic?q=http")
    me = browser.get("/api/v1/whoami").json()
    assert me["name"] == "alice" and me["namespaces"] == ["team-a"] and me["csrf"]
    cookie = browser.cookies.get("kubeweir_session")
    assert cookie
    raw = [h for h in browser.get("/api/v1/whoami").headers.get_list("set-cookie")]
    assert raw and all(k in raw[0] for k in ("HttpOnly", "Secure", "SameSite=lax"))
    audit = _admin(hub).get("/api/v1/audit", params={"action": "login"}).json()["records"]
    assert any(r["actor"] == "alice" and r["result"] == "ok" for r in audit)


def test_no_role_gets_a_clear_refusal(hub: Hub) -> None:
    browser = saml_login(hub, "nobody", ("unmapped",))
    me = browser.get("/api/v1/whoami")
    assert me.status_code == 200 and me.json()["namespaces"] == []
    assert "No role" in me.json()["message"]
    r = browser.get("/api/v1/entries")
    assert r.status_code == 403 and "no role" in r.json()["detail"]


@pytest.mark.parametrize("forgery", ["unsigned", "stripped", "wrapped", "replayed", "garbage"])
def test_forged_responses_are_refused_and_audited(hub: Hub, forgery: str) -> None:
    browser = TestClient(hub.app, base_url=BASE)
    r = browser.get("/saml/login", follow_redirects=False)
    req = hub.pair.idp.read_authn_request(r.headers["location"])
    idp = hub.pair.idp
    if forgery == "unsigned":
        xml = idp.response_xml(req, sign_assertion=False)
    elif forgery == "stripped":
        xml = strip_signatures(idp.response_xml(req))
    elif forgery == "wrapped":
        xml = wrap_signature(idp.response_xml(req, "alice", ("a",)), "mallory", 1)
    elif forgery == "replayed":
        xml = idp.response_xml(req, "alice", ("a",))
        assert (
            browser.post("/saml/acs", data=post_form(xml), follow_redirects=False).status_code
            == 303
        )
        browser.cookies.clear()
        r = browser.get("/saml/login", follow_redirects=False)  # a new pending login
    else:
        xml = b"<not-saml/>"
    r = browser.post("/saml/acs", data=post_form(xml), follow_redirects=False)
    assert r.status_code == 401 and "Login refused" in r.text
    assert browser.get("/api/v1/whoami").status_code == 401
    audit = _admin(hub).get("/api/v1/audit", params={"action": "login"}).json()["records"]
    assert any(r["result"] == "refused" for r in audit)


def _admin(hub: Hub) -> TestClient:
    return saml_login(hub, "root", ("ops",))


def _routes(app: FastAPI) -> list[tuple[str, Any]]:
    return [
        (path, r)
        for path, r in walk_routes(app.routes)
        if isinstance(r, APIRoute | APIWebSocketRoute)
    ]


PUBLIC = {"/healthz", "/readyz", "/metrics", "/auth/token-login",
          "/saml/metadata", "/saml/login", "/saml/acs", "/saml/slo", "/{path:path}"}  # fmt: skip
SNIFFER_ROUTES = {"/api/v1/ingest", "/api/v1/sniffers/heartbeat"}


def test_anonymous_gets_401_everywhere_but_public_routes(hub: Hub) -> None:
    anon = TestClient(hub.app, base_url=BASE)
    checked = 0
    for path, route in _routes(hub.app):
        if path in PUBLIC:
            continue
        url = re.sub(r"\{[^}]+\}", "x", path)
        if isinstance(route, APIWebSocketRoute):
            with pytest.raises(WebSocketDisconnect) as exc, anon.websocket_connect(url) as ws:
                ws.receive_json()
            assert exc.value.code == 1008
        else:
            for method in route.methods - {"HEAD"}:
                assert anon.request(method, url).status_code == 401, (method, path)
        checked += 1
    assert checked >= 15


VIEWERS = {
    "a": (("a",), {MARK_A, MARK_AB}),
    "b": (("b",), {MARK_B, MARK_AB}),
    "admin": (("ops",), {MARK_A, MARK_B, MARK_AB}),
}


@pytest.mark.parametrize("who", sorted(VIEWERS))
def test_authorization_matrix_has_no_leaks(hub: Hub, who: str) -> None:
    """Every viewer GET route, with every entry id, for viewers of A, B and all."""
    groups, visible = VIEWERS[who]
    browser = saml_login(hub, f"user-{who}", groups)
    hidden = {MARK_A, MARK_B, MARK_AB} - visible
    checked = 0
    for path, route in _routes(hub.app):
        if path in PUBLIC or path in SNIFFER_ROUTES or isinstance(route, APIWebSocketRoute):
            continue
        if "GET" not in route.methods:
            continue
        urls = [path]
        if "{" in path:
            urls = [re.sub(r"\{[^}]+\}", hub.ids[m], path) for m in hub.ids]
        for url in urls:
            r = browser.get(url)
            assert r.status_code in (200, 403, 404), (url, r.status_code)
            body = r.content
            for mark in hidden:
                assert mark.encode() not in body, (who, url, mark)
                assert hub.ids[mark].encode() not in body, (who, url, mark)
            checked += 1
    assert checked >= 10
    # Details: in scope → 200, out of scope → the same 404 as a missing entry.
    for mark, entry_id in hub.ids.items():
        r = browser.get(f"/api/v1/entries/{entry_id}")
        assert r.status_code == (200 if mark in visible else 404)
    listed = {
        e["request"]["path"].strip("/") for e in browser.get("/api/v1/entries").json()["entries"]
    }
    assert listed == visible


def test_live_stream_is_scoped(hub: Hub) -> None:
    browser = saml_login(hub, "alice", ("a",))
    cookie = f"kubeweir_session={browser.cookies.get('kubeweir_session')}"
    with browser.websocket_connect("/api/v1/stream", headers={"cookie": cookie}) as ws:
        new = [
            make_http_entry(path="/live-b", src_ns="team-b", dst_ns="team-b"),
            make_http_entry(path="/live-a", src_ns="team-a", dst_ns="team-a"),
        ]
        hub.client.post("/api/v1/ingest", content=encode_batch(new), headers=INGEST)
        msg = ws.receive_json()
        assert msg["type"] == "entry" and msg["entry"]["request"]["path"] == "/live-a"


def test_api_tokens_carry_scope_and_are_revocable(hub: Hub) -> None:
    browser = saml_login(hub, "alice", ("a",))
    csrf = browser.get("/api/v1/whoami").json()["csrf"]
    # CSRF: a state-changing request without the header is refused.
    assert browser.post("/api/v1/tokens", json={"name": "ci"}).status_code == 403
    r = browser.post("/api/v1/tokens", json={"name": "ci", "expires_in": 3600},
                     headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert r.status_code == 201, r.text
    token, token_id = r.json()["token"], r.json()["id"]
    cli = TestClient(hub.app, base_url=BASE, headers={"Authorization": f"Bearer {token}"})
    paths = {e["request"]["path"] for e in cli.get("/api/v1/entries").json()["entries"]}
    assert paths == {f"/{MARK_A}", f"/{MARK_AB}"}
    # Tokens can't mint tokens, and the token list never shows a secret.
    assert cli.post("/api/v1/tokens", json={"name": "x"}).status_code == 403
    listed = browser.get("/api/v1/tokens").json()
    assert [t["id"] for t in listed] == [token_id] and token not in str(listed)
    # Another user can't see or revoke it; tampered and revoked tokens are refused.
    bob = saml_login(hub, "bob", ("b",))
    bob_csrf = bob.get("/api/v1/whoami").json()["csrf"]
    assert bob.get("/api/v1/tokens").json() == []
    assert bob.delete(f"/api/v1/tokens/{token_id}",
                      headers={"X-CSRF-Token": bob_csrf}).status_code == 404  # fmt: skip
    tampered = token[:-3] + ("abc" if not token.endswith("abc") else "xyz")
    assert (
        TestClient(hub.app, base_url=BASE)
        .get("/api/v1/entries", headers={"Authorization": f"Bearer {tampered}"})
        .status_code
        == 401
    )
    assert browser.delete(f"/api/v1/tokens/{token_id}",
                          headers={"X-CSRF-Token": csrf}).status_code == 204  # fmt: skip
    assert cli.get("/api/v1/entries").status_code == 401
    # Expiry beyond the configured maximum is refused.
    r = browser.post("/api/v1/tokens", json={"name": "long", "expires_in": 10**9},
                     headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert r.status_code == 400


def test_token_scope_follows_current_roles(tmp_path: Path) -> None:
    """A token keeps only what its owner's roles still grant when it is used."""
    pair = make_pair(tmp_path, public_url=BASE)
    app = create_app(_settings(pair))
    with TestClient(app, base_url=BASE):
        hub = Hub(app, pair, TestClient(app, base_url=BASE), {})
        browser = saml_login(hub, "alice", ("a",))
        csrf = browser.get("/api/v1/whoami").json()["csrf"]
        token = browser.post("/api/v1/tokens", json={"name": "t"},
                             headers={"X-CSRF-Token": csrf}).json()["token"]  # fmt: skip
        auth = app.state.auth
        auth.settings = auth.settings.model_copy(update={"group_roles": {"a": []}})
        r = TestClient(app, base_url=BASE).get(
            "/api/v1/entries", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 403, "the role was taken away: the token sees nothing"


def test_failed_credentials_are_rate_limited(hub: Hub) -> None:
    anon = TestClient(hub.app, base_url=BASE)
    bad = {"Authorization": "Bearer kw_0123456789abcdef_nope"}
    codes = [anon.get("/api/v1/entries", headers=bad).status_code for _ in range(12)]
    assert codes[:10] == [401] * 10 and codes[-1] == 429
    r = anon.get("/api/v1/entries", headers=bad)
    assert int(r.headers["Retry-After"]) > 0
    metrics = anon.get("/metrics").text
    assert re.search(r"kubeweir_auth_failures_total \d", metrics)
    assert "kubeweir_rate_limited_total 1" not in metrics or True
    assert re.search(r"kubeweir_rate_limited_total [1-9]", metrics)


def test_security_headers_on_every_page(hub: Hub) -> None:
    for path in ("/", "/healthz", "/api/v1/entries", "/saml/metadata"):
        r = TestClient(hub.app, base_url=BASE).get(path)
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["strict-transport-security"].startswith("max-age=")


def test_logout_ends_the_session(hub: Hub) -> None:
    browser = saml_login(hub, "alice", ("a",))
    csrf = browser.get("/api/v1/whoami").json()["csrf"]
    r = browser.post("/auth/logout", headers={"X-CSRF-Token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith(hub.pair.idp.slo_url), "single logout at the IdP"
    assert browser.get("/api/v1/whoami").status_code == 401


def test_queries_and_exports_are_audited(hub: Hub) -> None:
    browser = saml_login(hub, "alice", ("a",))
    browser.get("/api/v1/entries", params={"q": "http"})
    browser.get("/api/v1/export.har")
    records = _admin(hub).get("/api/v1/audit", params={"actor": "alice"}).json()["records"]
    actions = {(r["action"], r["detail"].get("q", "")) for r in records}
    assert ("query", "http") in actions and ("export", "") in actions
    assert browser.get("/api/v1/audit").status_code == 403, "admins only"


def test_viewers_without_view_bodies_cannot_filter_on_withheld_values(tmp_path: Path) -> None:
    """Without view-bodies, bodies and headers are withheld; a filter on them would reveal
    them one match at a time, so it is refused (for history and for the live stream)."""
    pair = make_pair(tmp_path, public_url=BASE)
    roles = {
        "roles": {"peek": {"namespaces": ["team-a"]}},
        "group_roles": {"peekers": ["peek"]},
    }
    app = create_app(_settings(pair, **roles))
    with TestClient(app, base_url=BASE) as c:
        hub = Hub(app, pair, c, {})
        browser = saml_login(hub, "eve", ("peekers",))
        for q in ('request.body.contains("secret")', 'request.headers["authorization"] != ""',
                  'response.body.matches("card")'):  # fmt: skip
            r = browser.get("/api/v1/entries", params={"q": q})
            assert r.status_code == 403 and "view-bodies" in r.json()["detail"]["message"], q
        assert browser.get("/api/v1/entries", params={"q": "http"}).status_code == 200
