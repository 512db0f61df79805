"""End to end with real packets: pods on a bridge → sniffer → hub over TLS."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from sniffer.testing.cluster import Cluster, wait_for

SOURCES = ["afpacket", "ebpf"]


@pytest.mark.parametrize("capture", SOURCES)
def test_targeted_calls_reach_hub_untargeted_never(cluster: Cluster, capture: str) -> None:
    web = cluster.pod("web", "shop", app="web", tier="front")
    cli = cluster.pod("cli", "shop", app="cli")
    dns = cluster.pod("dns", "shop", app="dns")
    red = cluster.pod("redis", "shop", app="redis")
    web2 = cluster.pod("web2", "other", app="web")
    cli2 = cluster.pod("cli2", "other", app="cli")
    # a selected pod on the host network: reported, not captured
    host = cluster.node.add_pod("hostnet", "shop", {"app": "agent"})
    cluster.kube.create_pod(cluster.node.pod_object(host, host_network=True))
    for server in (web, web2):
        server.http_server(8080)
    dns.dnsmasq({"orders.shop.example": "10.1.2.3"})
    red.redis_server()
    cluster.set_rules(namespaces=["shop"])
    agent = cluster.agent(capture)
    assert agent.source.name == capture
    wait_for(lambda: web.ip in agent.targeting.targets and cli2.ip not in agent.targeting.targets)

    assert cli.http_calls(f"http://{web.ip}:8080/t", 20)["ok"] == 20
    assert cli2.http_calls(f"http://{web2.ip}:8080/u", 10)["ok"] == 10
    assert "10.1.2.3" in cli.exec("dig", "+short", f"@{dns.ip}", "orders.shop.example").stdout
    assert cli.exec("redis-cli", "-h", red.ip, "SET", "cart:7", "3").stdout.strip() == "OK"

    got = wait_for(lambda: len(cluster.entries("/t/")) >= 20 and cluster.entries("/t/"),
                   what="20 entries in the hub")  # fmt: skip
    assert sorted(e["request"]["path"] for e in got) == sorted(f"/t/call/{i}" for i in range(20))
    for e in got:
        assert e["src"]["pod"] == "cli" and e["src"]["namespace"] == "shop"
        assert e["src"]["labels"] == {"app": "cli"}
        assert e["dst"]["pod"] == "web" and e["dst"]["ip"] == web.ip
        assert e["dst"]["labels"] == {"app": "web", "tier": "front"}
        assert e["dst"]["node"] == "node-a" and e["response"]["status"] == 200
    others = wait_for(
        lambda: (
            [e for e in cluster.hub.entries() if e["proto"] in ("dns", "redis")]
            if len([e for e in cluster.hub.entries() if e["proto"] in ("dns", "redis")]) >= 2
            else None
        ),
        what="dns and redis entries",
    )
    by_proto = {e["proto"]: e for e in others}
    assert by_proto["dns"]["dst"]["pod"] == "dns"
    assert by_proto["redis"]["dst"]["pod"] == "redis"
    assert by_proto["redis"]["src"]["pod"] == "cli"

    # redaction happens on the node: the secret never reaches the hub
    cli.curl(f"http://{web.ip}:8080/secret/1", "-H", "Authorization: Bearer s3cr3t-t0ken-v4lue")
    secret = wait_for(lambda: cluster.entries("/secret/"), what="the redacted entry")[0]
    assert "s3cr3t-t0ken-v4lue" not in json.dumps(secret)
    assert any("authorization" in r for r in secret["redacted"])

    # the agent's own endpoints
    base = f"http://127.0.0.1:{agent.http_port}"
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/readyz").status_code == 200
    metrics = httpx.get(f"{base}/metrics").text
    for name in ("packets_total", "bytes_total", "kernel_drops_total", "drops_total",
                 "flows_total", "entries_total", "spool_bytes", "ship_latency_seconds_count",
                 "targeted_pods", "untargetable_pods"):  # fmt: skip
        assert f"kubeweir_sniffer_{name}" in metrics, name
    assert 'kubeweir_sniffer_drops_total{reason="kernel"} 0.0' in metrics
    assert "kubeweir_sniffer_targeted_pods 4.0" in metrics  # web, cli, dns, redis
    # CPU of each busy thread: the capture thread has parsed everything above
    cpu = dict(re.findall(r'^kubeweir_sniffer_thread_cpu_total\{thread="([^"]+)"\} (\S+)$',
                          metrics, re.M))  # fmt: skip
    assert {"capture", "sealer", "sender", "sender-1"} <= cpu.keys()
    assert float(cpu["capture"]) > 0
    wait_for(lambda: agent.heartbeats_sent > 0, 5, "a heartbeat")
    sniffers = cluster.hub.status()["sniffers"]
    assert [s["node"] for s in sniffers] == ["node-a"] and sniffers[0]["targets"] == 4

    time.sleep(1.0)  # give stray packets every chance to show up
    ips = {cli2.ip, web2.ip}
    leaked = [e for e in cluster.hub.entries() if {e["src"]["ip"], e["dst"]["ip"]} & ips]
    assert leaked == []
    st = agent.targeting.status()
    assert st["untargetable"] == [{"pod": "shop/hostnet", "reason": "hostNetwork"}]
    assert host.ip not in agent.targeting.targets and cluster.node.host_ip not in st["targets"]
    assert agent.source_stats()["kernel_drops"] == 0


@pytest.mark.parametrize("capture", SOURCES)
def test_label_selector_change_applies_live_both_ways(cluster: Cluster, capture: str) -> None:
    front = cluster.pod("front", "shop", tier="front")
    back = cluster.pod("back", "shop", tier="back")
    cli = cluster.pod("cli", "shop")
    front.http_server(8080)
    back.http_server(8080)
    cluster.set_rules(labelSelector="tier=front")
    agent = cluster.agent(capture)
    wait_for(lambda: agent.targeting.targets == {front.ip})

    cli.http_calls(f"http://{front.ip}:8080/p1f", 10)
    cli.http_calls(f"http://{back.ip}:8080/p1b", 10)
    wait_for(lambda: len(cluster.entries("/p1f/")) == 10)

    # widen while calls to the pod that stays targeted are in flight: none may be lost
    load = cli.http_calls_start(f"http://{front.ip}:8080/p2f", 60, rate=30)
    time.sleep(0.5)
    changed = time.monotonic()
    cluster.set_rules(labelSelector="tier in (front, back)")
    wait_for(lambda: agent.targeting.targets == {front.ip, back.ip}, 2.5, "new rules in force")
    assert time.monotonic() - changed <= 2.5
    load.communicate(timeout=30)
    cli.http_calls(f"http://{back.ip}:8080/p2b", 10)
    wait_for(lambda: len(cluster.entries("/p2b/")) == 10)
    wait_for(lambda: len(cluster.entries("/p2f/")) == 60, what="no loss for staying pod")

    # narrow the other way
    cluster.set_rules(labelSelector="tier=back")
    wait_for(lambda: agent.targeting.targets == {back.ip}, 2.5, "narrowed rules in force")
    cli.http_calls(f"http://{front.ip}:8080/p3f", 10)
    cli.http_calls(f"http://{back.ip}:8080/p3b", 10)
    wait_for(lambda: len(cluster.entries("/p3b/")) == 10)
    time.sleep(0.5)
    assert cluster.entries("/p1b/") == [] and cluster.entries("/p3f/") == []


def test_pod_restart_with_new_ip_is_followed(cluster: Cluster) -> None:
    web = cluster.pod("web", "shop", app="web")
    cli = cluster.pod("cli", "shop", app="cli")
    web.http_server(8080)
    agent = cluster.agent("afpacket")
    wait_for(lambda: web.ip in agent.targeting.targets)
    cli.http_calls(f"http://{web.ip}:8080/r1", 5)
    wait_for(lambda: len(cluster.entries("/r1/")) == 5)
    old_ip = web.ip
    cluster.kube.delete_pod("shop", "web")
    web = cluster.node.restart_pod(web)
    assert web.ip != old_ip
    cluster.kube.create_pod(cluster.node.pod_object(web))
    web.http_server(8080)
    wait_for(lambda: web.ip in agent.targeting.targets)
    cli.http_calls(f"http://{web.ip}:8080/r2", 5)
    got = wait_for(lambda: len(cluster.entries("/r2/")) == 5 and cluster.entries("/r2/"))
    assert {e["dst"]["ip"] for e in got} == {web.ip}
    assert {e["dst"]["pod"] for e in got} == {"web"}


def test_sniffer_identity_by_service_account_token(cluster: Cluster) -> None:
    """In-cluster identity: the projected token file, validated by the hub's TokenReview;
    a rotated token is picked up without a restart."""
    from sniffer.testing.hub import HubProcess
    from sniffer.testing.kube import ServiceAccountToken

    cluster.kube.add_token(ServiceAccountToken("sa-token-1", "kubeweir", "kubeweir-sniffer",
                                               ["kubeweir"]))  # fmt: skip
    cluster.kube.add_token(ServiceAccountToken("sa-token-2", "kubeweir", "kubeweir-sniffer",
                                               ["kubeweir"]))  # fmt: skip
    cluster.hub.kill()
    hub = HubProcess(cluster.tmp / "hub-sa", ingest_token=None,
                     kubeconfig=str(cluster.kubeconfig),
                     sniffer_service_accounts=["kubeweir/kubeweir-sniffer"]).start()  # fmt: skip
    cluster.hub = hub
    web = cluster.pod("web", "shop", app="web")
    cli = cluster.pod("cli", "shop", app="cli")
    web.http_server(8080)
    token_file = cluster.tmp / "token"
    token_file.write_text("sa-token-1")
    agent = cluster.agent("afpacket", token=None, token_file=token_file)
    wait_for(lambda: web.ip in agent.targeting.targets)
    cli.http_calls(f"http://{web.ip}:8080/id1", 5)
    wait_for(lambda: len(cluster.entries("/id1/")) == 5, what="entries with token 1")
    token_file.write_text("sa-token-2")  # the kubelet rotated it
    cli.http_calls(f"http://{web.ip}:8080/id2", 5)
    wait_for(lambda: len(cluster.entries("/id2/")) == 5, what="entries with token 2")
    assert cluster.kube.emulator is not None
    assert {r["token"] for r in cluster.kube.emulator.reviews} == {"sa-token-1", "sa-token-2"}
    assert agent.shipper.send_errors == 0


def test_overload_drops_are_counted_never_hidden(cluster: Cluster) -> None:
    """A tiny ring under wrk: the kernel drops, and the drops are counted and exported."""
    server = cluster.pod("nginx", "shop", app="nginx")
    load = cluster.pod("wrk", "shop", app="wrk")
    server.nginx(80)
    agent = cluster.agent("afpacket", ring_mb=2)
    wait_for(lambda: server.ip in agent.targeting.targets)
    load.exec("wrk", "-t1", "-c8", "-d3s", f"http://{server.ip}/", timeout=30)
    drops = wait_for(lambda: agent.source_stats()["kernel_drops"], 10, "kernel drops counted")
    metrics = httpx.get(f"http://127.0.0.1:{agent.http_port}/metrics").text
    exported = re.search(r'^kubeweir_sniffer_drops_total\{reason="kernel"\} (\S+)$', metrics, re.M)
    assert exported is not None and float(exported.group(1)) >= drops
    assert agent.drops()["kernel"] >= drops > 0


@pytest.mark.parametrize("capture", SOURCES)
def test_worker_processes_split_flows_and_lose_nothing(cluster: Cluster, capture: str) -> None:
    web = cluster.pod("web", "shop", app="web")
    cli = cluster.pod("cli", "shop", app="cli")
    web.http_server(8080)
    agent = cluster.agent(capture, workers=2)
    assert agent.pool is not None
    wait_for(lambda: all("source" in w for w in agent.pool.stats()), 60, "workers running")
    time.sleep(0.5)  # the last target update reaches the workers' filters
    assert cli.http_calls(f"http://{web.ip}:8080/w", 200, connections=16)["ok"] == 200
    got = wait_for(lambda: len(cluster.entries("/w/")) >= 200 and cluster.entries("/w/"),
                   30, "every call from the workers")  # fmt: skip
    assert sorted(e["request"]["path"] for e in got) == sorted(f"/w/call/{i}" for i in range(200))
    assert all(e["dst"]["pod"] == "web" and e["src"]["pod"] == "cli" for e in got)
    time.sleep(1.5)  # workers report their counters once a second
    per_worker = [w["source"]["packets"] for w in agent.pool.stats()]
    assert all(n > 0 for n in per_worker), per_worker  # 16 connections spread over both
    assert agent.snapshot()["source"]["packets"] >= sum(per_worker)  # summed, still rising
