"""Queries that must not compile: a clear message, the position, a hint; and the limits."""

from __future__ import annotations

import time

import pytest

from hub.query import MAX_DEPTH, MAX_LIST, MAX_PATTERN, MAX_TEXT, QueryError, compile_query
from tests.hub.query.conftest import NOW


def _err(text: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        compile_query(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("http &&", 7, "unexpected end"),
        ("response.status == ", 19, "unexpected end"),
        ("response.status = 200", 16, "unexpected"),
        ('request.path == "abc', 16, "unexpected character"),
        ("http && )", 8, "unexpected ')'"),
        ("a ? b : c", 0, "?: is not supported"),
        ("{'a': 1}", 0, "map literals"),
        ('response.status == "200"', 19, "cannot compare response.status (int)"),
        ('elapsed > "1s"', 10, "cannot compare elapsed (duration)"),
        ("ts > 5", 5, "cannot compare ts (timestamp)"),
        ('ts > duration("1s")', 5, "cannot compare ts"),
        ('elapsed > timestamp("2026-01-01T00:00:00Z")', 10, "cannot compare"),
        ('src.labels == "x"', 14, "cannot compare"),
        ("tls < true", 6, "< does not apply to bool"),
        ('request.body < "a"', 15, "does not apply to bytes"),
        ("response.status", 0, "is a int, not a condition"),
        ("request.path && http", 0, "not a condition"),
        ('"x"', 0, "not a condition"),
        ("response.status.startsWith('2')", 16, "needs a string field"),
        ("request.path.startsWith(1)", 24, "takes a string literal"),
        ("request.path.startsWith(request.method)", 24, "takes a string literal"),
        ("request.path.frobnicate()", 13, "unknown method 'frobnicate'"),
        ("frob(1)", 0, "unknown function 'frob'"),
        ('duration("soon")', 9, "invalid duration"),
        ('timestamp("yesterday")', 10, "invalid timestamp"),
        ("response.status + 1 > 2", 18, "arithmetic on fields"),
        ("9223372036854775807 + 1 > 0", 22, "64-bit"),
        ("1 / 0 == 1", 4, "division by zero"),
        ("http == true", 0, "is a condition"),
        ("src == 1", 0, "group of fields"),
        ('src.labels["a"]["b"] == "x"', 16, "has no member"),
        ("request.path.x == 1", 0, "has no member"),
        ('response.status in ["a"]', 20, "cannot compare"),
        ('request.method in ["a", 1]', 24, "cannot compare"),
        ("1 in request.path", 5, "needs a list or a map"),
        ("request.path in src.labels", 0, "needs a string literal"),
        ("request.x == request.y", 13, "compare a protocol field with a literal"),
        ("response.status < null", 18, "null only compares"),
        ('request.path.matches("(a")', 21, "invalid regular expression"),
        ('request.path.matches("(a)\\\\1")', 21, "invalid regular expression"),
        ('request.path.matches("(?=x)")', 21, "invalid regular expression"),
        ('request.path.matches("(a+)+$")', 21, "too costly"),
        ('request.path.matches("(a|aa)*b")', 21, "too costly"),
        ('request.path.matches("(a|a)*")', 21, "too costly"),
        ('request.path.matches("(x*y?)*")', 21, "too costly"),
        ('request.path.matches("(\\\\pL+)+")', 21, "too costly"),
    ],
)
def test_error_with_position(text: str, position: int, fragment: str) -> None:
    err = _err(text)
    assert fragment in err.message, err
    assert err.position == position, err
    assert err.as_dict() == {"message": err.message, "position": position, "hint": err.hint}


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("respones.status == 500", "response.status"),
        ("src.namspace == 'x'", "src.namespace"),
        ("dst.lables['app'] == 'x'", "dst.labels"),
        ("elapsd > 1", "elapsed"),
        ("htp", "http"),
        ("sumary == ''", "summary"),
    ],
)
def test_unknown_field_names_the_nearest(text: str, suggestion: str) -> None:
    err = _err(text)
    assert "unknown field" in err.message
    assert err.position == 0
    assert suggestion in err.hint


def test_unknown_field_position_points_at_it() -> None:
    err = _err('http && dst.namespce == "x"')
    assert err.position == 8
    assert "dst.namespace" in err.hint


def test_syntax_error_hint_lists_what_was_expected() -> None:
    err = _err("response.status ==")
    assert "expected" in err.hint and "a number" in err.hint


def test_text_length_limit() -> None:
    ok = "http || " * ((MAX_TEXT - 4) // 8) + "http"
    assert len(ok) <= MAX_TEXT
    compile_query(ok)
    err = _err("x" * (MAX_TEXT + 1))
    assert "too long" in err.message and err.position == MAX_TEXT


def test_depth_limit() -> None:
    deep_ok = "(" * (MAX_DEPTH - 2) + "http" + ")" * (MAX_DEPTH - 2)
    compile_query(deep_ok)
    err = _err("(" * 200 + "http" + ")" * 200)
    assert "nested too deeply" in err.message
    err = _err("!" * 1000 + "tls")
    assert "nested too deeply" in err.message


def test_huge_expressions_fail_fast() -> None:
    for text in (
        "(" * 2000 + ")" * 2000,
        "[" * 2000 + "]" * 2000,
        "a." * 1300 + "b",
        "-" * 4000 + "1 > 0",
        "a." * 11 + "b == 1",
        "size(" * 800 + "x" + ")" * 800,
    ):
        t0 = time.perf_counter()
        with pytest.raises(QueryError):
            compile_query(text[:MAX_TEXT])
        assert time.perf_counter() - t0 < 2.0


def test_node_limit() -> None:
    text = "1 == 1 || " * 400 + "tls"
    assert len(text) <= MAX_TEXT
    err = _err(text)
    assert "too large" in err.message


def test_list_limit() -> None:
    compile_query("dst.port in [" + ",".join("1" * MAX_LIST) + "]")
    err = _err("dst.port in [" + ",".join("1" * (MAX_LIST + 1)) + "]")
    assert "list too long" in err.message


def test_pattern_length_limit() -> None:
    compile_query(f'request.path.matches("{"a" * MAX_PATTERN}")')
    err = _err(f'request.path.matches("{"a" * (MAX_PATTERN + 1)}")')
    assert "too long" in err.message and err.position == 21


def test_regex_count_limit() -> None:
    err = _err(" || ".join(f'request.path.matches("a{i}")' for i in range(17)))
    assert "too many matches" in err.message


def test_accepted_regexes_cannot_hang_the_stream() -> None:
    # Worst cases for backtracking engines that pass the checks: RE2 stays linear.
    q = compile_query(
        'request.path.matches("^(a|b)?a*a*a*a*a*a*a*a*a*a*c$") || request.path.matches("x+x+x+y")'
    )
    entry = {
        "id": "1",
        "ts": 0.0,
        "proto": "http",
        "src": {"ip": "1"},
        "dst": {"ip": "2"},
        "request": {"path": "a" * 20000 + "x" * 20000},
    }
    t0 = time.perf_counter()
    assert not q.matches(entry, NOW)
    assert time.perf_counter() - t0 < 1.0


def test_bad_string_escape_is_a_query_error() -> None:
    err = _err('request.path == "\\ud800"')
    assert "invalid literal" in err.message and err.position == 16
