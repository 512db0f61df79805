"""kubeweir query / export / login / hub against a real hub on loopback, and hub.client.ship."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from hub.cli import export, login, query
from hub.client import HubError, ship
from hub.main import create_app
from kubeweir.testing import make_http_entry
from tests.hub.conftest import hub_process, hub_settings, serve


@pytest.fixture
def live() -> Iterator[str]:
    settings = hub_settings(
        viewer_tokens={
            "cli-token": {
                "name": "cli",
                "namespaces": ["*"],
                "permissions": ["view-bodies", "download-pcap", "export"],
            }
        }
    )
    for hostport in serve(create_app(settings)):
        url = f"http://{hostport}"
        es = [make_http_entry("GET", f"/item/{i}", 200 + (i % 2) * 300) for i in range(30)]
        r = ship(es, url, "ingest-secret", batch_size=7, sniffer="cli-test")
        assert (r.accepted, r.duplicates, r.batches) == (30, 0, 5)
        yield url


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("KUBEWEIR_TOKEN", raising=False)
    monkeypatch.delenv("KUBEWEIR_HUB", raising=False)
    return tmp_path


def test_ship_is_idempotent_and_refusals_are_errors(live: str) -> None:
    es = [make_http_entry() for _ in range(3)]
    assert ship(es, live, "ingest-secret").accepted == 3
    assert ship(es, live, "ingest-secret").duplicates == 3
    with pytest.raises(HubError) as exc:
        ship(es, live, "wrong")
    assert exc.value.status in (401, 403)


def test_query_ndjson_and_table(live: str, env: Path) -> None:
    runner = CliRunner()
    args = ["--hub", live, "--token", "cli-token"]
    r = runner.invoke(query, ["response.status >= 500", *args, "--format", "ndjson"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert len(rows) == 15 and all(e["response"]["status"] == 500 for e in rows)
    r = runner.invoke(query, ["", *args, "--limit", "12"])
    assert r.exit_code == 0 and len(r.output.splitlines()) == 13  # header + 12
    assert "GET /item/" in r.output
    r = runner.invoke(query, ["nosuch == 1", *args])
    assert r.exit_code == 1 and "unknown field" in r.output and "(at 0)" in r.output
    r = runner.invoke(query, ["", "--hub", live])
    assert r.exit_code == 2 and "no token" in r.output


def test_login_then_query_and_export(live: str, env: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(login, ["--hub", live, "--token", "nope"])
    assert r.exit_code == 1 and "401" in r.output
    r = runner.invoke(login, ["--hub", live, "--token", "cli-token"])
    assert r.exit_code == 0, r.output
    token_file = env / "cfg" / "kubeweir" / "token"
    assert token_file.read_text().strip() == "cli-token"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    r = runner.invoke(query, ['request.path == "/item/3"', "--format", "ndjson"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["request"]["path"] == "/item/3"
    har = tmp_path / "out.har"
    r = runner.invoke(export, ["har", "response.status == 200", "-o", str(har)])
    assert r.exit_code == 0, r.output
    assert len(json.loads(har.read_text())["log"]["entries"]) == 15
    pcap = tmp_path / "out.pcap"
    r = runner.invoke(export, ["pcap", "", "-o", str(pcap), "--limit", "4"])
    assert r.exit_code == 0, r.output
    if shutil.which("tshark"):
        out = subprocess.run(
            ["tshark", "-r", str(pcap), "-Y", "http.request", "-T", "fields", "-e",
             "http.request.uri"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.split()  # fmt: skip
        assert len(out) == 4 and all(u.startswith("/item/") for u in out)


def test_kubeweir_hub_command_serves(tmp_path: Path) -> None:
    config = (
        "ingest_token: i\nviewer_tokens:\n  t: {name: me, namespaces: ['*']}\n"
        "retention_max_age: 3600\n"
    )
    with hub_process(tmp_path, config) as (_, url):
        who = httpx.get(f"{url}/api/v1/whoami", headers={"Authorization": "Bearer t"})
        assert who.json()["name"] == "me"
    assert (tmp_path / "h.duckdb").exists()


def test_read_to_hub(live: str) -> None:
    from sniffer.read_cmd import read
    from tests.conftest import pcap

    path = pcap("http1_keepalive_37req_split_header.pcapng")
    runner = CliRunner()
    r = runner.invoke(read, [str(path), "--to-hub", live, "--token", "ingest-secret"])
    assert r.exit_code == 0, r.output
    assert "hub stored 37 entries (0 already there)" in r.output
    again = runner.invoke(read, [str(path), "--to-hub", live, "--token", "ingest-secret"])
    assert "hub stored 0 entries (37 already there)" in again.output
    st = httpx.get(f"{live}/api/v1/stats", headers={"Authorization": "Bearer cli-token"}).json()
    assert st["total"] == 30 + 37
    bad = runner.invoke(read, [str(path), "--to-hub", live, "--token", "wrong"])
    assert bad.exit_code == 1 and ("401" in bad.output or "403" in bad.output)
