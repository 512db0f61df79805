"""The demo shop: "pods" in network namespaces on a bridge (``TestNode``), labelled like a
cluster's, running real servers and a steady, bounded stream of calls between them.

    kube-system/coredns   dnsmasq: <service>.<namespace>.svc.cluster.local for everyone
    shop/frontend         visitors: HTTP/1.1 to catalog and orders
    shop/catalog          HTTP/1.1; asks inventory over gRPC
    shop/orders           HTTP/1.1; Redis, inventory (gRPC), payments (HTTP/1.1), MQTT
    shop/inventory        gRPC
    shop/redis-0          redis-server
    shop/events-0         mosquitto (MQTT)
    payments/payments     HTTP/1.1; PostgreSQL
    payments/postgres-0   Debian's PostgreSQL, run as the postgres user

Everything is torn down by ``close()`` (processes, namespaces, links, files); a run that
died without it is cleaned up by the next one (``cleanup_leftovers``).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import random
import shutil
import signal
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sniffer.targeting import PodInfo, pod_from_object
from sniffer.testing.node import NodeError, Pod, TestNode

__all__ = ["DEMO_PROTOCOLS", "Demo", "PodSpec"]

log = logging.getLogger("kubeweir.demo")

DEMO_PROTOCOLS = ("http", "dns", "redis", "grpc", "postgres", "mqtt")
"""The protocols the demo's traffic always holds."""

SERVICES_MODULE = "kubeweir.demo.services"


@dataclass(frozen=True)
class PodSpec:
    app: str
    namespace: str
    kind: str  # Deployment or StatefulSet
    tier: str


PODS = (
    PodSpec("coredns", "kube-system", "Deployment", "dns"),
    PodSpec("redis", "shop", "StatefulSet", "cache"),
    PodSpec("events", "shop", "StatefulSet", "broker"),
    PodSpec("postgres", "payments", "StatefulSet", "db"),
    PodSpec("inventory", "shop", "Deployment", "api"),
    PodSpec("payments", "payments", "Deployment", "api"),
    PodSpec("catalog", "shop", "Deployment", "api"),
    PodSpec("orders", "shop", "Deployment", "api"),
    PodSpec("frontend", "shop", "Deployment", "web"),
)


def _rand(n: int, alphabet: str = string.ascii_lowercase + string.digits) -> str:
    return "".join(random.choices(alphabet, k=n))


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise NodeError("PostgreSQL server not installed (apt-get install postgresql)")
    return Path(found[-1]).parent


