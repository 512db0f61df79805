"""The dashboard in real Chromium against a real hub: live table, filters, detail,
service map, namespace scope, shareable URLs, and no request leaving the hub."""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import Hub, Shot
from .factories import call, secret_call

pytestmark = pytest.mark.browser


def login(page: Page, hub: Hub, token: str = "tok-alice", path: str = "/") -> None:
    page.goto(hub.login_url(token, path))
    expect(page.get_by_test_id("me")).to_be_visible()


def rows(page: Page) -> Locator:
    return page.get_by_test_id("row")


def row_count(page: Page) -> int:
    text = page.get_by_test_id("row-count").inner_text()
    return int(text.split()[0].replace(",", ""))


def test_table_fills_live_and_pauses_when_scrolled(page: Page, hub: Hub, shot: Shot) -> None:
    hub.heartbeat("node-1", targets=3, drops=0, spool_bytes=0)
    login(page, hub)
    expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "live")
    empty = page.get_by_test_id("empty")
    expect(empty).to_contain_text("No traffic yet")
    expect(empty).to_contain_text("3 pods are targeted on 1 node")
    shot(page, "traffic-empty")

    # Entries ingested while the page is open appear without a reload.
    hub.ingest([call("shop/web", "shop/orders", path=f"/api/orders/{i}") for i in range(40)])
    expect(page.get_by_test_id("row-count")).to_have_text("40 entries")
    first = rows(page).first
    expect(first).to_contain_text("shop/web-6d8f9-abcde")
    expect(first).to_contain_text("shop/orders-5c7b4-xyz12")
    expect(first).to_contain_text("GET /api/orders/39 → 200")

    # A burst of hundreds: all arrive, the table stays virtualized (few DOM rows).
    start = time.monotonic()
    for b in range(6):
        hub.ingest([call("shop/web", "shop/orders", path=f"/burst/{b}/{i}") for i in range(100)])
    expect(page.get_by_test_id("row-count")).to_have_text("640 entries", timeout=15_000)
    assert time.monotonic() - start < 15
    assert rows(page).count() < 80
    shot(page, "traffic-live")

    # Scrolled away from the top: the table holds still and counts what arrives.
    page.get_by_test_id("traffic-table").evaluate("el => { el.scrollTop = 600; }")
    expect(page.get_by_test_id("paused-banner")).to_be_visible()
    hub.ingest([call("shop/web", "shop/orders", path=f"/later/{i}") for i in range(7)])
    expect(page.get_by_test_id("paused-banner")).to_contain_text("7 new entries")
    assert row_count(page) == 640
    shot(page, "traffic-paused")
    page.get_by_test_id("paused-banner").click()
    expect(page.get_by_test_id("row-count")).to_have_text("647 entries")
    expect(page.get_by_test_id("paused-banner")).to_have_count(0)
    expect(rows(page).first).to_contain_text("/later/6")


def test_filter_narrows_validates_completes_and_remembers(page: Page, hub: Hub, shot: Shot) -> None:
    hub.ingest(
        [call("shop/web", "shop/orders", path=f"/ok/{i}") for i in range(12)]
        + [call("shop/web", "pay/ledger", path=f"/fail/{i}", status=503) for i in range(5)]
    )
    login(page, hub)
    expect(page.get_by_test_id("row-count")).to_have_text("17 entries")

    box = page.get_by_test_id("filter-input")
    box.fill("response.status >= 500")
    expect(page.get_by_test_id("filter-state")).to_have_attribute("data-state", "ok")
    box.press("Enter")
    expect(page.get_by_test_id("row-count")).to_have_text("5 entries")
    for i in range(5):
        expect(rows(page).nth(i)).to_contain_text("503")
    assert parse_qs(urlsplit(page.url).query)["q"] == ["response.status >= 500"]

    # Live entries are filtered by the hub too.
    hub.ingest(
        [
            call("shop/web", "shop/orders", path="/ok/late"),
            call("shop/web", "pay/ledger", path="/fail/late", status=500),
        ]
    )
    expect(page.get_by_test_id("row-count")).to_have_text("6 entries")
    expect(rows(page).first).to_contain_text("/fail/late")

    # A bad filter: the hub's error, at its position, and nothing applied.
    box.fill('response.status >= 500 && nosuchfield == "x"')
    err = page.get_by_test_id("filter-error")
    expect(err).to_be_visible()
    expect(err).to_contain_text("nosuchfield")
    expect(page.get_by_test_id("error-at")).to_have_text("n")
    expect(page.get_by_test_id("filter-apply")).to_be_disabled()
    shot(page, "filter-error")
    box.press("Enter")
    assert parse_qs(urlsplit(page.url).query)["q"] == ["response.status >= 500"]

    # Completion of field names from /api/v1/query/fields.
    box.fill("request.pa")
    completions = page.get_by_test_id("completions")
    expect(completions).to_contain_text("request.path")
    shot(page, "filter-completion")
    box.press("Tab")
    expect(box).to_have_value(re.compile(r"^request\.path"))

    # Clicking a value's "+" adds it to the filter.
    box.fill("")
    box.press("Enter")
    expect(page.get_by_test_id("row-count")).to_have_text("19 entries")
    row = rows(page).filter(has_text="/fail/late")
    row.hover()
    row.get_by_test_id("cell-dst").get_by_role("button").click()
    expect(box).to_have_value('dst.pod == "ledger-5c7b4-xyz12"')
    expect(page.get_by_test_id("row-count")).to_have_text("6 entries")

    # History of applied filters, newest first, kept across reloads.
    page.reload()
    page.get_by_test_id("history-button").click()
    history = page.get_by_test_id("history")
    expect(history.get_by_role("option").first).to_have_text('dst.pod == "ledger-5c7b4-xyz12"')
    expect(history).to_contain_text("response.status >= 500")
    history.get_by_role("option").filter(has_text="response.status >= 500").click()
    expect(page.get_by_test_id("row-count")).to_have_text("6 entries")
    expect(box).to_have_value("response.status >= 500")


