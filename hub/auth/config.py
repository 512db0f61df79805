"""Settings of viewer authentication and authorization (the ``auth`` section of the hub)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AuthSettings", "Permission", "RoleConfig", "SamlSettings", "PERMISSIONS"]

Permission = Literal["view-bodies", "download-pcap", "export", "admin"]
PERMISSIONS: tuple[str, ...] = ("view-bodies", "download-pcap", "export", "admin")


class RoleConfig(BaseModel):
    """A role: the namespaces it may see (globs) and what it may do there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespaces: list[str]
    permissions: list[Permission] = Field(default_factory=list)


class SamlSettings(BaseModel):
    """The SAML 2.0 service provider (python3-saml) and the IdP it trusts."""

    model_config = ConfigDict(extra="forbid")

    public_url: str
    """The URL viewers reach the hub at (``https://kubeweir.corp``); ACS and SLO are
    below it, and it is what the IdP's Destination/Recipient must name."""
    sp_entity_id: str = ""
    """Defaults to ``{public_url}/saml/metadata``."""
    sp_key_file: Path
    sp_cert_file: Path
    idp_metadata_file: Path | None = None
    idp_metadata_url: str | None = None
    """An in-cluster URL (the hub never reaches outside the cluster)."""
    groups_attribute: str = "groups"
    name_attribute: str = ""
    """Attribute naming the user; the NameID when empty."""
    clock_skew: int = 90
    """Seconds of clock difference tolerated on NotBefore/NotOnOrAfter."""

    @field_validator("public_url")
    @classmethod
    def _https(cls, v: str) -> str:
        v = v.rstrip("/")
        if not v.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("public_url must be https:// (plain http only on loopback)")
        return v


class AuthSettings(BaseModel):
    """Who may see what: roles or Kubernetes RBAC, SAML, tokens, sessions, rate limits."""

    model_config = ConfigDict(extra="forbid")

    authz: Literal["roles", "kubernetes"] = "roles"
    roles: dict[str, RoleConfig] = Field(default_factory=dict)
    group_roles: dict[str, list[str]] = Field(default_factory=dict)
    """IdP group -> role names."""
    saml: SamlSettings | None = None
    token_max_lifetime: float = 30 * 24 * 3600.0
    session_idle_timeout: float = 3600.0
    session_absolute_timeout: float = 12 * 3600.0
    rbac_cache_ttl: float = 30.0
    rbac_resource: str = "traffic"
    rbac_group: str = "kubeweir.io"
    failed_login_limit: int = 10
    """Failed logins / token checks allowed per source address and per user..."""
    failed_login_window: float = 300.0
    """...in this many seconds, before answers become 429 with Retry-After."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses (CIDRs) whose X-Forwarded-For/-Proto are believed."""

    @field_validator("group_roles")
    @classmethod
    def _roles_exist(cls, v: dict[str, list[str]], info: object) -> dict[str, list[str]]:
        roles = getattr(info, "data", {}).get("roles", {})
        for group, names in v.items():
            missing = [n for n in names if n not in roles]
            if missing:
                raise ValueError(f"group {group!r} maps to unknown role(s) {missing}")
        return v
