"""HTTP/1 ``Upgrade: h2c`` handed over to the HTTP/2 parser (RFC 7540 §3.2), end to end
through ``read_pcap``: the 101 stays an ``http`` entry, the upgrade request's answer is
stream 1 (an ``http2`` entry with the HTTP/1 request's method/path/authority), and later
streams are ordinary ``http2`` entries on the same connection (ids and indexes go on).

The conversation is what curl's ``--http2`` (Upgrade) sends and an h2c server answers
(no h2c-Upgrade server is installable here): header blocks from ``hpack``'s encoder,
frames per RFC 9113 §4. Each capture is read three ways: segments of 1400 bytes, one byte
per segment, and with trailing bytes (a partial frame) after the conversation.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import hpack
import pytest

from kubeweir.entry import Entry
from kubeweir.pcapgen import tcp_session, write_pcap
from sniffer.parsers import http1
from sniffer.pipeline import Pipeline, read_pcap
from tests.sniffer.parsers import h2frames as f

SERVER = ("10.0.0.2", 8080)
# curl's HTTP2-Settings: MAX_CONCURRENT_STREAMS 100, INITIAL_WINDOW_SIZE 32 MiB,
# ENABLE_PUSH 0 (base64url, no padding)
H2_SETTINGS = base64.urlsafe_b64encode(
    b"".join(bytes.fromhex(x) for x in ("000300000064", "000402000000", "000200000000"))
).rstrip(b"=")
REQUEST = (
    b"GET /hello?x=1 HTTP/1.1\r\nHost: svc.local:8080\r\nUser-Agent: curl/7.88.1\r\n"
    b"Accept: */*\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: " + H2_SETTINGS + b"\r\n\r\n"
)
SWITCHED = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"


def conversation(preface_early: bool) -> list[tuple[str, bytes]]:
    cenc, senc = hpack.Encoder(), hpack.Encoder()
    client_h2 = f.PREFACE + f.settings((3, 100), (4, 1 << 25), (2, 0)) + f.window_update(0, 1 << 30)
    server_first = (
        f.settings((3, 250))
        + f.headers(senc, 1, [(":status", "200"), ("content-type", "text/plain")])
        + f.data(1, b"hello h2c\n", end=True)
    )
    client_next = (
        f.settings(ack=True)
        + f.headers(
            cenc,
            3,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", "svc.local:8080"),
                (":path", "/echo?y=2"),
                ("content-type", "application/json"),
            ],
        )  # fmt: skip
        + f.data(3, b'{"a":1}', end=True)
    )
    server_next = (
        f.settings(ack=True)
        + f.headers(senc, 3, [(":status", "201"), ("content-type", "application/json")])
        + f.data(3, b'{"ok":true}', end=True)
    )
    if preface_early:  # the preface in the request's segment, before the 101 (leftover)
        return [("c", REQUEST + client_h2), ("s", SWITCHED + server_first),
                ("c", client_next), ("s", server_next)]  # fmt: skip
    return [("c", REQUEST), ("s", SWITCHED + server_first), ("c", client_h2 + client_next),
            ("s", server_next)]  # fmt: skip


def entries(tmp: Path, msgs: list[tuple[str, bytes]], mss: int, **kw: Any) -> list[Entry]:
    path = write_pcap(tmp / f"h2c-{mss}.pcap", tcp_session(msgs, server=SERVER, mss=mss))
    return list(read_pcap(path, pipeline=Pipeline(**kw)))


def check(got: list[Entry]) -> None:
    assert [e.proto for e in got] == ["http", "http2", "http2"]
    assert [e.index for e in got] == [0, 1, 2]
    assert len({e.id for e in got}) == 3 and len({e.stream for e in got}) == 1
    up, one, three = got
    assert up.request["method"] == "GET" and up.request["path"] == "/hello"
    assert up.response["status"] == 101 and up.response["upgrade"] == "h2c"
    assert up.summary == "GET /hello?x=1 → 101"
    # stream 1: the upgrade request, answered in HTTP/2
    assert one.request["stream_id"] == 1
    assert one.request["method"] == "GET" and one.request["path"] == "/hello"
    assert one.request["query"] == "x=1" and one.request["authority"] == "svc.local:8080"
    assert one.request["scheme"] == "http" and one.request["upgrade"] == "h2c"
    assert one.request["headers"]["http2-settings"] == H2_SETTINGS.decode()
    assert one.response["status"] == 200 and one.response["body"] == "hello h2c\n"
    assert one.response["version"] == "HTTP/2" and one.response["content_type"] == "text/plain"
    assert one.summary == "GET /hello → 200" and one.error == ""
    assert one.ts == up.ts and one.elapsed is not None and one.elapsed > 0
    # stream 3: an ordinary HTTP/2 stream after the preface
    assert three.request["stream_id"] == 3
    assert three.request["method"] == "POST" and three.request["path"] == "/echo"
    assert three.request["query"] == "y=2" and three.request["authority"] == "svc.local:8080"
    assert three.request["body"] == '{"a":1}'
    assert three.response["status"] == 201 and three.response["body"] == '{"ok":true}'
    assert three.summary == "POST /echo → 201" and three.error == ""


@pytest.mark.parametrize("preface_early", [False, True])
def test_upgrade_three_ways(tmp_path: Path, preface_early: bool) -> None:
    msgs = conversation(preface_early)
    whole = entries(tmp_path, msgs, 1400)
    check(whole)
    # one byte per segment: every boundary, the 101 and the preface split anywhere
    bytewise = entries(tmp_path, msgs, 1)
    check(bytewise)
    assert [(e.id, e.request, e.response) for e in bytewise] == [
        (e.id, e.request, e.response) for e in whole
    ]
    # trailing data: a partial HEADERS frame on stream 5 changes nothing before it
    trailing = entries(tmp_path, [*msgs, ("c", f.headers(hpack.Encoder(), 5, [])[:6])], 1400)
    check(trailing)
    pipe = Pipeline()
    list(read_pcap(tmp_path / "h2c-1400.pcap", pipeline=pipe))
    assert pipe.counters["protocol_switches"] == 1
    assert pipe.counters["parse_errors"] == 0


def test_upgrade_declined_stays_http(tmp_path: Path) -> None:
    """A server that ignores the Upgrade answers in HTTP/1: no switch."""
    msgs = [("c", REQUEST), ("s", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
            ("c", b"GET /again HTTP/1.1\r\nHost: svc.local\r\n\r\n"),
            ("s", b"HTTP/1.1 204 No Content\r\n\r\n")]  # fmt: skip
    got = entries(tmp_path, msgs, 1400)
    assert [(e.proto, e.response["status"]) for e in got] == [("http", 200), ("http", 204)]
    assert "upgrade" not in got[0].response


def test_websocket_upgrade_is_not_handed_over(tmp_path: Path) -> None:
    """Only tokens in ``SWITCH_TO`` switch parsers; a websocket stays a counted tunnel."""
    assert "websocket" not in http1.SWITCH_TO
    req = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"
    pipe = Pipeline()
    path = write_pcap(tmp_path / "ws.pcap", tcp_session([("c", req), ("s", resp)], server=SERVER))
    got = list(read_pcap(path, pipeline=pipe))
    assert [(e.proto, e.response["upgrade"]) for e in got] == [("http", "websocket")]
    assert pipe.counters["protocol_switches"] == 0


def test_without_http2_the_upgrade_stays_a_tunnel(tmp_path: Path) -> None:
    """A pipeline without the HTTP/2 protocol keeps the HTTP/1 parser counting bytes."""
    got = entries(tmp_path, conversation(False), 1400, stream_protocols=[http1.PROTOCOL],
                  datagram_protocols=[])  # fmt: skip
    assert [(e.proto, e.response["status"]) for e in got] == [("http", 101)]
