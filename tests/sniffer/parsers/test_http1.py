"""HTTP/1.x parser: framing, pairing, decoding, gaps, bounds — each fed three ways."""

from __future__ import annotations

import base64
import gzip
import zlib

import brotli
import pytest

from sniffer.parsers.base import Direction, ParseError, ParserLimits
from sniffer.parsers.http1 import PROTOCOL, HttpParser, detect
from sniffer.parsers.registry import Verdict
from tests.sniffer.parsers.threeway import C, Gap, S, feed_script, three_ways

NEXT = {C: b"GET /next HTTP/1.1\r\nHost: x\r\n"}
"""Trailing data: the start of a request that never completes."""


def resp(status: str, body: bytes = b"", *headers: str) -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(h + "\r\n" for h in headers)
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def test_get_with_content_length_body() -> None:
    ex = three_ways(
        HttpParser,
        [
            (
                C,
                b"GET /api/orders/7?expand=1&x=%20 HTTP/1.1\r\nHost: orders\r\nAccept: */*\r\n\r\n",
            ),
            (S, resp("200 OK", b'{"id": 7}', "Content-Type: application/json")),
        ],
        NEXT,
    )
    [e] = ex
    assert e.proto == "http" and e.error == "" and e.gaps == 0
    assert (e.ts, e.end) == (1.0, 2.0)
    assert e.summary == "GET /api/orders/7?expand=1&x=%20 → 200"
    assert e.request == {
        "method": "GET",
        "path": "/api/orders/7",
        "query": "expand=1&x=%20",
        "version": "HTTP/1.1",
        "host": "orders",
        "headers": {"host": "orders", "accept": "*/*"},
        "content_type": "",
        "body": "",
        "body_encoding": "utf8",
        "body_size": 0,
        "body_truncated": False,
    }
    assert e.response == {
        "status": 200,
        "reason": "OK",
        "version": "HTTP/1.1",
        "headers": {"content-type": "application/json", "content-length": "9"},
        "content_type": "application/json",
        "body": '{"id": 7}',
        "body_encoding": "utf8",
        "body_size": 9,
        "body_truncated": False,
    }


