"""Kafka parser. No Kafka broker is installable on the test node, so Kafka is proven on
the shared capture (compared with tshark) and on synthetic conversations written here
with ``struct`` (and a synthetic pcap through the real pipeline) — not live."""

from __future__ import annotations

import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kubeweir import pcapgen
from sniffer.parsers.base import ParserLimits
from sniffer.parsers.kafka import PROTOCOL, KafkaParser
from sniffer.parsers.registry import Verdict
from tests.conftest import pcap
from tests.sniffer.parsers.protohelp import C, S, capture_exchanges, fuzz_feed, run, three_ways


def s(v: str | None) -> bytes:
    if v is None:
        return struct.pack("!h", -1)
    b = v.encode()
    return struct.pack("!h", len(b)) + b


def arr(items: list[bytes]) -> bytes:
    return struct.pack("!i", len(items)) + b"".join(items)


def request(key: int, version: int, corr: int, body: bytes, client: str | None = "app") -> bytes:
    msg = struct.pack("!hhi", key, version, corr) + s(client) + body
    return struct.pack("!i", len(msg)) + msg


def response(corr: int, body: bytes) -> bytes:
    msg = struct.pack("!i", corr) + body
    return struct.pack("!i", len(msg)) + msg


RECORDS = struct.pack("!i", 20) + b"r" * 20


def produce_v3(corr: int, topic: str = "orders") -> bytes:
    parts = arr([struct.pack("!i", 0) + RECORDS, struct.pack("!i", 1) + RECORDS])
    body = s(None) + struct.pack("!hi", -1, 30000) + arr([s(topic) + parts])
    return request(0, 3, corr, body)


def produce_resp_v3(corr: int, topic: str = "orders", err1: int = 0) -> bytes:
    p0 = struct.pack("!ihqq", 0, 0, 42, -1)
    p1 = struct.pack("!ihqq", 1, err1, -1, -1)
    return response(corr, arr([s(topic) + arr([p0, p1])]) + struct.pack("!i", 0))


def fetch_v4(corr: int) -> bytes:
    part = struct.pack("!iqi", 2, 100, 1 << 20)
    body = struct.pack("!iiiib", -1, 500, 1, 1 << 20, 0) + arr([s("events") + arr([part])])
    return request(1, 4, corr, body, client="consumer-1")


def fetch_resp_v4(corr: int, records: bytes = RECORDS) -> bytes:
    part = struct.pack("!ihqq", 2, 0, 120, 120) + arr([]) + records
    return response(corr, struct.pack("!i", 0) + arr([s("events") + arr([part])]))


def metadata_v1(corr: int, topics: list[str] | None) -> bytes:
    body = struct.pack("!i", -1) if topics is None else arr([s(t) for t in topics])
    return request(3, 1, corr, body)


def metadata_resp_v1(corr: int) -> bytes:
    brokers = arr([struct.pack("!i", 1) + s("kafka-0") + struct.pack("!i", 9092) + s(None)])
    part = struct.pack("!hii", 0, 0, 1) + arr([struct.pack("!i", 1)]) + arr([struct.pack("!i", 1)])
    topics = arr([
        struct.pack("!h", 0) + s("orders") + b"\0" + arr([part]),
        struct.pack("!h", 3) + s("nope") + b"\0" + arr([]),
    ])  # fmt: skip
    return response(corr, brokers + struct.pack("!i", 1) + topics)


