"""Pod targeting: which pods of this node to capture, from the Kubernetes API and rules.

A ``Targeting`` keeps the pods of its own node (fed by ``PodWatcher``: list + watch with
``spec.nodeName`` as field selector, resourceVersion, a re-list on 410 Gone and
reconnects with back-off) and the rules from a YAML file (re-read when its mtime moves):

    namespaces: [shop, payments]        # empty or absent: every namespace
    excludedNamespaces: [kube-system]
    podRegex: "^(orders|checkout)-"     # matched with re.search on the pod name
    labelSelector: "app=web,tier in (api,db),!canary"

From them it derives the target IP set (handed to the capture source on every change)
and the ip → endpoint map the pipeline uses to name both ends of an entry. Pods on the
host network share the node's address, so they can't be told apart by IP: they are
reported as untargetable, never mixed in.
"""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "LabelSelector",
    "PodInfo",
    "PodWatcher",
    "Rules",
    "RulesError",
    "SelectorError",
    "Targeting",
    "parse_selector",
    "pod_from_object",
]

log = logging.getLogger("kubeweir.sniffer.targeting")


# --- label selectors -----------------------------------------------------------------
class SelectorError(ValueError):
    """A label selector that does not parse (with the position of the problem)."""


@dataclass(frozen=True, slots=True)
class _Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        if self.op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        # "!=" and "notin" match when the key is absent too (as in Kubernetes).
        return labels.get(self.key) not in self.values


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed Kubernetes label selector: all requirements must hold."""

    requirements: tuple[_Requirement, ...]
    text: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


# Label keys: optional DNS prefix + "/" + name; values: up to 63 of [A-Za-z0-9._-].
_TOKEN = re.compile(
    r"\s*(?:(?P<op>==|!=|=|\(|\)|,|!)|(?P<word>[A-Za-z0-9][A-Za-z0-9._/-]*|[A-Za-z0-9]?))"
)
_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos or (m.group("op") is None and not m.group("word")):
            raise SelectorError(f"unexpected character {text[pos]!r} at {pos} in {text!r}")
        start = m.start("op") if m.group("op") else m.start("word")
        kind = "op" if m.group("op") else "word"
        out.append((kind, m.group("op") or m.group("word"), start))
        pos = m.end()
    return out


def parse_selector(text: str) -> LabelSelector:
    """Parse ``a=b,c!=d,e in (x,y),f notin (z),g,!h`` (Kubernetes label selector syntax)."""
    toks = _tokens(text)
    reqs: list[_Requirement] = []
    i = 0

    def err(msg: str) -> SelectorError:
        pos = toks[i][2] if i < len(toks) else len(text)
        return SelectorError(f"{msg} at {pos} in label selector {text!r}")

    def key_at(j: int) -> str:
        if j >= len(toks) or toks[j][0] != "word":
            raise err("expected a label key")
        k = toks[j][1]
        if not _KEY.match(k) or len(k.rsplit("/", 1)[-1]) > 63:
            raise err(f"invalid label key {k!r}")
        return k

    def value(v: str) -> str:
        if len(v) > 63 or not _VALUE.match(v):
            raise err(f"invalid label value {v!r}")
        return v

    while i < len(toks):
        if toks[i] == ("op", "!", toks[i][2]):
            i += 1
            reqs.append(_Requirement(key_at(i), "!"))
            i += 1
        else:
            key = key_at(i)
            i += 1
            if i >= len(toks) or toks[i][1] == ",":
                reqs.append(_Requirement(key, "exists"))
            elif toks[i][1] in ("=", "==", "!="):
                op = "!=" if toks[i][1] == "!=" else "="
                i += 1
                if i < len(toks) and toks[i][0] == "word":
                    v = value(toks[i][1])
                    i += 1
                else:
                    v = ""  # `a=` selects the empty value
                reqs.append(_Requirement(key, op, frozenset([v])))
            elif toks[i][0] == "word" and toks[i][1] in ("in", "notin"):
                op = toks[i][1]
                i += 1
                if i >= len(toks) or toks[i][1] != "(":
                    raise err("expected '('")
                i += 1
                values: set[str] = set()
                while True:
                    if i < len(toks) and toks[i][0] == "word":
                        values.add(value(toks[i][1]))
                        i += 1
                    if i < len(toks) and toks[i][1] == ",":
                        i += 1
                        continue
                    if i < len(toks) and toks[i][1] == ")":
                        i += 1
                        break
                    raise err("expected ',' or ')'")
                if not values:
                    raise err(f"'{op}' needs at least one value")
                reqs.append(_Requirement(key, op, frozenset(values)))
            else:
                raise err("expected an operator (=, ==, !=, in, notin) or ','")
        if i < len(toks):
            if toks[i][1] != ",":
                raise err("expected ','")
            i += 1
            if i >= len(toks):
                raise err("trailing ','")
    return LabelSelector(tuple(reqs), text)


# --- rules ---------------------------------------------------------------------------
class RulesError(ValueError):
    """A targeting rules file that can't be used (the previous rules stay in force)."""


