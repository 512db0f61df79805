"""Targeting: label selectors, rules, and the pod watch against kmock's emulated API."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from sniffer.targeting import (
    PodWatcher,
    Rules,
    RulesError,
    SelectorError,
    Targeting,
    parse_selector,
    pod_from_object,
)
from sniffer.testing.kube import KubeAPI


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app=web", {"app": "db"}, False),
        ("app!=web", {"app": "db"}, True),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("tier in (api, db)", {"tier": "db"}, True),
        ("tier in (api,db)", {"tier": "web"}, False),
        ("tier in (api,db)", {}, False),
        ("tier notin (api,db)", {"tier": "web"}, True),
        ("tier notin (api,db)", {}, True),
        ("tier notin (api,db)", {"tier": "api"}, False),
        ("canary", {"canary": ""}, True),
        ("canary", {}, False),
        ("!canary", {}, True),
        ("!canary", {"canary": "true"}, False),
        ("app=web,tier in (api,db),!canary", {"app": "web", "tier": "api"}, True),
        ("app=web,tier in (api,db),!canary", {"app": "web", "tier": "api", "canary": "1"}, False),
        ("example.com/team=core", {"example.com/team": "core"}, True),
        ("app=", {"app": ""}, True),
        ("", {"x": "y"}, True),
    ],
)
def test_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(text).matches(labels) is expected


@pytest.mark.parametrize(
    "text",
    ["app=web,", "tier in api", "tier in ()", "tier in (a", "=web", "app=we b", "a b", "app=@",
     "!", "app notin", "-app=1"],
)  # fmt: skip
def test_selector_errors(text: str) -> None:
    with pytest.raises(SelectorError, match="label selector|unexpected"):
        parse_selector(text)


def _pod(name: str, ns: str = "shop", labels: dict[str, str] | None = None, ip: str = "10.0.0.1",
         node: str = "n1", host_network: bool = False, owner: dict[str, Any] | None = None
         ) -> dict[str, Any]:  # fmt: skip
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"{ns}-{name}",
                            "labels": labels or {}}  # fmt: skip
    if owner:
        meta["ownerReferences"] = [owner]
    return {
        "metadata": meta,
        "spec": {"nodeName": node, "hostNetwork": host_network},
        "status": {"podIP": ip, "podIPs": [{"ip": ip}], "phase": "Running"},
    }


def test_rules_select() -> None:
    rules = Rules.from_mapping(
        {"namespaces": ["shop", "pay"], "excludedNamespaces": ["pay"], "podRegex": "^orders-",
         "labelSelector": "app=orders"}
    )  # fmt: skip
    ok = pod_from_object(_pod("orders-1", labels={"app": "orders"}))
    assert rules.selects(ok)
    assert not rules.selects(pod_from_object(_pod("orders-1", ns="pay", labels={"app": "orders"})))
    assert not rules.selects(pod_from_object(_pod("carts-1", labels={"app": "orders"})))
    assert not rules.selects(pod_from_object(_pod("orders-1", labels={"app": "x"})))
    assert not rules.selects(pod_from_object(_pod("orders-1", ns="other", labels={"app": "x"})))
    assert Rules.from_mapping(None).selects(ok)


@pytest.mark.parametrize(
    "data",
    [{"namespace": ["x"]}, {"podRegex": "("}, {"labelSelector": "a in"}, {"namespaces": 3}],
)
def test_rules_errors(data: dict[str, Any]) -> None:
    with pytest.raises(RulesError):
        Rules.from_mapping(data)


def test_workload_from_owner() -> None:
    rs = {"kind": "ReplicaSet", "name": "orders-5d9f7c8b9", "controller": True}
    pod = pod_from_object(_pod("orders-5d9f7c8b9-abcde", labels={"pod-template-hash": "5d9f7c8b9"},
                               owner=rs))  # fmt: skip
    assert pod.workload == "Deployment/orders"
    ss = {"kind": "StatefulSet", "name": "db", "controller": True}
    assert pod_from_object(_pod("db-0", owner=ss)).workload == "StatefulSet/db"
    assert pod_from_object(_pod("lonely")).workload == "lonely"


def test_targeting_sets_and_host_network() -> None:
    seen: list[frozenset[str]] = []
    t = Targeting("n1", Rules.from_mapping({"labelSelector": "app=web"}))
    t.on_targets(seen.append)
    t.set_pods(
        [
            pod_from_object(_pod("a", labels={"app": "web"}, ip="10.0.0.1")),
            pod_from_object(_pod("b", labels={"app": "db"}, ip="10.0.0.2")),
            pod_from_object(_pod("h", labels={"app": "web"}, ip="192.0.2.9", host_network=True)),
            pod_from_object(_pod("x", labels={"app": "web"}, ip="10.0.0.3", node="n2")),
        ]
    )
    assert seen[-1] == {"10.0.0.1"}
    assert t.status()["untargetable"] == [{"pod": "shop/h", "reason": "hostNetwork"}]
    assert t.endpoint_info("10.0.0.2")["pod"] == "b"  # known, though not targeted
    assert t.endpoint_info("192.0.2.9") == {}  # host network: not named by IP
    t.set_rules(Rules.from_mapping({"labelSelector": "app in (web,db)"}))
    assert seen[-1] == {"10.0.0.1", "10.0.0.2"}
    t.remove(pod_from_object(_pod("a", labels={"app": "web"}, ip="10.0.0.1")))
    assert seen[-1] == {"10.0.0.2"}
    assert t.endpoint_info("10.0.0.1")["pod"] == "a"  # recently gone: late entries keep names


def test_rules_file_reload(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("labelSelector: app=web\n")
    t = Targeting("n1", rules_path=path)
    t.set_pods([pod_from_object(_pod("a", labels={"app": "web"})),
                pod_from_object(_pod("b", labels={"app": "db"}, ip="10.0.0.2"))])  # fmt: skip
    assert t.targets == {"10.0.0.1"}
    path.write_text("labelSelector: app=db\n")
    os.utime(path, (time.time() + 1, time.time() + 1))
    assert t.check_rules_file()
    assert t.targets == {"10.0.0.2"}
    path.write_text("labelSelector: 'app in'\n")  # bad: previous rules stay
    os.utime(path, (time.time() + 2, time.time() + 2))
    assert not t.check_rules_file()
    assert t.targets == {"10.0.0.2"}
    assert "label selector" in t.status()["rules_error"]


@pytest.fixture
def kube() -> Iterator[KubeAPI]:
    with KubeAPI() as api:
        yield api


def _wait(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_watcher_follows_pods(kube: KubeAPI) -> None:
    kube.create_pod(_pod("a", labels={"app": "web"}, ip="10.0.0.1"))
    kube.create_pod(_pod("other-node", labels={"app": "web"}, ip="10.0.9.9", node="n2"))
    cfg = client.Configuration()
    cfg.host = kube.url
    t = Targeting("n1", Rules.from_mapping({"labelSelector": "app=web"}))
    w = PodWatcher(t, client.ApiClient(cfg)).start()
    try:
        _wait(lambda: t.targets == {"10.0.0.1"})
        kube.create_pod(_pod("b", labels={"app": "web"}, ip="10.0.0.2"))
        _wait(lambda: t.targets == {"10.0.0.1", "10.0.0.2"})
        # relabel out, restart with a new IP, delete
        kube.patch_pod("shop", "b", {"metadata": {"labels": {"app": "db"}}})
        _wait(lambda: t.targets == {"10.0.0.1"})
        kube.delete_pod("shop", "a")
        kube.create_pod(_pod("a", labels={"app": "web"}, ip="10.0.0.7"))
        _wait(lambda: t.targets == {"10.0.0.7"})
        assert t.endpoint_info("10.0.0.7")["pod"] == "a"
        assert w.resource_version != ""
    finally:
        w.stop()


def test_watcher_relists_on_gone(kube: KubeAPI) -> None:
    kube.create_pod(_pod("a", labels={"app": "web"}, ip="10.0.0.1"))
    kube.expire_next_watch()
    cfg = client.Configuration()
    cfg.host = kube.url
    t = Targeting("n1")
    w = PodWatcher(t, client.ApiClient(cfg)).start()
    try:
        _wait(lambda: w.relists >= 2)  # listed, watch expired, listed again
        kube.create_pod(_pod("b", ip="10.0.0.2"))
        _wait(lambda: t.targets == {"10.0.0.1", "10.0.0.2"})
    finally:
        w.stop()


def test_watcher_backs_off_while_api_down() -> None:
    cfg = client.Configuration()
    cfg.host = "http://127.0.0.1:9"  # nothing listens on discard
    t = Targeting("n1")
    w = PodWatcher(t, client.ApiClient(cfg), backoff_max=0.5).start()
    try:
        _wait(lambda: w.watch_errors >= 2)
        assert not t.synced
    finally:
        w.stop()