def test_pipelined_requests_pair_in_order() -> None:
    reqs = (
        b"".join(f"GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for i in range(3))
        + b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    )
    resps = (
        resp("200 OK", b"zero")
        + resp("404 Not Found", b"")
        + resp("201 Created", b"two!!")
        + resp("500 Oops", b"err")
    )
    ex = three_ways(HttpParser, [(C, reqs), (S, resps)], NEXT)
    assert [e.summary for e in ex] == [
        "GET /0 → 200",
        "GET /1 → 404",
        "GET /2 → 201",
        "POST /p → 500",
    ]
    assert ex[3].request["body"] == "hello" and ex[0].response["body"] == "zero"


def test_chunked_with_extensions_and_trailers() -> None:
    body = (
        b"4;name=value\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n"
        b"Expires: never\r\nX-Checksum: abc\r\n\r\n"
    )
    ex = three_ways(
        HttpParser,
        [
            (C, b"POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            (S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body),
        ],
        NEXT,
    )
    [e] = ex
    assert e.request["body"] == "abc"
    assert e.response["body"] == "Wikipedia in\r\n\r\nchunks."
    assert e.response["body_size"] == 23
    assert e.response["trailers"] == {"expires": "never", "x-checksum": "abc"}


def test_close_delimited_response_ends_at_close() -> None:
    ex = three_ways(
        HttpParser,
        [
            (C, b"GET / HTTP/1.0\r\n\r\n"),
            (S, b"HTTP/1.0 200 OK\r\n\r\nall of it"),
            (S, b" and more"),
        ],
        {},
    )
    [e] = ex
    assert e.response["body"] == "all of it and more"
    assert e.end == 4.0  # the close
    assert e.error == ""


def test_head_204_304_have_no_body() -> None:
    ex = three_ways(
        HttpParser,
        [
            (C, b"HEAD /big HTTP/1.1\r\n\r\nDELETE /x HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n"),
            (C, b"GET /last HTTP/1.1\r\n\r\n"),
            (
                S,
                b"HTTP/1.1 200 OK\r\nContent-Length: 123456\r\n\r\n"
                b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 77\r\n\r\n"
                + resp("200 OK", b"last"),
            ),
        ],
        NEXT,
    )
    assert [e.summary for e in ex] == [
        "HEAD /big → 200",
        "DELETE /x → 204",
        "GET /c → 304",
        "GET /last → 200",
    ]
    assert ex[0].response["body_size"] == 0 and ex[3].response["body"] == "last"


def test_100_continue_is_not_the_response() -> None:
    ex = three_ways(
        HttpParser,
        [
            (C, b"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
            (S, b"HTTP/1.1 100 Continue\r\n\r\n"),
            (C, b"data"),
            (S, resp("201 Created")),
        ],
        NEXT,
    )
    [e] = ex
    assert e.summary == "PUT /f → 201"
    assert e.request["body"] == "data"
    assert e.response["informational"] == [100]
    assert (e.ts, e.end) == (1.0, 4.0)


def test_upgrade_101_stops_parsing_and_counts() -> None:
    def make() -> HttpParser:
        return HttpParser()

    script = [
        (C, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello"),
        (S, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"),
        (C, b"GET /not-http HTTP/1.1\r\n\r\n"),
        (S, b"HTTP/1.1 200 not http either\r\n\r\n"),
    ]
    ex = three_ways(make, script, {})
    [e] = ex
    assert e.summary == "GET /ws → 101"
    assert e.response["upgrade"] == "websocket"
    p = make()
    for d, data in script:
        p.feed(d, data, 1.0)
    assert p.tunnel_bytes == (7 + 26, 4 + 32)
    assert [x.summary for x in p.take()] == ["GET /ws → 101"]
    p.close(2.0)
    assert p.take() == []  # nothing after the switch is taken for HTTP


def test_upgrade_declined_keeps_parsing() -> None:
    ex = three_ways(
        HttpParser,
        [
            (C, b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n"),
            (C, b"GET /2 HTTP/1.1\r\n\r\n"),
            (S, resp("200 OK", b"one") + resp("200 OK", b"two")),
        ],
        NEXT,
    )
    assert [e.summary for e in ex] == ["GET / → 200", "GET /2 → 200"]
    assert "upgrade" not in ex[0].response


def test_connect_tunnel() -> None:
    ex = three_ways(
        HttpParser,
        [
            (C, b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n"),
            (S, b"HTTP/1.1 200 Connection established\r\n\r\n"),
            (C, b"\x16\x03\x01binary tls"),
            (S, b"\x16\x03\x03more"),
        ],
        {},
    )
    [e] = ex
    assert e.response["upgrade"] == "CONNECT" and e.request["path"] == "db:5432"


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send
        ("br", brotli.compress),
    ],
)
def test_content_decoding(coding: str, encode: object) -> None:
    plain = b'{"items": [' + b",".join(b"%d" % i for i in range(2000)) + b"]}"
    wire = encode(plain)  # type: ignore[operator]
    ex = three_ways(
        HttpParser,
        [
            (C, b"GET /x HTTP/1.1\r\n\r\n"),
            (S, resp("200 OK", wire, f"Content-Encoding: {coding}")),
        ],
        NEXT,
    )
    r = ex[0].response
    assert r["body"] == plain.decode()
    assert r["body_size"] == len(wire)
    assert r["decoded_size"] == len(plain)
    assert r["body_truncated"] is False and "body_error" not in r


def test_chunked_gzip() -> None:
    wire = gzip.compress(b"hello " * 1000)
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(wire[i : i + 100]), wire[i : i + 100])
        for i in range(0, len(wire), 100)
    )
    ex = three_ways(
        HttpParser,
        [
            (C, b"GET /x HTTP/1.1\r\n\r\n"),
            (
                S,
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
                + chunks
                + b"0\r\n\r\n",
            ),
        ],
        NEXT,
    )
    assert ex[0].response["body"] == "hello " * 1000


@pytest.mark.parametrize(
    ("coding", "encode"),
    [("gzip", gzip.compress), ("br", brotli.compress), ("deflate", zlib.compress)],
)
def test_decompression_bomb_stops_at_bound(coding: str, encode: object) -> None:
    limits = ParserLimits(max_body=1000, max_decoded=50_000)
    bomb = encode(b"\0" * 5_000_000)  # type: ignore[operator]
    ex = three_ways(
        lambda: HttpParser(limits),
        [(C, b"GET /b HTTP/1.1\r\n\r\n"), (S, resp("200 OK", bomb, f"Content-Encoding: {coding}"))],
        NEXT,
    )
    r = ex[0].response
    assert "50000" in r["body_error"] and "bomb" in r["body_error"]
    assert r["body_truncated"] is True
    assert r["body_size"] == len(bomb)
    assert r["decoded_size"] == 50_000
    assert len(base64.b64decode(r["body"]) if r["body_encoding"] == "base64" else r["body"]) == 1000


def test_corrupt_gzip_says_so() -> None:
    ex = three_ways(
        HttpParser,
        [
            (C, b"GET /b HTTP/1.1\r\n\r\n"),
            (S, resp("200 OK", b"not gzip at all", "Content-Encoding: gzip")),
        ],
        NEXT,
    )
    assert "gzip decoding failed" in ex[0].response["body_error"]


def test_body_bound_keeps_real_size_and_binary_is_base64() -> None:
    limits = ParserLimits(max_body=10)
    blob = bytes(range(255, -1, -1)) * 4
    ex = three_ways(
        lambda: HttpParser(limits),
        [
            (C, b"POST /t HTTP/1.1\r\nContent-Length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz"),
            (S, resp("200 OK", blob, "Content-Type: application/octet-stream")),
        ],
        NEXT,
    )
    e = ex[0]
    assert e.request["body"] == "abcdefghij"
    assert e.request["body_size"] == 26 and e.request["body_truncated"] is True
    assert e.response["body_encoding"] == "base64"
    assert base64.b64decode(e.response["body"]) == blob[:10]
    assert e.response["body_size"] == 1024


def test_utf8_cut_at_bound_stays_text() -> None:
    ex = three_ways(
        lambda: HttpParser(ParserLimits(max_body=5)),
        [(C, b"GET / HTTP/1.1\r\n\r\n"), (S, resp("200 OK", "héllo wörld".encode()))],
        NEXT,
    )
    assert ex[0].response["body"] == "héll" and ex[0].response["body_encoding"] == "utf8"


def test_header_joining_folding_and_odd_bytes() -> None:
    ex = three_ways(
        HttpParser,
        [
            (
                C,
                b"GET / HTTP/1.1\r\nAccept: a\r\nACCEPT: b\r\nX-Long: one\r\n  two\r\n"
                b"X-Bin: caf\xe9\xff\r\nCookie: c=1\r\n\r\n",
            ),
            (
                S,
                b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1, expires=Wed\r\nSet-Cookie: b=2\r\n"
                b"Content-Length: 0\r\n\r\n",
            ),
        ],
        NEXT,
    )
    h = ex[0].request["headers"]
    assert h["accept"] == "a, b"
    assert h["x-long"] == "one two"
    assert h["x-bin"] == "caf\xe9\xff"  # not UTF-8: latin-1, never a crash
    assert ex[0].response["headers"]["set-cookie"] == "a=1, expires=Wed\nb=2"


def test_bare_lf_line_endings() -> None:
    ex = three_ways(
        HttpParser,
        [
            (C, b"GET /lf HTTP/1.1\nHost: h\n\n"),
            (S, b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
        ],
        NEXT,
    )
    assert ex[0].summary == "GET /lf → 200" and ex[0].response["body"] == "ok"


def test_absolute_form_target() -> None:
    ex = three_ways(
        HttpParser,
        [(C, b"GET http://proxy.example:8080/a/b?q=1 HTTP/1.1\r\n\r\n"), (S, resp("200 OK"))],
        NEXT,
    )
    r = ex[0].request
    assert (r["host"], r["path"], r["query"]) == ("proxy.example:8080", "/a/b", "q=1")


def test_request_without_response_at_close() -> None:
    ex = three_ways(
        HttpParser,
        [(C, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"), (S, resp("200 OK"))],
        NEXT,
    )
    assert [(e.summary, e.error, e.end) for e in ex] == [
        ("GET /1 → 200", "", 2.0),
        ("GET /2 → no response", "no response", None),
    ]
    assert ex[1].response == {}


def test_response_without_request_is_kept() -> None:
    ex = three_ways(HttpParser, [(S, resp("503 Busy", b"later"))], {})
    [e] = ex
    assert e.error == "no request" and e.request == {}
    assert e.response["status"] == 503 and e.summary == "? → 503"


def test_incomplete_response_at_close() -> None:
    ex = three_ways(
        HttpParser,
        [
            (C, b"GET / HTTP/1.1\r\n\r\n"),
            (S, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart"),
        ],
        NEXT,
    )
    [e] = ex
    assert e.error == "incomplete response"
    assert e.response["body"] == "part" and e.response["body_truncated"] is True


def test_gap_inside_body_keeps_framing() -> None:
    ex = three_ways(
        HttpParser,
        [
            (C, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
            (S, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n012"),
            Gap(S, 4),
            (S, b"789" + resp("200 OK", b"b")),
        ],
        NEXT,
    )
    assert [(e.summary, e.gaps, e.error) for e in ex] == [
        ("GET /a → 200", 4, ""),
        ("GET /b → 200", 0, ""),
    ]
    assert ex[0].response["body_size"] == 10 and ex[0].response["body_truncated"] is True


def test_gap_swallowing_a_request_resynchronises() -> None:
    # the second request is lost; its response comes after the gap is reported
    ex = three_ways(
        HttpParser,
        [
            (C, b"GET /1 HTTP/1.1\r\n\r\n"),
            Gap(C, 30),
            (C, b"GET /3 HTTP/1.1\r\n\r\n"),
            (S, resp("200 OK", b"1") + resp("201 OK", b"2") + resp("202 OK", b"3")),
        ],
        NEXT,
    )
    assert [(e.summary, e.error, e.gaps) for e in ex] == [
        ("GET /1 → 200", "", 0),
        ("? → 201", "no request", 30),
        ("GET /3 → 202", "", 0),
    ]


def test_gap_reported_after_the_orphan_response() -> None:
    # the usual order in captures: the lost request's answer arrives before the gap is seen
    ex = three_ways(
        HttpParser,
        [
            (C, b"GET /1 HTTP/1.1\r\n\r\n"),
            (S, resp("200 OK", b"1")),
            (S, resp("201 OK", b"2")),
            Gap(C, 30),
            (C, b"GET /3 HTTP/1.1\r\n\r\n"),
            (S, resp("202 OK", b"3")),
        ],
        NEXT,
    )
    assert [(e.summary, e.error) for e in ex] == [
        ("GET /1 → 200", ""),
        ("? → 201", "no request"),
        ("GET /3 → 202", ""),
    ]


def test_gap_in_the_middle_of_a_response_head_loses_that_response() -> None:
    ex = three_ways(
        HttpParser,
        [
            (C, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"),
            (S, b"HTTP/1.1 200 OK\r\nConte"),
            Gap(S, 20),
            (S, b"junk from the lost body\r\n" + resp("200 OK", b"2")),
        ],
        NEXT,
    )
    assert [(e.summary, e.error, e.gaps) for e in ex] == [
        ("GET /1 → gap", "gap", 20),
        ("GET /2 → 200", "", 0),
    ]


def test_midstream_start_resynchronises() -> None:
    ex = three_ways(
        HttpParser,
        [
            (C, b"tail of an earlier body\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n"),
            (S, b"rest of a body\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!"),
        ],
        NEXT,
    )
    assert [e.summary for e in ex] == ["GET /x → 200"]


def test_parse_errors_after_a_good_message() -> None:
    for bad in (
        b"GET /x HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n",
        b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"\x00\x01\x02 binary\r\n\r\n",
    ):
        p = HttpParser()
        p.feed(C, b"GET / HTTP/1.1\r\n\r\n", 1.0)
        with pytest.raises(ParseError):
            p.feed(C, bad, 2.0)


def test_not_http_at_all_is_a_parse_error() -> None:
    p = HttpParser()
    with pytest.raises(ParseError, match="no HTTP/1 message start"):
        for i in range(100):
            p.feed(C, bytes(range(256)) * 16, float(i))


def test_head_bound() -> None:
    p = HttpParser(ParserLimits(max_header_bytes=1000))
    with pytest.raises(ParseError, match="longer than 1000"):
        p.feed(C, b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 2000, 1.0)


def test_pending_bound_fails_the_oldest() -> None:
    p = HttpParser(ParserLimits(max_pending=2))
    p.feed(C, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n", 1.0)
    [e] = p.take()
    assert e.summary.startswith("GET /1") and "too many pending" in e.error


def test_byte_by_byte_buffer_stays_small() -> None:
    p = HttpParser()
    body = b"x" * 100_000
    msg = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    for i in range(0, len(msg), 7):
        p.feed(C, msg[i : i + 7], 1.0)
        assert len(p._client.buf) - p._client.pos < 64 * 1024


def test_timestamps_come_from_the_first_byte() -> None:
    before, _ = feed_script(
        HttpParser,
        [
            (C, b"GET /slow HTTP/1.1\r\n"),
            (C, b"Host: h\r\n\r\n"),
            (S, b"HTTP/1.1 200 OK\r\n"),
            (S, b"Content-Length: 0\r\n\r\n"),
        ],
    )
    assert (before[0].ts, before[0].end) == (1.0, 4.0)


@pytest.mark.parametrize(
    ("data", "direction", "verdict"),
    [
        (b"GET / HTTP/1.1\r\n", Direction.CLIENT, Verdict.YES),
        (b"PROPFIND /dav HTTP/1.1", Direction.CLIENT, Verdict.YES),
        (b"GE", Direction.CLIENT, Verdict.MORE),
        (b"GET", Direction.CLIENT, Verdict.MORE),
        (b"GET ", Direction.CLIENT, Verdict.MORE),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Direction.CLIENT, Verdict.NO),
        (b"*2\r\n$3\r\nGET\r\n", Direction.CLIENT, Verdict.NO),
        (b"\x16\x03\x01\x02\x00", Direction.CLIENT, Verdict.NO),
        (b"HTTP/1.1 200 OK\r\n", Direction.SERVER, Verdict.YES),
        (b"HTTP/", Direction.SERVER, Verdict.MORE),
        (b"HTTP/2", Direction.SERVER, Verdict.NO),
        (b"+OK\r\n", Direction.SERVER, Verdict.NO),
    ],
)
def test_detect(data: bytes, direction: Direction, verdict: Verdict) -> None:
    assert detect(data, direction) is verdict


def test_protocol_object() -> None:
    assert PROTOCOL.name == "http" and PROTOCOL.midstream
    assert {80, 8080, 8000, 3000, 5000, 2375} <= PROTOCOL.ports
    assert isinstance(PROTOCOL.factory(ParserLimits()), HttpParser)


def test_expire_times_out_requests_and_keeps_later_pairing() -> None:
    p = HttpParser()
    p.feed(C, b"GET /slow HTTP/1.1\r\n\r\n", 1.0)
    p.feed(C, b"GET /next HTTP/1.1\r\n\r\n", 20.0)
    p.expire(25.0, 30.0)
    assert p.take() == []
    p.expire(31.0, 30.0)
    [gone] = p.take()
    assert (gone.summary, gone.error, gone.end) == ("GET /slow → no response", "no response", None)
    # the slow answer comes after all: kept apart; the next request still gets its own
    p.feed(S, resp("200 OK", b"slow") + resp("200 OK", b"next"), 40.0)
    late, nxt = p.take()
    assert (late.error, late.response["body"], late.request) == ("late response", "slow", {})
    assert (nxt.summary, nxt.error, nxt.response["body"]) == ("GET /next → 200", "", "next")
    p.expire(1000.0, 30.0)
    p.close(1001.0)
    assert p.take() == []


def test_non_ascii_digits_are_not_numbers() -> None:
    # str.isdigit() accepts "²" and "٣"; int() refuses the first and reads the second
    for bad in ("HTTP/1.1 ²00 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: ٣\r\n\r\n"):
        p = HttpParser()
        p.feed(S, b"HTTP/1.1 204 No Content\r\n\r\n", 1.0)
        with pytest.raises(ParseError):
            p.feed(S, bad.encode(), 2.0)


def test_gap_from_a_body_into_the_next_request() -> None:
    # 7 bytes of /1's body and the first 13 of /2's head are missing
    ex = three_ways(
        HttpParser,
        [
            (C, b"POST /1 HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
            Gap(C, 20),
            (C, b"ost: h\r\n\r\nGET /3 HTTP/1.1\r\n\r\n"),
            (S, resp("200 OK", b"1") + resp("201 OK", b"2") + resp("202 OK", b"3")),
        ],
        NEXT,
    )
    assert [(e.summary, e.error, e.gaps) for e in ex] == [
        ("POST /1 → 200", "", 20),
        ("? → 201", "no request", 0),
        ("GET /3 → 202", "", 0),
    ]
    assert ex[0].request["body"] == "abc" and ex[0].request["body_truncated"] is True


def test_connection_ending_inside_a_request_head() -> None:
    ex = three_ways(
        HttpParser,
        [
            (C, b"GET /a HTTP/1.1\r\n\r\n"),
            (S, resp("200 OK")),
            (C, b"POST /b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Le"),
        ],
        {},
    )
    assert [(e.summary, e.error) for e in ex] == [
        ("GET /a → 200", ""),
        ("POST /b?x=1 → incomplete request", "incomplete request"),
    ]
    r = ex[1].request
    assert (r["method"], r["path"], r["query"], r["version"]) == ("POST", "/b", "x=1", "HTTP/1.1")
    assert r["head_preview"].endswith("Content-Le") and ex[1].ts == 3.0
