"""Feed a scripted conversation to a parser three ways and check that they agree.

STYLE.md (after h11's ``test_io.py``): every parser is tested with the whole input at
once, byte by byte, and with trailing data after the messages. Use it like this::

    from tests.sniffer.parsers.threeway import C, S, Gap, three_ways

    exchanges = three_ways(
        HttpParser,
        [(C, b"GET / HTTP/1.1\\r\\n\\r\\n"), (S, b"HTTP/1.1 204 No Content\\r\\n\\r\\n")],
        trailing={C: b"GET /next HTTP/1.1\\r\\n"},
    )
    assert exchanges[0].response["status"] == 204

- ``script``: steps in capture order. A step is ``(direction, bytes)``, or
  ``Gap(direction, length)`` for bytes missing from the capture. Step *i* is fed with
  timestamp ``1.0 + i`` (so exchange ``ts``/``end`` are predictable); ``close`` comes at
  ``1.0 + len(script)``.
- ``three_ways`` returns the exchanges of the whole-input run, **including** those that
  ``close()`` flushes; it asserts that the byte-by-byte run gives exactly the same, and
  that the trailing-data run gives the same exchanges up to (not including) ``close()``
  (trailing bytes are the start of a message that never completes, so what ``close``
  makes of them differs by design).
- ``trailing`` maps a direction to bytes appended to the last step of that direction
  (a step is added at the end when the script has none).
- For datagram parsers, ``datagram_ways`` feeds each datagram whole, checks that every
  truncated prefix raises nothing but ``ParseError``, and that trailing bytes after a
  message change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sniffer.parsers.base import DatagramParser, Direction, Exchange, ParseError, StreamParser

__all__ = [
    "C",
    "S",
    "Gap",
    "Script",
    "datagram_ways",
    "feed_script",
    "shape",
    "three_ways",
]

C = Direction.CLIENT
S = Direction.SERVER


@dataclass(frozen=True)
class Gap:
    """``length`` bytes of ``direction`` missing from the capture."""

    direction: Direction
    length: int


Step = tuple[Direction, bytes] | Gap
Script = Sequence[Step]


def feed_script(
    make: Callable[[], StreamParser],
    script: Script,
    *,
    bytewise: bool = False,
    close: bool = True,
) -> tuple[list[Exchange], list[Exchange]]:
    """Run ``script`` through a fresh parser: (exchanges before close, those from close)."""
    p = make()
    before: list[Exchange] = []
    for i, step in enumerate(script):
        ts = 1.0 + i
        if isinstance(step, Gap):
            p.gap(step.direction, step.length, ts)
        else:
            d, data = step
            if bytewise:
                for j in range(len(data)):
                    p.feed(d, data[j : j + 1], ts)
            else:
                p.feed(d, data, ts)
        before += p.take()
    after: list[Exchange] = []
    if close:
        p.close(1.0 + len(script))
        after = p.take()
    return before, after


def _with_trailing(script: Script, trailing: Mapping[Direction, bytes]) -> list[Step]:
    out = list(script)
    for d, extra in trailing.items():
        for i in range(len(out) - 1, -1, -1):
            step = out[i]
            if not isinstance(step, Gap) and step[0] == d:
                out[i] = (d, step[1] + extra)
                break
        else:
            out.append((d, extra))
    return out


def shape(xs: Sequence[Exchange]) -> list[tuple[Any, ...]]:
    """The comparable content of exchanges."""
    return [
        (x.proto, x.ts, x.end, x.request, x.response, x.summary, x.error, x.gaps, x.txid)
        for x in xs
    ]


def three_ways(
    make: Callable[[], StreamParser],
    script: Script,
    trailing: Mapping[Direction, bytes],
) -> list[Exchange]:
    """Feed whole, byte by byte and with trailing data; assert agreement; return the
    whole-input exchanges (close included)."""
    before, after = feed_script(make, script)
    b_before, b_after = feed_script(make, script, bytewise=True)
    assert shape(b_before) == shape(before), "byte-by-byte feeding changed the exchanges"
    assert shape(b_after) == shape(after), "byte-by-byte feeding changed what close() flushed"
    if trailing:
        t_before, _ = feed_script(make, _with_trailing(script, trailing))
        assert shape(t_before) == shape(before), "trailing data changed the exchanges"
    return before + after


def datagram_ways(
    make: Callable[[], DatagramParser],
    datagrams: Sequence[tuple[Direction, bytes]],
    trailing: bytes = b"\x00\x01garbage",
) -> list[Exchange]:
    """Each datagram whole (the result); every proper prefix of each datagram raises only
    ``ParseError``; each datagram with ``trailing`` bytes appended gives the same."""

    def run(dgrams: Sequence[tuple[Direction, bytes]]) -> list[Exchange]:
        p = make()
        out: list[Exchange] = []
        for i, (d, data) in enumerate(dgrams):
            p.feed(d, data, 1.0 + i)
            out += p.take()
        p.expire(1.0 + len(dgrams) + 1e6, 0.0)
        return out + p.take()

    whole = run(datagrams)
    for d, data in datagrams:
        for cut in range(len(data)):
            p = make()
            try:
                p.feed(d, data[:cut], 1.0)
            except ParseError:
                pass
            p.take()
    if trailing:
        assert shape(run([(d, data + trailing) for d, data in datagrams])) == shape(whole)
    return whole
