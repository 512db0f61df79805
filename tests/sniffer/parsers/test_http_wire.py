"""``parse_fields``: its one-loop common case answers exactly as the general path does."""

from __future__ import annotations

from itertools import repeat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sniffer.parsers._http_wire import _parse_fields_slow, parse_fields
from sniffer.parsers.base import ParseError

# the characters that matter to the rules: separators, white space, case, non-ASCII case
_LINE = st.text(alphabet=st.sampled_from(list("aB:x- \t\r;é=İ")), max_size=8)


def _general(lines: list[str], start: int) -> dict[str, str] | str:
    try:
        return _parse_fields_slow(list(map(str.partition, lines[start:], repeat(":"))))
    except ParseError as exc:
        return f"error: {exc}"


def _answer(lines: list[str], start: int) -> dict[str, str] | str:
    try:
        return parse_fields(lines, start)
    except ParseError as exc:
        return f"error: {exc}"


@given(st.lists(_LINE, max_size=6), st.integers(0, 2))
def test_same_answer_as_the_general_path(lines: list[str], start: int) -> None:
    assert _answer(lines, start) == _general(lines, start)


@pytest.mark.parametrize(
    ("lines", "want"),
    [
        (["GET / HTTP/1.1", "Host: a", "X-Y:  b "], {"host": "a", "x-y": "b"}),
        (["GET / HTTP/1.1", "Set-Cookie: a=1", "set-cookie: b=2"], {"set-cookie": "a=1\nb=2"}),
        (["GET / HTTP/1.1", "Accept: a", "accept: b"], {"accept": "a, b"}),
        (["GET / HTTP/1.1", "X: a", " b"], {"x": "a b"}),  # obs-fold
        (["GET / HTTP/1.1", "Host : a"], {"host": "a"}),  # space before the colon
        (["GET / HTTP/1.1", "Host\r: a"], {"host": "a"}),  # other white space before it
        (["GET / HTTP/1.1"], {}),
    ],
)
def test_cases(lines: list[str], want: dict[str, str]) -> None:
    assert parse_fields(lines, 1) == want


@pytest.mark.parametrize("line", ["Host a", ": a", " : a"])
def test_bad_lines_are_errors(line: str) -> None:
    with pytest.raises(ParseError):  # no colon; an empty name (RFC 9110 §5.1: a token)
        parse_fields(["GET / HTTP/1.1", line], 1)