def test_conversation_three_ways() -> None:
    script = [
        (C, metadata_v1(1, ["orders", "nope"])),
        (S, metadata_resp_v1(1)),
        # pipelined: two requests out, answers in order by correlation id
        (C, produce_v3(2) + fetch_v4(3)),
        (S, produce_resp_v3(2, err1=6)),
        (S, fetch_resp_v4(3)),
        (C, request(18, 0, 4, b"")),
        (S, response(4, struct.pack("!h", 0) + arr([struct.pack("!hhh", 0, 0, 9)]))),
        (C, request(12, 0, 5, s("grp") + struct.pack("!i", 1) + s("m1"))),
    ]
    xs = three_ways(KafkaParser, script, trailing=produce_v3(9)[:11])  # type: ignore[arg-type]
    assert [x.summary for x in xs] == [
        "Metadata v1 orders,nope → 2 topic(s) UNKNOWN_TOPIC_OR_PARTITION",
        "Produce v3 orders → NOT_LEADER_OR_FOLLOWER",
        "Fetch v4 events → NONE",
        "ApiVersions v0 → NONE",
    ]
    meta, prod, fetch, apiv = xs
    assert meta.request["topics"] == ["orders", "nope"]
    assert meta.response["brokers"] == ["kafka-0:9092"]
    assert meta.response["errors"] == {"nope": "UNKNOWN_TOPIC_OR_PARTITION"}
    assert prod.request["partitions"] == ["orders:0", "orders:1"] and prod.request["acks"] == -1
    assert prod.response["errors"] == {"orders:1": "NOT_LEADER_OR_FOLLOWER"}
    assert prod.response["error_code"] == 6
    assert fetch.request["client_id"] == "consumer-1" and fetch.request["partitions"] == [
        "events:2"
    ]
    assert fetch.ts == 3.0 and fetch.end == 5.0
    assert apiv.request["api"] == "ApiVersions" and apiv.request["method"] == "ApiVersions"
    xs = run(KafkaParser, script)
    assert xs[-1].request["api"] == "Heartbeat" and xs[-1].error == "no response"


def test_out_of_order_and_unknown_correlation() -> None:
    script = [
        (C, metadata_v1(1, None) + produce_v3(2)),
        (S, produce_resp_v3(2)),
        (S, metadata_resp_v1(1)),
        (S, response(77, b"")),
    ]
    xs = run(KafkaParser, script)
    assert [x.request.get("api") for x in xs] == ["Produce", "Metadata", None]
    assert xs[1].request["topics"] == [] and xs[2].error == "no request"


def test_sasl_bytes_kept_apart_for_redaction() -> None:
    script = [
        (C, request(17, 1, 1, s("PLAIN"))),
        (S, response(1, struct.pack("!h", 0) + arr([s("PLAIN")]))),
        (C, request(36, 0, 2, struct.pack("!i", 12) + b"\0user\0secret")),
        (S, response(2, struct.pack("!h", 58) + s("bad creds") + struct.pack("!i", 0))),
        # v0 handshake: raw SASL tokens follow, without a Kafka header
        (C, request(17, 0, 3, s("PLAIN"))),
        (S, response(3, struct.pack("!h", 0) + arr([s("PLAIN")]))),
        (C, struct.pack("!i", 12) + b"\0user\0secret"),
        (S, struct.pack("!i", 0)),
    ]
    xs = run(KafkaParser, script)
    assert xs[0].request["mechanism"] == "PLAIN"
    assert xs[1].request["auth_bytes"] == "\0user\0secret"
    assert xs[1].response["error"] == "SASL_AUTHENTICATION_FAILED"
    assert xs[1].response["error_message"] == "bad creds"
    assert xs[3].request["raw"] is True and xs[3].request["auth_bytes"]
    assert all("secret" not in x.summary for x in xs)


def test_big_fetch_response_is_skipped_not_buffered() -> None:
    big = struct.pack("!i", 3_000_000) + b"z" * 3_000_000
    wire = fetch_resp_v4(1, records=big)
    p = KafkaParser(ParserLimits())
    p.feed(C, fetch_v4(1), 1.0)
    for i in range(0, len(wire), 65536):
        p.feed(S, wire[i : i + 65536], 2.0)
    assert len(p._r[1].kept or b"") <= 256 * 1024
    (x,) = p.take()
    assert x.response["size"] == len(wire) - 4 and x.response["truncated"] is True
    assert x.response["error"] == "NONE"


def test_detect() -> None:
    assert PROTOCOL.detect(metadata_v1(1, ["a"]), C) is Verdict.YES
    assert PROTOCOL.detect(metadata_v1(1, ["a"])[:6], C) is Verdict.MORE
    assert PROTOCOL.detect(b"GET / HTTP/1.1\r\nHost: x\r\n", C) is Verdict.NO
    assert PROTOCOL.detect(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n", C) is Verdict.NO


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=64)), max_size=12))
def test_fuzz_only_parse_error(chunks: list[tuple[bool, bytes]]) -> None:
    fuzz_feed(KafkaParser, chunks)


