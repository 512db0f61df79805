"""HTTP/2 parser: frames, HPACK across streams, CONTINUATION/PADDED, resets, mid-stream
captures; three ways, fuzzed, and the shared h2c/gRPC captures against tshark."""

from __future__ import annotations

import gzip

import hpack
from hypothesis import given
from hypothesis import strategies as st

from sniffer.parsers.http2 import PROTOCOL, Http2Parser
from sniffer.parsers.registry import Verdict
from tests.conftest import pcap
from tests.sniffer.parsers.h2frames import (
    PREFACE,
    data,
    goaway,
    headers,
    ping,
    rst,
    settings,
    window_update,
)  # fmt: skip
from tests.sniffer.parsers.protohelp import C, S, capture_exchanges, fuzz_feed, run, three_ways


def req(path: str, method: str = "GET", **extra: str) -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "http"), (":path", path),
            (":authority", "svc:8080"), *extra.items()]  # fmt: skip


def conversation() -> list[tuple[object, bytes]]:
    ce, se = hpack.Encoder(), hpack.Encoder()
    return [
        (C, PREFACE + settings((1, 4096), (4, 65535))),
        (S, settings((3, 100)) + settings(ack=True)),
        (C, headers(ce, 1, req("/api/orders/7?x=1", **{"x-id": "a1"}), end=True)),
        (
            C,
            headers(
                ce,
                3,
                req("/api/orders", "POST", **{"content-type": "application/json", "x-id": "a1"}),
            ),
        ),  # fmt: skip
        (C, data(3, b'{"item":', padded=3) + data(3, b' "book"}', end=True)),
        (S, headers(se, 3, [(":status", "201"), ("content-type", "application/json")])),
        (S, data(3, b'{"id": 8}', end=True) + window_update(0, 100) + ping()),
        (S, headers(se, 1, [(":status", "200"), ("content-encoding", "gzip")])),
        (S, data(1, gzip.compress(b"hello " * 50), end=True)),
        # the dynamic table from the streams above is reused: x-id comes by index
        (C, headers(ce, 5, req("/slow", **{"x-id": "a1"}), end=True, split=6)),
        (S, rst(5, 8)),
        (C, headers(ce, 7, req("/late"), end=True)),
        (S, goaway(5, 0)),
    ]


def test_conversation_three_ways() -> None:
    xs = three_ways(Http2Parser, conversation(), trailing=b"")  # type: ignore[arg-type]
    assert [x.summary for x in xs] == [
        "POST /api/orders → 201",
        "GET /api/orders/7 → 200",
        "GET /slow → CANCEL",
        "GET /late → GOAWAY NO_ERROR",
    ]
    post, get, slow, late = xs
    assert post.proto == "http2" and post.request["body"] == '{"item": "book"}'
    assert post.request["headers"] == {"content-type": "application/json", "x-id": "a1"}
    assert post.request["authority"] == "svc:8080" and post.request["stream_id"] == 3
    assert post.response["status"] == 201 and post.response["body"] == '{"id": 8}'
    assert post.ts == 4.0 and post.end == 7.0 and post.error == ""
    assert get.request["query"] == "x=1" and get.response["body"] == "hello " * 50
    assert get.response["body_size"] < 100  # gzip on the wire
    assert slow.request["headers"] == {"x-id": "a1"}  # HPACK state survived the streams
    assert slow.error == "stream reset: CANCEL" and slow.response["reset"] == "CANCEL"
    assert late.error == "no response"


def test_trailing_bytes_and_close() -> None:
    def script(more: bool) -> list[tuple[object, bytes]]:
        ce, se = hpack.Encoder(), hpack.Encoder()
        out = [
            (C, PREFACE + headers(ce, 1, req("/a"), end=True)),
            (S, headers(se, 1, [(":status", "204")], end=True)),
        ]
        return out + [(C, headers(ce, 3, req("/b")))] if more else out

    xs = run(Http2Parser, script(False), trailing=script(True)[2][1][:7])  # type: ignore[arg-type]
    assert [x.summary for x in xs] == ["GET /a → 204"]
    xs = run(Http2Parser, script(True))  # type: ignore[arg-type]
    assert xs[1].summary == "GET /b" and xs[1].error == "no response"


