"""Exports read back: HAR 1.2 structure, and PCAP through tshark as the same exchanges."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kubeweir.testing import make_endpoint, make_entry, make_http_entry
from tests.hub.conftest import ADMIN, ALICE, hub_settings, ingest


def _check_har(har: dict[str, Any]) -> None:
    """The required fields and types of HAR 1.2 (softwareishard.com/blog/har-12-spec)."""
    log = har["log"]
    assert log["version"] == "1.2" and log["creator"]["name"]
    for e in log["entries"]:
        datetime.fromisoformat(e["startedDateTime"])
        assert isinstance(e["time"], int | float) and e["time"] >= 0
        req, resp = e["request"], e["response"]
        for k in ("method", "url", "httpVersion"):
            assert isinstance(req[k], str) and req[k]
        for part in (req, resp):
            assert isinstance(part["cookies"], list) and isinstance(part["headers"], list)
            assert all(set(h) == {"name", "value"} for h in part["headers"])
            assert isinstance(part["headersSize"], int) and isinstance(part["bodySize"], int)
        assert isinstance(req["queryString"], list)
        assert isinstance(resp["status"], int) and isinstance(resp["statusText"], str)
        assert isinstance(resp["content"]["size"], int)
        assert isinstance(resp["content"]["mimeType"], str)
        assert isinstance(resp["redirectURL"], str)
        assert isinstance(e["cache"], dict)
        for k in ("send", "wait", "receive"):
            assert isinstance(e["timings"][k], int | float) and e["timings"][k] >= -1


def _entries() -> list[Any]:
    return [
        make_http_entry(
            "POST",
            "/api/orders?id=7&x=",
            201,
            src_ns="payments",
            dst_ns="payments",
            request_headers={"host": "orders", "content-type": "application/json"},
            response_headers={"content-type": "application/json", "content-length": "999"},
            request_body='{"item": 7}',
            response_body='{"ok": true}' + " " * 3000,  # several segments
            elapsed=0.25,
        ),
        make_http_entry("GET", "/healthz", 503, src_ns="payments", dst_ns="payments"),
        make_entry(
            proto="dns",
            src=make_endpoint("10.0.0.5", 41000, namespace="payments"),
            dst=make_endpoint("10.0.0.53", 53, namespace="kube-system"),
            request={"id": 4660, "name": "orders.payments.svc.cluster.local", "type": "A"},
            response={
                "rcode": "NOERROR",
                "answers": [
                    {
                        "name": "orders.payments.svc.cluster.local",
                        "type": "A",
                        "ttl": 30,
                        "data": "10.96.0.7",
                    }  # fmt: skip
                ],
            },
            elapsed=0.001,
        ),
        make_entry(proto="redis", src=make_endpoint("10.0.0.5", 42000, namespace="payments")),
    ]


def test_har_export(client: TestClient) -> None:
    ingest(client, _entries())
    r = client.get("/api/v1/export.har", headers=ALICE)
    assert r.status_code == 200
    assert "attachment" in r.headers["content-disposition"]
    har = r.json()
    _check_har(har)
    entries = har["log"]["entries"]
    assert len(entries) == 2  # HTTP only: DNS and Redis have no HAR form
    post = next(e for e in entries if e["request"]["method"] == "POST")
    assert post["request"]["url"] == "http://orders/api/orders?id=7&x="
    assert post["request"]["queryString"] == [
        {"name": "id", "value": "7"},
        {"name": "x", "value": ""},
    ]
    assert post["request"]["postData"]["text"] == '{"item": 7}'
    assert post["response"]["status"] == 201 and post["time"] == 250
    assert post["response"]["content"]["text"].startswith('{"ok": true}')
    # oldest first, like a browser's log
    starts = [e["startedDateTime"] for e in entries]
    assert starts == sorted(starts)


def test_har_export_filtered_and_limited(client: TestClient) -> None:
    ingest(client, _entries())
    har = client.get("/api/v1/export.har", headers=ADMIN, params={"q": "response.status == 503"})
    assert [e["response"]["status"] for e in har.json()["log"]["entries"]] == [503]
    har = client.get("/api/v1/export.har", headers=ADMIN, params={"limit": 1}).json()
    assert len(har["log"]["entries"]) == 1


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_pcap_export_reads_back_in_tshark(tmp_path: Path) -> None:
    settings = hub_settings(
        viewer_tokens={
            "t": {"name": "p", "permissions": ["view-bodies", "download-pcap", "export"]}
        }
    )
    from hub.main import create_app

    with TestClient(create_app(settings)) as c:
        ingest(c, _entries())
        r = c.get("/api/v1/export.pcap", headers={"Authorization": "Bearer t"})
    assert r.status_code == 200 and r.headers["x-kubeweir-entries"] == "3"
    path = tmp_path / "export.pcap"
    path.write_bytes(r.content)

    def tshark(*args: str) -> list[list[str]]:
        out = subprocess.run(
            ["tshark", "-r", str(path), *args],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        return [line.split("\t") for line in out.splitlines() if line.strip()]

    http = tshark(
        "-Y", "http", "-T", "fields", "-e", "http.request.method", "-e", "http.request.uri",
        "-e", "http.response.code", "-e", "http.content_length", "-e", "tcp.stream",
    )  # fmt: skip
    requests = [(m, u) for m, u, *_ in http if m]
    responses = [(code, length) for _, _, code, length, _ in http if code]
    assert sorted(requests) == [("GET", "/healthz"), ("POST", "/api/orders?id=7&x=")]
    assert sorted(responses) == [("201", "3012"), ("503", "0")]
    # each exchange is a well-formed TCP connection (keep-alive calls reuse the ports)
    problems = tshark(
        "-Y", "tcp.analysis.flags && !tcp.analysis.window_update && !tcp.analysis.reused_ports"
    )
    assert problems == []
    body = tshark("-Y", "http.response.code == 201", "-T", "fields", "-e", "http.file_data")
    assert body[0][0].startswith('{"ok": true}')
    dns = tshark("-Y", "dns", "-T", "fields", "-e", "dns.id", "-e", "dns.qry.name", "-e", "dns.a")
    assert ["0x1234", "orders.payments.svc.cluster.local", ""] in dns
    assert ["0x1234", "orders.payments.svc.cluster.local", "10.96.0.7"] in dns


def test_pcap_needs_permission_and_empty_is_valid(client: TestClient, tmp_path: Path) -> None:
    assert client.get("/api/v1/export.pcap", headers=ALICE).status_code == 403
    r = client.get("/api/v1/export.pcap", headers=ADMIN, params={"q": "dns"})
    assert r.status_code == 200 and r.headers["x-kubeweir-entries"] == "0"
    assert r.content[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")
