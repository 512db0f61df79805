"""The gate: one RE2 search per entry decides what the engine may skip; skipping never
changes the result.

The engine with its gate must give exactly what it gives when every request, response
and summary gets the full look (the gate switched off), on generated entries with a
secret planted anywhere, echoed elsewhere, or nothing at all.
"""

from __future__ import annotations

import json

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from kubeweir.entry import Entry, entry_to_json
from kubeweir.testing import make_http_entry
from redaction import Engine, RedactionConfig, default_engine
from redaction._compiled import _Gate, _RuleSet
from tests.redaction.test_property import filler_values, planted_entries

GATED = default_engine()


def _ungated() -> Engine:
    engine = Engine(RedactionConfig())
    engine._base.gate = None  # every side looked at in full
    return engine


UNGATED = _ungated()


def same(entry: Entry) -> None:
    assert entry_to_json(GATED.apply(entry)) == entry_to_json(UNGATED.apply(entry))


@given(planted_entries())
def test_gate_skips_only_what_holds_nothing(case: tuple[Entry, str, tuple[str, ...]]) -> None:
    same(case[0])


@given(planted_entries(), st.sampled_from(["header", "body", "summary"]), filler_values)
def test_gate_with_echoes(
    case: tuple[Entry, str, tuple[str, ...]], where: str, filler: str
) -> None:
    entry, hidden, _ = case
    response = dict(entry.response)
    if where == "header":
        response["headers"] = {**response["headers"], "x-echo": f"{filler}{hidden}"}
        entry = Entry(**{**_fields(entry), "response": response})
    elif where == "body":  # a member more in the response's JSON body, or a new body
        try:
            obj = json.loads(response["body"]) if response["body"] else {}
        except ValueError:
            obj = None
        if not isinstance(obj, dict) or response["headers"].get("content-type") not in (
            None,
            "application/json",
        ):
            return
        obj["echo"] = f"{filler} {hidden}"
        response["body"] = json.dumps(obj)
        response["headers"] = {**response["headers"], "content-type": "application/json"}
        entry = Entry(**{**_fields(entry), "response": response})
    else:
        entry = Entry(**{**_fields(entry), "summary": f"{entry.summary} {hidden}"})
    same(entry)


def _fields(entry: Entry) -> dict[str, object]:
    return {f: getattr(entry, f) for f in entry.__struct_fields__}


def test_plain_entries_pass_untouched() -> None:
    e = make_http_entry(
        "GET",
        "/api/orders/7?page=2",
        request_headers={"host": "svc", "accept": "application/json"},
        response_headers={"content-type": "application/json"},
        response_body=json.dumps({"id": 7, "items": [{"sku": "A-1", "qty": 2}], "next": None}),
    )
    assert GATED.apply(e) is e


def test_a_hit_in_one_head_leaves_the_other_alone() -> None:
    e = make_http_entry(
        "GET",
        "/u?x=1",
        request_headers={"x-debug": "mail jane@example.com"},
        response_headers={"x-ok": "1"},
    )
    out = GATED.apply(e)
    assert out.request["headers"]["x-debug"] == "mail [REDACTED]"
    assert out.response is e.response
    same(e)


def _pieces(*parts: tuple[bytes, bytes]) -> list[bytes]:
    out: list[bytes] = []
    for mark, text in parts:
        out += (mark, text, b"\0")
    return out


def test_which_keeps_the_kinds_apart() -> None:
    gate = _RuleSet(RedactionConfig().rules).gate
    assert isinstance(gate, _Gate)
    head, body = _Gate.HEAD, _Gate.BODY
    # "%41" matters in a head (percent-encoding), not in a JSON body; a key matters only
    # in a body ("password": in a head is a header's value, looked at by name already)
    assert gate.which(_pieces((head, b'{"a":"%41"}'), (body, b'{"a": "%41"}'))) == [0]
    assert gate.which(_pieces((head, b'{"a":"b"}'), (body, b'{"Pass_Word": 1}'))) == [1]
    assert gate.which(_pieces((head, b'{"a":"b"}'), (body, b'{"pass": 1}'))) == []
    # every text with a hit is found, each search resuming at the next text
    parts = [
        (body, b'{"n": "x@example.com"}'),
        (head, b'{"a":"b"}'),
        (body, b'{"t": "eyJhbGciOi"}'),
        (body, b"{}"),
        (head, b'{"q":"a+b"}'),
    ]
    assert gate.which(_pieces(*parts)) == [0, 2, 4]
    # a member never matches across the NUL that ends a text
    assert gate.which(_pieces((body, b'{"x": "a'), (body, b'@b"}'))) == []