def test_detail_shows_bodies_redaction_stream_and_keyboard(
    page: Page, hub: Hub, shot: Shot
) -> None:
    now = time.time()
    secret = secret_call(ts=now - 1)
    follow = call(
        "shop/web", "pay/ledger", path="/api/charge/ch_1", stream="stream-charge-1", index=1, ts=now
    )
    others = [call("shop/web", "shop/orders", path=f"/x/{i}", ts=now - 10 + i) for i in range(3)]
    hub.ingest([*others, secret, follow])
    login(page, hub)
    expect(page.get_by_test_id("row-count")).to_have_text("5 entries")

    # Keyboard: focus the table, arrows move, Enter opens, Esc closes.
    table = page.get_by_test_id("traffic-table")
    table.focus()
    table.press("ArrowDown")  # row 0 is `follow` (newest), row 1 the charge
    table.press("Enter")
    detail = page.get_by_test_id("detail")
    expect(detail).to_contain_text("POST /api/charge?order=7 → 201")
    assert parse_qs(urlsplit(page.url).query)["entry"] == [secret.id]

    req_body = page.get_by_test_id("request-body")
    expect(req_body).to_contain_text('"item": 7,')  # pretty-printed JSON
    expect(page.get_by_test_id("response-body")).to_contain_text('"charged": true')
    expect(page.get_by_test_id("request-headers")).to_contain_text("ledger.pay:8080")
    marks = detail.get_by_test_id("redacted")
    # the header, the body field, and the sample in the explanation
    expect(marks).to_have_count(3)
    expect(page.get_by_test_id("request-headers").get_by_test_id("redacted")).to_have_text(
        "[REDACTED]"
    )
    expect(req_body.get_by_test_id("redacted")).to_have_count(1)
    paths = page.get_by_test_id("redacted-paths")
    expect(paths).to_contain_text("request.headers.authorization")
    expect(paths).to_contain_text("request.body.card")
    expect(page.get_by_test_id("end-src")).to_contain_text("Deployment/web")
    expect(page.get_by_test_id("end-dst")).to_contain_text("ledger-5c7b4-xyz12")
    expect(page.get_by_test_id("overview")).to_contain_text("12.0 ms")
    stream = page.get_by_test_id("stream")
    expect(stream).to_contain_text("#0 POST /api/charge?order=7")
    expect(stream).to_contain_text("#1 GET /api/charge/ch_1")
    har = page.get_by_test_id("download-har")
    assert (
        f'id == "{secret.id}"'
        in (parse_qs(urlsplit(har.get_attribute("href") or "").query)["q"][0])
    )
    expect(page.get_by_test_id("download-pcap")).to_be_visible()  # alice may
    page.get_by_test_id("copy-curl").click()
    curl = page.get_by_test_id("curl-text")
    expect(curl).to_contain_text("curl -X 'POST' 'http://ledger.pay:8080/api/charge?order=7'")
    expect(curl).to_contain_text("-H 'authorization: [REDACTED]'")
    shot(page, "detail")

    # The HAR download is served by the hub for this one entry.
    with page.expect_download() as dl:
        har.click()
    import json

    har_doc = json.loads(open(dl.value.path()).read())
    assert len(har_doc["log"]["entries"]) == 1

    # A stream neighbour opens from the list; Esc closes the panel.
    stream.get_by_role("button", name=re.compile("#1")).click()
    expect(detail).to_contain_text("GET /api/charge/ch_1 → 200")
    page.keyboard.press("Escape")
    expect(detail).to_have_count(0)
    assert "entry" not in parse_qs(urlsplit(page.url).query)


