"""AMQP 0-9-1 parser: frames and methods three ways, content joined to its method,
refusals by channel.close, fuzz, the shared capture against tshark, and live against
rabbitmq-server with pika (slow: the broker takes ~40 s to start here)."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sniffer.parsers.amqp import HEADER, PROTOCOL, AmqpParser
from sniffer.parsers.registry import Verdict
from tests.conftest import pcap
from tests.sniffer.parsers.livecap import free_port, need, tcpdump
from tests.sniffer.parsers.protohelp import C, S, capture_exchanges, fuzz_feed, run, three_ways


def frame(t: int, ch: int, payload: bytes) -> bytes:
    return struct.pack("!BHI", t, ch, len(payload)) + payload + b"\xce"


def method(ch: int, cid: int, mid: int, args: bytes = b"") -> bytes:
    return frame(1, ch, struct.pack("!HH", cid, mid) + args)


def ss(v: str) -> bytes:
    return bytes([len(v)]) + v.encode()


def ls(v: bytes) -> bytes:
    return struct.pack("!I", len(v)) + v


def table(**kv: str) -> bytes:
    body = b"".join(ss(k) + b"S" + ls(v.encode()) for k, v in kv.items())
    return ls(body)


def content(ch: int, body: bytes, chunks: int = 2) -> bytes:
    props = struct.pack("!H", 0x8000 | 0x1000) + ss("text/plain") + b"\x02"
    out = frame(2, ch, struct.pack("!HHQ", 60, 0, len(body)) + props)
    step = max(1, -(-len(body) // chunks))
    for i in range(0, len(body), step):
        out += frame(3, ch, body[i : i + step])
    return out


def script() -> list[tuple[object, bytes]]:
    return [
        (C, HEADER),
        (S, method(0, 10, 10, b"\x00\x09" + table(product="RabbitMQ") + ls(b"PLAIN") + ls(b"en_US"))),  # noqa: E501
        (C, method(0, 10, 11, table(product="pika") + ss("PLAIN") + ls(b"\0app\0s3cret") + ss("en_US"))),  # noqa: E501
        (S, method(0, 10, 30, struct.pack("!HIH", 2047, 131072, 60))),
        (C, method(0, 10, 31, struct.pack("!HIH", 2047, 131072, 60))),
        (C, method(0, 10, 40, ss("/") + ss("") + b"\0")),
        (S, method(0, 10, 41, ss(""))),
        (C, method(1, 20, 10, ss(""))),
        (S, method(1, 20, 11, ls(b""))),
        (C, method(1, 50, 10, b"\0\0" + ss("orders") + b"\x02" + ls(b""))),
        (S, method(1, 50, 11, ss("orders") + struct.pack("!II", 3, 0))),
        (C, method(1, 60, 40, b"\0\0" + ss("shop") + ss("order.new") + b"\0") + content(1, b'{"id": 7}')),  # noqa: E501
        (C, method(1, 60, 70, b"\0\0" + ss("orders") + b"\0")),
        (S, method(1, 60, 71, struct.pack("!Q", 1) + b"\0" + ss("shop") + ss("order.new") + struct.pack("!I", 2))),  # noqa: E501
        (S, content(1, b"hello", 1)),
        (S, method(1, 60, 60, ss("ctag") + struct.pack("!Q", 2) + b"\0" + ss("shop") + ss("x"))),
        (S, content(1, b"pushed")),
        (C, method(1, 60, 80, struct.pack("!Q", 2) + b"\0")),
        (C, method(1, 50, 10, b"\0\0" + ss("missing") + b"\x01" + ls(b""))),
        (S, method(1, 20, 40, struct.pack("!H", 404) + ss("NOT_FOUND - no queue 'missing'") + struct.pack("!HH", 50, 10))),  # noqa: E501
        (C, method(1, 20, 41)),
        (C, frame(8, 0, b"")),
        (C, method(0, 10, 50, struct.pack("!H", 200) + ss("bye") + struct.pack("!HH", 0, 0))),
        (S, method(0, 10, 51)),
    ]  # fmt: skip


def test_conversation_three_ways() -> None:
    xs = three_ways(AmqpParser, script(), trailing=method(1, 60, 40, b"\0\0")[:9])  # type: ignore[arg-type]  # noqa: E501
    assert [x.summary for x in xs] == [
        "connection.start → start-ok",
        "connection.tune → tune-ok",
        "connection.open vhost=/ → open-ok",
        "channel.open → open-ok",
        "queue.declare q=orders → declare-ok (3 msgs)",
        "basic.publish x=shop rk=order.new 9 B",
        "basic.get q=orders → get-ok (2 msgs) 5 B",
        "basic.deliver x=shop rk=x 6 B",
        "basic.ack",
        "queue.declare q=missing → channel.close 404 NOT_FOUND - no queue 'missing'",
        "channel.close 404 NOT_FOUND - no queue 'missing' → close-ok",
        "connection.close 200 bye → close-ok",
    ]
    start, _tune, _open, _ch, decl, pub, get, deliver, ack, missing, close, _bye = xs
    assert start.request["from"] == "broker" and start.response["user"] == "app"
    assert start.response["password"] == "s3cret" and "s3cret" not in repr(start.response["args"])
    assert decl.response["args"] == {"queue": "orders", "message_count": 3, "consumer_count": 0}
    assert decl.request["args"]["durable"] is True and decl.ts == 10.0 and decl.end == 11.0
    assert pub.request["body"] == '{"id": 7}' and pub.end is None and pub.error == ""
    assert pub.request["properties"] == {"content_type": "text/plain", "delivery_mode": 2}
    assert get.response["body"] == "hello" and get.end == 15.0
    assert deliver.request["from"] == "broker" and deliver.request["args"]["delivery_tag"] == 2
    assert ack.request["args"] == {"delivery_tag": 2, "multiple": False}
    assert missing.response["reply_code"] == 404
    assert close.request["reply_code"] == 404 and close.request["from"] == "broker"


def test_version_mismatch_and_bad_frames() -> None:
    xs = run(AmqpParser, [(C, b"AMQP\x01\x01\x00\x0a"), (S, b"AMQP\x00\x00\x09\x01")])
    assert xs[0].error == "protocol version mismatch" and "0.9.1" in xs[0].summary
    from sniffer.parsers.base import ParseError

    p = AmqpParser()
    with pytest.raises(ParseError):
        p.feed(C, HEADER + struct.pack("!BHI", 1, 0, 4) + b"\0\x0a\0\x0a" + b"X", 1.0)


def test_detect() -> None:
    assert PROTOCOL.detect(HEADER, C) is Verdict.YES
    assert PROTOCOL.detect(b"AM", C) is Verdict.MORE
    assert PROTOCOL.detect(b"GET / HTTP/1.1\r\n", C) is Verdict.NO


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=64)), max_size=12))
def test_fuzz_only_parse_error(chunks: list[tuple[bool, bytes]]) -> None:
    fuzz_feed(AmqpParser, [(False, HEADER)] + chunks)


@given(st.lists(st.tuples(st.booleans(), st.sampled_from([b for _, b in script()])), max_size=20))
def test_fuzz_frame_soup(chunks: list[tuple[bool, bytes]]) -> None:
    fuzz_feed(AmqpParser, chunks)


def test_shared_capture_matches_tshark() -> None:
    # tshark -r amqp091_publish_consume.pcap -Y amqp -T fields -e tcp.stream -e amqp.type
    #   -e amqp.channel -e _ws.col.Info
    # → publisher: Connection.Start/-Ok, Tune/-Ok, Open vhost=//-Ok, Channel.Open/-Ok,
    #   Queue.Declare q=hello/-Ok, Exchange.Declare x=exchange-1/-Ok, Basic.Publish
    #   x=exchange-1 rk=rk-1 + Content-Header + Content-Body, Channel.Close/-Ok,
    #   Connection.Close/-Ok; consumer: the same opening, Queue.Bind q=hello x=exchange-1
    #   bk=rk-1/-Ok, Basic.Consume q=hello/-Ok, Basic.Deliver x=exchange-1 rk=rk-1 + header
    #   + body (34 methods in all).
    es = capture_exchanges(str(pcap("amqp091_publish_consume.pcap")), "amqp", 5672)
    pairs = [(e["request"]["method"], e["response"].get("method")) for e in es]
    opening = [
        ("connection.start", "connection.start-ok"), ("connection.tune", "connection.tune-ok"),
        ("connection.open", "connection.open-ok"), ("channel.open", "channel.open-ok"),
        ("queue.declare", "queue.declare-ok"), ("exchange.declare", "exchange.declare-ok"),
    ]  # fmt: skip
    assert pairs == opening + [
        ("basic.publish", None), ("channel.close", "channel.close-ok"),
        ("connection.close", "connection.close-ok"),
    ] + opening + [
        ("queue.bind", "queue.bind-ok"), ("basic.consume", "basic.consume-ok"),
        ("basic.deliver", None),
    ]  # fmt: skip
    methods = sum(1 + (e["response"].get("method") is not None) for e in es)
    assert methods == 34
    pub = next(e for e in es if e["request"]["method"] == "basic.publish")
    assert pub["request"]["args"]["exchange"] == "exchange-1"
    assert pub["request"]["args"]["routing_key"] == "rk-1"
    deliver = es[-1]
    assert (
        deliver["request"]["body"] == pub["request"]["body"]
        and deliver["request"]["body_size"] == 12
    )
    assert es[0]["response"]["user"] == "guest"


@contextlib.contextmanager
def rabbitmq(port: int, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    need("rabbitmq-server")
    binary = "/usr/lib/rabbitmq/bin/rabbitmq-server"
    if not os.path.exists(binary):
        pytest.skip("rabbitmq-server's real script is not at /usr/lib/rabbitmq/bin")
    with tempfile.TemporaryDirectory(prefix="kubeweir-rmq-") as tmp:
        dist = free_port()
        env = dict(os.environ, HOME=tmp, RABBITMQ_NODENAME=f"kw{port}@localhost",
                   RABBITMQ_NODE_IP_ADDRESS="127.0.0.1", RABBITMQ_NODE_PORT=str(port),
                   RABBITMQ_DIST_PORT=str(dist), RABBITMQ_MNESIA_BASE=f"{tmp}/mnesia",
                   RABBITMQ_LOG_BASE=f"{tmp}/log", RABBITMQ_ENABLED_PLUGINS_FILE=f"{tmp}/plugins",
                   RABBITMQ_CONFIG_FILE=f"{tmp}/rabbitmq", RABBITMQ_PID_FILE=f"{tmp}/pid",
                   RABBITMQ_ADVANCED_CONFIG_FILE=f"{tmp}/advanced.config")  # fmt: skip
        epmd_before = _epmd_pids()
        Path(tmp, "plugins").write_text("[].\n")
        Path(tmp, "rabbitmq.conf").write_text("")
        proc = subprocess.Popen([binary], env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.5),
                ):
                    break
                if proc.poll() is not None:
                    pytest.skip(f"rabbitmq-server exited with {proc.returncode} before listening")
                if time.monotonic() > deadline:
                    pytest.skip(f"rabbitmq-server did not listen within {timeout:.0f} s")
                time.sleep(0.5)
            time.sleep(1.0)  # the listener opens before the broker finishes booting
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
            for pid in _epmd_pids() - epmd_before:  # the port mapper our broker started
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 15)


def _epmd_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-x", "epmd"], capture_output=True, text=True, check=False)
    return {int(x) for x in out.stdout.split()}


@pytest.mark.slow
def test_live_rabbitmq(tmp_path: Path) -> None:
    import pika

    port = free_port()
    cap = tmp_path / "amqp.pcap"
    with rabbitmq(port), tcpdump(cap, port):
        params = pika.ConnectionParameters("127.0.0.1", port, connection_attempts=5, retry_delay=1)
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.exchange_declare("shop", "direct")
        ch.queue_declare("orders")
        ch.queue_bind("orders", "shop", "order.new")
        ch.basic_publish("shop", "order.new", b'{"id": 1}',
                         pika.BasicProperties(content_type="application/json"))  # fmt: skip
        for _ in range(50):
            method_frame, _props, body = ch.basic_get("orders", auto_ack=True)
            if method_frame is not None:
                break
            time.sleep(0.1)
        assert body == b'{"id": 1}'
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            ch.queue_declare("nope", passive=True)
        conn.close()
    es = capture_exchanges(str(cap), "amqp", port, "amqp")
    by = {e["request"]["method"]: e for e in es}
    assert by["connection.start"]["response"]["user"] == "guest"
    assert by["exchange.declare"]["response"]["method"] == "exchange.declare-ok"
    assert by["queue.bind"]["request"]["args"]["routing_key"] == "order.new"
    assert by["basic.publish"]["request"]["body"] == '{"id": 1}'
    assert by["basic.publish"]["request"]["properties"]["content_type"] == "application/json"
    gets = [e for e in es if e["request"]["method"] == "basic.get"]
    assert (
        gets[-1]["response"]["method"] == "basic.get-ok"
        and gets[-1]["response"]["body"] == '{"id": 1}'
    )
    refused = [e for e in es if e["request"].get("args", {}).get("queue") == "nope"]
    assert refused[0]["response"]["reply_code"] == 404
    assert all(e["error"] == "" for e in es)


def test_midstream_connection() -> None:
    """A long-lived connection captured from its middle: frames from the first byte, a
    body whose method was not captured, then whole deliveries."""
    full = script()
    deliver = full[15][1] + full[16][1]  # basic.deliver + its content
    xs = three_ways(AmqpParser, [
        (S, content(1, b"orphan")),  # the content of a delivery whose method came earlier
        (S, deliver),
        (C, method(1, 60, 80, struct.pack("!Q", 2) + b"\0")),
    ], trailing=b"")  # fmt: skip
    assert [x.summary for x in xs] == ["basic.deliver x=shop rk=x 6 B", "basic.ack"]