class Demo:
    """Build with ``up()``, start traffic with ``start()``, tear down with ``close()``."""

    def __init__(self, node_name: str, log_dir: Path, rate: float = 3.0) -> None:
        self.node = TestNode(node_name)
        self.log_dir = log_dir
        self.rate = rate
        self.pods: dict[str, Pod] = {}
        self._logs: list[IO[bytes]] = []

    # --- building ----------------------------------------------------------------------
    def up(self) -> Demo:
        """The bridge and the pods (no processes yet)."""
        self.node.up()
        for spec in PODS:
            labels = {"app": spec.app, "tier": spec.tier}
            if spec.kind == "StatefulSet":
                name, owner = f"{spec.app}-0", ("StatefulSet", spec.app)
            else:
                h = _rand(9, "bcdfghjklmnpqrstvwxz2456789")
                labels["pod-template-hash"] = h
                name, owner = f"{spec.app}-{h}-{_rand(5)}", ("ReplicaSet", f"{spec.app}-{h}")
            if spec.app == "coredns":
                labels["k8s-app"] = "kube-dns"
            self.pods[spec.app] = self.node.add_pod(name, spec.namespace, labels, owner)
        dns = self.pods["coredns"].ip
        for pod in self.pods.values():
            ns = pod.namespace
            pod.resolver(dns, [f"{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local"])
        return self

    def registry(self) -> list[PodInfo]:
        """The demo's pods as the Kubernetes API would describe them."""
        return [pod_from_object(self.node.pod_object(p)) for p in self.pods.values()]

    @property
    def tag(self) -> str:
        return self.node.tag

    def records(self) -> dict[str, str]:
        """DNS names of the demo's services (headless: straight to the pod address)."""
        out: dict[str, str] = {}
        for app, pod in self.pods.items():
            svc = "kube-dns" if app == "coredns" else app
            out[f"{svc}.{pod.namespace}.svc.cluster.local"] = pod.ip
        return out

    def services(self) -> dict[str, str]:
        """Pod address -> the name of the (headless) Service that selects it."""
        return {p.ip: "kube-dns" if app == "coredns" else app for app, p in self.pods.items()}

    def pids(self) -> list[int]:
        return [p.pid for pod in self.pods.values() for p in pod.procs]

    # --- processes -----------------------------------------------------------------------
    def _log(self, pod: Pod) -> IO[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.log_dir / f"{pod.namespace}-{pod.name}.log", "wb")  # noqa: SIM115
        self._logs.append(fh)
        return fh

    def _service(self, app: str, *args: str) -> None:
        pod = self.pods[app]
        fh = self._log(pod)
        pod.python(SERVICES_MODULE, app, "--run", self.tag, *args, stdout=fh, stderr=fh)

    def start(self) -> None:
        """Start every server, wait until they listen, then start the visitors."""
        p = self.pods
        fh = self._log(p["coredns"])
        p["coredns"].popen(
            "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
            f"--listen-address={p['coredns'].ip}", "--bind-interfaces", "--port=53",
            "--user=root", "--pid-file=", "--local=/cluster.local/", "--log-facility=-",
            *[f"--host-record={name},{ip}" for name, ip in self.records().items()],
            stdout=fh, stderr=fh,
        )  # fmt: skip
        fh = self._log(p["redis"])
        p["redis"].popen(
            "redis-server", "--port", "6379", "--bind", "0.0.0.0", "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--dir", "/tmp",
            stdout=fh, stderr=fh,
        )  # fmt: skip
        conf = Path(self.node.state_dir) / "mosquitto.conf"
        conf.write_text(
            "listener 1883 0.0.0.0\nallow_anonymous true\npersistence false\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n"
        )
        fh = self._log(p["events"])
        p["events"].popen("mosquitto", "-c", str(conf), stdout=fh, stderr=fh)
        self._postgres(p["postgres"])
        for app in ("inventory", "payments", "catalog", "orders"):
            self._service(app)
        p["coredns"].wait_port(53, udp=True, timeout=20)
        p["redis"].wait_port(6379, timeout=20)
        p["events"].wait_port(1883, timeout=20)
        p["postgres"].wait_port(5432, timeout=30)
        p["inventory"].wait_port(50051, timeout=30)
        for app in ("payments", "catalog", "orders"):
            p[app].wait_port(8080, timeout=40)
        self._service("frontend", "--rate", str(self.rate))

    def _postgres(self, pod: Pod) -> None:
        bindir = _pg_bin()
        data = Path(self.node.state_dir) / "pgdata"
        data.mkdir(mode=0o700)
        shutil.chown(data, "postgres", "postgres")
        as_pg = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        proc = subprocess.run(
            [*as_pg, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, timeout=120, cwd="/",
        )  # fmt: skip
        if proc.returncode != 0:
            raise NodeError(f"initdb failed: {proc.stderr.strip() or proc.stdout.strip()}")
        with open(data / "pg_hba.conf", "a") as hba:  # the demo's pods may connect
            hba.write(f"host all all {self.node.network} trust\n")
        fh = self._log(pod)
        pod.popen(
            *as_pg, str(bindir / "postgres"), "-D", str(data), "-p", "5432",
            "-c", f"listen_addresses={pod.ip}", "-c", f"unix_socket_directories={data}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "shared_buffers=16MB", "-c", "max_connections=20", "-c", "max_wal_senders=0",
            "-c", "wal_level=minimal", "-c", "logging_collector=off",
            stdout=fh, stderr=fh, cwd="/",
        )  # fmt: skip

    # --- teardown ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every process (PostgreSQL gently first), remove namespaces and links."""
        pg = self.pods.get("postgres")
        for proc in pg.procs if pg else []:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)  # fast shutdown: frees its shared memory
        for proc in pg.procs if pg else []:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.node.close()
        for fh in self._logs:
            fh.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[Demo]:
        try:
            self.up()
            self.start()
            yield self
        finally:
            self.close()
