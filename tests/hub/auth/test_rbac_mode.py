"""``authz: kubernetes``: a SAML user sees the namespaces where ordinary Roles and
RoleBindings let them ``get`` ``traffic`` in ``kubeweir.io`` (SubjectAccessReviews against
the emulated API server, which evaluates the stored RBAC objects)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from hub.auth.config import AuthSettings
from hub.auth.rbac import RbacAuthorizer
from hub.core.config import Settings
from hub.main import create_app
from kubeweir.entry import encode_batch
from kubeweir.testing import make_http_entry
from sniffer.testing.kube import KubeAPI
from tests.hub.auth.conftest import make_pair
from tests.hub.auth.test_hub_auth import BASE, INGEST, Hub, saml_login

RBAC = "/apis/rbac.authorization.k8s.io/v1"
# kmock can't serve the cluster-scoped collection /api/v1/namespaces (its path parser
# reads "namespaces" as the namespace prefix), so the authorizer is handed the list the
# API server would return; the SubjectAccessReviews are real requests.
NAMESPACES = ["shop", "payments", "other"]


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[KubeAPI, k8s.ApiClient]]:
    with KubeAPI() as api:
        api.create(f"{RBAC}/clusterroles", {
            "metadata": {"name": "kubeweir-traffic-viewer"},
            "rules": [{"apiGroups": ["kubeweir.io"], "resources": ["traffic"], "verbs": ["get"]}],
        })  # fmt: skip
        api.create(f"{RBAC}/namespaces/payments/roles", {
            "metadata": {"name": "pcap", "namespace": "payments"},
            "rules": [{"apiGroups": ["kubeweir.io"], "resources": ["traffic/pcap"],
                       "verbs": ["get"]}],
        })  # fmt: skip
        # The payments on-call group may see payments (and download its PCAP)...
        api.create(f"{RBAC}/namespaces/payments/rolebindings", {
            "metadata": {"name": "oncall-traffic", "namespace": "payments"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "kubeweir-traffic-viewer"},
            "subjects": [{"kind": "Group", "name": "payments-oncall"}],
        })  # fmt: skip
        api.create(f"{RBAC}/namespaces/payments/rolebindings", {
            "metadata": {"name": "oncall-pcap", "namespace": "payments"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pcap"},
            "subjects": [{"kind": "Group", "name": "payments-oncall"}],
        })  # fmt: skip
        # ...and a Role for something else in shop grants nothing here.
        api.create(f"{RBAC}/namespaces/shop/roles", {
            "metadata": {"name": "pods", "namespace": "shop"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        })  # fmt: skip
        api.create(f"{RBAC}/namespaces/shop/rolebindings", {
            "metadata": {"name": "oncall-pods", "namespace": "shop"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods"},
            "subjects": [{"kind": "Group", "name": "payments-oncall"}],
        })  # fmt: skip
        cfg = k8s.Configuration()
        k8s_config.load_kube_config(
            str(api.write_kubeconfig(tmp_path / "kubeconfig")), client_configuration=cfg
        )
        yield api, k8s.ApiClient(cfg)


def test_authorizer_asks_per_namespace(kube: tuple[KubeAPI, k8s.ApiClient]) -> None:
    _, api_client = kube
    authz = RbacAuthorizer(api_client, ttl=30, namespaces=lambda: NAMESPACES)
    d = authz.decide("alice", ("payments-oncall",))
    assert d.namespaces == ("payments",) and d.pcap_namespaces == ("payments",)
    assert authz.decide("bob", ("devs",)).namespaces == ()


def test_api_server_failure_denies(tmp_path: Path) -> None:
    cfg = k8s.Configuration(host="http://127.0.0.1:9")  # nothing listens there
    d = RbacAuthorizer(k8s.ApiClient(cfg)).decide("alice", ("payments-oncall",))
    assert d.namespaces == () and d.error


def test_hub_in_rbac_mode_shows_exactly_the_granted_namespace(
    kube: tuple[KubeAPI, k8s.ApiClient], tmp_path: Path
) -> None:
    api, api_client = kube
    pair = make_pair(tmp_path, public_url=BASE)
    settings = Settings(
        db=":memory:", ingest_token="ingest-secret", secret_key="k" * 32,
        retention_max_age=None, retention_max_bytes=None,
        kubeconfig=str(api.write_kubeconfig(tmp_path / "hub-kubeconfig")),
        auth=AuthSettings(authz="kubernetes", saml=pair.settings.model_copy(
            update={"public_url": BASE})),
    )  # type: ignore[arg-type]  # fmt: skip
    app = create_app(settings)
    with TestClient(app, base_url=BASE) as c:
        # the app's authorizer talks to the emulated API server (see NAMESPACES)
        app.state.auth.rbac._namespaces = lambda: NAMESPACES
        batch = [make_http_entry(path=f"/{ns}", src_ns=ns, dst_ns=ns)
                 for ns in ("shop", "payments", "other")]  # fmt: skip
        assert c.post("/api/v1/ingest", content=encode_batch(batch), headers=INGEST).is_success
        hub = Hub(app, pair, c, {})
        alice = saml_login(hub, "alice", ("payments-oncall",))
        me = alice.get("/api/v1/whoami").json()
        assert me["namespaces"] == ["payments"] and "download-pcap" in me["permissions"]
        paths = [e["request"]["path"] for e in alice.get("/api/v1/entries").json()["entries"]]
        assert paths == ["/payments"]
        assert alice.get("/api/v1/export.pcap").status_code == 200
        bob = saml_login(hub, "bob", ("devs",))
        assert bob.get("/api/v1/entries").status_code == 403
