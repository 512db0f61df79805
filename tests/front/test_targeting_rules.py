"""Targeting rules on the Status page: admins edit them (session + CSRF), others read."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from .conftest import INGEST_TOKEN, Hub, Shot

pytestmark = pytest.mark.browser


def _status(page: Page, hub: Hub, token: str) -> None:
    page.goto(hub.login_url(token, "/?view=status"))
    expect(page.get_by_test_id("targeting-rules")).to_be_visible()


def test_admin_edits_rules_and_sees_them(page: Page, hub: Hub, shot: Shot) -> None:
    _status(page, hub, "tok-erin")
    expect(page.get_by_test_id("rules-none")).to_be_visible()
    form = page.get_by_test_id("rules-form")
    # a bad rule: the hub's reason shown inline, nothing stored
    page.get_by_test_id("rules-input-podRegex").fill("(orders")
    page.get_by_test_id("rules-save").click()
    expect(page.get_by_test_id("rules-error")).to_contain_text("podRegex")
    shot(page, "targeting-rules-error")
    page.get_by_test_id("rules-input-namespaces").fill("shop, payments")
    page.get_by_test_id("rules-input-excludedNamespaces").fill("kube-system")
    page.get_by_test_id("rules-input-podRegex").fill("^(orders|checkout)-")
    page.get_by_test_id("rules-input-labelSelector").fill("app=web,tier in (api,db)")
    form.get_by_test_id("rules-save").click()
    expect(page.get_by_test_id("rules-saved")).to_be_visible()
    expect(page.get_by_test_id("rules-error")).to_have_count(0)
    expect(page.get_by_test_id("rules-namespaces")).to_have_text("shoppayments")
    expect(page.get_by_test_id("rules-podregex")).to_have_text("^(orders|checkout)-")
    expect(page.get_by_test_id("rules-version")).to_contain_text("1")
    shot(page, "targeting-rules-saved")
    # the hub stored them, and a sniffer's heartbeat answer carries them
    hb = httpx.post(f"{hub.url}/api/v1/sniffers/heartbeat", json={"node": "n1"},
                    headers={"Authorization": f"Bearer {INGEST_TOKEN}"}, timeout=10)  # fmt: skip
    assert hb.json()["targeting_version"] == 1
    assert hb.json()["targeting"] == {
        "namespaces": ["shop", "payments"],
        "excludedNamespaces": ["kube-system"],
        "podRegex": "^(orders|checkout)-",
        "labelSelector": "app=web,tier in (api,db)",
    }
    # a reload shows the stored rules in the form and the summary
    page.reload()
    expect(page.get_by_test_id("rules-selector")).to_have_text("app=web,tier in (api,db)")
    expect(page.get_by_test_id("rules-input-namespaces")).to_have_value("shop, payments")


def test_non_admin_sees_rules_but_no_form(page: Page, hub: Hub) -> None:
    r = httpx.put(f"{hub.url}/api/v1/targeting", json={"namespaces": ["shop"]},
                  headers={"Authorization": "Bearer tok-erin"}, timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    _status(page, hub, "tok-bob")
    expect(page.get_by_test_id("rules-namespaces")).to_have_text("shop")
    expect(page.get_by_test_id("rules-readonly")).to_be_visible()
    expect(page.get_by_test_id("rules-form")).to_have_count(0)
