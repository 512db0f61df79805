"""A node, the Kubernetes API and a hub together, with helpers to declare pods and run the
sniffer agent against them (the live tests' ``cluster`` fixture, and the benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from sniffer.testing.hub import INGEST_TOKEN, HubProcess
from sniffer.testing.kube import KubeAPI
from sniffer.testing.node import Pod, TestNode

__all__ = ["NODE", "Cluster", "running_cluster", "wait_for"]

NODE = "node-a"


def wait_for(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout}s (last: {last!r})")


@contextmanager
def running_cluster(tmp: Path) -> Iterator[Cluster]:
    """A node, the API and a hub for one test; the agents it started, the hub, and the
    node are stopped and torn down afterwards, whatever happened."""
    with TestNode(NODE) as node, KubeAPI() as kube:
        hub = HubProcess(tmp / "hub").start()
        c = Cluster(node, kube, hub, tmp)
        try:
            yield c
        finally:
            for agent in c.agents:
                agent.stop(drain_timeout=0.5)
            hub.kill()
            c.hub.kill()  # a test may have swapped in a hub of its own


class Cluster:
    """The node, the API, the hub, and helpers to declare pods and run the sniffer."""

    def __init__(self, node: TestNode, kube: KubeAPI, hub: HubProcess, tmp: Path) -> None:
        self.node = node
        self.kube = kube
        self.hub = hub
        self.tmp = tmp
        self.rules = tmp / "targeting.yaml"
        self.rules.write_text("{}\n")
        self.kubeconfig = kube.write_kubeconfig(tmp / "kubeconfig")
        self.agents: list[Any] = []

    def pod(self, name: str, namespace: str = "shop", **labels: str) -> Pod:
        pod = self.node.add_pod(name, namespace, labels)
        self.kube.create_pod(self.node.pod_object(pod))
        return pod

    def set_rules(self, **rules: Any) -> None:
        tmp = self.rules.with_suffix(".new")
        tmp.write_text(yaml.safe_dump(rules))
        tmp.replace(self.rules)  # atomic: the poller never reads half a file

    def settings(self, capture: str = "afpacket", **over: Any) -> Any:
        from sniffer.settings import SnifferSettings

        base: dict[str, Any] = {
            "hub": self.hub.url,
            "ca_file": self.hub.ca,
            "token": INGEST_TOKEN,
            "node": NODE,
            "targeting": self.rules,
            "capture": capture,
            "interface": "any",
            "ring_mb": 16,
            "spool_dir": self.tmp / "spool",
            "kubeconfig": self.kubeconfig,
            "listen": "127.0.0.1:0",
            "batch_age": 0.2,
            "heartbeat_interval": 1.0,
        }
        base.update(over)
        return SnifferSettings(**base)

    def agent(self, capture: str = "afpacket", **over: Any) -> Any:
        from sniffer.agent import Agent

        agent = Agent(self.settings(capture, **over)).start()
        self.agents.append(agent)
        wait_for(lambda: agent.ready()[0], 10, "sniffer ready")
        return agent

    def entries(self, path_prefix: str) -> list[dict[str, Any]]:
        """HTTP entries in the hub whose request path starts with ``path_prefix``."""
        return [
            e
            for e in self.hub.entries()
            if e.get("proto") == "http"
            and str(e.get("request", {}).get("path", "")).startswith(path_prefix)
        ]
