"""Live-stream filter cost: ``CompiledQuery.matches()`` per entry, next to the bare
operation it wraps (stdlib ``re``/``re2`` search, a dict lookup) in the same run.

The live stream evaluates each viewer's filter on every entry, so this is the per-entry,
per-viewer price. Entries are realistic HTTP entries (headers, a 300-byte JSON body).

    .venv/bin/python -m benchmarks.query_matches [--entries 20000] [--sql-rows 300000]

A second section runs the compiled WHERE clauses on DuckDB (rows stored by the hub's
own storage) next to hand-written SQL over the same columns, in the same run.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import re2

from hub.query import compile_query
from kubeweir.entry import entry_to_builtins
from kubeweir.testing import make_http_entry

NOW = datetime.now(UTC)


def _entries(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        e = make_http_entry(
            ["GET", "POST", "PUT"][i % 3],
            f"/api/v{i % 3}/orders/{i}",
            [200, 201, 404, 503][i % 4],
            dst_ns=["payments", "shop"][i % 2],
            request_headers={
                "host": "svc",
                "x-id": f"id-{i}",
                "accept": "*/*",
                "user-agent": "bench",
                "content-type": "application/json",
                "x-trace": "abc",
            },
            request_body=f'{{"order": {i}, "items": [{",".join(["1"] * 120)}]}}',
        )
        out.append(entry_to_builtins(e))
    return out


def _per_entry_ns(fn: Callable[[dict[str, Any]], object], entries: list[dict[str, Any]]) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for e in entries:
            fn(e)
        best = min(best, time.perf_counter() - t0)
    return best / len(entries) * 1e9


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=20000)
    ap.add_argument("--sql-rows", type=int, default=300_000)
    args = ap.parse_args(argv)
    entries = _entries(args.entries)
    pattern = r"^/api/v[0-9]+/orders/[0-9]*7$"
    rx_std, rx_re2 = re.compile(pattern), re2.compile(pattern)
    rows: list[tuple[str, float, str, float]] = []

    def q(text: str) -> Callable[[dict[str, Any]], object]:
        c = compile_query(text)
        return lambda e: c.matches(e, NOW)

    body_rx = '"order": 1[0-9]'
    compound = 'http && dst.namespace == "payments" && request.headers["x-id"].startsWith("id-1")'

    def by_hand(e: dict[str, Any]) -> bool:
        return bool(
            e["proto"] == "http"
            and e["dst"].get("namespace") == "payments"
            and e["request"]["headers"]["x-id"].startswith("id-1")
        )

    cases: list[tuple[str, Callable[[dict[str, Any]], object], str, Callable[..., object]]] = [
        (f'request.path.matches("{pattern}")', q(f'request.path.matches("{pattern}")'),
         "re2.search(path)", lambda e: rx_re2.search(e["request"]["path"])),
        (f'request.path.matches("{pattern}")', q(f'request.path.matches("{pattern}")'),
         "re.search(path) (stdlib)", lambda e: rx_std.search(e["request"]["path"])),
        ("request.body.matches(...)", q('request.body.matches("\\"order\\": 1[0-9]")'),
         "re2.search(body text)", lambda e: re2.search(body_rx, e["request"]["body"])),
        ('response.status >= 500', q("response.status >= 500"),
         "dict lookup + compare", lambda e: e["response"]["status"] >= 500),
        (compound, q(compound), "the same by hand", by_hand),
    ]  # fmt: skip
    for name, fn, peer_name, peer in cases:
        rows.append((name, _per_entry_ns(fn, entries), peer_name, _per_entry_ns(peer, entries)))
    print("## Query filter per entry (live stream)\n")
    print(
        f"`.venv/bin/python -m benchmarks.query_matches --entries {args.entries}`; best of 3 "
        "passes, ns per entry, one core.\n"
    )
    print("| filter | matches() ns/entry | peer | peer ns/entry | ratio |")
    print("|---|---:|---|---:|---:|")
    for name, ours, peer_name, theirs in rows:
        print(f"| `{name}` | {ours:,.0f} | {peer_name} | {theirs:,.0f} | {ours / theirs:.1f}x |")
    if args.sql_rows:
        _sql_section(args.sql_rows)


SQL_CASES = [
    ('response.status >= 500 && dst.namespace == "payments"',
     "status >= 500 AND dst_namespace = 'payments'"),
    ('request.path.startsWith("/api/v1/")', "starts_with(path, '/api/v1/')"),
    ('request.path.matches("^/api/v1/orders/[0-9]*7$")',
     "regexp_matches(path, '^/api/v1/orders/[0-9]*7$')"),
    ('elapsed > duration("500ms")', "elapsed > 0.5"),
    ('request.headers["x-id"] == "id-77"', "request->>'$.headers.\"x-id\"' = 'id-77'"),
    ('request.body.contains("order\\": 77")', "contains(decode(req_body), 'order\": 77')"),
    ('!(request.method == "GET")', "NOT coalesce(method = 'GET', false)"),
]  # fmt: skip


def _sql_section(n: int) -> None:
    import sqlalchemy as sa

    from hub.storage.duckdb import DuckDBStorage

    storage = DuckDBStorage(":memory:")
    t0 = 1_767_000_000.0
    batch = []
    for i in range(n):
        batch.append(
            make_http_entry(
                ["GET", "POST"][i % 2],
                f"/api/v{i % 3}/orders/{i}",
                [200, 404, 503][i % 3],
                dst_ns=["payments", "shop", "db"][i % 3],
                request_headers={"x-id": f"id-{i}", "host": "svc"},
                request_body=f'{{"order": {i}}}',
                ts=t0 + i * 0.01,
                elapsed=(i % 100) / 100,
            )  # fmt: skip
        )
        if len(batch) == 20000:
            storage.ingest(batch)
            batch = []
    if batch:
        storage.ingest(batch)
    con = storage._con  # the storage's own connection: same data, same settings

    def best_ms(sql: str, params: list[Any]) -> tuple[float, int]:
        con.execute(sql, params).fetchall()  # warm-up
        best, count = float("inf"), 0
        for _ in range(5):
            t = time.perf_counter()
            count = con.execute(sql, params).fetchall()[0][0]
            best = min(best, time.perf_counter() - t)
        return best * 1000, count

    print(f"\n## Compiled WHERE on DuckDB vs hand-written SQL ({n:,} rows)\n")
    print("| query | rows | compiled ms | hand-written ms | ratio |")
    print("|---|---:|---:|---:|---:|")
    for text, bare in SQL_CASES:
        where = compile_query(text).where(storage.table, NOW)
        sql, params = storage.compile(
            sa.select(sa.func.count()).select_from(storage.table).where(where)
        )
        ours, n1 = best_ms(sql, params)
        theirs, n2 = best_ms(f"SELECT count(*) FROM entries WHERE {bare}", [])
        assert n1 == n2, (text, n1, n2)
        print(f"| `{text}` | {n1:,} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f}x |")
    storage.close()


if __name__ == "__main__":
    main()