def test_service_map_nodes_edges_and_click_filters(page: Page, hub: Hub, shot: Shot) -> None:
    now = time.time()
    entries = [call("shop/web", "shop/orders", ts=now - i * 0.1) for i in range(20)]
    entries += [
        call("shop/web", "pay/ledger", ts=now - i * 0.1, status=500 if i % 2 else 200, elapsed=0.3)
        for i in range(10)
    ]
    entries += [call("shop/orders", "pay/ledger", ts=now - i * 0.1) for i in range(4)]
    hub.ingest(entries)
    login(page, hub, path="/?view=map")
    nodes = page.get_by_test_id("map-node")
    expect(nodes).to_have_count(3)
    ids = sorted(n.get_attribute("data-id") or "" for n in nodes.all())
    assert ids == ["pay/Deployment/ledger", "shop/Deployment/orders", "shop/Deployment/web"]
    spaces = sorted(
        n.get_attribute("data-namespace") or "" for n in page.get_by_test_id("map-namespace").all()
    )
    assert spaces == ["pay", "shop"]
    expect(page.get_by_test_id("map-edge")).to_have_count(3)
    bad = page.locator(
        '[data-testid=map-edge][data-source="shop/Deployment/web"][data-target="pay/Deployment/ledger"]'
    )
    good = page.locator('[data-testid=map-edge][data-target="shop/Deployment/orders"]')
    red = bad.locator("path:not(.hit)").get_attribute("stroke")
    green = good.locator("path:not(.hit)").get_attribute("stroke")
    assert red != green
    expect(bad).to_contain_text("50% err")
    expect(page.get_by_test_id("map-edges")).to_contain_text("shop/web → pay/ledger")
    shot(page, "servicemap")

    bad.locator("rect.edge-label-bg").click()
    expect(page.get_by_test_id("tab-traffic")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("filter-input")).to_have_value(
        'src.namespace == "shop" && src.workload == "Deployment/web" && '
        'dst.namespace == "pay" && dst.workload == "Deployment/ledger"'
    )
    expect(page.get_by_test_id("row-count")).to_have_text("10 entries")


def test_namespace_scoped_viewer_never_sees_other_namespaces(
    page: Page, hub: Hub, shot: Shot
) -> None:
    pay = [call("pay/ledger", "pay/vault", path=f"/pay/{i}") for i in range(6)]
    hub.ingest([call("shop/web", "shop/orders", path=f"/shop/{i}") for i in range(4)] + pay)
    login(page, hub, token="tok-bob")
    expect(page.get_by_test_id("row-count")).to_have_text("4 entries")
    # More of both while bob watches: only shop's arrive.
    hub.ingest([call("pay/ledger", "pay/vault", path="/pay/live")])
    hub.ingest([call("shop/web", "shop/orders", path="/shop/live")])
    expect(page.get_by_test_id("row-count")).to_have_text("5 entries")
    expect(rows(page).first).to_contain_text("/shop/live")
    page.wait_for_timeout(300)
    for text in rows(page).all_inner_texts():
        assert "pay/" not in text and "/pay/" not in text
    shot(page, "scoped-viewer")
    # Not by filter, not by map, not by a direct link to the entry.
    box = page.get_by_test_id("filter-input")
    box.fill('src.namespace == "pay"')
    box.press("Enter")
    expect(page.get_by_test_id("empty")).to_contain_text("No entries match")
    page.goto(f"{hub.url}/?entry={pay[0].id}")
    expect(page.get_by_test_id("detail").get_by_test_id("error")).to_be_visible()
    expect(page.get_by_test_id("detail")).not_to_contain_text("/pay/0")
    expect(page.get_by_test_id("no-pcap")).to_have_count(0)
    page.goto(f"{hub.url}/?view=map")
    expect(page.get_by_test_id("map-node")).to_have_count(2)
    assert all(
        (n.get_attribute("data-id") or "").startswith("shop/")
        for n in page.get_by_test_id("map-node").all()
    )
    page.goto(f"{hub.url}/?view=status")
    expect(page.get_by_test_id("whoami-namespaces")).to_have_text("shop")
    expect(page.get_by_test_id("perm-download-pcap")).to_have_attribute("data-has", "false")
    shot(page, "status-scoped")


