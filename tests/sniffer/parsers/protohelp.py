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
    """Runs whole, byte by byte and with trailing data; asserts the three agree on the
    exchanges of the script and returns them."""
    whole = run(make, script, close=False)
    bytewise = run(make, script, mode="bytes", close=False)
    trail = run(make, script, trailing=trailing, close=False)
    assert shape(whole) == shape(bytewise)
    assert shape(whole) == shape(trail)
    return whole


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