@given(st.lists(st.tuples(st.booleans(), st.sampled_from([
    metadata_v1(1, ["a"]), metadata_resp_v1(1), produce_v3(2), produce_resp_v3(2),
    fetch_v4(3), fetch_resp_v4(3), response(3, b"\xff" * 12), request(1, 11, 3, b"\0" * 9),
    request(3, 9, 4, b"\x80\x80\x80"), request(0, 1, 1, b"\x7f\xff\xff\xff"),
])), max_size=12))  # fmt: skip
def test_fuzz_message_soup(chunks: list[tuple[bool, bytes]]) -> None:
    fuzz_feed(KafkaParser, chunks)


def test_shared_capture_matches_tshark() -> None:
    # tshark -r kafka_metadata_produce.pcap -Y kafka -T fields -e tcp.stream
    #   -e kafka.request_key -e kafka.api_version -e kafka.correlation_id
    #   -e kafka.client_id -e kafka.topic_name -e kafka.partition_id -e kafka.error
    # → 0 3 0 1 kafka-python-producer-1 test / 0 _ _ 1 _ test 0 0,0 /
    #   1 0 1 1 kafka-python-producer-1 test 0 / 1 _ _ 1 _ test 0 0
    es = capture_exchanges(str(pcap("kafka_metadata_produce.pcap")), "kafka", 9092)
    assert [
        (e["request"]["api_key"], e["request"]["api_version"], e["request"]["correlation_id"],
         e["request"]["client_id"], e["request"]["topics"], e["response"]["error_code"])
        for e in es
    ] == [
        (3, 0, 1, "kafka-python-producer-1", ["test"], 0),
        (0, 1, 1, "kafka-python-producer-1", ["test"], 0),
    ]  # fmt: skip
    assert es[0]["request"]["method"] == "Metadata" and es[1]["request"]["method"] == "Produce"
    assert es[1]["request"]["partitions"] == ["test:0"]
    assert es[0]["response"]["topics"] == ["test"]


def test_synthetic_capture_through_pipeline(tmp_path: Path) -> None:
    pkts = pcapgen.tcp_session(
        [("c", metadata_v1(1, ["orders"])), ("s", metadata_resp_v1(1)),
         ("c", produce_v3(2)), ("s", produce_resp_v3(2)),
         ("c", fetch_v4(3)), ("s", fetch_resp_v4(3, struct.pack("!i", 5000) + b"y" * 5000))],
        server=("10.0.0.2", 9092), mss=700,
    )  # fmt: skip
    f = pcapgen.write_pcap(tmp_path / "kafka.pcap", pkts)
    es = capture_exchanges(str(f), "kafka", 9092)
    assert [e["summary"] for e in es] == [
        "Metadata v1 orders → 2 topic(s) UNKNOWN_TOPIC_OR_PARTITION",
        "Produce v3 orders → NONE",
        "Fetch v4 events → NONE",
    ]


