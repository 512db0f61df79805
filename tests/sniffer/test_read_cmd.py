"""`kubeweir read` end to end: NDJSON, table, counters, damaged files and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from kubeweir import pcapgen as g
from kubeweir.entry import decode_entry_json
from sniffer.read_cmd import read


def _capture(tmp_path: Path, n: int = 3) -> Path:
    return g.write_pcap(tmp_path / "c.pcap", g.http_conversation(n))


def test_ndjson(tmp_path: Path) -> None:
    r = CliRunner().invoke(read, [str(_capture(tmp_path))])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    entries = [decode_entry_json(line) for line in lines]
    assert [e.summary for e in entries] == [f"GET /items/{i}?v=1 → 200" for i in range(3)]
    assert "packets 18" in r.stderr and "entries 3" in r.stderr and "parse errors 0" in r.stderr
    assert "bound hits none" in r.stderr


def test_table(tmp_path: Path) -> None:
    r = CliRunner().invoke(read, [str(_capture(tmp_path, 2)), "--format", "table"])
    assert r.exit_code == 0
    rows = r.stdout.splitlines()
    assert rows[0].startswith("TIME (UTC)") and "SUMMARY" in rows[0]
    assert len(rows) == 3
    col = rows[0].index("SUMMARY")
    assert rows[1][col:] == "GET /items/0?v=1 → 200"
    assert "10.0.0.1:40000" in rows[1] and "10.0.0.2:80" in rows[1]


def test_port_hint_option(tmp_path: Path) -> None:
    r = CliRunner().invoke(read, [str(_capture(tmp_path)), "--port-hint", "80=nosuch"])
    assert r.exit_code == 2 and "unknown protocol" in r.output
    r = CliRunner().invoke(read, [str(_capture(tmp_path)), "--port-hint", "eighty"])
    assert r.exit_code == 2 and "PORT=PROTOCOL" in r.output
    r = CliRunner().invoke(read, [str(_capture(tmp_path)), "--port-hint", "8080=http"])
    assert r.exit_code == 0


def test_truncated_file_reads_the_rest_and_exits_zero(tmp_path: Path) -> None:
    p = _capture(tmp_path)
    data = p.read_bytes()
    p.write_bytes(data[:-20])
    r = CliRunner().invoke(read, [str(p)])
    assert r.exit_code == 0
    assert "truncated pcap record" in r.stderr and "byte offset" in r.stderr
    assert len(r.stdout.splitlines()) == 3  # the final FIN-ACK was lost, not an exchange


def test_nothing_readable_exits_non_zero(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture at all")
    r = CliRunner().invoke(read, [str(junk)])
    assert r.exit_code == 2 and "not a pcap or pcapng file" in r.stderr and "offset 0" in r.stderr
    header_only = tmp_path / "h.pcap"
    header_only.write_bytes(_capture(tmp_path).read_bytes()[:30])
    r = CliRunner().invoke(read, [str(header_only)])
    assert r.exit_code == 1 and "nothing could be read" in r.stderr
    r = CliRunner().invoke(read, [str(tmp_path / "missing.pcap")])
    assert r.exit_code == 2 and "No such file" in r.stderr


def test_empty_capture_is_fine(tmp_path: Path) -> None:
    p = g.write_pcap(tmp_path / "e.pcap", [])
    r = CliRunner().invoke(read, [str(p)])
    assert r.exit_code == 0 and r.stdout == "" and "packets 0" in r.stderr


def test_subprocess_streams_and_progress_off_when_not_a_terminal(tmp_path: Path) -> None:
    p = _capture(tmp_path, 5)
    proc = subprocess.run(
        [sys.executable, "-m", "kubeweir", "read", str(p), "--no-redact"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0
    assert [json.loads(x).get("index", 0) for x in proc.stdout.splitlines()] == list(range(5))
    err = proc.stderr.decode()
    assert "reading" not in err and "\x1b[" not in err  # no progress bar on a pipe
    assert "entries 5" in err


def test_make_run_sample() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kubeweir.run"], capture_output=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "GET /items/0?v=1 → 200" in out and "tcp" in out
