"""Settings of the node agent (``kubeweir sniff``): environment ``KUBEWEIR_SNIFFER_*``,
overridden by command-line flags."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SnifferSettings", "get_settings"]


def _default_node() -> str:
    return os.environ.get("NODE_NAME") or socket.gethostname()


class SnifferSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBEWEIR_SNIFFER_", extra="forbid")

    hub: str = "https://127.0.0.1:8443"
    """Base URL of the hub (``https://...``)."""
    ca_file: Path | None = None
    """CA bundle that signed the hub's certificate (default: the system store)."""
    token: SecretStr | None = None
    """Shared ingest token (standalone mode)."""
    token_file: Path | None = None
    """File holding the bearer token: the projected ServiceAccount token in a cluster
    (re-read when the kubelet rotates it)."""
    node: str = Field(default_factory=_default_node)
    """This node's name: only its pods are watched (``spec.nodeName``)."""
    targeting: Path | None = None
    """YAML targeting rules (namespaces, excludedNamespaces, podRegex, labelSelector);
    re-read when it changes. None: every pod of the node."""
    capture: Literal["afpacket", "ebpf", "auto"] = "auto"
    interface: str = "any"
    ring_mb: int = Field(default=64, ge=2, le=4096)
    """Size of the kernel receive ring: absorbs bursts the parser can't keep up with."""
    spool_dir: Path = Path("/var/lib/kubeweir/spool")
    spool_max_bytes: int = Field(default=256 << 20, ge=1 << 20)
    kubeconfig: Path | None = None
    in_cluster: bool = False
    """Use the pod's ServiceAccount to watch pods (when running as the DaemonSet)."""
    listen: str = "0.0.0.0:9090"
    """host:port of /healthz, /readyz and /metrics."""
    heartbeat_interval: float = Field(default=10.0, gt=0)
    batch_entries: int = Field(default=5000, ge=1)
    """Entries per batch at most (a batch is also sealed after ``batch_age`` seconds). The
    hub's cost per batch is large: at 15,000 req/s its CPU per entry was ~2.5x lower with
    batches of 5,000 than of 1,000 (BENCHMARKS.md, "Live capture")."""
    batch_age: float = Field(default=1.0, gt=0)
    port_hints: dict[int, str] = Field(default_factory=dict)
    redact: bool = True
    redaction_config: Path | None = None
    max_flows: int = Field(default=100_000, ge=1)
    workers: int = Field(default=1, ge=1, le=64)
    """Capture worker processes sharing the traffic by flow hash (PACKET_FANOUT_HASH);
    1 captures in the agent process itself."""
    tls: bool = False
    """Also read TLS plaintext from OpenSSL with eBPF uprobes (``sniffer.tls``)."""


@lru_cache
def get_settings() -> SnifferSettings:
    return SnifferSettings()