def uv(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def cs(v: str | None) -> bytes:
    return uv(0) if v is None else uv(len(v.encode()) + 1) + v.encode()


def carr(items: list[bytes]) -> bytes:
    return uv(len(items) + 1) + b"".join(items)


T = b"\0"  # no tagged fields


def flex_request(key: int, version: int, corr: int, body: bytes) -> bytes:
    msg = struct.pack("!hhi", key, version, corr) + s("modern") + T + body
    return struct.pack("!i", len(msg)) + msg


def test_flexible_versions() -> None:
    records = uv(21) + b"r" * 20
    produce = (cs(None) + struct.pack("!hi", 1, 1000)
               + carr([cs("orders") + carr([struct.pack("!i", 3) + records + T]) + T]) + T)  # fmt: skip  # noqa: E501
    produce_resp = (carr([cs("orders") + carr([struct.pack("!ihqqq", 3, 0, 1, -1, 0)
                                                 + carr([]) + cs(None) + T]) + T])
                    + struct.pack("!i", 0) + T)  # fmt: skip
    tid = bytes(range(16))
    fetch13 = (struct.pack("!iiiibii", -1, 500, 1, 1 << 20, 0, 0, -1)
               + carr([tid + carr([struct.pack("!iiqiqi", 0, 5, 100, 4, 0, 1 << 20) + T]) + T])
               + carr([]) + cs("") + T)  # fmt: skip
    fetch13_resp = (struct.pack("!ihi", 0, 0, 0)
                    + carr([tid + carr([struct.pack("!ihqqq", 0, 1, 5, 5, 0) + uv(0)
                                        + struct.pack("!i", -1) + uv(1) + T]) + T]) + T)  # fmt: skip  # noqa: E501
    meta = carr([bytes(16) + cs("orders") + T]) + b"\x01\x00" + T
    meta_resp = (struct.pack("!i", 0) + carr([struct.pack("!i", 1) + cs("k0") + struct.pack("!i", 9092)  # noqa: E501
                                               + cs(None) + T])
                 + cs("cluster") + struct.pack("!i", 1)
                 + carr([struct.pack("!h", 0) + cs("orders") + bytes(16) + b"\0"
                         + carr([struct.pack("!hiii", 0, 0, 1, 0) + carr([struct.pack("!i", 1)])
                                 + carr([struct.pack("!i", 1)]) + carr([]) + T])
                         + struct.pack("!i", 0) + T]) + T)  # fmt: skip
    script = [
        (C, flex_request(0, 9, 1, produce)),
        (S, response(1, T + produce_resp)),
        (C, flex_request(1, 13, 2, fetch13)),
        (S, response(2, T + fetch13_resp)),
        (C, flex_request(3, 12, 3, meta)),
        (S, response(3, T + meta_resp)),
    ]
    xs = three_ways(KafkaParser, script, trailing=b"")  # type: ignore[arg-type]
    assert [x.summary for x in xs] == [
        "Produce v9 orders → NONE",
        f"Fetch v13 {tid.hex()} → OFFSET_OUT_OF_RANGE",
        "Metadata v12 orders → 1 topic(s)",
    ]
    assert xs[0].request["partitions"] == ["orders:3"] and xs[0].request["client_id"] == "modern"
    assert xs[1].response["errors"] == {f"{tid.hex()}:0": "OFFSET_OUT_OF_RANGE"}
    assert xs[2].response["brokers"] == ["k0:9092"] and xs[2].response["topics"] == ["orders"]
    assert all("truncated" not in x.request and "truncated" not in x.response for x in xs)


def test_gap_resynchronises_by_correlation_id() -> None:
    from tests.sniffer.parsers.threeway import Gap, feed_script

    script = [
        (C, metadata_v1(1, ["a"])),
        (C, produce_v3(2)[:30]),
        Gap(C, 9),
        (C, b"\x01" * 40),  # the rest of the lost request: not a message start
        (C, fetch_v4(3)),
        (S, metadata_resp_v1(1)[:20]),
        Gap(S, 50),
        (S, b"\x00" * 30),
        (S, fetch_resp_v4(3)),
    ]
    before, after = feed_script(KafkaParser, script)
    got = [(x.request.get("api"), x.error) for x in before + after]
    assert got == [("Fetch", ""), ("Metadata", "no response")]


def test_midstream_capture_starts_with_a_response_tail(tmp_path: Path) -> None:
    pkts = pcapgen.tcp_session(
        [("s", fetch_resp_v4(1)[7:]), ("c", metadata_v1(5, ["a"])), ("s", metadata_resp_v1(5))],
        server=("10.0.0.2", 9092), handshake=False,
    )  # fmt: skip
    f = pcapgen.write_pcap(tmp_path / "mid.pcap", pkts)
    es = capture_exchanges(str(f), "kafka", 9092)
    assert [e["summary"] for e in es] == ["Metadata v1 a → 2 topic(s) UNKNOWN_TOPIC_OR_PARTITION"]