def test_informational_and_trailers() -> None:
    ce, se = hpack.Encoder(), hpack.Encoder()
    script = [
        (C, PREFACE + headers(ce, 1, req("/up", "PUT", expect="100-continue"))),
        (S, headers(se, 1, [(":status", "100")])),
        (C, data(1, b"x" * 10, end=True)),
        (S, headers(se, 1, [(":status", "200")]) + data(1, b"ok")),
        (S, headers(se, 1, [("x-checksum", "abc")], end=True)),
    ]
    (x,) = run(Http2Parser, script)
    assert x.response["informational"] == [100] and x.response["status"] == 200
    assert x.response["trailers"] == {"x-checksum": "abc"}


def test_midstream_hpack_errors_are_marked_and_data_still_paired() -> None:
    ce, se = hpack.Encoder(), hpack.Encoder()
    headers(ce, 1, req("/warm", **{"x-big": "v" * 40}))  # fills the encoder's table only
    headers(se, 1, [(":status", "200"), ("x-srv", "s" * 40)])
    script = [
        # no preface, no SETTINGS: the capture starts here
        (C, headers(ce, 3, req("/warm", **{"x-big": "v" * 40}), end=True)),
        (S, headers(se, 3, [(":status", "200"), ("x-srv", "s" * 40)])),
        (S, data(3, b"body", end=True)),
        (S, data(9, b"orphan", end=True)),
    ]
    xs = run(Http2Parser, script)
    assert xs[0].request["headers_error"].startswith("HPACK")
    assert xs[0].response["body"] == "body"
    assert xs[1].response["headers_error"] == "headers not captured"
    assert xs[1].response["body"] == "orphan"


def test_gap_resynchronises_at_next_frame() -> None:
    ce, se = hpack.Encoder(), hpack.Encoder()
    p = Http2Parser()
    p.feed(C, PREFACE + headers(ce, 1, req("/s"), end=True), 1.0)
    p.feed(S, headers(se, 1, [(":status", "200")]) + data(1, b"a"), 2.0)
    p.gap(S, 17, 3.0)
    p.feed(S, b"\x07garbage-mid-frame", 3.5)  # not a frame start: skipped
    p.feed(S, data(1, b"b", end=True), 4.0)
    (x,) = p.take()
    assert x.response["body"] == "ab" and x.gaps == 17 and x.end == 4.0


def test_detect() -> None:
    assert PROTOCOL.detect(PREFACE, C) is Verdict.YES
    assert PROTOCOL.detect(PREFACE[:10], C) is Verdict.MORE
    assert PROTOCOL.detect(b"GET / HTTP/1.1\r\n", C) is Verdict.NO
    assert PROTOCOL.detect(settings((3, 100)), S) is Verdict.YES
    assert PROTOCOL.detect(b"HTTP/1.1 200 OK\r\n", S) is Verdict.NO
    assert PROTOCOL.midstream


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=80)), max_size=10))
def test_fuzz_only_parse_error(chunks: list[tuple[bool, bytes]]) -> None:
    fuzz_feed(Http2Parser, [(False, PREFACE)] + chunks)


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(
    [b for _, b in conversation()] + [b"\0\0\0\0\0\0\0\0\0", data(1, b"")[:5]]
)), max_size=20))  # fmt: skip
def test_fuzz_frame_soup(chunks: list[tuple[bool, bytes]]) -> None:
    fuzz_feed(Http2Parser, chunks)


