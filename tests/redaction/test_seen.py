"""Texts seen clean before: a repeated static page (and the same heads again) skips its
search, and nothing else does.

``_RuleSet.maybe`` and ``_Gate.heads_clean`` remember the last text of each length their
search found nothing in. Only a text equal to it byte for byte is taken for clean: a text
of the same length with a secret in it must be searched and redacted as on a fresh engine.
"""

from __future__ import annotations

import string

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from kubeweir.entry import Entry, entry_to_json
from kubeweir.testing import make_http_entry
from redaction import Engine, default_engine
from redaction._compiled import _SEEN_LEN, _SEEN_MAX, _RuleSet
from tests.redaction.test_property import Secret, pattern_secrets

PAGE = (
    "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n<style>\nhtml "
    "{ color-scheme: light dark; }\nbody { width: 35em; margin: 0 auto;\nfont-family: "
    "Tahoma, Verdana, Arial, sans-serif; }\n</style>\n</head>\n<body>\n<h1>Welcome to "
    "nginx!</h1>\n<p>If you see this page, the nginx web server is successfully installed "
    "and\nworking. Further configuration is required.</p>\n\n<p>For online documentation "
    'and support please refer to\n<a href="http://nginx.org/">nginx.org</a>.<br/>\n'
    'Commercial support is available at\n<a href="http://nginx.com/">nginx.com</a>.</p>'
    "\n\n<p><em>Thank you for using nginx.</em></p>\n</body>\n</html>\n"
)


def _page_entry(body: str, date: str = "Tue, 24 Nov 2026 06:00:00 GMT") -> Entry:
    entry = make_http_entry(
        "GET",
        "/",
        request_headers={"host": "10.0.0.2", "user-agent": "wrk"},
        response_headers={
            "server": "nginx/1.22.1",
            "date": date,
            "content-type": "text/html",
            "content-length": str(len(body)),
        },
        response_body=body,
    )
    response = {**entry.response, "content_type": "text/html"}
    return msgspec.structs.replace(entry, response=response)


def _fresh(entry: Entry) -> bytes:
    return entry_to_json(default_engine().apply(entry))


def _planted(text: str, secret: str, at: int) -> str:
    """``text`` with ``secret`` written over it at ``at`` (the length kept)."""
    at = min(at, len(text) - len(secret))
    return text[:at] + secret + text[at + len(secret) :]


def test_a_page_seen_again_is_not_searched_again() -> None:
    engine = default_engine()
    entry = _page_entry(PAGE)
    assert engine.apply(entry) is entry
    assert engine.apply(entry) is entry  # (the first one's header names are known now)
    rs = engine._base
    assert rs.seen_texts.get(len(PAGE)) == PAGE
    assert rs.gate is not None and rs.gate.seen  # the heads, too
    again = _page_entry(PAGE)  # a new object, the same text
    assert engine.apply(again) is again


def test_same_length_with_a_card_number_is_searched() -> None:
    engine = default_engine()
    engine.apply(_page_entry(PAGE))
    card = "4111 1111 1111 1111"
    body = _planted(PAGE, card, 300)
    assert len(body) == len(PAGE)
    entry = _page_entry(body)
    out = engine.apply(entry)
    assert card not in out.response["body"]
    assert entry_to_json(out) == _fresh(entry)


def test_same_length_heads_with_a_token_are_searched() -> None:
    engine = default_engine()
    clean = make_http_entry("GET", "/a", request_headers={"host": "svc", "x-note": "x" * 48})
    assert engine.apply(clean) is clean
    token = "AKIAABCDEFGHIJKLMNOP"  # an AWS access key id, 20 characters
    entry = make_http_entry(
        "GET", "/a", request_headers={"host": "svc", "x-note": "x" * 27 + " " + token}
    )
    out = engine.apply(entry)
    assert token not in entry_to_json(out).decode()
    assert entry_to_json(out) == _fresh(entry)


def test_memory_is_bounded() -> None:
    rs = _RuleSet(default_engine().config.rules)
    for n in range(_SEEN_MAX + 10):
        rs.maybe("x" * (300 + n))
    assert len(rs.seen_texts) <= _SEEN_MAX
    rs.maybe("y" * (_SEEN_LEN + 1))
    assert all(len(t) <= _SEEN_LEN for t in rs.seen_texts.values())
    engine = default_engine()
    for n in range(_SEEN_MAX + 10):
        engine.apply(_page_entry("x" * (300 + n)))
    gate = engine._base.gate
    assert gate is not None and 0 < len(gate.seen) <= _SEEN_MAX


_text = st.text(string.ascii_letters + string.digits + " <>/=.,:;\n-_\"'", min_size=0, max_size=600)


@given(_text, pattern_secrets(), st.integers(0, 600), st.sampled_from(["body", "header"]))
def test_warm_engine_equals_a_fresh_one(filler: str, secret: Secret, at: int, where: str) -> None:
    """A clean text, then the same text with a secret written over part of it (the same
    length): the engine that saw the clean one first gives what a fresh engine gives."""
    base = (filler + PAGE)[: max(len(secret.planted) + 1, len(filler) + 200)]
    if where == "body":
        first, second = _page_entry(base), _page_entry(_planted(base, secret.planted, at))
    else:
        value = base.replace("\n", " ")[:300]
        first = make_http_entry("GET", "/", request_headers={"host": "svc", "x-note": value})
        second = make_http_entry(
            "GET",
            "/",
            request_headers={"host": "svc", "x-note": _planted(value, secret.planted, at)},
        )
    engine: Engine = default_engine()
    engine.apply(first)
    engine.apply(first)  # (seen now, if it was clean)
    assert entry_to_json(engine.apply(second)) == _fresh(second)


def test_a_seen_text_under_another_content_type_gets_that_types_look() -> None:
    """A text body seen clean as plain text is looked at by name when the same text comes
    as a form, as JSON, or as JSON-looking text without a content type."""
    form = "password=hunter2hunter2&note=" + "x" * 300
    data = '{"password": "hunter2hunter2", "note": "' + "x" * 300 + '"}'
    for text, ctype in (
        (form, "application/x-www-form-urlencoded"),
        (data, "application/json"),
        (data, ""),
    ):
        engine = default_engine()
        for _ in range(2):  # seen clean as plain text (the second time through the heads' gate)
            assert engine.apply(_typed(text, "text/plain")).redacted == []
        entry = _typed(text, ctype)
        out = engine.apply(entry)
        assert "hunter2hunter2" not in out.response["body"], ctype
        assert entry_to_json(out) == _fresh(entry)


def _typed(body: str, ctype: str) -> Entry:
    headers = {"content-type": ctype} if ctype else {"x-served-by": "svc"}
    entry = make_http_entry("GET", "/", response_headers=headers, response_body=body)
    response = {**entry.response, "content_type": ctype}
    return msgspec.structs.replace(entry, response=response)


def test_namespace_pairs_with_the_same_rules_share_one_rule_set() -> None:
    """Caches live on a rule set: one per distinct rule list, not one per namespace pair
    (an override's glob can take many namespaces)."""
    from redaction import Engine
    from redaction._config import parse_config

    engine = Engine(parse_config({"namespaces": {"pay-*": {"rules": ["json:note"]}}}))
    sets = {
        id(engine._rules(src, dst))
        for src, dst in [("pay-a", "x"), ("pay-b", "y"), ("z", "pay-c"), ("pay-d", "pay-e")]
    }
    assert len(sets) == 1
    assert engine._rules("x", "y") is engine._base
    assert engine._rules("pay-a", "x") is not engine._base
