"""The engine over entries: each place a secret can sit, other protocols, purity."""

from __future__ import annotations

import base64
import gzip
import json
import threading
from typing import Any

import msgspec

from kubeweir.entry import REDACTED, Entry, entry_to_json
from kubeweir.testing import make_entry, make_http_entry
from redaction import Engine, default_engine, parse_config

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
CARD = "4111111111111111"
ENGINE = default_engine()
JSON_CT = {"content-type": "application/json"}


def apply(entry: Entry) -> Entry:
    return ENGINE.apply(entry)


def assert_gone(entry: Entry, *secrets: str) -> None:
    blob = entry_to_json(entry).decode()
    for s in secrets:
        assert s not in blob, (s, blob)


def test_headers_by_name_keep_scheme_cookie_names_and_attributes() -> None:
    e = make_http_entry(
        request_headers={
            "host": "svc",
            "authorization": "Basic dXNlcjpodW50ZXIy",
            "proxy-authorization": "Bearer zzzzzz999",
            "cookie": "sid=s3cr3tsid; theme=dark",
            "x-api-key": "k-123456",
            "X-Auth-Token": "tok-abcdef",
        },
        response_headers={"set-cookie": "sid=newsid123; Path=/; HttpOnly\nlang=en; Secure"},
    )
    out = apply(e)
    h = out.request["headers"]
    assert h["host"] == "svc"
    assert h["authorization"] == f"Basic {REDACTED}"
    assert h["proxy-authorization"] == f"Bearer {REDACTED}"
    assert h["cookie"] == f"sid={REDACTED}; theme={REDACTED}"
    assert h["x-api-key"] == REDACTED and h["X-Auth-Token"] == REDACTED
    assert out.response["headers"]["set-cookie"] == (
        f"sid={REDACTED}; Path=/; HttpOnly\nlang={REDACTED}; Secure"
    )
    for p in (
        "request.headers.authorization",
        "request.headers.proxy-authorization",
        "request.headers.cookie",
        "request.headers.x-api-key",
        "request.headers.X-Auth-Token",
        "response.headers.set-cookie",
    ):
        assert p in out.redacted
    assert_gone(out, "dXNlcjpodW50ZXIy", "zzzzzz999", "s3cr3tsid", "newsid123", "tok-abcdef")


def test_any_header_value_by_pattern() -> None:
    out = apply(make_http_entry(request_headers={"x-debug": f"user token {JWT}"}))
    assert out.request["headers"]["x-debug"] == f"user token {REDACTED}"
    assert out.redacted == ["request.headers.x-debug"]


def test_query_by_name_and_summary() -> None:
    e = make_http_entry("GET", "/cb?Access-Token=abc&page=2&sig=xyzxyz")
    out = apply(e)
    assert out.request["query"] == f"Access-Token={REDACTED}&page=2&sig={REDACTED}"
    assert "request.query.Access-Token" in out.redacted and "request.query.sig" in out.redacted
    assert out.summary == f"GET /cb?Access-Token={REDACTED}&page=2&sig={REDACTED} → 200"
    assert "summary" in out.redacted


def test_query_value_by_pattern_percent_encoded() -> None:
    out = apply(make_http_entry("GET", "/u?who=jane%40example.com&x=1"))
    assert out.request["query"] == f"who={REDACTED}&x=1"
    assert out.redacted[0] == "request.query.who"
    assert "jane" not in out.summary


def test_url_path_by_pattern() -> None:
    out = apply(make_http_entry("GET", f"/v1/cards/{CARD}/charges"))
    assert out.request["path"] == f"/v1/cards/{REDACTED}/charges"
    assert "request.path" in out.redacted and "summary" in out.redacted
    assert CARD not in out.summary
    out = apply(make_http_entry("GET", "/users/jane%40example.com"))
    assert out.request["path"] == f"/users/{REDACTED}"
    assert "%40" not in out.summary