def test_form_field_after_a_leading_line_break() -> None:
    """(Found while checking the gate: the name was taken with the line break.)"""
    e = make_http_entry(
        "POST",
        "/login",
        request_headers={"content-type": "application/x-www-form-urlencoded"},
        request_body="\r\npassword=hunter2xyz&x=1",
    )
    out = GATED.apply(e)
    assert "hunter2xyz" not in entry_to_json(out).decode()
    assert "request.body.password" in out.redacted
    same(e)


def test_query_name_with_what_the_query_look_drops_around_it() -> None:
    """(Found while restructuring: the gate's query-name member wanted the name right
    after ``?``/``&`` and ``=`` right after it, but the query's look strips whitespace
    and ignores ``-``/``_``, so ``?_token=`` passed the gate untouched.)"""
    for target in (
        "/a?_token=abcdefgh123",
        "/a?x=1&__Token__=abcdefgh123",
        "/a?x=1& token =abcdefgh123",
        "/a?x=1&\ttoken=abcdefgh123",
        "/a?x=1&\x0btoken\u3000=abcdefgh123",
        "/a?x=1&\x85access-token=abcdefgh123",
    ):
        e = make_http_entry("GET", target)
        out = GATED.apply(e)
        assert "abcdefgh123" not in entry_to_json(out).decode(), target
        assert any(p.startswith("request.query.") for p in out.redacted), target
        same(e)


def test_short_json_body_searched_in_its_head() -> None:
    """A short response body is searched inside its head's JSON encoding: a key before a
    line break and a colon, escapes, a pattern hit, are all still found."""
    for body in (
        '{"id": 1,\n "password"\n : "hunter2xyz"}',
        '{"note": "mail jane@example.com"}',
        '{"x": "a\\u0040b", "token": "abcdef123"}',
    ):
        e = make_http_entry(
            "GET",
            "/a",
            response_headers={"content-type": "application/json"},
            response_body=body,
        )
        out = GATED.apply(e)
        assert out is not e and any(p.startswith("response.body") for p in out.redacted)
        for secret in ("hunter2xyz", "jane@example.com", "abcdef123"):
            assert secret not in out.response["body"]
        same(e)


def test_digit_runs_that_are_no_card_number_skip_the_full_look() -> None:
    """A hex request id or a timestamp with 13+ digits in a row matches the card number's
    hint; the gate checks such runs with the card validator instead of flagging the head."""
    gate = _RuleSet(RedactionConfig().rules).gate
    assert isinstance(gate, _Gate)
    hex_id = b'{"x-request-id":"3f2345678901234567ab"}'  # 18 digits, no valid card in them
    assert gate.which(_pieces((_Gate.HEAD, hex_id))) == [0]  # the hint matches
    assert gate.no_card(hex_id)
    assert not gate.no_card(b'{"x-note":"4111 1111 1111 1111"}')  # Luhn-valid
    assert not gate.no_card(b'{"x-note":"card 4111-1111-1111-1111 ok"}')
    assert not gate.no_card(b'{"x-request-id":"3f2345678901234567ab","q":"a+b"}')  # '+'
    assert not gate.no_card(b'{"x-request-id":"3f2345678901234567ab","m":"a@b.c"}')
    # an escape's hex digits could join a run in the encoding: never dismissed
    assert not gate.no_card(b'{"x":"\\u00012345678901234567"}')
    e = make_http_entry(
        "GET",
        "/api/v1/orders/7",
        request_headers={"x-request-id": "3f2345678901234567ab", "traceparent": "00-1-01"},
    )
    out = GATED.apply(e)
    assert out is e
    same(e)


_DIGITISH = st.text(alphabet='0123456789abcdef -+\x01\n"\\%@', min_size=0, max_size=40)