def _local_input(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%dT%H:%M:%S")


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_shared_url_restores_filter_and_time_range(page: Page, hub: Hub, shot: Shot) -> None:
    # Seconds never :00 (a datetime-local input then drops them from its value).
    base = float(int(time.time()) // 60 * 60 - 7200 + 7)
    hub.ingest(
        [call("shop/web", "shop/orders", path=f"/early/{i}", ts=base + i) for i in range(5)]
        + [
            call(
                "shop/web",
                "shop/orders",
                path=f"/mid/{i}",
                ts=base + 3600 + i,
                status=500 if i < 3 else 200,
            )
            for i in range(6)
        ]
        + [
            call("shop/web", "shop/orders", path=f"/late/{i}", ts=base + 7000 + i, status=500)
            for i in range(4)
        ]
    )
    q = "response.status == 500"
    frm, to = _rfc3339(base + 3000), _rfc3339(base + 4000)
    link = f"/?q={q.replace(' ', '%20')}&from={frm}&to={to}"
    login(page, hub, path=link)
    box = page.get_by_test_id("filter-input")
    expect(box).to_have_value(q)
    expect(page.get_by_test_id("mode-range")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.get_by_test_id("range-from")).to_have_value(_local_input(base + 3000))
    expect(page.get_by_test_id("range-to")).to_have_value(_local_input(base + 4000))
    expect(page.get_by_test_id("row-count")).to_have_text("3 entries")
    assert all("/mid/" in t for t in rows(page).all_inner_texts())
    shot(page, "shared-url")

    # Changing the range in the page changes the URL, which restores it again.
    page.get_by_test_id("range-to").fill(_local_input(base + 7200))
    expect(page.get_by_test_id("row-count")).to_have_text("7 entries")
    shared = page.url
    assert parse_qs(urlsplit(shared).query)["to"] == [_rfc3339(base + 7200)]
    page2 = page.context.new_page()
    page2.goto(shared)
    expect(page2.get_by_test_id("filter-input")).to_have_value(q)
    expect(page2.get_by_test_id("row-count")).to_have_text("7 entries")
    page2.close()
    # Back to live keeps the filter and drops the range.
    page.get_by_test_id("mode-live").click()
    expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "live")
    assert "from" not in parse_qs(urlsplit(page.url).query)
    expect(page.get_by_test_id("row-count")).to_have_text("7 entries")


def test_page_loads_nothing_from_outside_the_hub(page: Page, hub: Hub, shot: Shot) -> None:
    hub.heartbeat("node-1", targets=2, drops=5, spool_bytes=2048)
    hub.ingest(
        [secret_call()] + [call("shop/web", "shop/orders", path=f"/r/{i}") for i in range(3)]
    )
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.on("websocket", lambda ws: seen.append(ws.url))
    login(page, hub)
    expect(page.get_by_test_id("row-count")).to_have_text("4 entries")
    rows(page).filter(has_text="/api/charge").click()
    expect(page.get_by_test_id("request-body")).to_be_visible()
    page.get_by_test_id("tab-map").click()
    expect(page.get_by_test_id("map-node").first).to_be_visible()
    page.get_by_test_id("tab-status").click()
    expect(page.get_by_test_id("sniffers")).to_contain_text("node-1")
    expect(page.get_by_test_id("sniffers")).to_contain_text("2.0 KiB")
    shot(page, "status")
    origin = urlsplit(hub.url).netloc
    outside = [u for u in seen if not u.startswith("data:") and urlsplit(u).netloc != origin]
    assert seen and not outside, outside
    # Fonts and scripts are bundled: the built files reference no other origin to load.
    assert any(u.endswith(".js") for u in seen)
    assert any(u.startswith("ws://") for u in seen)


def test_anonymous_visitor_is_told_how_to_log_in(page: Page, hub: Hub, shot: Shot) -> None:
    page.goto(hub.url + "/")
    expect(page.get_by_test_id("error-401")).to_contain_text("You are not logged in")
    link = page.get_by_role("link", name="log in")
    expect(link).to_have_attribute("href", re.compile(r"^/saml/login\?next="))
    shot(page, "login-needed")


def test_viewer_without_namespaces_is_told_which_role_is_missing(
    page: Page, hub: Hub, shot: Shot
) -> None:
    hub.ingest([call("shop/web", "shop/orders")])
    page.goto(hub.login_url("tok-carol"))
    notice = page.get_by_test_id("no-role")
    expect(notice).to_contain_text("You are logged in as carol")
    expect(notice).to_contain_text("none of your roles grants any namespace")
    expect(page.get_by_test_id("row")).to_have_count(0)
    shot(page, "no-role")


def test_time_range_pages_older_entries_with_the_cursor(page: Page, hub: Hub) -> None:
    base = float(int(time.time()) // 60 * 60 - 3600 + 7)
    hub.ingest([call("shop/web", "shop/orders", path=f"/p/{i}", ts=base + i) for i in range(450)])
    link = f"/?from={_rfc3339(base - 1)}&to={_rfc3339(base + 1000)}"
    login(page, hub, path=link)
    expect(page.get_by_test_id("row-count")).to_have_text("200 entries")
    expect(rows(page).first).to_contain_text("/p/449")
    table = page.get_by_test_id("traffic-table")
    for want in ("400 entries", "450 entries"):
        table.evaluate("el => { el.scrollTop = el.scrollHeight; }")
        expect(page.get_by_test_id("row-count")).to_have_text(want)
    table.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(rows(page).last).to_contain_text("/p/0")
    # Keyboard: End jumps to the oldest, Enter opens it.
    table.focus()
    table.press("End")
    table.press("Enter")
    expect(page.get_by_test_id("detail")).to_contain_text("GET /p/0 → 200")


def test_viewer_without_view_bodies_sees_no_headers_or_bodies(
    page: Page, hub: Hub, shot: Shot
) -> None:
    secret = secret_call()
    hub.ingest([secret])
    login(page, hub, token="tok-dave", path=f"/?entry={secret.id}")
    detail = page.get_by_test_id("detail")
    expect(detail).to_contain_text("POST /api/charge?order=7 → 201")
    expect(page.get_by_test_id("request-withheld")).to_contain_text("view-bodies")
    expect(page.get_by_test_id("response-withheld")).to_be_visible()
    expect(detail).not_to_contain_text('"item"')
    expect(detail).not_to_contain_text("ledger.pay:8080")
    expect(page.get_by_test_id("no-pcap")).to_contain_text("download-pcap")
    shot(page, "detail-withheld")


def test_shared_link_with_a_bad_filter_says_what_is_wrong(page: Page, hub: Hub) -> None:
    hub.ingest([call("shop/web", "shop/orders")])
    login(page, hub, path="/?q=response.status%20%3E%3D%20%22x")
    expect(page.get_by_test_id("filter-error")).to_be_visible()
    expect(page.get_by_test_id("traffic-table").get_by_test_id("error")).to_contain_text(
        "The filter is not valid"
    )
    expect(page.get_by_test_id("row")).to_have_count(0)
    # Clearing it brings the traffic back.
    page.get_by_test_id("filter-clear").click()
    expect(page.get_by_test_id("row-count")).to_have_text("1 entry")


@pytest.mark.parametrize("hub_settings_overrides", [{"stream_queue": 5}])
def test_entries_the_hub_skipped_for_a_slow_client_are_counted(page: Page, hub: Hub) -> None:
    login(page, hub)
    expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "live")
    hub.ingest([call("shop/web", "shop/orders", path=f"/b/{i}") for i in range(100)])
    status = page.get_by_test_id("list-status")
    expect(status).to_contain_text("95 skipped by the hub")
    expect(page.get_by_test_id("row-count")).to_have_text("5 entries")
    # What the stream skipped is still stored: the time range (or a reload) shows it.
    page.reload()
    expect(page.get_by_test_id("row-count")).to_have_text("100 entries")


def test_binary_and_form_bodies_are_shown_as_hex_and_fields(page: Page, hub: Hub) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR").decode()
    e = call(
        "shop/web",
        "shop/images",
        path="/upload",
        method="POST",
        request_headers={"content-type": "application/x-www-form-urlencoded"},
        request_body="name=cat+photo&size=13&token=%5BREDACTED%5D",
        response_headers={"content-type": "image/png"},
    )
    e.response.update(body=png, body_encoding="base64", body_size=16)
    hub.ingest([e])
    login(page, hub, path=f"/?entry={e.id}")
    resp = page.get_by_test_id("response-body")
    expect(resp).to_contain_text("00000000  89 50 4e 47 0d 0a 1a 0a 00 00 00 0d 49 48 44 52")
    expect(resp).to_contain_text(".PNG........IHDR")
    req = page.get_by_test_id("request-body")
    expect(req.locator("tr").filter(has_text="name")).to_contain_text("cat photo")
    expect(req.get_by_test_id("redacted")).to_have_text("[REDACTED]")
