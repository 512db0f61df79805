"""The chart renders, lints strict, validates against Kubernetes schemas, and follows
the security policy a security team reviews before installing it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.charts.conftest import CHART, containers, load_values, render

# Kinds from CRDs (Prometheus operator, OpenShift) have no schema in kubernetes-validate.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "SecurityContextConstraints"}
SNIFFER_CAPS = {"NET_RAW", "NET_ADMIN", "BPF", "PERFMON"}
TLS_CAPS = {"SYS_PTRACE", "SYS_ADMIN"}


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return [d["kind"] for d in docs]


def one(docs: list[dict[str, Any]], kind: str, name_part: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name_part in d["metadata"]["name"]]
    assert len(found) == 1, f"expected one {kind} *{name_part}*, got {len(found)}"
    return found[0]


@pytest.mark.parametrize("name", ["default", "production", "airgapped"])
def test_lint_strict_is_clean(name: str) -> None:
    helm = pytest.importorskip("helm_python")
    report = helm.lint(CHART, load_values(name), strict=True, namespace="kubeweir")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def test_manifests_validate_for_every_kubernetes_version(rendered: Any) -> None:
    kv = pytest.importorskip("kubernetes_validate.utils")
    known = sorted(set(kv.all_versions()))
    versions = [v for v in known if tuple(map(int, v.split(".")[:2])) >= (1, 28)]
    assert versions, "kubernetes-validate knows no version >= 1.28"
    _, _, docs = rendered
    for version in versions:
        for doc in docs:
            if doc["kind"] in CRD_KINDS:
                continue
            kv.validate(doc, version, strict=True)


def test_expected_objects_are_rendered(rendered: Any) -> None:
    name, values, docs = rendered
    k = kinds(docs)
    for kind in ("Deployment", "DaemonSet", "Service", "PersistentVolumeClaim", "ConfigMap"):
        assert kind in k
    assert k.count("ServiceAccount") == 2, "one ServiceAccount per component"
    assert k.count("NetworkPolicy") == 2, "NetworkPolicies for hub and sniffer"
    one(docs, "ClusterRole", "traffic-viewer")
    if name == "production":
        assert {"Ingress", "ServiceMonitor", "PrometheusRule", "Namespace"} <= set(k)
        ing = one(docs, "Ingress")
        assert ing["spec"]["tls"][0]["secretName"] == "kubeweir-ingress-tls"
        assert "nginx.ingress.kubernetes.io/proxy-read-timeout" in ing["metadata"]["annotations"]
        hub_ns = next(
            d for d in docs if d["kind"] == "Namespace" and d["metadata"]["name"] == "kubeweir"
        )
        assert hub_ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    if name == "airgapped":
        assert "SecurityContextConstraints" in k


def test_no_privileged_container_by_default() -> None:
    for _, c in containers(render()):
        sc = c.get("securityContext", {})
        assert not sc.get("privileged"), c["name"]
        assert not sc.get("allowPrivilegeEscalation"), c["name"]


def test_containers_are_locked_down(rendered: Any) -> None:
    _, values, docs = rendered
    tls = values.get("sniffer", {}).get("tls", False)
    for workload, c in containers(docs):
        sc = c["securityContext"]
        assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        added = set(sc["capabilities"].get("add", []))
        if c["name"] == "sniffer":
            assert added == SNIFFER_CAPS | (TLS_CAPS if tls else set()), added
            assert workload["spec"]["template"]["spec"]["hostNetwork"] is True
        else:
            assert not added, f"{c['name']} adds {added}"
            assert sc["runAsNonRoot"] is True


def test_tls_capture_adds_only_its_capabilities() -> None:
    docs = render({"sniffer": {"tls": True}})
    ds = one(docs, "DaemonSet")
    sc = ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    added = set(sc["capabilities"]["add"])
    assert added == SNIFFER_CAPS | TLS_CAPS


def test_roles_have_no_wildcards_and_exact_verbs(rendered: Any) -> None:
    _, _, docs = rendered
    for d in docs:
        if d["kind"] not in ("ClusterRole", "Role"):
            continue
        for rule in d["rules"]:
            for key in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule.get(key, []), (d["metadata"]["name"], rule)
    sniffer = one(docs, "ClusterRole", "-sniffer")
    pods_read = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    assert sniffer["rules"] == [pods_read]
    hub = one(docs, "ClusterRole", "-hub")
    creates = {r for rule in hub["rules"] if rule["verbs"] == ["create"] for r in rule["resources"]}
    assert creates == {"tokenreviews", "subjectaccessreviews"}
    allowed = {"get", "list", "watch", "create"}
    writes = [rule for rule in hub["rules"] if set(rule["verbs"]) - allowed]
    assert not writes


def test_every_image_comes_from_the_configured_registry() -> None:
    values = load_values("airgapped")
    for _, c in containers(render(values)):
        assert c["image"].startswith("registry.airgap.internal:5000/"), c["image"]
        assert c["image"].endswith(":0.1.0"), "tags pinned to the chart's appVersion"


def test_airgapped_install_fetches_nothing(rendered: Any) -> None:
    """No init container or sidecar, and no URL to the outside world in any manifest."""
    _, _, docs = rendered
    for d in docs:
        spec = d.get("spec", {}).get("template", {}).get("spec", {})
        assert not spec.get("initContainers"), d["metadata"]["name"]
        assert len(spec.get("containers", [])) <= 1, d["metadata"]["name"]
    text = str(docs)
    urls = re.findall(r"https?://[^\s'\"]+", text)
    for url in urls:
        host = re.sub(r"^https?://", "", url).split("/")[0].split(":")[0]
        assert host.endswith((".svc", ".internal", ".local")) or host == "localhost", url


def test_sniffer_token_is_projected_for_the_hub_audience() -> None:
    ds = one(render(), "DaemonSet")
    vols = ds["spec"]["template"]["spec"]["volumes"]
    projected = [v for v in vols if "projected" in v]
    sat = projected[0]["projected"]["sources"][0]["serviceAccountToken"]
    assert sat["audience"] == "kubeweir"
    spool = [v for v in vols if v["name"] == "spool"][0]
    assert spool["hostPath"]["path"]
    args = ds["spec"]["template"]["spec"]["containers"][0]["args"]
    assert any(a.startswith("--spool-max-bytes=") for a in args)


def component(peer: dict[str, Any]) -> str | None:
    labels = peer.get("podSelector", {}).get("matchLabels", {})
    return labels.get("app.kubernetes.io/component")


def namespace_name(peer: dict[str, Any]) -> str | None:
    labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
    return labels.get("kubernetes.io/metadata.name")


def test_network_policies_confine_both_components() -> None:
    docs = render(load_values("production"))
    hub = one(docs, "NetworkPolicy", "-hub")
    assert set(hub["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    sources = hub["spec"]["ingress"][0]["from"]
    assert any(component(s) == "sniffer" for s in sources)
    assert any(namespace_name(s) == "ingress-nginx" for s in sources)
    sniffer = one(docs, "NetworkPolicy", "-sniffer")
    egress_targets = [t for rule in sniffer["spec"]["egress"] for t in rule["to"]]
    assert any(component(t) == "hub" for t in egress_targets)
    cidrs = {t["ipBlock"]["cidr"] for t in egress_targets if "ipBlock" in t}
    assert cidrs == {"10.96.0.1/32", "192.168.10.0/24"}, "API server only"


def test_schema_rejects_unknown_and_invalid_values() -> None:
    helm = pytest.importorskip("helm_python")
    chart = helm.Chart.load(CHART)
    for bad in (
        {"sniffer": {"capture": "pcap-over-http"}},
        {"hub": {"replicas": 3}},
        {"telemetry": {"enabled": True}},
        {"auth": {"authz": "anyone"}},
    ):
        with pytest.raises(helm.HelmError):
            chart.render(bad, name="kw", namespace="kubeweir")
