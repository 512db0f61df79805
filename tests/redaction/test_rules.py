"""Rules and config: each default pattern with positives and near-misses, name
normalization, config errors that name the rule, namespace overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from redaction import (
    BUILTIN_PATTERNS,
    Engine,
    NameRule,
    RedactionConfigError,
    default_rules,
    load_config,
    normalize,
    parse_config,
    parse_rule,
)
from redaction._validators import iban_ok, luhn_ok

REDACTED = "[REDACTED]"


def scan(text: str, *patterns: str) -> str:
    """Redact ``text`` as a plain-text body with only the given builtin patterns."""
    from kubeweir.testing import make_http_entry

    cfg = parse_config(
        {"defaults": False, "rules": [f"pattern:{p}" for p in patterns or BUILTIN_PATTERNS]}
    )
    e = make_http_entry(
        "POST", "/", request_body=text, request_headers={"content-type": "text/plain"}
    )
    out = Engine(cfg).apply(e)
    body: str = out.request["body"]
    return body


# -- value patterns: positives ---------------------------------------------------------------

POSITIVES = {
    "card": [
        "4111111111111111",  # Visa
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500 0000 0000 0004",  # Mastercard
        "378282246310005",  # Amex (15)
        "6011111111111117",  # Discover
        "2223003122003222",  # Mastercard 2-series
    ],
    "jwt": [
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",  # alg none, empty signature
    ],
    "bearer": ["Bearer 9f8e7d6c5b4a39281706", "bearer abc.DEF_ghi-123~+/=="],
    "aws-access-key": ["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"],
    "private-key": [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",  # cut short
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----",
    ],
    "email": ["jane.doe@example.com", "a+tag@mail.example.co.uk"],
    "iban": ["DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"],
}

NEAR_MISSES = {
    "card": [
        "4111111111111112",  # fails Luhn
        "1700000000123",  # a millisecond timestamp (no card network starts with 1)
        "41111111111",  # too short
        "41111111111111110000000",  # too long a digit run
    ],
    "jwt": ["eyJub3QgYSBqd3Q.eyJ4In0.sig", "eyJhbGciOi"],  # header without alg; not 3 parts
    "bearer": ["the bearer instrument", "Bearer short"],
    "aws-access-key": ["AKIAIOSFODNN7EXAMP", "akiaiosfodnn7example"],
    "private-key": ["-----BEGIN CERTIFICATE-----\nMIIB", "-----BEGIN PUBLIC KEY-----\nMIIB"],
    "email": ["user@localhost", "@mention", "/img/logo@2x.png", "a@b.c"],
    "iban": ["DE89370400440532013001", "DE8937040044053201300", "XX89370400440532013000"],
}


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, vs in POSITIVES.items() for v in vs])
def test_pattern_positive(name: str, value: str) -> None:
    out = scan(f"before {value} after", name)
    assert value not in out
    assert REDACTED in out
    assert out.startswith("before ")


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, vs in NEAR_MISSES.items() for v in vs])
def test_pattern_near_miss(name: str, value: str) -> None:
    text = f"before {value} after"
    assert scan(text, name) == text


def test_bearer_keeps_the_scheme_word() -> None:
    assert scan("Authorization: Bearer 9f8e7d6c5b4a39281706", "bearer") == (
        f"Authorization: Bearer {REDACTED}"
    )


def test_card_prefix_of_a_longer_group_run() -> None:
    out = scan("pay 4111 1111 1111 1111 2030 now", "card")
    assert out == f"pay {REDACTED} 2030 now"


def test_iban_followed_by_a_word() -> None:
    assert scan("to DE89370400440532013000 EUR", "iban") == f"to {REDACTED} EUR"


def test_opt_in_ssn_is_off_by_default() -> None:
    ids = {r.id for r in default_rules()}
    assert "pattern:us-ssn" not in ids
    assert scan("ssn 078-05-1120 x", "us-ssn") == f"ssn {REDACTED} x"
    assert scan("ssn 000-05-1120 x", "us-ssn") == "ssn 000-05-1120 x"


def test_validators() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")
    assert iban_ok("GB82 WEST 1234 5698 7654 32")
    assert not iban_ok("GB82 WEST 1234 5698 7654 33")
    assert not iban_ok("GB82WEST123456987654")  # wrong length for GB


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling", ["access_token", "accessToken", "Access-Token", "ACCESS_TOKEN", "access-token"]
)
def test_name_normalization(spelling: str) -> None:
    assert normalize(spelling) == "accesstoken"
    rule = parse_rule(f"json:{spelling}")
    assert isinstance(rule, NameRule) and rule.key == ("accesstoken",)


def test_parse_rule_kinds() -> None:
    assert parse_rule("header:X-Api-Key") == NameRule("header", "X-Api-Key", ("xapikey",))
    assert parse_rule("json:card.number").key == ("card", "number")  # type: ignore[union-attr]
    assert parse_rule("pattern:email") is BUILTIN_PATTERNS["email"]
    custom = parse_rule({"name": "emp-id", "regex": r"EMP-\d{6}"}, "rules[0]")
    assert custom.id == "pattern:emp-id"


def test_defaults_cover_the_issue() -> None:
    ids = {r.id for r in default_rules()}
    for want in (
        "header:authorization",
        "header:cookie",
        "header:set-cookie",
        "header:proxy-authorization",
        "header:x-api-key",
        "query:token",
        "form:password",
        "json:password",
        "json:card.number",
        "field:password",
        "field:auth_bytes",
        "pattern:card",
        "pattern:jwt",
        "pattern:bearer",
        "pattern:aws-access-key",
        "pattern:private-key",
        "pattern:email",
        "pattern:iban",
    ):
        assert want in ids, want


# -- config errors name the rule ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rules": ["json:a..b"]}, "rules[0] 'json:a..b': empty segment"),
        ({"rules": ["cookie:x"]}, "rules[0] 'cookie:x': unknown rule kind 'cookie'"),
        ({"rules": ["header"]}, "rules[0] 'header': expected 'kind:name'"),
        ({"rules": ["header:bad name"]}, "not a valid header name"),
        ({"rules": ["json:__"]}, "empty once '-' and '_' are ignored"),
        ({"rules": ["pattern:nope"]}, "unknown builtin pattern 'nope'"),
        ({"rules": [{"name": "x", "regex": "("}]}, "rules[0] (pattern 'x'): bad regex"),
        ({"rules": [{"name": "x", "regex": "a*"}]}, "matches the empty string"),
        ({"rules": [{"name": "x", "regex": "a", "validator": "md5"}]}, "unknown validator"),
        ({"rules": [{"name": "x", "regex": "a", "group": 2}]}, "has 0 group(s)"),
        ({"rules": [{"name": "card", "regex": "a"}]}, "'card' is a builtin pattern"),
        ({"rules": [{"name": "x", "regex": "a", "flags": "i"}]}, "unknown key(s) flags"),
        ({"rules": [42]}, "rules[0]: a rule is a string"),
        ({"rules": "json:a"}, "rules: must be a list"),
        ({"disable": ["header:x-not-default"]}, "disable[0] 'header:x-not-default'"),
        ({"disable": "pattern:email"}, "disable: must be a list"),
        ({"defaults": "yes"}, "defaults: must be true or false"),
        ({"colour": 1}, "unknown key(s) colour"),
        ({"namespaces": {"Pay": {"rules": []}}}, "namespaces.Pay: not a namespace name"),
        ({"namespaces": {"pay": {"disable": ["pattern:email"]}}}, "may only add rules"),
        ({"namespaces": {"pay": {"rules": ["json:"]}}}, "namespaces.pay.rules[0] 'json:'"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_config_errors(data: object, message: str) -> None:
    with pytest.raises(RedactionConfigError) as err:
        parse_config(data)
    assert message in str(err.value)


def test_load_config_file(tmp_path: Path) -> None:
    f = tmp_path / "redaction.yaml"
    f.write_text(
        "redaction:\n"
        "  disable: [pattern:email, 'header:Cookie']\n"
        "  rules:\n"
        "    - header:x-internal-token\n"
        "    - {name: employee-id, regex: 'EMP-[0-9]{6}'}\n"
        "  namespaces:\n"
        "    payments:\n"
        "      rules: [pattern:us-ssn, json:iban_holder]\n"
    )
    cfg = load_config(f)
    ids = [r.id for r in cfg.rules]
    assert "pattern:email" not in ids and "header:cookie" not in ids
    assert "header:x-internal-token" in ids and "pattern:employee-id" in ids
    assert [r.id for r in cfg.namespaces["payments"]] == ["pattern:us-ssn", "json:iban_holder"]
    assert cfg.rules_for("shop") == cfg.rules
    assert len(cfg.rules_for("shop", "payments")) == len(cfg.rules) + 2


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("rules: ['json:a..b']\n")
    with pytest.raises(RedactionConfigError, match=r"bad.yaml: rules\[0\]"):
        load_config(f)
    f.write_text("rules: [\n")
    with pytest.raises(RedactionConfigError, match="not valid YAML"):
        load_config(f)
    with pytest.raises(RedactionConfigError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_empty_config_is_the_defaults(tmp_path: Path) -> None:
    f = tmp_path / "empty.yaml"
    f.write_text("")
    assert load_config(f).rules == default_rules()
    assert parse_config({"defaults": False}).rules == ()


def test_namespace_override_applies_by_src_or_dst() -> None:
    from kubeweir.testing import make_http_entry

    engine = Engine(
        parse_config({"namespaces": {"pay*": {"rules": ["json:holder", "pattern:us-ssn"]}}})
    )
    body = '{"holder": "Jane", "note": "ssn 078-05-1120"}'
    ctype = {"content-type": "application/json"}

    def run(src: str, dst: str) -> str:
        e = make_http_entry(
            "POST", "/", request_body=body, request_headers=ctype, src_ns=src, dst_ns=dst
        )
        out: str = engine.apply(e).request["body"]
        return out

    assert run("shop", "web") == body
    for src, dst in (("payments", "web"), ("shop", "payments")):
        out = run(src, dst)
        assert "Jane" not in out and "078-05-1120" not in out


def test_helm_values_shape(tmp_path: Path) -> None:
    """The sniffer ConfigMap the chart renders (charts/kubeweir/templates/sniffer-config.yaml)."""
    f = tmp_path / "redaction.yaml"
    f.write_text(
        "defaults: true\n"
        'headers: ["X-Internal-Token"]\n'
        'query_params: ["sig_v2"]\n'
        'json_keys: ["customer.tax_id"]\n'
        'patterns: ["us-ssn", {"name": "emp", "regex": "EMP-[0-9]{6}"}]\n'
        'namespaces: {"payments": {"json_keys": ["holder"], "patterns": ["us-ssn"]}}\n'
    )
    cfg = load_config(f)
    ids = {r.id for r in cfg.rules}
    assert {
        "header:X-Internal-Token",
        "query:sig_v2",
        "form:sig_v2",
        "json:customer.tax_id",
        "pattern:us-ssn",
        "pattern:emp",
    } <= ids
    assert [r.id for r in cfg.namespaces["payments"]] == ["json:holder", "pattern:us-ssn"]
    empty = tmp_path / "empty.yaml"
    empty.write_text(
        "defaults: true\nheaders: []\nquery_params: []\njson_keys: []\npatterns: []\n"
        "namespaces: {}\n"
    )
    assert load_config(empty).rules == default_rules()
    with pytest.raises(RedactionConfigError, match=r"headers\[0\] 'header:bad name'"):
        parse_config({"headers": ["bad name"]})
    with pytest.raises(RedactionConfigError, match=r"patterns\[0\] 'pattern:nope'"):
        parse_config({"patterns": ["nope"]})
