"""kubeweir.pcapgen writes captures that tshark reads as we mean them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kubeweir import pcapgen as g
from sniffer.pipeline import read_pcap

tshark = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(tshark is None, reason="tshark not installed")


def _tshark(path: Path, *args: str) -> list[str]:
    out = subprocess.run(
        ["tshark", "-r", str(path), *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return out.splitlines()


@needs_tshark
def test_benchmark_writer_is_valid_http(tmp_path: Path) -> None:
    p = g.write_http_benchmark(tmp_path / "b.pcap", 40, connections=3, body_size=3000)
    uris = _tshark(p, "-Y", "http.request", "-T", "fields", "-e", "http.request.uri")
    assert len(uris) == 40 and uris[0] == "/api/orders/0?page=0"
    bad = _tshark(
        p,
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-Y",
        "tcp.checksum.status == 2 || ip.checksum.status == 2",
    )
    assert bad == []
    ours = list(read_pcap(p))
    assert sorted(e.request["path"] + "?" + e.request["query"] for e in ours) == sorted(uris)


@needs_tshark
@pytest.mark.parametrize("link", ["vlan", "sll2", "null"])
def test_scapy_conversations_read_by_tshark(tmp_path: Path, link: str) -> None:
    p = g.write_pcap(
        tmp_path / "c.pcap", g.http_conversation(3, chunked_gzip=True, ipv6=True), link=link
    )
    codes = _tshark(p, "-Y", "http.response", "-T", "fields", "-e", "http.response.code")
    assert codes == ["200"] * 3


@needs_tshark
def test_pcapng_read_by_tshark(tmp_path: Path) -> None:
    p = g.write_pcapng(
        tmp_path / "c.pcapng",
        [
            ("ether", g.http_conversation(2)),
            ("sll", g.http_conversation(1, client=("10.0.0.9", 41000), t0=g.T0 + 1)),
        ],
        big_endian=True,
        tsresol=9,
    )
    assert len(_tshark(p, "-Y", "http.request")) == 3