def test_json_keys_at_any_depth_and_dotted_paths() -> None:
    body = {
        "user": {"name": "Jane", "accessToken": "t0k3n-value", "PassWord": "hunter2"},
        "payment": {"card": {"number": 4111111111111111, "exp": "12/30"}},
        "items": [{"card": {"number": "5500000000000004"}}, {"sku": "A-1"}],
        "number": 7,
        "note": f"card {CARD} please",
    }
    out = apply(
        make_http_entry("POST", "/", request_body=json.dumps(body), request_headers=JSON_CT)
    )
    got = json.loads(out.request["body"])
    assert got["user"] == {"name": "Jane", "accessToken": REDACTED, "PassWord": REDACTED}
    assert got["payment"]["card"] == {"number": REDACTED, "exp": "12/30"}
    assert got["items"] == [{"card": {"number": REDACTED}}, {"sku": "A-1"}]
    assert got["number"] == 7  # a bare "number" is not "card.number"
    assert got["note"] == f"card {REDACTED} please"
    assert out.redacted == [
        "request.body.user.accessToken",
        "request.body.user.PassWord",
        "request.body.payment.card.number",
        "request.body.items[0].card.number",
        "request.body.note",
    ]


def test_json_without_candidates_is_left_byte_identical() -> None:
    body = '{ "a": 1,  "b": [true, null] }'
    e = make_http_entry("POST", "/", request_body=body, request_headers=JSON_CT)
    assert apply(e) is e


def test_truncated_json_falls_back_to_key_scan_and_patterns() -> None:
    body = '{"user": "x", "password": "hunter2", "jwt": "' + JWT + '", "token": "abc'
    e = make_http_entry("POST", "/", request_body=body, request_headers=JSON_CT)
    e.request["body_truncated"] = True
    out = apply(e)
    assert_gone(out, "hunter2", JWT, '"abc')
    assert "request.body.password" in out.redacted and "request.body" in out.redacted


def test_form_body() -> None:
    e = make_http_entry(
        "POST",
        "/login",
        request_body="user=jane&password=hunter%212&card=4111+1111+1111+1111",
        request_headers={"content-type": "application/x-www-form-urlencoded"},
    )
    out = apply(e)
    assert out.request["body"] == f"user=jane&password={REDACTED}&card={REDACTED}"
    assert out.redacted == ["request.body.password", "request.body.card"]


def test_multipart_body() -> None:
    body = (
        '--XyZ\r\nContent-Disposition: form-data; name="user"\r\n\r\njane\r\n'
        '--XyZ\r\nContent-Disposition: form-data; name="password"\r\n\r\nhunter2\r\n'
        '--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nmail jane@example.com\r\n'
        "--XyZ--\r\n"
    )
    e = make_http_entry(
        "POST",
        "/",
        request_body=body,
        request_headers={"content-type": "multipart/form-data; boundary=XyZ"},
    )
    out = apply(e)
    assert_gone(out, "hunter2", "jane@example.com")
    assert "\r\n\r\njane\r\n" in out.request["body"]
    assert out.redacted == ["request.body.password", "request.body.note"]


def test_base64_text_and_binary_bodies() -> None:
    text = json.dumps({"password": "hunter2", "ok": True}).encode()
    binary = b"\x00\x01\xff" + f"key={JWT}".encode() + b"\xfe\x80"
    e = make_http_entry(
        "POST",
        "/",
        request_headers=JSON_CT,
        request_body=base64.b64encode(text).decode(),
        response_body=base64.b64encode(binary).decode(),
    )
    e.request["body_encoding"] = "base64"
    e.response["body_encoding"] = "base64"
    e.response["content_type"] = "application/octet-stream"
    out = apply(e)
    req = json.loads(base64.b64decode(out.request["body"]))
    assert req == {"password": REDACTED, "ok": True}
    resp = base64.b64decode(out.response["body"])
    assert resp == b"\x00\x01\xff" + f"key={REDACTED}".encode() + b"\xfe\x80"
    assert out.redacted == ["request.body.password", "response.body"]


