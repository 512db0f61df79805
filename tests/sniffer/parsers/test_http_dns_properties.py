"""Property tests (hypothesis) for the HTTP/1 and DNS parsers: whatever the bytes, nothing
but ``ParseError`` escapes and buffers stay bounded; valid input split anywhere parses the
same. Profiles: HYPOTHESIS_PROFILE=fast (default) or deep."""

from __future__ import annotations

import gzip

from hypothesis import given
from hypothesis import strategies as st

from sniffer.parsers.base import Direction, ParseError, ParserLimits
from sniffer.parsers.dns import DnsParser, parse_message
from sniffer.parsers.dns_tcp import DnsTcpParser
from sniffer.parsers.http1 import HttpParser
from tests.sniffer.parsers.threeway import shape

LIMITS = ParserLimits(max_body=64, max_decoded=2048, max_header_bytes=512, max_pending=8)
MAX_CHUNK = 300

_GZ = gzip.compress(b"z" * 5000)
HTTP_CLIENT = (
    b"GET /a?b=c HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAccept: b\r\n\r\n"
    b"POST /p HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"
    b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
    b"HEAD /h HTTP/1.0\r\n\r\n"
    b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
)
HTTP_SERVER = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\nok"
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n" % len(_GZ)
    + _GZ
    + b"\r\n0\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00"
)


def _bounded(p: HttpParser) -> None:
    for h in (p._client, p._server):
        assert len(h.buf) - h.pos <= LIMITS.max_header_bytes + MAX_CHUNK
    assert len(p._pending) <= LIMITS.max_pending


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    b = bytearray(data)
    for kind, pos, val in edits:
        if not b:
            break
        i = pos % len(b)
        if kind == 0:
            b[i] = val
        elif kind == 1:
            b.insert(i, val)
        else:
            del b[i : i + 1 + val % 8]
    return bytes(b)


_steps = st.lists(
    st.tuples(st.booleans(), st.binary(min_size=0, max_size=MAX_CHUNK), st.integers(0, 3)),
    max_size=30,
)
_edits = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)), max_size=8
)


def _run_http(steps: list[tuple[bool, bytes, int]]) -> None:
    p = HttpParser(LIMITS)
    try:
        for i, (server, data, gap) in enumerate(steps):
            d = Direction.SERVER if server else Direction.CLIENT
            if gap == 3:
                p.gap(d, len(data) + 1, float(i))
            else:
                p.feed(d, data, float(i))
                if gap == 2:
                    p.expire(float(i), 2.0)
            _bounded(p)
            for e in p.take():
                assert e.proto == "http"
        p.close(1e9)
        p.take()
    except ParseError:
        pass


@given(_steps)
def test_http_random_bytes_only_parse_error(steps: list[tuple[bool, bytes, int]]) -> None:
    _run_http(steps)


@given(
    st.lists(st.integers(0, 10**6), max_size=12),
    st.lists(st.integers(0, 10**6), max_size=12),
    _edits,
    _edits,
    st.lists(st.integers(0, 10**6), max_size=3),
)
def test_http_mutated_messages_only_parse_error(
    ccuts: list[int],
    scuts: list[int],
    cedits: list[tuple[int, int, int]],
    sedits: list[tuple[int, int, int]],
    gaps: list[int],
) -> None:
    client = _chunks(_mutate(HTTP_CLIENT, cedits), ccuts)
    server = _chunks(_mutate(HTTP_SERVER, sedits), scuts)
    steps: list[tuple[bool, bytes, int]] = []
    for i in range(max(len(client), len(server))):
        if i < len(client):
            steps.append((False, client[i], 3 if i in {g % 20 for g in gaps} else 0))
        if i < len(server):
            steps.append((True, server[i], 0))
    _run_http(steps)


def _http_exchanges(client: list[bytes], server: list[bytes]) -> list[object]:
    p = HttpParser(LIMITS)
    for c in client:
        p.feed(Direction.CLIENT, c, 1.0)
    for s in server:
        p.feed(Direction.SERVER, s, 2.0)
    p.close(3.0)
    return shape(p.take())


@given(st.lists(st.integers(0, 10**6), max_size=20), st.lists(st.integers(0, 10**6), max_size=20))
def test_http_split_anywhere_same_exchanges(ccuts: list[int], scuts: list[int]) -> None:
    whole = _http_exchanges([HTTP_CLIENT], [HTTP_SERVER])
    assert len(whole) == 5
    assert _http_exchanges(_chunks(HTTP_CLIENT, ccuts), _chunks(HTTP_SERVER, scuts)) == whole


DNS_RESPONSE = bytes.fromhex(
    "1234818000010002000000010377777706676f6f676c6503636f6d0000010001"
    "c00c0005000100000e10000803777777016cc010c02c0001000100000e1000044a7d1893"
    "0000291000000080000000"
)


def test_dns_corpus_is_valid() -> None:
    m = parse_message(DNS_RESPONSE)
    assert [a.data for a in m.answers] == ["www.l.google.com", "74.125.24.147"]
    assert m.edns == {"udp_size": 4096, "version": 0, "do": True}


@given(st.binary(max_size=600))
def test_dns_random_bytes_only_parse_error(data: bytes) -> None:
    p = DnsParser(LIMITS)
    try:
        p.feed(Direction.SERVER, data, 1.0)
    except ParseError:
        pass
    p.expire(10.0, 0.0)
    assert len(p.take()) <= 1


@given(_edits)
def test_dns_mutated_only_parse_error(edits: list[tuple[int, int, int]]) -> None:
    try:
        parse_message(_mutate(DNS_RESPONSE, edits))
    except ParseError:
        pass


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=20), _edits)
def test_dns_tcp_random_and_mutated(
    steps: list[tuple[bool, bytes]], edits: list[tuple[int, int, int]]
) -> None:
    p = DnsTcpParser(LIMITS)
    framed = len(DNS_RESPONSE).to_bytes(2, "big") + _mutate(DNS_RESPONSE, edits)
    try:
        p.feed(Direction.SERVER, framed, 0.5)
        for i, (server, data) in enumerate(steps):
            p.feed(Direction.SERVER if server else Direction.CLIENT, data, float(i))
            for f in p._framers:
                assert f.pending <= 65535 + 2 + 200
        p.close(99.0)
        p.take()
    except ParseError:
        pass
