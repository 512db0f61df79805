"""Redaction at the source, end to end: a real curl between pods carries a bearer token and
a card number; the hub receives the call with both replaced and their paths listed, and
neither secret is in the hub's database file or the sniffer's spool."""

from __future__ import annotations

import json
from pathlib import Path

from sniffer.testing.cluster import Cluster, wait_for

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVlLTEyMzQ"
CARD = "4111111111111111"


def _bytes_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.rglob("*") if p.is_file())


def test_bearer_token_and_card_number_arrive_redacted(cluster: Cluster) -> None:
    web = cluster.pod("shopweb", "shop", app="web")
    cli = cluster.pod("shopcli", "shop", app="cli")
    web.http_server(8080)
    cluster.set_rules(namespaces=["shop"])
    agent = cluster.agent("afpacket")
    wait_for(lambda: web.ip in agent.targeting.targets and cli.ip in agent.targeting.targets)
    body = json.dumps({"order": 7, "card": {"number": CARD, "holder": "A. Lice"}})
    cli.curl(
        f"http://{web.ip}:8080/checkout/pay",
        "-H", f"Authorization: Bearer {TOKEN}",
        "-H", "Content-Type: application/json",
        "--data", body,
    )  # fmt: skip
    listed = wait_for(lambda: cluster.entries("/checkout/"), what="the checkout entry")[0]
    with cluster.hub.client() as c:
        entry = c.get(f"/api/v1/entries/{listed['id']}").json()
    text = json.dumps(entry)
    assert TOKEN not in text and CARD not in text
    assert "request.headers.authorization" in entry["redacted"]
    assert "request.body.card.number" in entry["redacted"]
    assert entry["request"]["headers"]["authorization"].endswith("[REDACTED]")
    assert json.loads(entry["request"]["body"])["card"]["number"] == "[REDACTED]"
    agent.stop(drain_timeout=2.0)
    cluster.agents.remove(agent)
    on_disk = _bytes_under(cluster.tmp)  # the hub's DuckDB file, WAL and the spool
    assert TOKEN.encode() not in on_disk and CARD.encode() not in on_disk
