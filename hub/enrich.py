"""Cluster-wide enrichment: who is behind an IP (pod, namespace, workload, labels, node,
service), from one watch of pods, services and endpoint slices for the whole cluster.

``ClusterIndex`` is the map, fed by watch events; ``Enricher.enrich`` fills the endpoint
fields the sniffer left empty at ingest. ``ClusterWatcher`` keeps the index current with
the ``kubernetes`` client (list, then watch from the list's resourceVersion; on 410 Gone
list again). Without a cluster there is no watcher and endpoints keep what sniffers sent.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from kubeweir.entry import Endpoint, Entry

__all__ = ["ClusterIndex", "ClusterWatcher", "Enricher", "PodInfo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PodInfo:
    pod: str
    namespace: str
    workload: str
    labels: Mapping[str, str]
    node: str
    service: str = ""


@dataclass
class ClusterIndex:
    """IP -> identity, from pods, services (ClusterIPs) and endpoint slices."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(namespace, name) -> pod object (as a dict)."""
    replicasets: dict[tuple[str, str], str] = field(default_factory=dict)
    """(namespace, rs name) -> owning Deployment name ('' when none)."""
    jobs: dict[tuple[str, str], str] = field(default_factory=dict)
    """(namespace, job name) -> owning CronJob name ('' when none)."""
    services: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(namespace, service) -> ClusterIPs."""
    slices: dict[tuple[str, str], tuple[str, list[tuple[str, str]]]] = field(default_factory=dict)
    """(namespace, slice name) -> (service, [(ip, pod name)])."""
    _by_ip: dict[str, PodInfo] = field(default_factory=dict)
    _dirty: bool = True

    # -- updates (from watch events) ---------------------------------------------------

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        """One watch event (``ADDED``/``MODIFIED``/``DELETED``) for a Pod, Service,
        EndpointSlice, ReplicaSet or Job, as a plain dict."""
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        gone = event == "DELETED"
        with self._lock:
            if kind == "Pod":
                _put(self.pods, key, None if gone else dict(obj))
            elif kind == "ReplicaSet":
                _put(self.replicasets, key, None if gone else _owner_name(obj, "Deployment"))
            elif kind == "Job":
                _put(self.jobs, key, None if gone else _owner_name(obj, "CronJob"))
            elif kind == "Service":
                spec = obj.get("spec") or {}
                ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip]
                _put(self.services, key, None if gone else [i for i in ips if i != "None"])
            elif kind == "EndpointSlice":
                svc = (meta.get("labels") or {}).get("kubernetes.io/service-name", "")
                eps: list[tuple[str, str]] = []
                for ep in obj.get("endpoints") or []:
                    ref = ep.get("targetRef") or {}
                    pod = ref.get("name", "") if ref.get("kind") == "Pod" else ""
                    eps.extend((addr, pod) for addr in ep.get("addresses") or [])
                _put(self.slices, key, None if gone else (svc, eps))
            else:
                return
            self._dirty = True

    def replace(self, kind: str, objs: list[Mapping[str, Any]]) -> None:
        """A fresh list of one kind (after a list or a 410 re-list)."""
        tables: dict[str, dict[Any, Any]] = {
            "Pod": self.pods,
            "ReplicaSet": self.replicasets,
            "Job": self.jobs,
            "Service": self.services,
            "EndpointSlice": self.slices,
        }
        table = tables[kind]
        with self._lock:
            table.clear()
        for o in objs:
            self.apply(kind, "ADDED", o)

    # -- lookups ------------------------------------------------------------------------

    def _workload(self, ns: str, pod: Mapping[str, Any]) -> str:
        meta = pod.get("metadata") or {}
        for ref in meta.get("ownerReferences") or []:
            if not ref.get("controller", True):
                continue
            kind, name = ref.get("kind", ""), ref.get("name", "")
            if kind == "ReplicaSet":
                dep = self.replicasets.get((ns, name))
                if dep:
                    return f"Deployment/{dep}"
                if dep is None and "-" in name:  # RS not seen yet: Deployment naming
                    return f"Deployment/{name.rsplit('-', 1)[0]}"
                return f"ReplicaSet/{name}"
            if kind == "Job":
                cron = self.jobs.get((ns, name))
                return f"CronJob/{cron}" if cron else f"Job/{name}"
            if kind:
                return f"{kind}/{name}"
        return str(meta.get("name") or "")

    def _rebuild(self) -> None:
        by_ip: dict[str, PodInfo] = {}
        pod_service: dict[tuple[str, str], str] = {}
        ip_service: dict[str, tuple[str, str]] = {}
        for (ns, _), (svc, eps) in self.slices.items():
            for ip, pod_name in eps:
                if svc:
                    ip_service.setdefault(ip, (ns, svc))
                    if pod_name:
                        pod_service.setdefault((ns, pod_name), svc)
        for (ns, name), pod in self.pods.items():
            status = pod.get("status") or {}
            spec = pod.get("spec") or {}
            if spec.get("hostNetwork"):
                continue  # its IP is the node's: naming it would mislabel other traffic
            ips = [p.get("ip") for p in status.get("podIPs") or []] or [status.get("podIP")]
            info = PodInfo(
                pod=name,
                namespace=ns,
                workload=self._workload(ns, pod),
                labels=dict((pod.get("metadata") or {}).get("labels") or {}),
                node=spec.get("nodeName") or "",
                service=pod_service.get((ns, name), ""),
            )
            for ip in ips:
                if ip:
                    by_ip[ip] = info
        for (ns, svc), cluster_ips in self.services.items():
            for ip in cluster_ips:
                by_ip.setdefault(ip, PodInfo("", ns, "", {}, "", svc))
        for ip, (ns, svc) in ip_service.items():
            by_ip.setdefault(ip, PodInfo("", ns, "", {}, "", svc))
        self._by_ip = by_ip
        self._dirty = False

    def lookup(self, ip: str) -> PodInfo | None:
        if self._dirty:
            with self._lock:
                if self._dirty:
                    self._rebuild()
        return self._by_ip.get(ip)


def _put(table: dict[Any, Any], key: Any, value: Any) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


def _owner_name(obj: Mapping[str, Any], kind: str) -> str:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller", True):
            return str(ref.get("name", ""))
    return ""


_TEXT_FIELDS = ("pod", "namespace", "workload", "service", "node")


class Enricher:
    """Fills an entry's endpoint fields that the sniffer left empty."""

    def __init__(self, index: ClusterIndex) -> None:
        self.index = index

    def _endpoint(self, ep: Endpoint) -> None:
        info = self.index.lookup(ep.ip)
        if info is None:
            return
        if not ep.pod and info.pod:
            ep.pod = info.pod
        if not ep.namespace and info.namespace:
            ep.namespace = info.namespace
        if not ep.workload and info.workload:
            ep.workload = info.workload
        if not ep.service and info.service:
            ep.service = info.service
        if not ep.labels and info.labels:
            ep.labels = dict(info.labels)
        if not ep.node and info.node:
            ep.node = info.node

    def enrich(self, entry: Entry) -> None:
        self._endpoint(entry.src)
        self._endpoint(entry.dst)

    def enrich_table(self, table: pa.Table) -> pa.Table:
        """``enrich`` for a batch already in the storage columns (``hub.storage.rows``),
        column by column: a side's columns are rebuilt only where an IP is known and one of
        its fields was left empty."""
        for side in ("src", "dst"):
            infos = list(map(self.index.lookup, table.column(f"{side}_ip").to_pylist()))
            if not any(infos):
                continue
            for name in _TEXT_FIELDS:
                col = f"{side}_{name}"
                values = table.column(col).to_pylist()
                new = [
                    v or (getattr(i, name) or v if i is not None else v)
                    for v, i in zip(values, infos, strict=True)
                ]
                if new != values:
                    table = table.set_column(
                        table.schema.get_field_index(col), col, pa.array(new, pa.string())
                    )
            col = f"{side}_labels"
            labels = table.column(col).to_pylist()  # [(key, value), ...] per row
            new_labels = [
                v or (list(i.labels.items()) or v if i is not None else v)
                for v, i in zip(labels, infos, strict=True)
            ]
            if new_labels != labels:
                field = table.schema.field(col)
                table = table.set_column(
                    table.schema.get_field_index(col), field, pa.array(new_labels, field.type)
                )
        return table


