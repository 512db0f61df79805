"""Tokens, sessions, roles and rate limits, each on its own."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from hub.auth.config import AuthSettings
from hub.auth.ratelimit import FailureLimiter
from hub.auth.roles import grant_for_groups
from hub.auth.sessions import SessionCodec, SessionError
from hub.auth.store import AuthStore, TokenError


@pytest.fixture
def store() -> AuthStore:
    return AuthStore(sa.create_engine("duckdb:///:memory:"))


def issue(store: AuthStore, lifetime: dt.timedelta = dt.timedelta(hours=1)) -> str:
    return store.issue("alice", ("sre",), "ci", ("shop",), ("view-bodies",), lifetime).token


def test_token_is_stored_hashed_and_verifies(store: AuthStore) -> None:
    token = issue(store)
    info = store.verify(token)
    assert (info.owner, info.namespaces, info.permissions) == ("alice", ("shop",), ("view-bodies",))
    secret = token.split("_", 2)[2]
    with store.engine.connect() as conn:
        dump = json.dumps([list(r) for r in conn.execute(sa.text("SELECT * FROM api_tokens"))],
                          default=str)  # fmt: skip
    assert secret not in dump, "only the hash of the secret is stored"
    assert store.verify(token).last_used is not None


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),   # tampered secret
    lambda t: "kw_" + "0" * 16 + "_" + t.split("_", 2)[2],  # another id
    lambda t: t.replace("kw_", "xx_"),                     # wrong prefix
    lambda t: "",
    lambda t: "kw_short_secret",
])  # fmt: skip
def test_tampered_tokens_are_refused(store: AuthStore, mutate) -> None:
    token = issue(store)
    with pytest.raises(TokenError):
        store.verify(mutate(token))


def test_expired_and_revoked_tokens_are_refused(store: AuthStore) -> None:
    expired = issue(store, dt.timedelta(seconds=-1))
    with pytest.raises(TokenError, match="expired"):
        store.verify(expired)
    token = issue(store)
    token_id = token.split("_")[1]
    assert store.revoke(token_id) is True
    assert store.revoke(token_id) is False, "revoking twice changes nothing"
    with pytest.raises(TokenError, match="revoked"):
        store.verify(token)


def test_tokens_are_listed_per_owner(store: AuthStore) -> None:
    issue(store)
    store.issue("bob", (), "bob's", ("b",), (), dt.timedelta(hours=1))
    assert [t.owner for t in store.list_tokens("alice")] == ["alice"]
    assert len(store.list_tokens()) == 2
    assert "secret" not in json.dumps(store.list_tokens()[0].public())


def test_audit_goes_to_table_and_json_log(store: AuthStore, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="kubeweir.audit"):
        store.audit("alice", "10.0.0.9", "query", "entries", "ok", q="http")
    rec = store.audit_records()[0]
    assert (rec.actor, rec.source, rec.action, rec.detail) == ("alice", "10.0.0.9", "query",
                                                                 {"q": "http"})  # fmt: skip
    line = json.loads(caplog.records[-1].getMessage())
    assert line["action"] == "query" and line["actor"] == "alice"


def test_session_cookie_is_signed_and_times_out() -> None:
    codec = SessionCodec("k" * 32, idle=60, absolute=600)
    s = codec.new("alice", ("sre",), "saml", now=1000.0)
    cookie = codec.dumps(s)
    assert codec.loads(cookie, now=1030.0).user == "alice"
    with pytest.raises(SessionError, match="idle"):
        codec.loads(cookie, now=1061.0)
    touched = codec.dumps(codec.touch(s, now=1050.0))
    assert codec.loads(touched, now=1100.0).user == "alice"
    late = codec.dumps(codec.touch(s, now=1590.0))
    with pytest.raises(SessionError, match="absolute"):
        codec.loads(late, now=1601.0)
    with pytest.raises(SessionError):
        codec.loads(cookie[:-2] + "xx", now=1001.0)
    other = SessionCodec("o" * 32, idle=60, absolute=600)
    with pytest.raises(SessionError):
        other.loads(cookie, now=1001.0)


def test_csrf_token_must_match() -> None:
    codec = SessionCodec("k" * 32, idle=60, absolute=600)
    s = codec.new("alice", (), "saml")
    assert codec.csrf_ok(s, s.csrf)
    assert not codec.csrf_ok(s, None)
    assert not codec.csrf_ok(s, s.csrf[:-1] + "x")


def test_roles_union_and_no_role_means_no_access() -> None:
    settings = AuthSettings(
        roles={
            "payments": {"namespaces": ["payments", "payments-*"], "permissions": ["view-bodies"]},
            "shop-ro": {"namespaces": ["shop"]},
            "admin": {"namespaces": ["*"], "permissions": ["admin", "export"]},
        },
        group_roles={"pay-dev": ["payments"], "shop": ["shop-ro"], "sre": ["admin"]},
    )
    g = grant_for_groups(settings, ("pay-dev", "shop"))
    assert g.namespaces == ("payments", "payments-*", "shop")
    assert g.permissions == {"view-bodies"}
    assert grant_for_groups(settings, ("unknown",)).empty
    assert grant_for_groups(settings, ()).empty


def test_group_mapping_to_an_unknown_role_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="unknown role"):
        AuthSettings(roles={}, group_roles={"devs": ["nope"]})
    with pytest.raises(ValidationError):
        AuthSettings(roles={"r": {"namespaces": ["a"], "permissions": ["everything"]}})


def test_failure_limiter_blocks_then_releases() -> None:
    lim = FailureLimiter(limit=3, window=60)
    for i in range(3):
        assert lim.retry_after("ip:1", "user:a", now=100.0 + i) == 0
        lim.failed("ip:1", "user:a", now=100.0 + i)
    assert lim.retry_after("ip:1", now=103.0) == 57
    assert lim.retry_after("user:a", now=103.0) == 57
    assert lim.retry_after("ip:2", now=103.0) == 0, "other sources are not affected"
    assert lim.retry_after("ip:1", now=161.0) == 0, "the window slides"
    lim.failed("ip:3", now=1.0)
    lim.succeeded("ip:3")
    assert lim.retry_after("ip:3", now=2.0) == 0


def test_failure_limiter_is_bounded_in_keys() -> None:
    lim = FailureLimiter(limit=2, window=60, max_keys=100)
    for i in range(1000):
        lim.failed(f"ip:{i}", now=float(i) / 1000)
    assert len(lim._failures) <= 100


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    import ipaddress

    from starlette.requests import Request

    from hub.auth.service import client_address

    def req(peer: str, fwd: str) -> Request:
        scope = {"type": "http", "client": (peer, 5000), "headers": [
            (b"x-forwarded-for", fwd.encode())], "path": "/", "method": "GET"}  # fmt: skip
        return Request(scope)

    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    assert client_address(req("10.1.2.3", "203.0.113.9"), trusted) == "203.0.113.9"
    assert client_address(req("10.1.2.3", "1.1.1.1, 203.0.113.9"), trusted) == "203.0.113.9"
    assert client_address(req("192.0.2.7", "203.0.113.9"), trusted) == "192.0.2.7"
    assert client_address(req("10.1.2.3", "203.0.113.9"), []) == "10.1.2.3"


def test_idp_metadata_from_an_in_cluster_url(tmp_path) -> None:
    import http.server
    import threading

    from hub.auth.config import SamlSettings
    from hub.auth.saml import SamlServiceProvider
    from tests.hub.auth.conftest import make_pair

    pair = make_pair(tmp_path)
    meta = pair.settings.idp_metadata_file.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/samlmetadata+xml")
            self.end_headers()
            self.wfile.write(meta)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/metadata"
        settings = pair.settings.model_copy(
            update={"idp_metadata_file": None, "idp_metadata_url": url}
        )
        sp = SamlServiceProvider(SamlSettings.model_validate(settings.model_dump()))
        login_url, _ = sp.login_redirect("/")
        assert login_url.startswith(pair.idp.sso_url)
    finally:
        server.shutdown()


def test_failures_on_one_users_token_are_limited_per_user(store: AuthStore) -> None:
    """Wrong secrets for a real token id count against its owner from any address."""
    from fastapi import HTTPException
    from starlette.requests import Request

    from hub.auth.service import AuthService

    svc = AuthService(AuthSettings(failed_login_limit=3), store.engine, "k" * 32)
    token_id = issue(store).split("_")[1]
    codes = []
    for i in range(5):
        bearer = f"Bearer kw_{token_id}_wrong{i}".encode()
        scope = {"type": "http", "client": (f"192.0.2.{i}", 1), "path": "/api/v1/entries",
                 "method": "GET", "query_string": b"",
                 "headers": [(b"authorization", bearer)]}  # fmt: skip
        try:
            svc.authenticate(Request(scope))
        except HTTPException as exc:
            codes.append(exc.status_code)
    assert codes == [401, 401, 401, 429, 429]
