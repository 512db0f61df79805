"""Hub settings: environment (``KUBEWEIR_HUB_*``) over an optional YAML file, cached."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.auth.config import AuthSettings

__all__ = ["Settings", "ViewerTokenConfig", "get_settings", "load_settings"]

PERMISSIONS = ("view-bodies", "download-pcap", "admin")


class ViewerTokenConfig(BaseModel):
    """A configured viewer API token: who it is and what it may see."""

    name: str
    namespaces: list[str] = Field(default_factory=lambda: ["*"])
    """Namespace globs (``*`` and ``?``); an entry is visible when its source or
    destination namespace matches one."""
    permissions: list[str] = Field(default_factory=list)
    """Among ``view-bodies``, ``download-pcap``, ``admin``."""


class Settings(BaseSettings):
    """Everything the hub can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="KUBEWEIR_HUB_", env_nested_delimiter="__", extra="ignore"
    )

    db: str = "kubeweir.duckdb"
    """DuckDB file, or ``:memory:``."""
    db_memory_limit: str | None = "1GiB"
    """DuckDB's memory limit (it spills to disk beyond it); None for DuckDB's default."""
    db_checkpoint_threshold: str | None = "256MB"
    """WAL size that triggers a checkpoint (DuckDB's default is 16MB)."""
    ingest_token: SecretStr | None = None
    """Shared sniffer credential (standalone / until TokenReview)."""
    viewer_tokens: dict[str, ViewerTokenConfig] = Field(default_factory=dict)
    """token -> viewer."""
    secret_key: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_urlsafe(32)))
    """Signs cursors and session cookies; random per process when unset."""
    cookie_secure: bool = True
    session_max_age: int = 12 * 3600

    max_batch_bytes: int = 16 * 1024 * 1024
    """Largest ingest request body as sent (possibly compressed)."""
    max_decompressed_bytes: int = 64 * 1024 * 1024
    """Largest ingest body after decompression."""
    max_batch_entries: int = 50_000
    ingest_workers: int | None = Field(default=None, ge=0)
    """Processes that decompress, decode and convert ingest batches beside the hub's own
    (which then only serves HTTP and writes); 0: in the hub process; None: one per CPU
    the hub may use (affinity and cgroup CPU limit) when there is more than one, at most
    4, else 0."""
    ingest_pool_min_concurrent: int = Field(default=2, ge=1)
    """The workers convert a batch only while at least this many are being ingested at
    once (a burst); a batch arriving alone is converted in the hub process, at less CPU
    (see ``hub.ingest.ConversionPool``). 1: every batch in a worker."""
    dedupe_window: float = 300.0
    """Seconds either side of a batch's time range in which ids are checked for duplicates
    (covers clock skew between nodes and resends from a sniffer's spool)."""

    retention_max_age: float | None = 7 * 24 * 3600.0
    """Seconds; None keeps entries regardless of age."""
    retention_max_bytes: int | None = 20 * 1024**3
    """Storage size; None for no size limit."""
    retention_interval: float = 30.0

    page_max: int = 1000
    export_max: int = 10_000
    stream_queue: int = 1000
    """Entries buffered per live client before it is told it missed some."""

    enrich: bool = False
    """Watch pods, services and endpoint slices to enrich endpoints (needs a cluster)."""
    kubeconfig: str | None = None
    """Kubeconfig path; in-cluster config when unset."""
    sniffer_service_accounts: list[str] = Field(default_factory=list)
    """ServiceAccounts (``namespace/name``) whose projected tokens sniffers may present,
    checked by TokenReview (``hub.core.sniffer_auth``); empty: the ingest token only."""
    sniffer_token_audience: str = "kubeweir"

    auth: AuthSettings = Field(default_factory=AuthSettings)
    """Viewer login (SAML), roles or Kubernetes RBAC, issued API tokens, rate limits."""

    front_dist: Path | None = None
    """Built dashboard; defaults to ``front/dist`` next to the package."""


def load_settings(config: Path | str | None = None, **overrides: Any) -> Settings:
    """Settings from a YAML file (if given), the environment and explicit overrides.

    Precedence: overrides > environment > file > defaults.
    """
    file_values: dict[str, Any] = {}
    if config is not None:
        loaded = yaml.safe_load(Path(config).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config}: the hub config must be a YAML mapping")
        file_values = loaded
    from_env = Settings()
    env_values = {k: getattr(from_env, k) for k in from_env.model_fields_set}
    return Settings(**{**file_values, **env_values, **overrides})


@lru_cache
def get_settings() -> Settings:
    """The process's settings (``KUBEWEIR_HUB_CONFIG`` names the YAML file)."""
    return load_settings(os.environ.get("KUBEWEIR_HUB_CONFIG"))
