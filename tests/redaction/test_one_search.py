"""The fast path's one search over the head strings and the response's JSON body answers
what its two searches (``_Gate.fast`` over the heads, ``_Gate.body`` over the body) do:
never "clean" where one of them finds something, and the same answers but where a text
holds the other's mark (a false alarm then costs the full look, never a miss)."""

from __future__ import annotations

import string

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from redaction import default_engine
from redaction._compiled import _UNANCHORED, _Gate
from redaction._config import DEFAULT_JSON, DEFAULT_QUERY
from tests.redaction.test_property import Secret, pattern_secrets

GATE = default_engine()._base.gate


def _two(gate: _Gate, data: bytes, raw: bytes) -> tuple[bool, bool]:
    return (
        gate.fast.Match(_UNANCHORED, data, 0, len(data))[0][0] < 0,
        gate.body.Match(_UNANCHORED, raw, 0, len(raw))[0][0] < 0,
    )


# pieces that are (nearly) what the members look for, and what separates texts
_PIECES = st.sampled_from(
    [
        "\n",
        "?",
        "&",
        "=",
        " ",
        "\x01",
        "\x02",
        "\\",
        '"',
        ":",
        "-",
        "_",
        "\u00a0",
        "\u2192",
        "é",
        "eyJhbGci",
        "Bearer ",
        "bearer abcdefgh1",
        "AKIA",
        "-----BEGIN RSA PRIVATE KEY",
        "@",
        "a@b",
        "DE89",
        "4111",
        "1111 1111",
        "2024-05-12",
        *DEFAULT_QUERY,
        *(n.upper() for n in DEFAULT_QUERY),
        *(f'"{n}":' for n in DEFAULT_JSON),
    ]
)
_NO_NUL = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)


@st.composite
def _texts(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(_PIECES, _NO_NUL, st.text(string.digits, max_size=20))))
    if draw(st.booleans()):
        secret: Secret = draw(pattern_secrets())
        parts.insert(draw(st.integers(0, len(parts))), secret.planted)
    return "".join(parts)


@given(_texts(), _texts())
def test_one_search_equals_two(heads: str, body: str) -> None:
    assert GATE is not None
    data, raw = heads.encode(), body.encode()
    one, two = GATE.fast_and_body(data, raw), _two(GATE, data, raw)
    # never clean where a search of its own finds something
    assert (not one[0] or two[0]) and (not one[1] or two[1])
    if b"\x01" not in data and b"\x02" not in raw:  # (else a mark's false alarm may be)
        assert one == two


def test_each_side_alone() -> None:
    assert GATE is not None
    clean = b"/api/v1/orders/7\nGET /api/v1/orders/7 \xe2\x86\x92 200"
    body = b'{"items": [{"id": 123456789, "updated_ms": 1700000123456}]}'
    assert GATE.fast_and_body(clean, body) == (True, True)
    assert GATE.fast_and_body(clean, b'{"email": "jane@example.com"}') == (True, False)
    assert GATE.fast_and_body(clean, b'{"Access-Token": "x"}') == (True, False)
    assert GATE.fast_and_body(b"page=1&access_token=abc", body) == (False, True)
    assert GATE.fast_and_body(b"access_token=abc", body) == (False, True)  # at the start
    assert GATE.fast_and_body(b"x\x01y@example.com", body) == (False, True)  # (\x01 in heads)
    assert GATE.fast_and_body(b"a\nb eyJhbGciOi", b"\\") == (False, False)


@given(st.dictionaries(st.one_of(_PIECES, _NO_NUL), st.one_of(_texts(), st.integers())), _texts())
def test_heads_without_marks_answer_as_with(head: dict[str, object], summary: str) -> None:
    """``_Gate.heads`` over a JSON encoding of heads answers as ``_Gate.regexp`` over the
    same bytes behind the head's mark (JSON text holds no NUL, no raw control character)."""
    assert GATE is not None
    heads = msgspec.json.encode((head, summary))
    marked = b"\x02" + heads + b"\0"
    assert (GATE.heads.Match(_UNANCHORED, heads, 0, len(heads))[0][0] >= 0) == (
        GATE.regexp.Match(_UNANCHORED, marked, 0, len(marked))[0][0] >= 0
    )
