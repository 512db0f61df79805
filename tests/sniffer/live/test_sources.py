"""The capture sources on their own: kernel filters for exactly the targets, swapped
atomically (AF_PACKET) or updated in place (eBPF maps), IPv4 and IPv6, kernel counters."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sniffer.sources import CaptureError, RingConfig, open_source
from sniffer.sources.afpacket import AfPacketSource, compile_filter, target_expression
from sniffer.sources.ebpf import COUNTER_NAMES, MAX_TARGETS, EbpfSource, header_constants
from sniffer.testing.node import Pod, TestNode


def test_header_and_loader_agree() -> None:
    c = header_constants()
    assert c["KW_COUNTERS"] == len(COUNTER_NAMES) == max(COUNTER_NAMES) + 1
    assert MAX_TARGETS == c["KW_MAX_TARGETS"]


def test_filter_expression_and_errors() -> None:
    assert target_expression(["10.0.0.2", "10.0.0.1", "10.0.0.1"]) == (
        "host 10.0.0.1 or host 10.0.0.2"
    )
    with pytest.raises(ValueError):
        target_expression(["not-an-ip"])
    with pytest.raises(CaptureError, match="bad filter"):
        compile_filter("host")
    assert len(compile_filter("host 10.0.0.1 or host fd00::1")) > 4


@pytest.fixture
def node() -> Iterator[tuple[TestNode, Pod, Pod, Pod]]:
    with TestNode(ipv6=True) as n:
        web = n.add_pod("web")
        cli = n.add_pod("cli")
        other = n.add_pod("other")
        web.http_server(8080)
        other.http_server(8080)
        yield n, web, cli, other


def _drain(src: AfPacketSource | EbpfSource, seconds: float = 0.6) -> list[bytes]:
    got: list[bytes] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        src.dispatch(lambda ts, lt, fr: got.append(fr), 0.05)
    return got


def _addrs(frames: list[bytes]) -> set[str]:
    import ipaddress

    out = set()
    for fr in frames:
        if fr[0] >> 4 == 4:
            out |= {str(ipaddress.ip_address(fr[12:16])), str(ipaddress.ip_address(fr[16:20]))}
        else:
            out |= {str(ipaddress.ip_address(fr[8:24])), str(ipaddress.ip_address(fr[24:40]))}
    return out


@pytest.mark.parametrize("kind", ["afpacket", "ebpf"])
def test_source_passes_exactly_the_targets(node: tuple[TestNode, Pod, Pod, Pod], kind: str) -> None:
    n, web, cli, other = node
    src, why = open_source(kind, RingConfig(block_count=16))  # type: ignore[arg-type]
    try:
        assert src.name == kind and why
        src.set_targets([web.ip, n.pod_ip6(web)])
        cli.http_calls(f"http://{web.ip}:8080/a", 5)
        cli.curl(f"http://[{n.pod_ip6(web)}]:8080/v6", "-g")
        cli.http_calls(f"http://{other.ip}:8080/b", 5)
        frames = _drain(src)
        assert {fr[0] >> 4 for fr in frames} == {4, 6}
        assert _addrs(frames) == {web.ip, cli.ip, n.pod_ip6(web), n.pod_ip6(cli)}
        # retarget to the other pod: the old one is no longer captured
        src.set_targets([other.ip])
        cli.http_calls(f"http://{web.ip}:8080/c", 3)
        cli.http_calls(f"http://{other.ip}:8080/d", 3)
        frames = _drain(src)
        # a last packet (a late FIN/ACK under load) may sit in a block the kernel has not
        # handed over yet (block time-out): counted by the kernel, not yet read
        stats = src.stats()
        deadline = time.monotonic() + 5
        while stats["packets"] != stats["kernel_packets"] and time.monotonic() < deadline:
            frames += _drain(src, 0.3)
            stats = src.stats()
        assert _addrs(frames) == {other.ip, cli.ip}
        assert stats["kernel_drops"] == 0 and stats["packets"] == stats["kernel_packets"]
    finally:
        src.close()


def test_ebpf_updates_maps_in_place(node: tuple[TestNode, Pod, Pod, Pod]) -> None:
    n, web, cli, other = node
    src = EbpfSource(RingConfig(block_count=16))
    try:
        src.set_targets([web.ip, other.ip])
        assert src.map_contents() == {web.ip, other.ip}
        load = cli.http_calls_start(f"http://{web.ip}:8080/keep", 40, rate=80)
        time.sleep(0.2)
        src.set_targets([web.ip])  # other leaves, web stays: web is never absent
        assert src.map_contents() == {web.ip}
        load.communicate(timeout=20)
        frames = _drain(src)
        requests = [fr for fr in frames if b"GET /keep/call/" in fr]
        assert len(requests) == 40  # every request of the pod that stayed targeted
        assert src.map_updates == 3  # two inserts, one delete: no rebuild, no re-attach
        c = src.filter_counters()
        assert c["passed"] >= len(frames) and c["seen"] > c["passed"]
    finally:
        src.close()


def test_auto_prefers_ebpf_and_says_why() -> None:
    src, why = open_source("auto", RingConfig(block_count=4))
    try:
        assert src.name == "ebpf" and why.startswith("auto:") and "eBPF" in why
    finally:
        src.close()


def test_bad_interface_is_a_clear_error() -> None:
    with pytest.raises(CaptureError, match="no interface 'kwt-nope0'"):
        open_source("afpacket", RingConfig(interface="kwt-nope0", block_count=4))