def test_undecodable_gzip_kept_as_base64_still_scanned() -> None:
    raw = gzip.compress(b"x")[:5] + f" {CARD} ".encode()  # a bad gzip stream, kept raw
    e = make_http_entry("GET", "/", response_body=base64.b64encode(raw).decode())
    e.response["body_encoding"] = "base64"
    e.response["body_error"] = "bad gzip"
    out = apply(e)
    assert CARD.encode() not in base64.b64decode(out.response["body"])


def test_echo_of_a_redacted_value_elsewhere() -> None:
    e = make_http_entry(
        "GET",
        "/cb?code=1&token=tok-echo-99",
        response_headers={"location": "/next?t=tok-echo-99"},
        response_body="your token is tok-echo-99",
    )
    out = apply(e)
    assert_gone(out, "tok-echo-99")
    assert "response.headers.location" in out.redacted and "response.body" in out.redacted


def test_location_header_query_by_name() -> None:
    e = make_http_entry("GET", "/", response_headers={"location": "https://a/b?access_token=q&x=1"})
    out = apply(e)
    assert out.response["headers"]["location"] == f"https://a/b?access_token={REDACTED}&x=1"


def test_redis_auth_and_friends() -> None:
    def redis(command: str, args: list[str], **extra: Any) -> Entry:
        req = {"method": command, "command": command, "args": args, **extra}
        return make_entry(proto="redis", request=req, summary=f"{command} {' '.join(args)}")

    out = apply(redis("AUTH", ["default"], password="hunter2pw", user="default"))
    assert out.request["password"] == REDACTED and out.request["args"] == ["default"]
    assert out.redacted == ["request.password"]
    # a shape without a separate password field
    out = apply(redis("AUTH", ["hunter2pw"]))
    assert out.request["args"] == [REDACTED] and "hunter2pw" not in out.summary
    out = apply(redis("HELLO", ["3", "AUTH", "alice", "pw-alice-1", "SETNAME", "c"]))
    assert out.request["args"] == ["3", "AUTH", "alice", REDACTED, "SETNAME", "c"]
    out = apply(redis("MIGRATE", ["h", "6379", "k", "0", "5000", "AUTH2", "bob", "pw-bob-22"]))
    assert out.request["args"][-2:] == ["bob", REDACTED]
    out = apply(redis("CONFIG SET", ["SET", "requirepass", "newpass-1"]))
    assert out.request["args"] == ["SET", "requirepass", REDACTED]
    assert out.summary == f"CONFIG SET SET requirepass {REDACTED}"
    out = apply(redis("ACL SETUSER", ["SETUSER", "carol", "on", ">carolpw1"]))
    assert out.request["args"][-1] == REDACTED
    out = apply(redis("SET", ["session", JWT]))
    assert out.request["args"] == ["session", REDACTED]


def test_postgres_password_and_sql_password_literal() -> None:
    e = make_entry(
        proto="postgres",
        request={"kind": "startup", "user": "app", "password": "md5abcdef0123"},
    )
    out = apply(e)
    assert out.request == {"kind": "startup", "user": "app", "password": REDACTED}
    assert out.redacted == ["request.password"]
    e = make_entry(
        proto="postgres",
        request={"method": "ALTER", "query": "ALTER ROLE app WITH PASSWORD 'n3w''pw'"},
        summary="ALTER ROLE app WITH PASSWORD 'n3w''pw'",
    )
    out = apply(e)
    assert out.request["query"] == f"ALTER ROLE app WITH PASSWORD '{REDACTED}'"
    assert "n3w" not in out.summary


def test_kafka_sasl_and_mqtt_password_fields() -> None:
    out = apply(
        make_entry(proto="kafka", request={"api": "SaslAuthenticate", "auth_bytes": "AGJvYgBwdw=="})
    )
    assert out.request["auth_bytes"] == REDACTED and out.redacted == ["request.auth_bytes"]
    out = apply(
        make_entry(proto="mqtt", request={"connect": {"username": "u", "password": "mqttpw"}})
    )
    assert out.request["connect"] == {"username": "u", "password": REDACTED}
    assert out.redacted == ["request.connect.password"]


