"""``kubeweir sniff --tls`` end to end: netns pods → agent (packets + uprobes) → real hub."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from sniffer.testing.cluster import Cluster, running_cluster, wait_for
from tests.sniffer.tls.tlshelp import PORT, https_server

SECRET = "agent-tls-s3cr3t-v4lue"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path) as c:
        yield c


def test_agent_tls_entries_reach_hub_once_with_wire_ids(cluster: Cluster, tmp_path: Path) -> None:
    srv = cluster.pod("api", "shop", app="api")
    cli = cluster.pod("web", "shop", app="web")
    https_server(srv, tmp_path)
    cluster.set_rules(namespaces=["shop"])
    agent = cluster.agent("afpacket", tls=True)
    wait_for(lambda: agent.tls.probes.libs, 10, "libssl attached")
    for i in range(3):
        cli.curl(f"https://{srv.ip}:{PORT}/v1/items/{i}", "-k",
                 "-H", f"Authorization: Bearer {SECRET}")  # fmt: skip
    got = wait_for(lambda: len(cluster.entries("/v1/items/")) >= 3 and cluster.entries("/v1/"),
                   15, "TLS entries in the hub")  # fmt: skip
    # both ends were captured, and named each call alike: the hub holds each call once
    assert sorted(e["request"]["path"] for e in got) == [f"/v1/items/{i}" for i in range(3)]
    # the other end's copy of each call may still be on its way through the agent
    wait_for(lambda: agent.tls.counters["entries"] >= 6, 10, "both ends' TLS entries")
    for e in got:
        assert e["tls"] is True and e["response"]["status"] == 200
        assert e["src"]["pod"] == "web" and e["dst"]["pod"] == "api"
        assert e["dst"]["labels"] == {"app": "api"}
        assert SECRET not in json.dumps(e)
    # the ISNs came from the packet capture (closed connections too): the TLS entries
    # share the stream id of their ciphertext's wire connection
    mine = {e["stream"] for e in got}

    def wire() -> set[str]:
        return {e["stream"] for e in cluster.hub.entries() if e["proto"] == "tcp"}

    wait_for(
        lambda: mine <= wire(),
        10,
        f"the wire connections' tcp entries {mine} {agent.tls.counters} "
        f"{[(e['proto'], e['stream'], e['src']['port']) for e in cluster.hub.entries()]}",
    )
    c = agent.tls.counters
    assert c["isn_from_packets"] == 3 and c["isn_fallback"] == 0
    # what TLS capture read and lost is in the agent's drops and /metrics, as for packets
    assert agent.drops()["tls_ring_full"] == 0 and agent.drops()["tls_read_fault"] == 0
    metrics = generate_latest(agent.registry).decode()
    assert 'kubeweir_sniffer_drops_total{reason="tls_ring_full"} 0.0' in metrics
    events = re.search(r"^kubeweir_sniffer_tls_events_total (\S+)$", metrics, re.M)
    entries = re.search(r"^kubeweir_sniffer_tls_entries_total (\S+)$", metrics, re.M)
    assert events and float(events.group(1)) >= 12  # a write and a read per side per call
    assert entries and float(entries.group(1)) >= 6
    assert 'kubeweir_sniffer_tls_dropped_bytes_total{reason="unresolved"} 0.0' in metrics