@dataclass(frozen=True, slots=True)
class Rules:
    namespaces: frozenset[str] = frozenset()
    excluded_namespaces: frozenset[str] = frozenset()
    pod_regex: re.Pattern[str] | None = None
    label_selector: LabelSelector | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Rules:
        data = dict(data or {})
        known = {"namespaces", "excludedNamespaces", "podRegex", "labelSelector"}
        unknown = set(data) - known
        if unknown:
            raise RulesError(f"unknown targeting keys {sorted(unknown)}; known: {sorted(known)}")

        def names(key: str) -> frozenset[str]:
            v = data.get(key) or []
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise RulesError(f"{key} must be a list of names")
            return frozenset(v)

        regex = data.get("podRegex") or None
        try:
            pattern = re.compile(regex) if regex else None
        except (re.error, TypeError) as exc:
            raise RulesError(f"podRegex {regex!r}: {exc}") from exc
        sel_text = data.get("labelSelector") or ""
        if not isinstance(sel_text, str):
            raise RulesError("labelSelector must be a string")
        try:
            selector = parse_selector(sel_text) if sel_text.strip() else None
        except SelectorError as exc:
            raise RulesError(str(exc)) from exc
        return cls(names("namespaces"), names("excludedNamespaces"), pattern, selector)

    @classmethod
    def load(cls, path: Path) -> Rules:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise RulesError(f"cannot read targeting rules {path}: {exc}") from exc
        if data is not None and not isinstance(data, dict):
            raise RulesError(f"{path}: expected a mapping of rules")
        return cls.from_mapping(data)

    def selects(self, pod: PodInfo) -> bool:
        if self.namespaces and pod.namespace not in self.namespaces:
            return False
        if pod.namespace in self.excluded_namespaces:
            return False
        if self.pod_regex is not None and not self.pod_regex.search(pod.name):
            return False
        return self.label_selector is None or self.label_selector.matches(pod.labels)


# --- pods ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PodInfo:
    uid: str
    name: str
    namespace: str
    ips: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    node: str = ""
    workload: str = ""
    host_network: bool = False
    phase: str = ""

    def endpoint(self) -> dict[str, Any]:
        """The Endpoint fields this pod gives an address of its."""
        return {
            "pod": self.name,
            "namespace": self.namespace,
            "labels": dict(self.labels),
            "node": self.node,
            "workload": self.workload or self.name,
        }


_HASH_SUFFIX = re.compile(r"-[a-z0-9]{5,10}$")


