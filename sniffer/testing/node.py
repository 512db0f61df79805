"""A node to test on: a bridge and one network namespace per "pod", as a CNI plugin builds.

``TestNode`` makes a Linux bridge with a host address, then for each pod a network
namespace joined to the bridge by a veth pair, with an address from the node's pod CIDR
(a /24 inside 10.244.128.0/17 that nothing else on the host routes). Pods run real
servers and clients through ``ip netns exec``.

Every name carries a per-node tag, and a state file under ``/run/kubeweir-testnode``
records the owning process: ``cleanup_leftovers()`` removes what dead owners left
behind (a crashed test run), never what a live run is using. Needs root.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PREFIX", "NodeError", "Pod", "TestNode", "cleanup_leftovers", "require_root"]

PREFIX = "kwt"
"""Every link and namespace made here starts with this."""
STATE_DIR = Path("/run/kubeweir-testnode")
POD_NETS = ipaddress.ip_network("10.244.128.0/17")
REPO = Path(__file__).resolve().parents[2]
NETNS_ETC = Path("/etc/netns")
"""``ip netns exec NAME`` bind-mounts the files of ``/etc/netns/NAME`` over ``/etc``."""


class NodeError(RuntimeError):
    """A step of building or driving the test node failed (with the command's output)."""


def require_root() -> str | None:
    """Why a test node can't be built here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs and a bridge)"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`)"
    return None


def _run(*args: str, check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_list() -> list[str]:
    out = _run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_netns(ns: str) -> None:
    pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
    for p in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(p), signal.SIGKILL)
    _run("ip", "netns", "del", ns, check=False)
    shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)


def _delete_owned(state: dict[str, Any]) -> None:
    for ns in state.get("netns", []):
        _kill_netns(ns)
    for link in state.get("links", []):
        _run("ip", "link", "del", link, check=False)


def cleanup_leftovers() -> list[str]:
    """Remove the bridges, veths and namespaces that test nodes of dead processes left.

    Returns what was removed. Safe while other runs are live: their state files name
    a living owner, and creation happens under the same lock.
    """
    removed: list[str] = []
    with _lock():
        owned: set[str] = set()
        for path in STATE_DIR.glob("*.json"):
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                state = {}
            if state and _alive(int(state.get("pid", 0))):
                owned.update(state.get("netns", []))
                owned.update(state.get("links", []))
                continue
            _delete_owned(state)
            removed.extend(state.get("netns", []) + state.get("links", []))
            path.unlink(missing_ok=True)
            shutil.rmtree(STATE_DIR / path.stem, ignore_errors=True)  # its files (configs, data)
        # Anything with our prefix that no live state file claims is an orphan.
        for ns in _netns_list():
            if ns.startswith(PREFIX) and ns not in owned:
                _kill_netns(ns)
                removed.append(ns)
        links = json.loads(_run("ip", "-j", "link", "show").stdout or "[]")
        for link in links:
            name = link.get("ifname", "")
            if name.startswith(PREFIX) and name not in owned:
                _run("ip", "link", "del", name, check=False)
                removed.append(name)
    return removed


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _run("ip", "-4", "route", "show", "table", "all", check=False).stdout
    nets = []
    for line in out.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "blackhole", "prohibit"):
            word = line.split()[1]
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(word, strict=False))
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


@dataclass
class Pod:
    """One "pod": a network namespace with an address on the node's bridge."""

    node: TestNode
    name: str
    namespace: str
    netns: str
    ip: str
    host_if: str
    labels: dict[str, str] = field(default_factory=dict)
    uid: str = ""
    owner: tuple[str, str] | None = None
    """(kind, name) of the owning workload, for ownerReferences."""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cmd(self, *args: str) -> list[str]:
        """The command line that runs ``args`` inside this pod's network namespace."""
        return ["ip", "netns", "exec", self.netns, *args]

    def resolver(self, nameserver: str, search: Sequence[str] = (), ndots: int = 5) -> None:
        """Resolve names in this pod through ``nameserver`` (a pod's ``resolv.conf``, as the
        kubelet writes it); removed with the namespace."""
        etc = NETNS_ETC / self.netns
        etc.mkdir(parents=True, exist_ok=True)
        lines = [f"nameserver {nameserver}"]
        if search:
            lines.append("search " + " ".join(search))
        lines.append(f"options ndots:{ndots}")
        (etc / "resolv.conf").write_text("\n".join(lines) + "\n")

    def exec(
        self, *args: str, timeout: float = 30.0, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the pod and wait for it."""
        proc = subprocess.run(
            self.cmd(*args), capture_output=True, text=True, timeout=timeout, input=input
        )
        if check and proc.returncode != 0:
            raise NodeError(
                f"in pod {self.name}: {' '.join(args)} failed ({proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a long-running process in the pod; it is killed at teardown."""
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            self.cmd(*args), start_new_session=True, **kwargs
        )
        self.procs.append(proc)
        return proc

    def python(self, module: str, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start one of the helper modules (``sniffer.testing.http_server``...) in the pod."""
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return self.popen(sys.executable, "-m", module, *args, cwd=str(REPO), env=env, **kwargs)

    def wait_port(self, port: int, timeout: float = 10.0, udp: bool = False) -> None:
        """Wait until something listens on ``port`` in the pod."""
        deadline = time.monotonic() + timeout
        flag = "-uln" if udp else "-tln"
        while time.monotonic() < deadline:
            out = self.exec("ss", flag, check=False).stdout
            if any(f":{port} " in line for line in out.splitlines()):
                return
            for p in self.procs:
                if p.poll() is not None and p.returncode not in (0, None):
                    raise NodeError(f"in pod {self.name}: server exited with {p.returncode}")
            time.sleep(0.05)
        raise NodeError(f"in pod {self.name}: nothing listens on port {port} after {timeout}s")

    # --- real servers -------------------------------------------------------------
    def http_server(self, port: int = 8080) -> subprocess.Popen[bytes]:
        """A Python HTTP/1.1 keep-alive server answering every path."""
        proc = self.python("sniffer.testing.http_server", "--port", str(port))
        self.wait_port(port)
        return proc

    def redis_server(self, port: int = 6379) -> subprocess.Popen[bytes]:
        """Debian's redis-server, no persistence, listening on the pod address."""
        proc = self.popen(
            "redis-server", "--port", str(port), "--bind", "0.0.0.0", "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--dir", "/tmp",
        )  # fmt: skip
        self.wait_port(port)
        return proc

    def dnsmasq(self, records: dict[str, str], port: int = 53) -> subprocess.Popen[bytes]:
        """dnsmasq answering ``records`` (name -> IPv4) authoritatively, nothing else."""
        args = [
            "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-daemon",
            f"--listen-address={self.ip}", "--bind-interfaces", f"--port={port}",
            "--user=root", "--pid-file=", "--no-negcache",
        ]  # fmt: skip
        args += [f"--host-record={name},{addr}" for name, addr in records.items()]
        proc = self.popen(*args)
        self.wait_port(port, udp=True)
        return proc

    def nginx(self, port: int = 8080) -> subprocess.Popen[bytes]:
        """Debian's nginx-light returning a small fixed body on every path."""
        conf_dir = Path(self.node.state_dir) / f"nginx-{self.name}"
        conf_dir.mkdir(parents=True, exist_ok=True)
        d = conf_dir
        (conf_dir / "nginx.conf").write_text(
            f"worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;\n"
            "events { worker_connections 4096; }\n"
            "http { access_log off; keepalive_requests 1000000;\n"
            f"  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};\n"
            f"  uwsgi_temp_path {d}; scgi_temp_path {d};\n"
            f"  server {{ listen {port}; location / {{ default_type text/plain;\n"
            "    return 200 'hello from kubeweir\\n'; } } }\n"
        )
        proc = self.popen("nginx", "-c", str(conf_dir / "nginx.conf"), "-p", str(conf_dir))
        self.wait_port(port)
        return proc

    # --- clients ---------------------------------------------------------------------
    def curl(self, url: str, *extra: str, timeout: float = 10.0) -> str:
        return self.exec(
            "curl", "-sS", "--max-time", str(timeout), *extra, url, timeout=timeout + 5
        ).stdout

    def http_calls(
        self, url: str, count: int, connections: int = 1, rate: float = 0.0, timeout: float = 60.0
    ) -> dict[str, Any]:
        """``count`` GETs of ``url/call/<i>`` over keep-alive connections; returns the
        client's tally (ok, errors, elapsed)."""
        proc = self.http_calls_start(url, count, connections, rate)
        out, _ = proc.communicate(timeout=timeout)
        result: dict[str, Any] = json.loads(out)
        return result

    def http_calls_start(
        self, url: str, count: int, connections: int = 1, rate: float = 0.0
    ) -> subprocess.Popen[bytes]:
        """The same, in the background: ``communicate()`` returns the JSON tally."""
        return self.python(
            "sniffer.testing.http_client", url, "--count", str(count),
            "--connections", str(connections), "--rate", str(rate),
            stdout=subprocess.PIPE,
        )  # fmt: skip

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        self.procs.clear()


class TestNode:
    """A bridge, its pods, and the state file that lets a later run clean up after a crash."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str = "node-a", ipv6: bool = False) -> None:
        self.name = name
        self.tag = "".join(random.choices(string.ascii_lowercase + string.digits, k=4))
        self.bridge = f"{PREFIX}{self.tag}br"
        self.pods: dict[str, Pod] = {}
        self.ipv6 = ipv6
        self.network: ipaddress.IPv4Network | None = None
        self.host_ip = ""
        self.state_dir = str(STATE_DIR / self.tag)
        self._netns: list[str] = []
        self._links: list[str] = []
        self._next_host = 2
        self._next_if = 0
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> TestNode:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _save(self) -> None:
        state = {"pid": os.getpid(), "netns": self._netns, "links": self._links}
        (STATE_DIR / f"{self.tag}.json").write_text(json.dumps(state))

    def up(self) -> None:
        """Create the bridge with the host's address on it (the pods' gateway)."""
        reason = require_root()
        if reason:
            raise NodeError(reason)
        with _lock():
            used = _used_networks()
            free = [
                n
                for n in POD_NETS.subnets(new_prefix=24)
                if not any(n.overlaps(u) for u in used) and n.network_address.packed[2] != 255
            ]
            if not free:
                raise NodeError(f"no free /24 left in {POD_NETS}")
            self.network = ipaddress.IPv4Network(random.choice(free))
            self.host_ip = str(self.network.network_address + 1)
            self._links.append(self.bridge)
            self._save()
            _run("ip", "link", "add", "name", self.bridge, "type", "bridge")
            _run("ip", "link", "set", "dev", self.bridge, "alias", f"kubeweir-test {os.getpid()}")
            _run("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
            if self.ipv6:
                _run("ip", "-6", "addr", "add", f"{self.v6(1)}/64", "dev", self.bridge, "nodad")
            _run("ip", "link", "set", "dev", self.bridge, "up")
        Path(self.state_dir).mkdir(parents=True, exist_ok=True)

    def v6(self, host: int) -> str:
        assert self.network is not None
        return f"fd00:6b77:{self.network.network_address.packed[2]:x}::{host:x}"

    def close(self) -> None:
        """Stop every process, delete every namespace and link; idempotent."""
        if self._closed:
            return
        self._closed = True
        for pod in list(self.pods.values()):
            pod.stop()
        with _lock():
            _delete_owned({"netns": self._netns, "links": self._links})
            (STATE_DIR / f"{self.tag}.json").unlink(missing_ok=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # --- pods ----------------------------------------------------------------------------
    def add_pod(
        self,
        name: str,
        namespace: str = "default",
        labels: dict[str, str] | None = None,
        owner: tuple[str, str] | None = None,
    ) -> Pod:
        """Create a pod: namespace, veth pair onto the bridge, address, default route."""
        assert self.network is not None, "call up() first"
        if name in self.pods:
            raise NodeError(f"pod {name} exists")
        host = self._next_host
        self._next_host += 1
        if host >= 254:
            raise NodeError("pod CIDR exhausted")
        ip = str(self.network.network_address + host)
        idx = self._next_if
        self._next_if += 1
        netns = f"{PREFIX}{self.tag}-{namespace}-{name}"
        host_if = f"{PREFIX}{self.tag}v{idx}"
        peer = f"{PREFIX}{self.tag}p{idx}"
        with _lock():
            self._netns.append(netns)
            self._links.append(host_if)
            self._save()
            _run("ip", "netns", "add", netns)
            _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer)
            _run("ip", "link", "set", peer, "netns", netns)
            _run("ip", "link", "set", host_if, "master", self.bridge, "up")
        ns = ["ip", "-n", netns]
        _run(*ns, "link", "set", peer, "name", "eth0")
        _run(*ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        if self.ipv6:
            _run(*ns, "-6", "addr", "add", f"{self.v6(host)}/64", "dev", "eth0", "nodad")
        _run(*ns, "link", "set", "eth0", "up")
        _run(*ns, "link", "set", "lo", "up")
        _run(*ns, "route", "add", "default", "via", self.host_ip)
        pod = Pod(
            node=self,
            name=name,
            namespace=namespace,
            netns=netns,
            ip=ip,
            host_if=host_if,
            labels=dict(labels or {}),
            uid=f"{self.tag}-{idx}",
            owner=owner,
        )
        self.pods[name] = pod
        return pod

    def remove_pod(self, pod: Pod) -> None:
        """Delete a pod and its namespace (its veth goes with it)."""
        pod.stop()
        with _lock():
            _kill_netns(pod.netns)
            _run("ip", "link", "del", pod.host_if, check=False)
            self._netns.remove(pod.netns)
            self._links.remove(pod.host_if)
            self._save()
        self.pods.pop(pod.name, None)

    def restart_pod(self, pod: Pod) -> Pod:
        """The pod comes back as a fresh sandbox with a new IP (same name, labels)."""
        self.remove_pod(pod)
        return self.add_pod(pod.name, pod.namespace, pod.labels, pod.owner)

    def pod_object(self, pod: Pod, host_network: bool = False) -> dict[str, Any]:
        """The Kubernetes Pod object for a pod of this node, as the API server serves it."""
        meta: dict[str, Any] = {
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": pod.uid,
            "labels": dict(pod.labels),
        }
        if pod.owner:
            kind, oname = pod.owner
            meta["ownerReferences"] = [
                {"apiVersion": "apps/v1", "kind": kind, "name": oname, "uid": f"u-{oname}",
                 "controller": True}
            ]  # fmt: skip
        ips = [{"ip": pod.ip}]
        if self.ipv6 and not host_network:
            ips.append({"ip": self.v6(int(ipaddress.ip_address(pod.ip)) & 0xFF)})
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": {
                "nodeName": self.name,
                "hostNetwork": host_network,
                "containers": [{"name": "main", "image": "example/main:1"}],
            },
            "status": {
                "phase": "Running",
                "podIP": self.host_ip if host_network else pod.ip,
                "podIPs": [{"ip": self.host_ip}] if host_network else ips,
                "hostIP": self.host_ip,
            },
        }

    def pod_ip6(self, pod: Pod) -> str:
        return self.v6(int(ipaddress.ip_address(pod.ip)) & 0xFF)


def describe(node: TestNode, pods: Sequence[Pod]) -> str:
    """A short human description of a node (for scripts/node.py)."""
    lines = [f"node {node.name}: bridge {node.bridge} {node.host_ip} ({node.network})"]
    for p in pods:
        lines.append(f"  pod {p.namespace}/{p.name} {p.ip} netns {p.netns} labels {p.labels}")
    return "\n".join(lines)