def test_tcp_preview_in_base64() -> None:
    data = b"\x00\x01PASS " + JWT.encode()
    req = {
        "bytes": len(data),
        "preview": base64.b64encode(data).decode(),
        "preview_encoding": "base64",
    }
    out = apply(make_entry(proto="tcp", request=req))
    assert JWT.encode() not in base64.b64decode(out.request["preview"])
    assert out.redacted == ["request.preview"]


def test_pure_idempotent_and_untouched_when_clean() -> None:
    e = make_http_entry(
        "GET", "/x?token=abc", request_headers={"authorization": "Bearer abcdefgh1"}
    )
    before = msgspec.json.encode(e)
    out = apply(e)
    assert msgspec.json.encode(e) == before  # the input is not mutated
    again = apply(out)
    assert again is out  # nothing left to redact, nothing recorded twice
    clean = make_http_entry("GET", "/healthz", response_body='{"status": "ok"}')
    assert apply(clean) is clean


def test_disabled_default_stays() -> None:
    engine = Engine(parse_config({"disable": ["pattern:email", "header:cookie"]}))
    e = make_http_entry("GET", "/u/jane@example.com", request_headers={"cookie": "a=b"})
    assert engine.apply(e) is e


def test_custom_pattern_with_group() -> None:
    cfg = parse_config({"rules": [{"name": "emp", "regex": r"EMP-(\d{6})", "group": 1}]})
    out = Engine(cfg).apply(make_http_entry("GET", "/staff/EMP-123456"))
    assert out.request["path"] == f"/staff/EMP-{REDACTED}"


def test_thread_safe() -> None:
    engine = Engine(parse_config({"namespaces": {"ns-*": {"rules": ["json:holder"]}}}))
    errors: list[str] = []

    def work(i: int) -> None:
        for j in range(50):
            ns = f"ns-{j % 5}" if i % 2 else "other"
            e = make_http_entry(
                "POST",
                f"/x?token=t{i}-{j}",
                request_body=f'{{"holder": "h{i}-{j}"}}',
                request_headers=JSON_CT,
                src_ns=ns,
            )
            out = engine.apply(e)
            if f"t{i}-{j}" in out.request["query"]:
                errors.append("query")
            if (f"h{i}-{j}" in out.request["body"]) == bool(i % 2):
                errors.append(f"holder {i} {j}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_gate_never_trusts_an_empty_set_answer() -> None:
    """An re2.Set whose DFA ran out of memory says "no match"; the gate must not miss."""
    from redaction._compiled import _AnyOf

    gate = _AnyOf(["abc", "x[0-9]"])

    class GaveUp:
        def Match(self, data: bytes) -> None:  # noqa: N802
            return None

    gate.set = GaveUp()
    assert gate.Match(b"zz x5 abc") == [0, 1]
    assert gate.Match(b"nothing here") is None


def test_json_strings_scanned_by_anchor_or_length_when_a_card_and_an_email_hit() -> None:
    """A JSON body with a card number and an e-mail is walked string by string; a string
    with no ``@`` shorter than a card number is skipped, every other one is looked at."""
    body = {
        "a": "x@example.com",  # anchor
        "b": "4111111111111",  # 13 characters: not Luhn-valid, stays
        "c": "4012888888881881",  # 16: a card
        "d": ["4222222222222", "short", 1234],  # 13: a (Visa) card
        "e": "pay 5500 0000 0000 0004 now",
        "f": f"card {CARD}",
    }
    e = make_http_entry("POST", "/", request_body=json.dumps(body), request_headers=JSON_CT)
    got = json.loads(apply(e).request["body"])
    assert got == {
        "a": REDACTED,
        "b": "4111111111111",
        "c": REDACTED,
        "d": [REDACTED, "short", 1234],
        "e": f"pay {REDACTED} now",
        "f": f"card {REDACTED}",
    }