@given(
    st.lists(_DIGITISH, min_size=1, max_size=3),
    st.sampled_from(["4111111111111111", "4111 1111 1111 1111", "5500-0000-0000-0004", ""]),
    st.sampled_from(["header", "path", "summary"]),
)
def test_digit_runs_gated_as_in_full(values: list[str], card: str, where: str) -> None:
    """Digit runs, separators, escapes and a card number or not, anywhere in a head: the
    gated engine (runs checked by the validator at the gate) gives what the full look does."""
    text = card.join(values) if card else "".join(values)
    headers = {f"x-v{i}": v for i, v in enumerate(values)}
    if where == "header":
        headers["x-card"] = text
    e = make_http_entry(
        "GET",
        "/a/" + text if where == "path" else "/a",
        request_headers=headers,
        response_headers={"x-id": text},
    )
    if where == "summary":
        e = msgspec.structs.replace(e, summary=text)
    same(e)


# -- the fast path (HTTP entries: no JSON encoding of the heads, clean strings remembered)


def _dense(**over: object) -> Entry:
    """An exchange as benchmarks.redaction makes them: a bearer JWT, cookies, a JSON order
    with an e-mail, a JSON list in the response."""
    jwt = (
        "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9."
        "eyJzdWIiOiAidXNlci01MDg1MjAifQ.LozC1F_M0JbPBa4uxVxDQ7ycLEhZRwwBTgxLJe8TQGs"
    )
    fields: dict[str, object] = {
        "request_headers": {
            "host": "orders.shop.svc",
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0.0.0",
            "x-request-id": "05765ae2c99964615ddf2df5ff87123b",
            "authorization": f"Bearer {jwt}",
            "cookie": "session=0910da5f8fbb53999ac0b914; theme=dark",
            "content-type": "application/json",
        },
        "response_headers": {"content-type": "application/json", "x-request-id": "c2678cb9"},
        "request_body": json.dumps({"customer": {"id": 7, "email": "cedar.1@example.com"}}),
        "response_body": json.dumps({"items": [{"id": 500352373, "total": 438.03}] * 40}),
    }
    fields.update(over)
    return make_http_entry("POST", "/api/v1/orders?page=2&limit=50", **fields)  # type: ignore[arg-type]


def test_fast_path_takes_the_usual_entry_and_gives_the_full_looks_result() -> None:
    from redaction._engine import _fast

    e = _dense()
    rs = GATED._base
    assert rs.gate is not None
    for _ in range(2):  # the second time with its strings known to be clean
        out = _fast(rs, rs.gate, e)
        assert out is not None
        assert entry_to_json(out) == entry_to_json(UNGATED.apply(e))
    assert out.redacted == [
        "request.headers.authorization",
        "request.headers.cookie",
        "request.body",
    ]


def test_fast_path_leaves_to_the_full_path_what_it_does_not_do() -> None:
    from redaction._engine import _fast

    rs = GATED._base
    assert rs.gate is not None
    for e in (
        make_http_entry("GET", "/users/jane%40example.com"),
        make_http_entry("GET", "/a?q=a+b"),
        make_http_entry("GET", "/a?token=abcdef123456"),
        make_http_entry("GET", "/a", request_headers={"referer": "http://x/?token=abcdefgh"}),
        make_http_entry("GET", "/a", request_headers={"x-note": "card 4111 1111 1111 1111"}),
    ):
        assert _fast(rs, rs.gate, e) is None, e.request
        same(e)
    plain = make_http_entry("GET", "/a")
    unknown = msgspec.structs.replace(plain, request={**plain.request, "trailers": {"a": "b"}})
    assert _fast(rs, rs.gate, unknown) is None


def test_echo_into_a_string_known_clean() -> None:
    """A header value found clean before is not searched for patterns again, but a
    value replaced by name (a cookie) is still looked for in it."""
    seen = _dense(response_headers={"x-session": "0910da5f8fbb53999ac0b914"}, request_headers={})
    GATED.apply(seen)  # x-session's value is now known clean
    e = _dense(response_headers={"x-session": "0910da5f8fbb53999ac0b914"})
    out = GATED.apply(e)
    assert "0910da5f8fbb53999ac0b914" not in entry_to_json(out).decode()
    same(e)
