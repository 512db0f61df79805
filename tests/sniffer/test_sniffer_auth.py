"""Sniffer identity at the hub: projected ServiceAccount tokens checked by TokenReview
(kmock as the API server), next to the shared ingest token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.core.config import Settings
from hub.main import create_app
from kubeweir.entry import Endpoint, Entry, encode_batch, tcp_entry_id
from sniffer.testing.kube import KubeAPI, ServiceAccountToken


def _batch(i: int) -> bytes:
    e = Entry(
        id=tcp_entry_id(i, i + 1, 40000, 0),
        ts=time.time(),
        proto="http",
        src=Endpoint(ip="10.244.1.2", port=40000),
        dst=Endpoint(ip="10.244.1.3", port=80),
        request={"method": "GET", "path": "/"},
    )
    return encode_batch([e], sniffer="node-a")


@pytest.fixture
def kube() -> Iterator[KubeAPI]:
    with KubeAPI() as api:
        api.add_token(ServiceAccountToken("sniffer-tok", "kubeweir", "kubeweir-sniffer",
                                          ["kubeweir"]))  # fmt: skip
        api.add_token(ServiceAccountToken("other-tok", "shop", "default", ["kubeweir"]))
        api.add_token(ServiceAccountToken("apiserver-tok", "kubeweir", "kubeweir-sniffer",
                                          ["https://kubernetes.default.svc"]))  # fmt: skip
        yield api


@pytest.fixture
def client(kube: KubeAPI, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        db=":memory:",
        ingest_token="shared-secret",  # type: ignore[arg-type]
        kubeconfig=str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
        sniffer_service_accounts=["kubeweir/kubeweir-sniffer"],
        retention_max_age=None,
        retention_max_bytes=None,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _post(client: TestClient, token: str, i: int = 1) -> int:
    r = client.post("/api/v1/ingest", content=_batch(i),
                    headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    return r.status_code


def test_sniffer_service_account_token_accepted(client: TestClient, kube: KubeAPI) -> None:
    assert _post(client, "sniffer-tok", 1) == 200
    assert _post(client, "sniffer-tok", 2) == 200
    assert kube.emulator is not None
    reviews = kube.emulator.reviews
    assert len(reviews) == 1  # cached: no API round trip per batch
    assert reviews[0]["token"] == "sniffer-tok" and reviews[0]["audiences"] == ["kubeweir"]


def test_other_service_account_is_forbidden(client: TestClient) -> None:
    # a valid token, but not a sniffer's: refused (the hub answers 401 or 403 per contract)
    assert _post(client, "other-tok") in (401, 403)


def test_invalid_or_wrong_audience_token_is_unauthorized(client: TestClient) -> None:
    assert _post(client, "forged") == 401
    assert _post(client, "apiserver-tok") == 401  # a token for another audience


def test_shared_token_still_works_and_none_is_401(client: TestClient) -> None:
    assert _post(client, "shared-secret") == 200
    assert client.post("/api/v1/ingest", content=_batch(3)).status_code == 401


def test_api_server_down_is_503_not_cached(tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: x, user: u}}]\n"
        "current-context: x\n"
    )
    settings = Settings(db=":memory:", kubeconfig=str(kc),
                        sniffer_service_accounts=["kubeweir/kubeweir-sniffer"],
                        retention_max_age=None, retention_max_bytes=None)  # fmt: skip
    with TestClient(create_app(settings)) as c:
        assert _post(c, "sniffer-tok") == 503
