"""``GET``/``PUT /api/v1/targeting`` and the rules in the heartbeat answer."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from hub.main import create_app
from tests.hub.conftest import ADMIN, BOB, INGEST, hub_settings

RULES = {
    "namespaces": ["shop", "payments"],
    "excludedNamespaces": ["kube-system"],
    "podRegex": "^(orders|checkout)-",
    "labelSelector": "app=web,tier in (api,db)",
}


def test_no_rules_until_an_admin_sets_them(client: TestClient) -> None:
    r = client.get("/api/v1/targeting", headers=BOB)
    assert r.status_code == 200
    assert r.json()["version"] == 0 and r.json()["rules"] is None
    hb = client.post("/api/v1/sniffers/heartbeat", json={"node": "n1"}, headers=INGEST)
    assert hb.json()["targeting_version"] == 0 and hb.json()["targeting"] is None


def test_admin_sets_rules_and_heartbeat_carries_them(client: TestClient) -> None:
    r = client.put("/api/v1/targeting", json=RULES, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1 and r.json()["rules"] == RULES
    assert r.json()["updated_by"] == "admin"
    got = client.get("/api/v1/targeting", headers=BOB).json()
    assert got["version"] == 1 and got["rules"] == RULES
    hb = client.post("/api/v1/sniffers/heartbeat", json={"node": "n1"}, headers=INGEST).json()
    assert hb["targeting_version"] == 1 and hb["targeting"] == RULES
    # a second change bumps the version; missing keys come back in canonical form
    r = client.put("/api/v1/targeting", json={"namespaces": "shop"}, headers=ADMIN)
    assert r.json()["version"] == 2
    assert r.json()["rules"] == {
        "namespaces": ["shop"],
        "excludedNamespaces": [],
        "podRegex": "",
        "labelSelector": "",
    }
    # the change is audited with who, what and the version
    records = client.get("/api/v1/audit?action=targeting.set", headers=ADMIN).json()["records"]
    assert [r["detail"]["version"] for r in records] == [2, 1]
    assert records[1]["actor"] == "admin" and records[1]["detail"]["rules"] == RULES


def test_non_admin_is_refused(client: TestClient) -> None:
    r = client.put("/api/v1/targeting", json=RULES, headers=BOB)
    assert r.status_code == 403
    assert "admin" in r.json()["detail"]
    assert client.get("/api/v1/targeting", headers=BOB).json()["version"] == 0
    assert client.put("/api/v1/targeting", json=RULES).status_code == 401


def test_bad_rules_get_400_with_the_reason(client: TestClient) -> None:
    cases = {
        "podRegex": ({"podRegex": "(unclosed"}, "podRegex"),
        "selector": ({"labelSelector": "app in ()"}, "needs at least one value"),
        "unknown": ({"nameSpaces": ["x"]}, "unknown targeting keys"),
        "type": ({"namespaces": [1, 2]}, "namespaces must be a list of names"),
    }
    for body, reason in cases.values():
        r = client.put("/api/v1/targeting", json=body, headers=ADMIN)
        assert r.status_code == 400, body
        assert reason in r.json()["detail"], r.json()
    r = client.put("/api/v1/targeting", json=["not", "a", "mapping"], headers=ADMIN)
    assert r.status_code == 400 and "JSON object" in r.json()["detail"]
    assert client.get("/api/v1/targeting", headers=ADMIN).json()["version"] == 0
    records = client.get("/api/v1/audit?action=targeting.set", headers=ADMIN).json()["records"]
    assert len(records) == 5 and all(r["result"] == "invalid" for r in records)


def test_session_needs_the_csrf_header() -> None:
    app = create_app(hub_settings())
    with TestClient(app) as browser:
        r = browser.get("/auth/token-login?token=admin-token&next=/", follow_redirects=False)
        assert r.status_code in (302, 303, 307)
        csrf = browser.get("/api/v1/whoami").json()["csrf"]
        assert csrf
        assert browser.put("/api/v1/targeting", json=RULES).status_code == 403
        r = browser.put("/api/v1/targeting", json=RULES, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text


def test_rules_survive_a_restart(tmp_path: Path) -> None:
    settings = hub_settings(db=str(tmp_path / "hub.duckdb"))
    with TestClient(create_app(settings)) as c:
        assert c.put("/api/v1/targeting", json=RULES, headers=ADMIN).status_code == 200
        assert c.put("/api/v1/targeting", json=RULES, headers=ADMIN).json()["version"] == 2
    with TestClient(create_app(settings)) as c:
        got = c.get("/api/v1/targeting", headers=ADMIN).json()
        assert got["version"] == 2 and got["rules"] == RULES and got["updated_by"] == "admin"
        assert c.put("/api/v1/targeting", json={}, headers=ADMIN).json()["version"] == 3