def test_shared_h2c_capture_matches_tshark() -> None:
    # tshark -r h2c_post_json_port29518.pcapng -d tcp.port==29518,http2 -T fields
    #   -e http2.type -e http2.streamid -e http2.headers.method -e http2.headers.path
    #   -e http2.headers.status
    # → stream 3: POST /namf-comm/v1/subscriptions (JSON body) answered 201; SETTINGS ×4,
    #   WINDOW_UPDATE ×3, GOAWAY.
    (e,) = capture_exchanges(str(pcap("h2c_post_json_port29518.pcapng")), "http2", 29518, "http2")
    assert e["proto"] == "http2"
    assert (e["request"]["method"], e["request"]["path"], e["response"]["status"]) == (
        "POST", "/namf-comm/v1/subscriptions", 201
    )  # fmt: skip
    assert e["request"]["body"].startswith('{"amfStatusUri":')
    assert e["response"]["headers"]["location"].endswith("/amfstatus/1")
    assert e["error"] == ""


def test_shared_grpc_midstream_capture_matches_tshark() -> None:
    # tshark -r grpc_server_stream_midstream.pcap -d tcp.port==9001,http2 -T fields
    #   -e http2.type -e http2.header.name -e grpc.message_length -e http2.header.value
    # → 1 call POST /timeseriesquery.TimeSeriesQueryService/ServerStreamQuery, 1 request
    #   message, 5 response messages, trailers grpc-status 0; the capture starts mid-
    #   connection and 3×17 bytes (PING frames) are missing on the server side.
    (e,) = capture_exchanges(str(pcap("grpc_server_stream_midstream.pcap")), "grpc", 9001, "http2")
    assert e["proto"] == "grpc"
    assert e["request"]["service"] == "timeseriesquery.TimeSeriesQueryService"
    assert e["request"]["rpc"] == "ServerStreamQuery"
    assert e["request"]["message_count"] == 1 and e["response"]["message_count"] == 5
    assert e["response"]["status"] == 200 and e["response"]["grpc_status"] == 0
    assert e["request"]["messages"][0]["1"]["2"] == ["host_id", "vpc"]
    assert e["summary"] == "POST timeseriesquery.TimeSeriesQueryService/ServerStreamQuery → 200 OK"


def test_midstream_byte_by_byte() -> None:
    ce, se = hpack.Encoder(), hpack.Encoder()
    script = [
        (C, headers(ce, 5, req("/m"), end=True)),
        (S, headers(se, 5, [(":status", "200")]) + data(5, b"ok", end=True)),
    ]
    xs = three_ways(Http2Parser, script, trailing=b"")  # type: ignore[arg-type]
    assert [x.summary for x in xs] == ["GET /m → 200"]


def test_indexed_block_cache_follows_the_dynamic_table() -> None:
    ce, se = hpack.Encoder(), hpack.Encoder()
    # the same bytes (one indexed field, dynamic index 62) mean different headers once a
    # literal with incremental indexing has moved the table
    first = headers(ce, 1, req("/a", **{"x-v": "one"}), end=True)
    again = headers(ce, 3, req("/a", **{"x-v": "one"}), end=True)
    script = [
        (C, PREFACE + first),
        (S, headers(se, 1, [(":status", "200"), ("x-s", "1")], end=True)),
        (C, again),
        (S, headers(se, 3, [(":status", "200"), ("x-s", "1")], end=True)),
        (S, headers(se, 5, [(":status", "200"), ("x-s", "2")], end=True)),  # inserts
        (C, headers(ce, 5, req("/a", **{"x-v": "one"}), end=True)),
        # the bytes stream 3's answer had: :status 200 (static 8), dynamic index 62
        (S, b"\x00\x00\x02\x01\x05\x00\x00\x00\x07\x88\xbe"),
        (C, headers(ce, 7, req("/a", **{"x-v": "one"}), end=True)),
    ]
    xs = three_ways(Http2Parser, script, trailing=b"")  # type: ignore[arg-type]
    by = {x.request["stream_id"]: x for x in xs}
    assert by[1].response["headers"] == {"x-s": "1"} and by[3].response["headers"] == {"x-s": "1"}
    assert by[5].response["headers"] == {"x-s": "2"}
    assert by[7].response["headers"] == {"x-s": "2"}  # index 62 is the newest entry now
