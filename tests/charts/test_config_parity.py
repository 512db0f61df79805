"""Every setting the chart sets is a setting of the programs: each container's flags are
options of its command, each KUBEWEIR_* variable a field of its settings model, and each
config file the chart writes is accepted by the program's own parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from tests.charts.conftest import load_values, render


def _configmap_file(docs: list[dict[str, Any]], name_part: str, key: str) -> str:
    for d in docs:
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith(name_part):
            return str(d["data"][key])
    raise AssertionError(f"no ConfigMap *{name_part} with {key}")


def _container(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    wl = next(d for d in docs if d["kind"] == kind)
    return dict(wl["spec"]["template"]["spec"]["containers"][0])


def _check_flags(command: click.Command, args: list[str]) -> None:
    known = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for arg in args:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            assert flag in known, f"{command.name}: the chart passes {flag}, not an option"


def _check_env(container: dict[str, Any], prefix: str, fields: set[str]) -> None:
    for env in container.get("env", []):
        name = env["name"]
        assert name.startswith(prefix), name
        assert name[len(prefix) :].lower() in fields, f"{name} is no setting ({prefix}*)"


def _check_keys(data: dict[str, Any], model: Any, where: str) -> None:
    """Every key is a field of the pydantic model (recursively for nested models)."""
    for key, value in data.items():
        assert key in model.model_fields, f"{where}{key} is not a setting of {model.__name__}"
        ann = model.model_fields[key].annotation
        if getattr(ann, "__origin__", None) is dict:
            continue  # free-form keys (role names, group names)
        for sub in (ann, *getattr(ann, "__args__", ())):
            if isinstance(sub, type) and hasattr(sub, "model_fields") and isinstance(value, dict):
                _check_keys(value, sub, f"{where}{key}.")


@pytest.mark.parametrize("values_name", ["default", "production", "airgapped"])
def test_hub_settings_parity(values_name: str, tmp_path: Path) -> None:
    from hub.cli import hub
    from hub.core.config import Settings, load_settings

    docs = render(load_values(values_name))
    container = _container(docs, "Deployment")
    assert container["args"][0] == "hub"
    _check_flags(hub, container["args"][1:])
    _check_env(container, "KUBEWEIR_HUB_", set(Settings.model_fields))
    text = _configmap_file(docs, "-hub", "hub.yaml")
    data = yaml.safe_load(text)
    _check_keys(data, Settings, "hub.yaml: ")
    saml = data.get("auth", {}).get("saml")
    if saml:  # the key files are mounted from a Secret in the cluster
        for key in ("sp_key_file", "sp_cert_file", "idp_metadata_file"):
            saml.pop(key, None)
        pytest.importorskip("hub.auth.config").SamlSettings.model_validate(
            {**saml, "sp_key_file": "k", "sp_cert_file": "c"}
        )
        data["auth"].pop("saml")
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(yaml.safe_dump(data))
    settings = load_settings(cfg)
    assert settings.db == "/data/kubeweir.duckdb"
    [account] = settings.sniffer_service_accounts
    assert account.endswith("-sniffer"), "sniffers authenticate with their ServiceAccount"


@pytest.mark.parametrize("values_name", ["default", "production", "airgapped"])
def test_sniffer_settings_parity(values_name: str) -> None:
    from redaction import parse_config
    from sniffer.agent import sniff
    from sniffer.settings import SnifferSettings
    from sniffer.targeting import Rules

    docs = render(load_values(values_name))
    container = _container(docs, "DaemonSet")
    assert container["args"][0] == "sniff"
    _check_flags(sniff, container["args"][1:])
    _check_env(container, "KUBEWEIR_SNIFFER_", set(SnifferSettings.model_fields))
    Rules.from_mapping(yaml.safe_load(_configmap_file(docs, "-sniffer", "targeting.yaml")))
    parse_config(yaml.safe_load(_configmap_file(docs, "-sniffer", "redaction.yaml")))
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for arg in container["args"]:
        if "=/" in arg:
            path = arg.split("=", 1)[1]
            assert any(path.startswith(m) for m in mounts), f"{arg}: not on a mounted volume"
