"""The packet pipeline's ISN hook (open and recently closed connections, bounded) and how
TLS capture decides between the wire's ISNs and its stand-in: by the wire's progress, not
by a wall-clock wait (a loaded node's packet capture may run seconds late)."""

from __future__ import annotations

import time

from kubeweir import pcapgen as g
from sniffer.pipeline import Pipeline, PipelineSettings
from sniffer.tls.capture import TlsCapture, TlsSettings, _Ids, _Stream

MSGS = [("c", b"PING\n"), ("s", b"PONG\n")]


def feed(pipe: Pipeline, pkts: list) -> None:
    for p in pkts:
        pipe.feed(float(p.time), 101, bytes(p))


def session(port: int, *, close: str | None = "fin", t0: float = g.T0, isn: int = 1000) -> list:
    return g.tcp_session(
        MSGS, client=("10.0.0.1", port), close=close, t0=t0, client_isn=isn, server_isn=isn * 7
    )


def test_isns_of_open_and_closed_connections_either_way_round() -> None:
    pipe = Pipeline(PipelineSettings())
    pkts = session(40000, close=None)
    feed(pipe, pkts)
    assert pipe.isns("10.0.0.1", 40000, "10.0.0.2", 80) == (1000, 7000)  # still open
    assert pipe.isns("10.0.0.2", 80, "10.0.0.1", 40000) == (7000, 1000)  # the other end's view
    assert pipe.watermark == float(pkts[-1].time)
    fin = session(40001, t0=g.T0 + 1)
    feed(pipe, fin)
    assert pipe.counters["closed_fin"] == 1
    assert pipe.isns("10.0.0.1", 40001, "10.0.0.2", 80) == (1000, 7000)  # closed and forgotten
    assert pipe.isns("10.0.0.2", 80, "10.0.0.1", 40001) == (7000, 1000)
    assert pipe.isns("10.0.0.1", 40002, "10.0.0.2", 80) is None
    pipe.caught_up(g.T0 + 50)
    assert pipe.watermark == g.T0 + 50


def test_closed_connection_memory_is_bounded_in_count_and_age() -> None:
    pipe = Pipeline(PipelineSettings())
    pipe._tcp.isn_memory = 3
    pipe._tcp.isn_memory_age = 10.0
    for i in range(5):
        feed(pipe, session(41000 + i, t0=g.T0 + i, isn=100 + i))
    known = [pipe.isns("10.0.0.1", 41000 + i, "10.0.0.2", 80) for i in range(5)]
    assert known == [None, None, (102, 714), (103, 721), (104, 728)]
    pipe.advance(g.T0 + 13.5)  # closes at T0+2.x and T0+3.x are past the 10 s limit
    known = [pipe.isns("10.0.0.1", 41000 + i, "10.0.0.2", 80) for i in range(5)]
    assert known == [None, None, None, None, (104, 728)]


class Wire:
    """A packet capture running late: its clock and what it has seen are set by the test."""

    def __init__(self) -> None:
        self.clock = 0.0
        self.seen: dict[tuple[str, int, str, int], tuple[int, int]] = {}

    def lookup(self, cip: str, cport: int, sip: str, sport: int) -> tuple[int, int] | None:
        return self.seen.get((cip, cport, sip, sport))


def tls_stream(cap: TlsCapture, key: tuple[str, int, str, int], first: float) -> _Stream:
    st = _Stream(tgid=1, ssl=1, first=first, key=key)
    cap._ids[key] = _Ids(first=first)
    return st


def test_tls_waits_for_a_late_wire_then_takes_its_isns() -> None:
    wire = Wire()
    cap = TlsCapture(
        PipelineSettings(),
        lambda entries: None,
        isn_lookup=wire.lookup,
        wire_clock=lambda: wire.clock,
        settings=TlsSettings(isn_wait=1.5, isn_slack=0.25, isn_wait_max=30.0),
    )
    key = ("10.0.0.1", 40000, "10.0.0.2", 443)
    first = time.time() - 5.0  # far past isn_wait: the old wall-clock rule gave up here
    st = tls_stream(cap, key, first)
    wire.clock = first - 2.0  # the packet capture is 7 s behind
    assert cap._isns(st, force=False) is None
    wire.clock = first + 0.1  # within the slack: the handshake may still be on its way
    assert cap._isns(st, force=False) is None
    wire.seen[key] = (11, 22)
    wire.clock = first + 0.3
    assert cap._isns(st, force=False) == (11, 22)
    assert cap.c["isn_from_packets"] == 1 and cap.c["isn_fallback"] == 0


def test_tls_stand_in_once_the_wire_is_past_or_stalled() -> None:
    wire = Wire()
    cap = TlsCapture(
        PipelineSettings(),
        lambda entries: None,
        isn_lookup=wire.lookup,
        wire_clock=lambda: wire.clock,
        settings=TlsSettings(isn_slack=0.25, isn_wait_max=30.0),
    )
    now = time.time()
    past = tls_stream(cap, ("10.0.0.1", 40001, "10.0.0.2", 443), now)
    wire.clock = now + 0.3  # the wire processed frames past this stream and never saw it
    assert cap._isns(past, force=False) is not None
    stalled = tls_stream(cap, ("10.0.0.1", 40002, "10.0.0.2", 443), now - 31.0)
    wire.clock = now - 40.0  # the packet capture stopped
    assert cap._isns(stalled, force=False) is not None
    fresh = tls_stream(cap, ("10.0.0.1", 40003, "10.0.0.2", 443), now)
    assert cap._isns(fresh, force=False) is None
    assert cap._isns(fresh, force=True) is not None  # stopping: no more waiting
    assert cap.c["isn_fallback"] == 3 and cap.c["isn_from_packets"] == 0
