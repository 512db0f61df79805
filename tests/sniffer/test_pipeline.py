"""The offline pipeline: detection, degradation, entries, UDP, settings, shared captures."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import TCP

from kubeweir import pcapgen as g
from kubeweir.entry import Entry, tcp_entry_id, udp_entry_id
from sniffer.pipeline import Pipeline, PipelineSettings, read_pcap
from tests.sniffer.lineproto import ECHO, LINE


def entries(
    pkts: list,
    link: str = "raw",
    settings: PipelineSettings | None = None,
    protos: list | None = None,
    dgram: list | None = None,
) -> tuple[list[Entry], Pipeline]:
    pipe = Pipeline(
        settings or PipelineSettings(),
        stream_protocols=protos or [LINE],
        datagram_protocols=dgram or [ECHO],
    )
    for p in pkts:
        pipe.feed(float(p.time), g.LINKS[link], g.frame(p, link))
    pipe.close()
    return pipe.take(), pipe


def ping(n: int, **kw: Any) -> list:
    msgs = []
    for i in range(n):
        msgs += [("c", f"PING {i}\n".encode()), ("s", f"PONG {i}\n".encode())]
    return g.tcp_session(msgs, **kw)


def test_exchanges_become_entries_with_ids() -> None:
    out, pipe = entries(ping(3))
    assert [e.summary for e in out] == [f"PING {i} → PONG {i}" for i in range(3)]
    assert [e.index for e in out] == [0, 1, 2]
    assert [e.id for e in out] == [tcp_entry_id(1000, 500_000, 40000, i) for i in range(3)]
    assert len({e.stream for e in out}) == 1 and out[0].stream
    e = out[0]
    assert (e.src.ip, e.src.port, e.dst.ip, e.dst.port) == ("10.0.0.1", 40000, "10.0.0.2", 80)
    assert e.proto == "line" and e.elapsed == pytest.approx(0.002, abs=1e-5)
    c = pipe.counters
    assert (c["packets"], c["flows"], c["entries"], c["parse_errors"]) == (len(ping(3)), 1, 3, 0)


def test_ids_do_not_depend_on_link_or_capture_point() -> None:
    base = [e.id for e in entries(ping(2))[0]]
    for link in ("ether", "vlan", "sll", "sll2", "null"):
        assert [e.id for e in entries(ping(2), link=link)[0]] == base
    # another sniffer behind NAT sees other addresses but the same ISNs and client port
    nat = ping(2, server=("192.168.9.9", 8080))
    assert [e.id for e in entries(nat)[0]] == base


def test_ipv6_and_midstream_hint() -> None:
    pkts = ping(3, ipv6=True, server=("fd00::2", 7070))
    d = g.data_packets(pkts)
    out, _ = entries(g.midstream(pkts, d[1]))  # starts at the first PONG: no SYN, no PING
    assert [e.summary for e in out] == [" → PONG 0", "PING 1 → PONG 1", "PING 2 → PONG 2"]
    assert out[0].src.ip == "fd00::1" and out[0].dst.port == 7070


def test_content_beats_port() -> None:
    # port 7070 is the line protocol's default, but the bytes say otherwise
    pkts = g.tcp_session(
        [("c", b"\x16\x03\x01hello"), ("s", b"\x16\x03\x03x")], server=("10.0.0.2", 7070)
    )
    out, pipe = entries(pkts)
    assert [e.proto for e in out] == ["tcp"]
    assert pipe.counters["tcp_unrecognised"] == 1


def test_unrecognised_stream_becomes_tcp_entries() -> None:
    pkts = g.tcp_session(
        [("c", b"hello there\r\n"), ("s", b"\x00\xff\x10" * 200), ("c", b"again"), ("s", b"ok")]
    )
    out, _ = entries(pkts)
    assert [e.proto for e in out] == ["tcp", "tcp"]
    a, b = out
    assert a.request == {"bytes": 13, "preview": "hello there\r\n", "preview_encoding": "utf8"}
    assert a.response["bytes"] == 600 and a.response["preview_encoding"] == "base64"
    assert base64.b64decode(a.response["preview"]) == (b"\x00\xff\x10" * 200)[:256]
    assert a.summary == "13 B → 600 B" and b.summary == "5 B → 2 B"
    assert (a.index, b.index) == (0, 1)


def test_parse_error_degrades_only_that_stream() -> None:
    bad = g.tcp_session(
        [
            ("c", b"PING 1\n"),
            ("s", b"PONG 1\n"),
            ("c", b"PING BAD\n"),
            ("s", b"PONG 2\n"),
            ("c", b"PING 3\n"),
            ("s", b"PONG 3\n"),
        ]
    )
    good = ping(2, client=("10.0.0.9", 40001), t0=g.T0 + 0.0005)
    out, pipe = entries(sorted(bad + good, key=lambda p: float(p.time)))
    by_port: dict[int, list[Entry]] = {}
    for e in out:
        by_port.setdefault(e.src.port, []).append(e)
    assert [e.proto for e in by_port[40000]] == ["line", "tcp", "tcp"]
    assert "parse error (line): bad line" in by_port[40000][1].error
    assert by_port[40000][1].request["preview"] == "PING BAD\n"
    assert [e.proto for e in by_port[40001]] == ["line", "line"]
    assert pipe.counters["parse_errors"] == 1


def test_gap_is_marked_on_the_entry() -> None:
    pkts = ping(3)
    d = g.data_packets(pkts)
    out, pipe = entries(g.drop(pkts, [d[2]]))  # PING 1 lost, its ACK seen
    assert pipe.counters["gaps"] == 1
    assert [e.gaps for e in out] == [0, 7, 0]
    assert out[1].summary == " → PONG 1"


def test_unanswered_request_at_close() -> None:
    pkts = g.tcp_session([("c", b"PING 1\n")], close="fin")
    out, _ = entries(pkts)
    assert [(e.summary, e.error, e.elapsed) for e in out] == [("PING 1", "no response", None)]


def test_idle_timeout_flushes_through_advance() -> None:
    pkts = g.tcp_session([("c", b"PING 1\n"), ("s", b"PONG 1\n"), ("c", b"PING 2\n")], close=None)
    pipe = Pipeline(
        PipelineSettings(idle_timeout=5.0), stream_protocols=[LINE], datagram_protocols=[]
    )
    for p in pkts:
        pipe.feed(float(p.time), 101, bytes(p))
    assert [e.summary for e in pipe.take()] == ["PING 1 → PONG 1"]
    pipe.advance(float(pkts[-1].time) + 6)
    assert [e.error for e in pipe.take()] == ["no response"]
    assert pipe.counters["closed_idle"] == 1


def test_port_hints() -> None:
    from sniffer.parsers.registry import StreamProtocol, Verdict
    from tests.sniffer.lineproto import LineParser

    with pytest.raises(ValueError, match="unknown protocol"):
        Pipeline(
            PipelineSettings(port_hints={9: "nope"}), stream_protocols=[LINE], datagram_protocols=[]
        )
    quiet = StreamProtocol(
        name="quiet", factory=LineParser, detect=lambda b, d: Verdict.NO, midstream=True
    )
    pkts = ping(2, server=("10.0.0.2", 9999))
    cut = g.midstream(pkts, g.data_packets(pkts)[1])
    # content alone can't tell: raw; a hint picks the parser for a mid-stream connection
    assert {e.proto for e in entries(cut, protos=[quiet])[0]} == {"tcp"}
    hinted, _ = entries(cut, settings=PipelineSettings(port_hints={9999: "quiet"}), protos=[quiet])
    assert [e.proto for e in hinted] == ["line", "line"]
    # with the start seen, the content's "no" wins over the hint
    full, _ = entries(pkts, settings=PipelineSettings(port_hints={9999: "quiet"}), protos=[quiet])
    assert {e.proto for e in full} == {"tcp"}


def test_port_hint_breaks_a_tie() -> None:
    from sniffer.parsers.registry import StreamProtocol

    other = StreamProtocol(name="other", factory=LINE.factory, detect=LINE.detect)
    pkts = ping(1, server=("10.0.0.2", 9999))
    assert entries(pkts, protos=[LINE, other])[0][0].request["line"] == "PING 0"
    pipe = Pipeline(
        PipelineSettings(port_hints={9999: "other"}),
        stream_protocols=[LINE, other],
        datagram_protocols=[],
    )
    for p in pkts:
        pipe.feed(float(p.time), 101, bytes(p))
    pipe.close()
    conn_protos = [e.proto for e in pipe.take()]
    assert conn_protos == ["line"]  # the parser's proto; the chosen protocol was "other"
    assert pipe._tcp.counters["flows"] == 1


def test_midstream_redetects_at_next_client_burst() -> None:
    pkts = g.tcp_session(
        [("c", b"ING 0\n"), ("s", b"PONG 0\n"), ("c", b"PING 1\n"), ("s", b"PONG 1\n")],
        server=("10.0.0.2", 9999),
        handshake=False,
    )
    out, _ = entries(pkts)
    assert [(e.proto, e.index) for e in out] == [("tcp", 0), ("line", 1)]


def test_udp_datagrams_with_txid() -> None:
    pkts = g.udp_exchange(
        [("c", b"\x00\x07hello"), ("s", b"\x00\x07world"), ("c", b"\x00\x08lost")],
        server=("10.0.0.53", 5005),
    )
    out, pipe = entries(pkts)
    assert [(e.proto, e.request, e.error) for e in out] == [
        ("echo", {"q": "hello"}, ""),
        ("echo", {"q": "lost"}, "no response"),
    ]
    e = out[0]
    assert e.id == udp_entry_id("10.0.0.1", 53000, "10.0.0.53", 5005, 7, e.ts)
    assert e.response == {"a": "world"} and e.src.port == 53000
    assert pipe.counters["udp_flows"] == 1


def test_udp_parse_error_is_counted_and_flow_goes_on() -> None:
    pkts = g.udp_exchange(
        [("c", b"x"), ("c", b"\x00\x01q"), ("s", b"\x00\x01a")], server=("10.0.0.53", 5005)
    )
    out, pipe = entries(pkts)
    assert len(out) == 1 and pipe.counters["parse_errors"] == 1


def test_redact_and_endpoint_info_settings() -> None:
    def redact(e: Entry) -> Entry:
        e.request = {**e.request, "line": "[REDACTED]"}
        e.redacted = ["request.line"]
        return e

    info = {"10.0.0.1": {"pod": "web-1", "namespace": "shop"}}
    s = PipelineSettings(redact=redact, endpoint_info=lambda ip: info.get(ip, {}), node="n1")
    out, _ = entries(ping(1), settings=s)
    e = out[0]
    assert e.request["line"] == "[REDACTED]" and e.redacted == ["request.line"]
    assert (e.src.pod, e.src.namespace, e.dst.pod, e.node) == ("web-1", "shop", "", "n1")


def test_endpoint_info_change_reaches_the_next_entry_of_an_open_connection() -> None:
    """A connection's entries share its two Endpoints until endpoint_info answers
    otherwise for either address (a targeting change): the next entry has the new ones."""
    info: dict[str, dict[str, Any]] = {"10.0.0.1": {"pod": "web-1", "namespace": "shop"}}
    pipe = Pipeline(
        PipelineSettings(endpoint_info=lambda ip: info.get(ip, {})),
        stream_protocols=[LINE],
        datagram_protocols=[ECHO],
    )
    pkts = ping(4)
    out: list[Entry] = []
    for p in pkts:
        pipe.feed(float(p.time), g.LINKS["raw"], g.frame(p, "raw"))
        out += pipe.take()
        if len(out) == 2:  # the pod was relabelled, the server became known
            info = {"10.0.0.1": {"pod": "web-1", "namespace": "shop", "labels": {"v": "2"}},
                    "10.0.0.2": {"pod": "db-0", "namespace": "data"}}  # fmt: skip
    pipe.close()
    out += pipe.take()
    assert len(out) == 4
    assert out[0].src is out[1].src and out[0].dst is out[1].dst
    assert [(e.src.pod, e.src.labels, e.dst.pod) for e in out] == [
        ("web-1", {}, ""),
        ("web-1", {}, ""),
        ("web-1", {"v": "2"}, "db-0"),
        ("web-1", {"v": "2"}, "db-0"),
    ]
    assert out[2].src.ip == "10.0.0.1" and out[2].dst.port == out[0].dst.port


def test_parser_bug_does_not_stop_capture() -> None:
    from sniffer.parsers.registry import StreamProtocol, Verdict
    from tests.sniffer.lineproto import LineParser

    class Buggy(LineParser):
        def feed(self, direction: Any, data: bytes, ts: float) -> None:
            raise KeyError("oops")

    proto = StreamProtocol(name="buggy", factory=Buggy, detect=lambda b, d: Verdict.YES)
    out, pipe = entries(ping(1), protos=[proto])
    assert [e.proto for e in out] == ["tcp"] and pipe.counters["parser_bugs"] == 1


# -- with the real HTTP/1 parser ------------------------------------------------------------

http1 = pytest.importorskip("sniffer.parsers.http1")


def http_entries(pkts: list, link: str = "ether") -> list[Entry]:
    pipe = Pipeline(PipelineSettings())
    for p in pkts:
        pipe.feed(float(p.time), g.LINKS[link], g.frame(p, link))
    pipe.close()
    return pipe.take()


@pytest.mark.parametrize(
    "kw,link",
    [
        ({}, "ether"),
        ({"ipv6": True}, "vlan"),
        ({}, "sll2"),
        ({"pipelining": True}, "qinq"),
        ({"chunked_gzip": True}, "sll"),
        ({"ipv6": True, "chunked_gzip": True}, "null"),
    ],
)
def test_http_conversations(kw: dict[str, Any], link: str) -> None:
    out = http_entries(g.http_conversation(4, mss=40, **kw), link)
    assert [e.summary for e in out] == [f"GET /items/{i}?v=1 → 200" for i in range(4)]
    assert all(e.proto == "http" and not e.error for e in out)
    if kw.get("chunked_gzip"):
        assert out[2].response["body"] == '{"ok":2}'


def test_response_captured_before_end_of_request() -> None:
    """The capture holds the response's first segment before the request's last one: the
    response waits for the request bytes it acknowledges."""
    msgs = [("c", b"PING 1\n"), ("s", b"PONG 1\n")]
    pkts = g.tcp_session(msgs, mss=3)
    d = g.data_packets(pkts)
    pkts = g.reorder(pkts, [(d[2], d[3])])
    out, pipe = entries(pkts)
    assert [e.summary for e in out] == ["PING 1 → PONG 1"]
    assert pipe.counters["held"] == 1 and pipe.counters["gaps"] == 0


def test_http_reordered_retransmitted() -> None:
    pkts = g.http_conversation(3, mss=30)
    d = g.data_packets(pkts)
    pkts = g.retransmit(g.reorder(pkts, [(d[1], d[3]), (d[7], d[8])]), [d[5]])
    out = http_entries(pkts)
    assert [e.summary for e in out] == [f"GET /items/{i}?v=1 → 200" for i in range(3)]
    assert all(e.gaps == 0 for e in out)


def test_http_gap_and_midstream() -> None:
    pkts = g.http_conversation(4)
    d = g.data_packets(pkts)
    server = [i for i in d if pkts[i][TCP].sport == 80]
    out = http_entries(g.drop(pkts, [server[1]]))
    assert [e.request.get("path") for e in out] == [f"/items/{i}" for i in range(4)]
    assert sum(e.gaps for e in out) > 0
    mid = http_entries(g.midstream(pkts, d[2]))  # starts at the second request
    assert [e.summary for e in mid][-3:] == [f"GET /items/{i}?v=1 → 200" for i in (1, 2, 3)]


def test_ip_fragmented_http() -> None:
    pkts = g.fragment_packets(g.http_conversation(2, chunked_gzip=True, mss=1400), 120)
    out = http_entries(pkts)
    assert [e.summary for e in out] == ["GET /items/0?v=1 → 200", "GET /items/1?v=1 → 200"]


SHARED = [
    "http1_keepalive_37req_split_header.pcapng",
    "http1_keepalive_gzip.pcap",
    "http1_post_100continue_chunked.pcap",
    "http1_keepalive_lost_segments.pcap",
    "http1_range_missing_response.pcap",
    "http1_post_json_101_port2375.pcap",
    "http1_chunked_gzip_no_syn.pcap",
    "redis_large_reply.pcap",
    "pgsql_extended_query.pcap",
    "h2c_post_json_port29518.pcapng",
    "grpc_server_stream_midstream.pcap",
    "kafka_metadata_produce.pcap",
    "mqtt311_large_publish_ipv6.pcap",
    "amqp091_publish_consume.pcap",
    "dns_udp_mixed_qtypes.pcap",
    "dns_tcp_20_queries_one_segment.pcap",
]


@pytest.mark.parametrize("name", SHARED)
def test_shared_capture_reads_cleanly(pcaps: Path, name: str) -> None:
    """Every shared capture goes through without a parser bug or damaged-file report and
    yields entries (protocol-level comparisons with tshark live with each parser)."""
    pipe = Pipeline(PipelineSettings())
    errors: list[Any] = []
    out = list(read_pcap(pcaps / name, pipeline=pipe, on_error=errors.append))
    assert errors == []
    c = pipe.counters
    assert c["parser_bugs"] == 0 and c["malformed"] == 0
    assert out and c["entries"] == len(out)
    assert len({e.id for e in out}) == len(out)


def test_shared_http_keepalive_37(pcaps: Path) -> None:
    out = list(read_pcap(pcaps / "http1_keepalive_37req_split_header.pcapng"))
    assert len(out) == 37 and all(e.proto == "http" for e in out)
    assert all(e.response.get("status") == 200 for e in out)
    assert [e.index for e in out] == list(range(37))


def test_bytes_waiting_for_detection_are_bounded() -> None:
    pkts = []
    for i in range(3):  # servers that speak first, in something no detector knows
        pkts += g.tcp_session(
            [("s", b"\x01banner " * 3750)], client=("10.0.0.1", 41000 + i), close=None, t0=g.T0 + i
        )
    s = PipelineSettings(max_total_bytes=256 * 1024)
    pipe = Pipeline(s, stream_protocols=[LINE], datagram_protocols=[])
    for p in pkts:
        pipe.feed(float(p.time), 101, bytes(p))
    assert pipe.counters["bound_detect_bytes"] >= 1
    assert pipe._pending_total <= 64 * 1024
    pipe.close()
    out = pipe.take()
    assert [e.proto for e in out] == ["tcp"] * 3
    assert [e.response["bytes"] for e in out] == [30000] * 3
    assert pipe._pending_total == 0


def test_memory_does_not_grow_with_the_capture(tmp_path: Path) -> None:
    import tracemalloc

    def peak(n: int) -> int:
        p = g.write_http_benchmark(tmp_path / f"m{n}.pcap", n, connections=4, body_size=4000)
        tracemalloc.start()
        count = sum(1 for _ in read_pcap(p, PipelineSettings()))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == n
        return top

    # both files are larger than the reader's 1 MiB chunk, the second five times larger
    small, big = peak(600), peak(3000)
    assert big < small * 1.5 + 512 * 1024, (small, big)


def test_pcapng_with_two_link_types(tmp_path: Path) -> None:
    a = g.http_conversation(2)
    b = g.http_conversation(2, ipv6=True, t0=g.T0 + 0.0005)
    p = g.write_pcapng(tmp_path / "two.pcapng", [("ether", a), ("sll2", b)], tsresol=9)
    out = list(read_pcap(p, PipelineSettings()))
    assert sorted((e.src.ip, e.summary) for e in out) == [
        ("10.0.0.1", "GET /items/0?v=1 → 200"),
        ("10.0.0.1", "GET /items/1?v=1 → 200"),
        ("fd00::1", "GET /items/0?v=1 → 200"),
        ("fd00::1", "GET /items/1?v=1 → 200"),
    ]


def test_midstream_roles_swapped_by_content() -> None:
    # both ports ephemeral and the client's is the lower one: the port rule guesses wrong
    pkts = ping(2, client=("10.0.0.1", 33000), server=("10.0.0.2", 45000), handshake=False)
    out, pipe = entries(pkts)
    assert [e.summary for e in out] == ["PING 0 → PONG 0", "PING 1 → PONG 1"]
    assert (out[0].src.port, out[0].dst.port) == (33000, 45000)
    assert pipe.counters["roles_swapped"] == 1
    isn = out[0].id == tcp_entry_id(1000, 500_000, 33000, 0)
    assert isn
