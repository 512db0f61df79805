"""Property: on random entries and random queries, the SQL back end (DuckDB, rows stored as
the hub stores them) and the Python predicate select exactly the same entries.

``HYPOTHESIS_PROFILE=deep`` runs many more examples than the CI profile.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from kubeweir.entry import Endpoint, Entry
from tests.hub.query.conftest import NOW, Both

T0 = NOW.timestamp()

TEXT = st.text(alphabet='aAbé/-._x0😀 "\\', max_size=6)
WORD = st.sampled_from(["", "a", "ab", "b", "é", "a/b", "x-id", "A", "😀"])
NS = st.sampled_from(["", "shop", "payments", "kube-system"])
PROTOS = ["http", "http2", "grpc", "dns", "redis", "postgres", "kafka", "mqtt", "amqp", "tcp"]


def _lit(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _dyn() -> st.SearchStrategy[Any]:
    scalar = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 600),
        st.sampled_from([0.5, 1.0, 200.0, -2.25]),
        WORD,
    )
    return st.one_of(scalar, st.lists(st.one_of(WORD, st.integers(0, 3)), max_size=3))


@st.composite
def endpoints(draw: st.DrawFn) -> Endpoint:
    return Endpoint(
        ip=draw(st.sampled_from(["10.0.0.1", "10.0.0.2", "fd00::1"])),
        port=draw(st.sampled_from([0, 53, 80, 6379, 40000])),
        pod=draw(st.sampled_from(["", "web-1", "db-0"])),
        namespace=draw(NS),
        workload=draw(st.sampled_from(["", "Deployment/web", "StatefulSet/db"])),
        labels=draw(st.dictionaries(st.sampled_from(["app", "tier", "x-id"]), WORD, max_size=2)),
    )


@st.composite
def messages(draw: st.DrawFn, side: str) -> dict[str, Any]:
    msg: dict[str, Any] = {}
    if side == "request":
        if draw(st.booleans()):
            msg["method"] = draw(st.sampled_from(["GET", "POST", "MGET", "get"]))
        if draw(st.booleans()):
            msg["path"] = draw(st.sampled_from(["/", "/api/a", "/api/é", "/healthz", "/a/b"]))
        if draw(st.booleans()):
            msg["name"] = draw(st.sampled_from(["a.svc.cluster.local", "example.com"]))
    elif draw(st.booleans()):
        msg["status"] = draw(st.one_of(st.sampled_from([200, 201, 404, 500, 503]), _dyn()))
    if draw(st.booleans()):
        msg["headers"] = draw(
            st.dictionaries(st.sampled_from(["x-id", "host", "a"]), WORD, max_size=2)
        )
    if draw(st.booleans()):
        msg["n"] = draw(_dyn())
    if draw(st.booleans()):
        msg["keys"] = draw(st.lists(st.one_of(WORD, st.integers(0, 2)), max_size=3))
    body = draw(st.one_of(st.none(), TEXT, st.binary(max_size=6)))
    if isinstance(body, bytes):
        msg["body"] = base64.b64encode(body).decode()
        msg["body_encoding"] = "base64"
    elif body is not None:
        msg["body"] = body
    return msg


@st.composite
def entry_lists(draw: st.DrawFn) -> list[Entry]:
    n = draw(st.integers(1, 8))
    out = []
    for i in range(n):
        out.append(
            Entry(
                id=f"{i:024x}",
                ts=T0 - draw(st.sampled_from([0, 1, 30, 299.5, 301, 3600, 0.000_001])),
                proto=draw(st.sampled_from(PROTOS)),
                src=draw(endpoints()),
                dst=draw(endpoints()),
                elapsed=draw(st.sampled_from([None, 0.0, 0.01, 0.25, 0.3, 2.0])),
                request=draw(messages("request")),
                response=draw(messages("response")),
                summary=draw(WORD),
                redacted=draw(st.lists(st.sampled_from(["request.headers.a", "b"]), max_size=2)),
                tls=draw(st.booleans()),
                error=draw(st.sampled_from(["", "no response"])),
                gaps=draw(st.sampled_from([0, 3])),
            )
        )
    return out


STR_FIELDS = [
    "proto", "src.namespace", "dst.namespace", "src.pod", "src.workload", "request.method",
    "request.path", "summary", "error", 'src.labels["app"]', 'dst.labels["tier"]',
    'request.headers["x-id"]', 'response.headers["A"]', "request.n", "response.n",
    "request.keys[0]", "src.ip",
]  # fmt: skip
NUM_FIELDS = [
    "response.status", "src.port", "dst.port", "gaps", "request.n", "response.n",
    "size(request.path)", "size(src.labels)", "size(request.keys)", "size(request.n)",
    "size(request.body)", "size(response.body)", "size(redacted)", "request.keys[1]",
    "size(request.headers)",
]  # fmt: skip
OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
NUMS = st.sampled_from(["0", "1", "3", "200", "404", "500.5", "-2.25", "6379", "1.0"])
REGEXES = st.sampled_from(["^/api", "a.b", "[0-9]+", "é$", "^$", "(?i)get", "x|y", r"\\\\"])


def _atoms() -> st.SearchStrategy[str]:
    s_field = st.sampled_from(STR_FIELDS)
    n_field = st.sampled_from(NUM_FIELDS)
    body = st.sampled_from(["request.body", "response.body"])
    blit = st.binary(max_size=3).map(lambda b: "b'" + "".join(f"\\x{c:02x}" for c in b) + "'")
    return st.one_of(
        st.builds(lambda f, o, v: f"{f} {o} {_lit(v)}", s_field, OPS, WORD),
        st.builds(lambda f, o, v: f"{f} {o} {v}", n_field, OPS, NUMS),
        st.builds(
            lambda f, m, v: f"{f}.{m}({_lit(v)})",
            s_field,
            st.sampled_from(["startsWith", "endsWith", "contains"]),
            WORD,
        ),
        st.builds(lambda f, r: f'{f}.matches("{r}")', s_field, REGEXES),
        st.builds(
            lambda f, vs: f"{f} in [{', '.join(map(_lit, vs))}]",
            s_field,
            st.lists(WORD, min_size=1, max_size=3),
        ),
        st.builds(
            lambda f, vs: f"{f} in [{', '.join(vs)}]",
            n_field,
            st.lists(NUMS, min_size=1, max_size=3),
        ),
        st.builds(
            lambda k, m: f"{_lit(k)} in {m}",
            WORD,
            st.sampled_from(
                [
                    "src.labels",
                    "request.headers",
                    "request.keys",
                    "redacted",
                    "request.n",
                    "response.headers",
                ]
            ),
        ),
        st.builds(
            lambda f, m, v: f"{f}.{m}({_lit(v)})",
            body,
            st.sampled_from(["startsWith", "endsWith", "contains"]),
            TEXT,
        ),
        st.builds(
            lambda f, m, v: f"{f}.{m}({v})",
            body,
            st.sampled_from(["startsWith", "endsWith", "contains"]),
            blit,
        ),
        st.builds(lambda f, v: f"{f} == {_lit(v)}", body, TEXT),
        st.builds(lambda f, r: f'{f}.matches("{r}")', body, REGEXES),
        st.builds(
            lambda o, d: f'elapsed {o} duration("{d}")',
            OPS,
            st.sampled_from(["0s", "10ms", "250ms", "300ms", "2s"]),
        ),
        st.builds(lambda o, v: f"elapsed {o} {v}", OPS, st.sampled_from(["0", "0.3", "1"])),
        st.builds(
            lambda o, d: f'ts {o} now() - duration("{d}")',
            OPS,
            st.sampled_from(["0s", "1s", "30s", "5m", "1h"]),
        ),
        st.builds(lambda o: f'ts {o} timestamp("2026-01-01T11:59:30Z")', OPS),
        st.sampled_from(PROTOS),
        st.sampled_from(
            [
                "tls",
                "request.n",
                "has(response.status)",
                "has(request.n)",
                "response.n == null",
                "has(elapsed)",
                "has(src.labels.app)",
                "src.namespace == dst.namespace",
                "src.port < dst.port",
                "request.n == true",
                "request.n != false",
            ]
        ),
    )


QUERIES = st.recursive(
    _atoms(),
    lambda inner: st.one_of(
        st.builds(lambda q: f"!({q})", inner),
        st.builds(lambda a, b: f"({a}) && ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) || ({b})", inner, inner),
    ),
    max_leaves=6,
)


# the deep profile (5000 examples) runs for tens of minutes: no per-test time-out then
@pytest.mark.timeout(0 if os.environ.get("HYPOTHESIS_PROFILE") == "deep" else 300)
@given(
    entries=entry_lists(),
    queries=st.lists(QUERIES, min_size=1, max_size=6),
    shift=st.sampled_from([0.0, 0.5, -30.0]),
    nulls=st.booleans(),
)
def test_sql_and_python_agree(
    engine: sa.Engine, entries: list[Entry], queries: list[str], shift: float, nulls: bool
) -> None:
    """``nulls``: the struct defaults stored as NULL (another store's choice)."""
    now = NOW + timedelta(seconds=shift)
    with engine.connect() as conn:
        both = Both(conn)
        both.load(entries, defaults_as_null=nulls)
        for q in queries:
            both.run(q, now)


def test_float_status_is_not_stored_as_an_int(engine: sa.Engine) -> None:
    """A float status is no int: both back ends see no status (hub/storage/rows.py)."""
    entry = Entry(
        id="f" * 24, ts=T0, proto="http", src=Endpoint(ip="1"), dst=Endpoint(ip="2"),
        response={"status": 0.5},
    )  # fmt: skip
    with engine.connect() as conn:
        both = Both(conn)
        both.load([entry])
        assert both.run("response.status == 0") == set()
        assert both.run("has(response.status)") == set()