class ClusterWatcher:
    """Keeps a ``ClusterIndex`` current: per kind, list then watch cluster-wide from the
    list's resourceVersion; a 410 Gone (history compacted) means list again."""

    def __init__(
        self,
        index: ClusterIndex,
        api_client: Any,
        *,
        watch_timeout: int = 300,
        backoff: float = 2.0,
    ) -> None:
        from kubernetes import client

        self.index = index
        self.api_client = api_client
        self.watch_timeout = watch_timeout
        self.backoff = backoff
        core = client.CoreV1Api(api_client)
        apps = client.AppsV1Api(api_client)
        batch = client.BatchV1Api(api_client)
        discovery = client.DiscoveryV1Api(api_client)
        self.kinds: dict[str, Callable[..., Any]] = {
            "ReplicaSet": apps.list_replica_set_for_all_namespaces,
            "Job": batch.list_job_for_all_namespaces,
            "Pod": core.list_pod_for_all_namespaces,
            "Service": core.list_service_for_all_namespaces,
            "EndpointSlice": discovery.list_endpoint_slice_for_all_namespaces,
        }
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watches: list[Any] = []
        self.relists: dict[str, int] = dict.fromkeys(self.kinds, 0)
        self.synced = threading.Event()
        self._synced_kinds: set[str] = set()

    @classmethod
    def from_config(cls, index: ClusterIndex, kubeconfig: str | None) -> ClusterWatcher:
        from kubernetes import client, config

        if kubeconfig:
            api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        else:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            api_client = client.ApiClient()
        return cls(index, api_client)

    def start(self) -> None:
        for kind in self.kinds:
            t = threading.Thread(target=self._run, args=(kind,), name=f"watch-{kind}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for w in list(self._watches):
            w.stop()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()

    def _list(self, kind: str) -> str:
        resp = self.kinds[kind](_preload_content=False, _request_timeout=30)
        data = json.loads(resp.data)
        self.index.replace(kind, data.get("items") or [])
        self.relists[kind] += 1
        self._synced_kinds.add(kind)
        if len(self._synced_kinds) == len(self.kinds):
            self.synced.set()
        return str((data.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, kind: str, rv: str) -> None:
        """Until the watch breaks with 410 (return to re-list) or stop."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        while not self._stop.is_set():
            w = watch.Watch()  # type: ignore[no-untyped-call]
            self._watches.append(w)
            try:
                for ev in w.stream(  # type: ignore[no-untyped-call]
                    self.kinds[kind],
                    resource_version=rv,
                    timeout_seconds=self.watch_timeout,
                    allow_watch_bookmarks=True,
                ):
                    raw = ev.get("raw_object") or {}
                    typ = ev.get("type")
                    if typ == "ERROR":
                        if raw.get("code") == 410:
                            return
                        raise RuntimeError(f"watch error: {raw.get('message')}")
                    new_rv = (raw.get("metadata") or {}).get("resourceVersion")
                    if new_rv:
                        rv = str(new_rv)
                    if typ in ("ADDED", "MODIFIED", "DELETED"):
                        self.index.apply(kind, typ, raw)
                    if self._stop.is_set():
                        return
            except ApiException as exc:
                if exc.status == 410:
                    return
                raise
            finally:
                self._watches.remove(w)

    def _run(self, kind: str) -> None:
        while not self._stop.is_set():
            try:
                rv = self._list(kind)
                self._watch(kind, rv)
            except Exception as exc:  # API server away: retry, keep the last index
                log.warning("watch of %s failed, retrying: %s", kind, exc)
                self._stop.wait(self.backoff)
