"""Enrichment against kmock (a Kubernetes API emulator): one cluster-wide list+watch of
pods, services, endpoint slices, replica sets and jobs fills empty endpoint fields."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from hub.enrich import ClusterIndex, ClusterWatcher, Enricher
from hub.main import create_app
from hub.storage.duckdb import DuckDBStorage
from kubeweir.testing import make_endpoint, make_http_entry
from tests.hub.conftest import hub_settings, ingest

kmock = pytest.importorskip("kmock")
k8s_client = pytest.importorskip("kubernetes.client")

RESOURCES = [
    "v1/pods",
    "v1/services",
    "discovery.k8s.io/v1/endpointslices",
    "apps/v1/replicasets",
    "batch/v1/jobs",
]


class KMock:
    """kmock's emulator on loopback, in its own thread and event loop (for the sync client)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self.emulator: Any = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as k, kmock.Server(k) as srv:
            for r in RESOURCES:
                k.resources[r] = {}
            self.emulator, self.url = k, str(srv.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the emulator's loop (for kmock's DSL) and wait for it."""
        done = threading.Event()
        out: list[Any] = []
        self.loop.call_soon_threadsafe(lambda: (out.append(fn()), done.set()))
        done.wait(10)
        return out[0] if out else None

    def __enter__(self) -> KMock:
        self._thread.start()
        assert self._ready.wait(15)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def api(self) -> Any:
        cfg = k8s_client.Configuration()
        cfg.host = self.url
        return k8s_client.ApiClient(cfg)


def _owner(kind: str, name: str) -> list[dict[str, Any]]:
    api = {"ReplicaSet": "apps/v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1",
           "DaemonSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1"}[kind]  # fmt: skip
    return [{"apiVersion": api, "kind": kind, "name": name, "uid": name, "controller": True}]


def _pod(ns: str, name: str, ip: str, owner: list[dict[str, Any]], **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": owner},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]},
        "status": {"podIP": ip, "podIPs": [{"ip": ip}]},
    }


def _populate(api: Any) -> None:
    core = k8s_client.CoreV1Api(api)
    apps = k8s_client.AppsV1Api(api)
    batch = k8s_client.BatchV1Api(api)
    disc = k8s_client.DiscoveryV1Api(api)
    apps.create_namespaced_replica_set(
        "shop",
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "web-7d9f", "namespace": "shop",
                         "ownerReferences": _owner("Deployment", "web")},
            "spec": {"selector": {"matchLabels": {"app": "web"}}},
        },
    )  # fmt: skip
    batch.create_namespaced_job(
        "ops",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "backup-28871", "namespace": "ops",
                         "ownerReferences": _owner("CronJob", "backup")},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
        },
    )  # fmt: skip
    core.create_namespaced_pod(
        "shop", _pod("shop", "web-7d9f-x1", "10.1.0.5", _owner("ReplicaSet", "web-7d9f"), app="web")
    )
    core.create_namespaced_pod("db", _pod("db", "pg-0", "10.1.0.6", _owner("StatefulSet", "pg")))
    core.create_namespaced_pod(
        "kube-system", _pod("kube-system", "cni-abcde", "10.1.0.7", _owner("DaemonSet", "cni"))
    )
    core.create_namespaced_pod(
        "ops", _pod("ops", "backup-28871-q", "10.1.0.8", _owner("Job", "backup-28871"))
    )
    core.create_namespaced_service(
        "shop",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}},
    )  # fmt: skip
    disc.create_namespaced_endpoint_slice(
        "shop",
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.1.0.5"],
                 "targetRef": {"kind": "Pod", "name": "web-7d9f-x1", "namespace": "shop"}}
            ],
        },
    )  # fmt: skip


def _wait(cond: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def cluster() -> Iterator[KMock]:
    with KMock() as k:
        _populate(k.api())
        yield k


@pytest.fixture
def watcher(cluster: KMock) -> Iterator[ClusterWatcher]:
    w = ClusterWatcher(ClusterIndex(), cluster.api(), watch_timeout=5, backoff=0.2)
    w.start()
    assert w.synced.wait(15)
    yield w
    w.stop()


def test_index_maps_ips_to_workloads(watcher: ClusterWatcher) -> None:
    idx = watcher.index
    _wait(lambda: idx.lookup("10.1.0.8") is not None)
    web = idx.lookup("10.1.0.5")
    assert web is not None
    assert (web.pod, web.namespace, web.workload, web.service, web.node) == (
        "web-7d9f-x1", "shop", "Deployment/web", "web", "node-1"
    )  # fmt: skip
    assert dict(web.labels) == {"app": "web"}
    assert idx.lookup("10.1.0.6").workload == "StatefulSet/pg"  # type: ignore[union-attr]
    assert idx.lookup("10.1.0.7").workload == "DaemonSet/cni"  # type: ignore[union-attr]
    assert idx.lookup("10.1.0.8").workload == "CronJob/backup"  # type: ignore[union-attr]
    svc = idx.lookup("10.96.0.10")
    assert svc is not None and (svc.namespace, svc.service, svc.pod) == ("shop", "web", "")
    assert idx.lookup("192.0.2.1") is None


def test_watch_follows_changes(cluster: KMock, watcher: ClusterWatcher) -> None:
    core = k8s_client.CoreV1Api(cluster.api())
    core.create_namespaced_pod(
        "shop", _pod("shop", "web-7d9f-x2", "10.1.0.9", _owner("ReplicaSet", "web-7d9f"))
    )
    _wait(lambda: watcher.index.lookup("10.1.0.9") is not None)
    assert watcher.index.lookup("10.1.0.9").workload == "Deployment/web"  # type: ignore[union-attr]
    core.delete_namespaced_pod("web-7d9f-x2", "shop")
    _wait(lambda: watcher.index.lookup("10.1.0.9") is None)


def test_gone_watch_relists(cluster: KMock, caplog: pytest.LogCaptureFixture) -> None:
    """Pod watches answer 410 Gone (history compacted): the watcher lists again."""
    gone = {
        "type": "ERROR",
        "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"},
    }

    def react() -> None:
        # the client's Watch retries a 410 once by itself; the second 410 reaches us
        cluster.emulator[kmock.action.WATCH, kmock.resource("v1/pods")][:2] << (gone,)

    cluster.call(react)
    w = ClusterWatcher(ClusterIndex(), cluster.api(), watch_timeout=5, backoff=0.2)
    w.start()
    try:
        _wait(lambda: w.relists["Pod"] >= 2, timeout=15)
        assert w.index.lookup("10.1.0.5") is not None
        # re-listed because of the 410, not through the error/back-off path
        assert not [r for r in caplog.records if "watch of Pod failed" in r.getMessage()]
    finally:
        w.stop()


def test_enricher_fills_only_empty_fields(watcher: ClusterWatcher) -> None:
    _wait(lambda: watcher.index.lookup("10.1.0.6") is not None)
    e = make_http_entry(
        src=make_endpoint("10.1.0.5", 40000),
        dst=make_endpoint("10.1.0.6", 5432, pod="from-sniffer"),
    )
    Enricher(watcher.index).enrich(e)
    assert (e.src.pod, e.src.namespace, e.src.workload) == ("web-7d9f-x1", "shop", "Deployment/web")
    assert e.src.labels == {"app": "web"} and e.src.service == "web"
    assert e.dst.pod == "from-sniffer" and e.dst.namespace == "db"


def test_hub_enriches_at_ingest(cluster: KMock, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: k\n"
        f"clusters: [{{name: k, cluster: {{server: '{cluster.url}'}}}}]\n"
        "contexts: [{name: k, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    store = DuckDBStorage()
    app = create_app(hub_settings(enrich=True, kubeconfig=str(kubeconfig)), storage=store)
    with TestClient(app) as c:
        _wait(lambda: app.state.enricher.index.lookup("10.96.0.10") is not None)
        e = make_http_entry(
            src=make_endpoint("10.1.0.8", 40000), dst=make_endpoint("10.96.0.10", 80)
        )
        ingest(c, [e])
    row = store.get(e.id, sa.true())
    assert row is not None
    assert (row["src_namespace"], row["src_workload"]) == ("ops", "CronJob/backup")
    assert (row["dst_namespace"], row["dst_service"]) == ("shop", "web")
    store.close()


def test_standalone_keeps_what_the_sniffer_gave(client: TestClient, storage: DuckDBStorage) -> None:
    e = make_http_entry(src=make_endpoint("10.1.0.5", 1, namespace="given", pod="p"))
    ingest(client, [e])
    row = storage.get(e.id, sa.true())
    assert row is not None and (row["src_namespace"], row["src_pod"], row["src_workload"]) == (
        "given", "p", ""
    )  # fmt: skip
