"""Feeding a scripted conversation to a stream parser three ways (whole, byte by byte,
with trailing data), used by the tests of the protocol parsers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sniffer.parsers.base import Direction, Exchange, ParseError, StreamParser

C = Direction.CLIENT
S = Direction.SERVER

Script = Sequence[tuple[Direction, bytes]]


def run(
    make: Callable[[], StreamParser],
    script: Script,
    *,
    mode: str = "whole",
    trailing: bytes = b"",
    close: bool = True,
) -> list[Exchange]:
    """Feed ``script`` (one timestamp per step, 1.0, 2.0, ...) and collect exchanges."""
    p = make()
    out: list[Exchange] = []
    for i, (d, data) in enumerate(script):
        ts = float(i + 1)
        if mode == "bytes":
            for j in range(len(data)):
                p.feed(d, data[j : j + 1], ts)
        else:
            p.feed(d, data, ts)
        out += p.take()
    if trailing:
        p.feed(C, trailing, float(len(script) + 1))
        out += p.take()
    if close:
        p.close(float(len(script) + 2))
        out += p.take()
    return out


def three_ways(make: Callable[[], StreamParser], script: Script, trailing: bytes) -> list[Exchange]:
    """The shared three-way check (``threeway.three_ways``: whole, byte by byte, and with
    ``trailing`` client bytes appended to the last client step), then the exchanges of
    the whole-input run before ``close()`` (the scripts here leave some requests open on
    purpose)."""
    from tests.sniffer.parsers import threeway

    threeway.three_ways(make, script, {C: trailing} if trailing else {})
    before, _ = threeway.feed_script(make, script, close=False)
    return before


def shape(xs: list[Exchange]) -> list[tuple[Any, ...]]:
    return [(x.proto, x.ts, x.end, x.request, x.response, x.summary, x.error) for x in xs]


def fuzz_feed(make: Callable[[], StreamParser], chunks: list[tuple[bool, bytes]]) -> None:
    """Feed arbitrary bytes; only ParseError may escape."""
    p = make()
    try:
        for i, (srv, data) in enumerate(chunks):
            p.feed(S if srv else C, data, float(i))
            p.take()
        p.close(99.0)
        p.take()
    except ParseError:
        pass


def pcap_streams(path: str, server_port: int) -> list[list[tuple[Direction, bytes, float]]]:
    """Test-only stand-in for the pipeline: each TCP connection to ``server_port`` as its
    in-order payload chunks (scapy reads the file; retransmissions dropped by sequence
    number). Used until/besides ``sniffer.pipeline.read_pcap``."""
    from scapy.layers.inet import TCP
    from scapy.utils import PcapReader

    conns: dict[tuple[Any, ...], list[tuple[Direction, bytes, float]]] = {}
    nxt: dict[tuple[Any, ...], int] = {}
    for pkt in PcapReader(path):
        if TCP not in pkt:
            continue
        tcp = pkt[TCP]
        ip = tcp.underlayer
        if server_port not in (tcp.sport, tcp.dport):
            continue
        d = S if tcp.sport == server_port else C
        cport = tcp.dport if d is S else tcp.sport
        cip = ip.dst if d is S else ip.src
        key = (cip, cport)
        conns.setdefault(key, [])
        payload = bytes(tcp.payload)
        if ip.name == "IP":
            payload = payload[: max(0, ip.len - ip.ihl * 4 - tcp.dataofs * 4)]
        k2 = (key, d)
        seq = tcp.seq + (1 if "S" in str(tcp.flags) else 0)
        if "S" in str(tcp.flags):
            nxt[k2] = seq
            continue
        if not payload:
            continue
        exp = nxt.get(k2, seq)
        if seq + len(payload) <= exp:
            continue  # retransmission
        if seq < exp:
            payload = payload[exp - seq :]
            seq = exp
        nxt[k2] = seq + len(payload)
        conns[key].append((d, payload, float(pkt.time)))
    return [v for v in conns.values() if v]


def feed_stream(p: StreamParser, chunks: list[tuple[Direction, bytes, float]]) -> list[Exchange]:
    out: list[Exchange] = []
    for d, data, ts in chunks:
        p.feed(d, data, ts)
        out += p.take()
    p.close(chunks[-1][2] if chunks else 0.0)
    return out + p.take()


def capture_exchanges(
    path: str, proto: str, port: int, hint: str | None = None
) -> list[dict[str, Any]]:
    """Entries of ``proto`` in a capture as plain dicts (request, response, summary,
    error). Through ``sniffer.pipeline.read_pcap`` (with ``{port: hint}`` when given)
    once the pipeline exists; before that through ``pcap_streams`` and the protocol's
    parser directly."""
    try:
        from sniffer.pipeline import PipelineSettings, read_pcap
    except ImportError:
        import importlib

        mod = "http2" if proto == "grpc" else proto
        factory = importlib.import_module(f"sniffer.parsers.{mod}").PROTOCOL.factory
        out = []
        for s in pcap_streams(path, port):
            for x in feed_stream(factory(ParserLimitsDefault()), s):
                out.append(
                    {"ts": x.ts, "request": x.request, "response": x.response,
                     "summary": x.summary, "error": x.error, "proto": x.proto}
                )  # fmt: skip
        return sorted(out, key=lambda e: e["ts"])
    settings = PipelineSettings(port_hints={port: hint}) if hint else PipelineSettings()
    entries = [
        {"ts": e.ts, "request": e.request, "response": e.response, "summary": e.summary,
         "error": e.error, "proto": e.proto}
        for e in read_pcap(path, settings)
        if e.proto == proto or (proto == "http2" and e.proto == "grpc")
    ]  # fmt: skip
    return sorted(entries, key=lambda e: e["ts"])


def ParserLimitsDefault() -> Any:  # noqa: N802
    from sniffer.parsers.base import ParserLimits

    return ParserLimits()