def _workload(meta: Mapping[str, Any], labels: Mapping[str, str], name: str) -> str:
    refs = meta.get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if not ref:
        return name
    kind, owner = str(ref.get("kind", "")), str(ref.get("name", ""))
    if kind == "ReplicaSet":
        h = labels.get("pod-template-hash")
        if h and owner.endswith(f"-{h}"):
            return f"Deployment/{owner[: -len(h) - 1]}"
    if kind == "Job" and _HASH_SUFFIX.search(owner) and owner.rsplit("-", 1)[-1].isdigit():
        return f"CronJob/{owner.rsplit('-', 1)[0]}"
    return f"{kind}/{owner}"


def pod_from_object(obj: Mapping[str, Any]) -> PodInfo:
    """A PodInfo from a Pod object as the API serves it (JSON)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    name = str(meta.get("name", ""))
    ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return PodInfo(
        uid=str(meta.get("uid") or f"{meta.get('namespace')}/{name}"),
        name=name,
        namespace=str(meta.get("namespace", "")),
        ips=tuple(ips),
        labels=labels,
        node=str(spec.get("nodeName", "")),
        workload=_workload(meta, labels, name),
        host_network=bool(spec.get("hostNetwork")),
        phase=str(status.get("phase", "")),
    )


TargetsListener = Callable[[frozenset[str]], None]


class Targeting:
    """The pods of this node, the rules, and what they select; thread-safe."""

    GONE_TTL = 300.0
    """Seconds an address of a deleted pod keeps naming it (late entries of its calls)."""

    def __init__(self, node: str, rules: Rules | None = None, rules_path: Path | None = None):
        self.node = node
        self.rules_path = rules_path
        self._lock = threading.RLock()
        self._pods: dict[str, PodInfo] = {}
        self._listeners: list[TargetsListener] = []
        self._change_listeners: list[
            Callable[[frozenset[str], dict[str, dict[str, Any]]], None]
        ] = []
        self.targets: frozenset[str] = frozenset()
        self.untargetable: tuple[PodInfo, ...] = ()
        self.targeted_pods: tuple[PodInfo, ...] = ()
        self._endpoints: dict[str, dict[str, Any]] = {}
        self._gone: dict[str, tuple[dict[str, Any], float]] = {}
        self.rules_error = ""
        self.rules_reloads = 0
        self.synced = False
        self._mtime: float | None = None
        if rules is None and rules_path is not None:
            rules = Rules.load(rules_path)  # a bad file at start is fatal, with the reason
            self._mtime = rules_path.stat().st_mtime
        self.rules = rules or Rules()
        self.file_rules = self.rules
        """The rules from the file (or the constructor): in force while the hub has none."""
        self.hub_version = 0
        """Version of the hub's rules in force (0: none, the file's rules apply)."""

    # --- inputs ------------------------------------------------------------------------
    def on_targets(self, listener: TargetsListener) -> None:
        """Call ``listener(ips)`` now and whenever the target IP set changes."""
        with self._lock:
            self._listeners.append(listener)
            listener(self.targets)

    def set_pods(self, pods: Iterable[PodInfo]) -> None:
        """Replace every known pod (a fresh list)."""
        with self._lock:
            self._pods = {p.uid: p for p in pods if not self.node or p.node == self.node}
            self.synced = True
            self._recompute()

    def upsert(self, pod: PodInfo) -> None:
        with self._lock:
            if self.node and pod.node != self.node:
                return
            self._pods[pod.uid] = pod
            self._recompute()

    def remove(self, pod: PodInfo) -> None:
        with self._lock:
            self._pods.pop(pod.uid, None)
            self._recompute()

    def set_rules(self, rules: Rules) -> None:
        with self._lock:
            self.rules = rules
            self.rules_reloads += 1
            self._recompute()

    def check_rules_file(self) -> bool:
        """Reload the rules file if its mtime moved; True when new rules were applied.
        A bad file keeps the previous rules in force and is reported (log + status)."""
        if self.rules_path is None:
            return False
        try:
            mtime = self.rules_path.stat().st_mtime
        except OSError as exc:
            if self.rules_error != str(exc):
                log.error("targeting rules %s unreadable: %s", self.rules_path, exc)
            self.rules_error = str(exc)
            return False
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            rules = Rules.load(self.rules_path)
        except RulesError as exc:
            self.rules_error = str(exc)
            log.error("targeting rules not applied, previous rules stay: %s", exc)
            return False
        self.rules_error = ""
        with self._lock:
            self.file_rules = rules
            if self.hub_version > 0:
                log.info("targeting rules file %s changed; the hub's rules stay in force",
                         self.rules_path)  # fmt: skip
                return False
        log.info("targeting rules reloaded from %s", self.rules_path)
        self.set_rules(rules)
        return True

    def apply_hub_rules(self, data: Mapping[str, Any] | None, version: int) -> bool:
        """Apply the rules the hub sent with its heartbeat answer: with ``version`` > 0
        they take precedence over the file's; 0 returns to the file's rules. True when
        the rules in force changed. Bad rules keep the previous ones (reported)."""
        with self._lock:
            if version == self.hub_version:
                return False
            if version <= 0:
                log.info("the hub has no targeting rules: back to the file's")
                self.hub_version = 0
                self.set_rules(self.file_rules)
                return True
            try:
                rules = Rules.from_mapping(data)
            except RulesError as exc:
                self.rules_error = f"hub rules v{version}: {exc}"
                log.error("hub targeting rules not applied, previous rules stay: %s", exc)
                return False
            self.rules_error = ""
            self.hub_version = version
            log.info("targeting rules v%d from the hub applied", version)
            self.set_rules(rules)
            return True

    # --- outputs -----------------------------------------------------------------------
    def endpoint_info(self, ip: str) -> dict[str, Any]:
        """Endpoint fields for an address (for ``PipelineSettings.endpoint_info``)."""
        info = self._endpoints.get(ip)
        if info is not None:
            return info
        gone = self._gone.get(ip)
        return gone[0] if gone is not None else {}

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "synced": self.synced,
                "pods": len(self._pods),
                "targeted": sorted(f"{p.namespace}/{p.name}" for p in self.targeted_pods),
                "targets": sorted(self.targets),
                "untargetable": [
                    {"pod": f"{p.namespace}/{p.name}", "reason": "hostNetwork"}
                    for p in self.untargetable
                ],
                "rules_error": self.rules_error,
                "rules_source": f"hub v{self.hub_version}" if self.hub_version else "file",
            }

    def _recompute(self) -> None:
        selected = [p for p in self._pods.values() if self.rules.selects(p)]
        host_net = tuple(p for p in selected if p.host_network)
        targeted = tuple(p for p in selected if not p.host_network and p.ips)
        endpoints: dict[str, dict[str, Any]] = {}
        for p in self._pods.values():
            if not p.host_network:
                for ip in p.ips:
                    endpoints[ip] = p.endpoint()
        now = time.monotonic()
        for ip, info in self._endpoints.items():
            if ip not in endpoints:
                self._gone[ip] = (info, now + self.GONE_TTL)
        self._gone = {ip: v for ip, v in self._gone.items() if v[1] > now and ip not in endpoints}
        self._endpoints = endpoints
        new_untargetable = {p.uid for p in host_net} - {p.uid for p in self.untargetable}
        for p in host_net:
            if p.uid in new_untargetable:
                log.warning(
                    "pod %s/%s uses the host network: not targetable by IP, not captured",
                    p.namespace,
                    p.name,
                )
        self.untargetable = host_net
        self.targeted_pods = targeted
        targets = frozenset(ip for p in targeted for ip in p.ips)
        if targets != self.targets:
            self.targets = targets
            for listener in self._listeners:
                try:
                    listener(targets)
                except Exception:  # noqa: BLE001 - one bad listener must not stop targeting
                    log.exception("targets listener failed")
        for change in self._change_listeners:
            try:
                change(self.targets, endpoints)
            except Exception:  # noqa: BLE001
                log.exception("targeting change listener failed")

    def on_change(
        self, listener: Callable[[frozenset[str], dict[str, dict[str, Any]]], None]
    ) -> None:
        """Call ``listener(targets, endpoints)`` now and after every recomputation (pods,
        labels or rules changed), for consumers in other processes (capture workers)."""
        with self._lock:
            self._change_listeners.append(listener)
            listener(self.targets, self._endpoints)


# --- the Kubernetes side ---------------------------------------------------------------
class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


class PodWatcher:
    """List + watch of this node's pods feeding a ``Targeting``, in a thread of its own."""

    def __init__(
        self,
        targeting: Targeting,
        api_client: Any,
        watch_timeout: float = 300.0,
        backoff_max: float = 30.0,
    ) -> None:
        from kubernetes import client

        self.targeting = targeting
        self.api = client.CoreV1Api(api_client)
        self.watch_timeout = watch_timeout
        self.backoff_max = backoff_max
        self.relists = 0
        self.watch_errors = 0
        self.resource_version = ""
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, name="pod-watcher", daemon=True)
        self._rules_thread = threading.Thread(target=self._poll_rules, name="rules", daemon=True)

    def start(self) -> PodWatcher:
        self._thread.start()
        self._rules_thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            # Unblock the reading thread: shutting the socket down needs no lock that the
            # blocked reader holds (closing the response would).
            sock = getattr(getattr(resp, "connection", None), "sock", None)
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._rules_thread.join(timeout=5)

    def _poll_rules(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.targeting.check_rules_file()
            except Exception:  # noqa: BLE001 - keep polling whatever happened
                log.exception("rules reload failed")

    @property
    def _selector(self) -> str:
        return f"spec.nodeName={self.targeting.node}"

    def _list(self) -> None:
        resp: Any = self.api.list_pod_for_all_namespaces(
            field_selector=self._selector, _preload_content=False, _request_timeout=(5, 30)
        )
        data = json.loads(resp.data)
        self.targeting.set_pods(pod_from_object(o) for o in data.get("items") or [])
        self.resource_version = str((data.get("metadata") or {}).get("resourceVersion") or "")
        self.relists += 1

    def _watch(self) -> None:
        kwargs: dict[str, Any] = {
            "field_selector": self._selector,
            "watch": True,
            "allow_watch_bookmarks": True,
            "timeout_seconds": int(self.watch_timeout),
            "_preload_content": False,
            # a read timeout past the server's own ends dead connections
            "_request_timeout": (5, self.watch_timeout + 30),
        }
        if self.resource_version:
            kwargs["resource_version"] = self.resource_version
        self._resp = self.api.list_pod_for_all_namespaces(**kwargs)
        try:
            for line in self._resp:
                if self._stop.is_set():
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone(obj.get("message", "gone"))
                    raise RuntimeError(f"watch error: {obj.get('message') or obj}")
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self.resource_version = str(rv)
                if kind == "BOOKMARK":
                    continue
                pod = pod_from_object(obj)
                if kind == "DELETED":
                    self.targeting.remove(pod)
                else:
                    self.targeting.upsert(pod)
        finally:
            self._resp.release_conn()
            self._resp = None

    def _run(self) -> None:
        delay = 0.0
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                self._watch()
                delay = 0.0  # a watch that ended normally: reconnect at once
            except _Gone as exc:
                log.info("pod watch expired (%s): listing again", exc)
                need_list = True
                self.resource_version = ""
            except Exception as exc:  # noqa: BLE001 - any failure: back off and retry
                if self._stop.is_set():
                    return
                self.watch_errors += 1
                delay = min(self.backoff_max, max(0.5, delay * 2))
                log.warning("pod watch failed (%s); retrying in ~%.1fs", exc, delay)
                if "410" in str(exc):
                    need_list = True
                    self.resource_version = ""
                self._stop.wait(delay * random.uniform(0.5, 1.0))
