"""MQTT parser: 3.1.1 and 5.0 packets three ways, QoS 0/1/2, broker publishes, fuzz,
the shared capture against tshark, and live against mosquitto with paho-mqtt."""

from __future__ import annotations

import struct
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sniffer.parsers.mqtt import PROTOCOL, MqttParser
from sniffer.parsers.registry import Verdict
from tests.conftest import pcap
from tests.sniffer.parsers.livecap import free_port, need, server, tcpdump
from tests.sniffer.parsers.protohelp import C, S, capture_exchanges, fuzz_feed, run, three_ways


def pkt(t: int, flags: int, body: bytes) -> bytes:
    n = len(body)
    rl = bytearray()
    while True:
        b = n % 128
        n //= 128
        rl.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes([t << 4 | flags]) + bytes(rl) + body


def s(v: str | bytes) -> bytes:
    b = v.encode() if isinstance(v, str) else v
    return struct.pack("!H", len(b)) + b


def connect(cid: str, level: int = 4, user: str = "", pw: str = "") -> bytes:
    flags = 0x02 | (0x80 if user else 0) | (0x40 if pw else 0)
    body = s("MQTT") + bytes([level, flags]) + struct.pack("!H", 30)
    if level == 5:
        body += b"\0"
    body += s(cid) + (s(user) if user else b"") + (s(pw) if pw else b"")
    return pkt(1, 0, body)


def publish(topic: str, payload: bytes, qos: int = 0, pid: int = 0, v5: bool = False) -> bytes:
    body = s(topic) + (struct.pack("!H", pid) if qos else b"") + (b"\0" if v5 else b"")
    return pkt(3, qos << 1, body + payload)


def ack(t: int, pid: int, code: int | None = None) -> bytes:
    return pkt(
        t, 2 if t == 6 else 0, struct.pack("!H", pid) + (b"" if code is None else bytes([code, 0]))
    )


def test_v311_conversation_three_ways() -> None:
    script = [
        (C, connect("dev-1", user="bob", pw="hunter2")),
        (S, pkt(2, 0, b"\x00\x00")),
        (C, pkt(8, 2, struct.pack("!H", 1) + s("sensors/#") + b"\x01" + s("alerts") + b"\x02")),
        (S, pkt(9, 0, struct.pack("!H", 1) + b"\x01\x80")),
        (C, publish("sensors/t1", b'{"c": 21.5}')),
        (C, publish("sensors/t2", b"\xff\x00", qos=1, pid=2)),
        (S, publish("sensors/t2", b"\xff\x00", qos=1, pid=9)),  # broker → subscriber
        (S, ack(4, 2)),
        (C, ack(4, 9)),
        (C, publish("cmd", b"go", qos=2, pid=3)),
        (S, ack(5, 3)),
        (C, ack(6, 3)),
        (S, ack(7, 3)),
        (C, pkt(12, 0, b"")),
        (S, pkt(13, 0, b"")),
        (C, pkt(10, 2, struct.pack("!H", 4) + s("alerts"))),
        (S, pkt(11, 0, struct.pack("!H", 4))),
        (C, pkt(14, 0, b"")),
    ]
    xs = three_ways(MqttParser, script, trailing=publish("x", b"y" * 10)[:5])  # type: ignore[arg-type]  # noqa: E501
    assert [x.summary for x in xs] == [
        "CONNECT dev-1 → Accepted",
        "SUBSCRIBE sensors/#,alerts → Unspecified error",
        "PUBLISH sensors/t1 qos0 11 B",
        "PUBLISH sensors/t2 qos1 2 B → Success",
        "PUBLISH sensors/t2 qos1 (broker) 2 B → Success",
        "PUBLISH cmd qos2 2 B → Success",
        "PINGREQ → PINGRESP",
        "UNSUBSCRIBE alerts → UNSUBACK",
        "DISCONNECT (client)",
    ]
    con, sub, q0, q1, bq1, q2, ping, unsub, disc = xs
    assert con.request["password"] == "hunter2" and con.request["username"] == "bob"
    assert "hunter2" not in con.summary and con.request["protocol_version"] == "3.1.1"
    assert sub.request["topics"] == ["sensors/#", "alerts"] and sub.request["qos"] == [1, 2]
    assert sub.response["reason_codes"] == [1, 0x80]
    assert q0.end is None and q0.error == "" and q0.request["body"] == '{"c": 21.5}'
    assert q1.request["body_encoding"] == "base64" and q1.ts == 6.0 and q1.end == 8.0
    assert bq1.request["from"] == "broker" and bq1.end == 9.0
    assert q2.response["acks"] == ["PUBREC", "PUBREL", "PUBCOMP"] and q2.end == 13.0
    assert disc.end is None and disc.error == ""


def test_v5_reason_codes() -> None:
    script = [
        (C, connect("v5-client", level=5)),
        (S, pkt(2, 0, b"\x00\x86\x00")),  # Bad User Name or Password, empty properties
        (C, publish("t", b"x", qos=1, pid=1, v5=True)),
        (S, ack(4, 1, code=0x10)),
        (S, pkt(14, 0, b"\x8b\x00")),  # server shutting down
    ]
    xs = run(MqttParser, script)
    assert xs[0].summary == "CONNECT v5-client → Bad User Name or Password"
    assert xs[0].request["protocol_version"] == "5.0"
    assert xs[1].response["reason"] == "No matching subscribers"
    assert xs[2].request == {"method": "DISCONNECT", "from": "broker", "reason_code": 0x8B,
                             "reason": "Server shutting down"}  # fmt: skip


def test_big_publish_is_bounded() -> None:
    big = publish("big", b"z" * 3_000_000, qos=1, pid=5)
    p = MqttParser()
    p.feed(C, connect("c"), 0.0)
    for i in range(0, len(big), 32768):
        p.feed(C, big[i : i + 32768], 1.0)
    assert len(p._r[0].kept or b"") == 0
    p.feed(S, ack(4, 5), 2.0)
    (x,) = [e for e in p.take() if e.request["method"] == "PUBLISH"]
    assert x.request["body_size"] == 3_000_000 and x.request["body_truncated"] is True
    assert len(x.request["body"]) == 64 * 1024


def test_detect() -> None:
    assert PROTOCOL.detect(connect("a"), C) is Verdict.YES
    assert PROTOCOL.detect(connect("a")[:5], C) is Verdict.MORE
    assert PROTOCOL.detect(b"\x10\x00junk", C) is Verdict.NO
    assert PROTOCOL.detect(b"GET / HTTP/1.1\r\n", C) is Verdict.NO


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=64)), max_size=12))
def test_fuzz_only_parse_error(chunks: list[tuple[bool, bytes]]) -> None:
    fuzz_feed(MqttParser, chunks)


@given(st.lists(st.tuples(st.booleans(), st.sampled_from([
    connect("a"), connect("b", level=5), pkt(2, 0, b"\0\0"), publish("t", b"p", 1, 1),
    publish("t", b"p"), ack(4, 1), ack(5, 1), ack(6, 1), ack(7, 1), pkt(12, 0, b""),
    pkt(13, 0, b""), pkt(9, 0, b"\0\1\0"), pkt(3, 6, b"\0"), pkt(8, 2, b"\0"),
])), max_size=16))  # fmt: skip
def test_fuzz_packet_soup(chunks: list[tuple[bool, bytes]]) -> None:
    fuzz_feed(MqttParser, chunks)


def test_shared_capture_matches_tshark() -> None:
    # tshark -r mqtt311_large_publish_ipv6.pcap -Y mqtt -T fields -e mqtt.msgtype
    #   -e mqtt.topic -e mqtt.qos -e mqtt.msgid -e mqtt.clientid -e mqtt.conack.val
    # → 1 (client P1) / 2 (0) / 8 foo id 1 / 9 id 1 / 3 foo qos1 id 2 / 4 id 2 /
    #   3 foo qos0 (broker) / 3 bar qos1 id 3 / 4 id 3 / 3 baz qos1 id 4 / 4 id 4 / 14
    es = capture_exchanges(str(pcap("mqtt311_large_publish_ipv6.pcap")), "mqtt", 1883)
    got = [(e["request"]["method"], e["request"].get("topic"), e["request"].get("qos"),
            e["request"].get("packet_id"), e["request"]["from"], e["response"].get("packet"))
           for e in es]  # fmt: skip
    assert got == [
        ("CONNECT", None, None, None, "client", "CONNACK"),
        ("SUBSCRIBE", None, [0], 1, "client", "SUBACK"),
        ("PUBLISH", "foo", 1, 2, "client", "PUBACK"),
        ("PUBLISH", "foo", 0, None, "broker", None),
        ("PUBLISH", "bar", 1, 3, "client", "PUBACK"),
        ("PUBLISH", "baz", 1, 4, "client", "PUBACK"),
        ("DISCONNECT", None, None, None, "client", None),
    ]
    assert es[0]["request"]["client_id"] == "P1" and es[0]["response"]["reason_code"] == 0
    assert [e["request"].get("body_size") for e in es[2:6]] == [100000, 100000, 1000, 100]
    assert all(e["error"] == "" for e in es)


def test_live_mosquitto(tmp_path: Path) -> None:
    """mosquitto on loopback; paho-mqtt publishes QoS 0/1/2 and subscribes (MQTT 3.1.1),
    captured with tcpdump."""
    import paho.mqtt.client as mqtt

    need("mosquitto")
    port = free_port()
    conf = tmp_path / "m.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    cap = tmp_path / "mqtt.pcap"
    got: list[bytes] = []
    with server(["mosquitto", "-c", str(conf)], port), tcpdump(cap, port):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="kw-test",
                        protocol=mqtt.MQTTv311)  # fmt: skip
        c.on_message = lambda _c, _u, m: got.append(m.payload)
        c.connect("127.0.0.1", port)
        c.loop_start()
        try:
            c.subscribe("kw/#", qos=1)
            time.sleep(0.2)
            for q in (0, 1, 2):
                c.publish(f"kw/q{q}", f"hello {q}".encode(), qos=q).wait_for_publish(5)
            deadline = time.monotonic() + 5
            while len(got) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            c.disconnect()
            c.loop_stop()
        # an MQTT 5 client: properties, user properties, a QoS 1 publish
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        c5 = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="kw-v5",
                         protocol=mqtt.MQTTv5)  # fmt: skip
        c5.connect("127.0.0.1", port)
        c5.loop_start()
        try:
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = "application/json"
            props.UserProperty = [("trace", "t-1")]
            c5.publish("kw/v5", b'{"v": 5}', qos=1, properties=props).wait_for_publish(5)
        finally:
            c5.disconnect()
            c5.loop_stop()
    assert len(got) >= 3
    es = capture_exchanges(str(cap), "mqtt", port, "mqtt")
    methods = [(e["request"]["method"], e["request"]["from"], e["request"].get("topic"),
                e["request"].get("qos")) for e in es]  # fmt: skip
    wanted = [
        ("CONNECT", "client", None, None), ("PUBLISH", "client", "kw/q0", 0),
        ("PUBLISH", "client", "kw/q1", 1), ("PUBLISH", "client", "kw/q2", 2),
        ("PUBLISH", "broker", "kw/q1", 1), ("DISCONNECT", "client", None, None),
    ]  # fmt: skip
    for want in wanted:
        assert want in methods, (want, methods)
    v5 = next(
        e for e in es if e["request"].get("topic") == "kw/v5" and e["request"]["from"] == "client"
    )  # noqa: E501
    assert v5["request"]["content_type"] == "application/json"
    assert v5["request"]["user_properties"] == {"trace": "t-1"}
    assert v5["response"]["packet"] == "PUBACK" and v5["request"]["body"] == '{"v": 5}'
    con5 = next(e for e in es if e["request"].get("client_id") == "kw-v5")
    assert con5["request"]["protocol_version"] == "5.0" and con5["response"]["reason"] == "Success"
    q2 = next(
        e for e in es if e["request"].get("topic") == "kw/q2" and e["request"]["from"] == "client"
    )
    assert q2["response"]["acks"] == ["PUBREC", "PUBREL", "PUBCOMP"]
    assert next(e for e in es if e["request"]["method"] == "SUBSCRIBE")["response"][
        "reason_codes"
    ] == [1]
    assert all(e["error"] == "" for e in es)


def test_v5_properties_and_auth_data() -> None:
    def prop_s(ident: int, v: bytes) -> bytes:
        return bytes([ident]) + s(v)

    props = prop_s(0x15, b"SCRAM-SHA-1") + prop_s(0x16, b"client-first") + b"\x11\0\0\0\x3c"
    body = s("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 30) + bytes([len(props)]) + props
    body += s("v5")
    user = b"\x26" + s("k") + s("v")
    pub_props = prop_s(0x03, b"application/json") + user
    script = [
        (C, pkt(1, 0, body)),
        (
            S,
            pkt(
                2, 0, b"\x00\x00" + bytes([len(prop_s(0x12, b"auto-1"))]) + prop_s(0x12, b"auto-1")
            ),
        ),
        (C, pkt(3, 0, s("t") + bytes([len(pub_props)]) + pub_props + b"{}")),
        (C, pkt(15, 0, b"\x19" + bytes([len(props)]) + props)),
    ]
    xs = run(MqttParser, script)
    assert (
        xs[0].request["auth_method"] == "SCRAM-SHA-1"
        and xs[0].request["auth_data"] == "client-first"
    )
    assert xs[0].request["session_expiry"] == 60
    assert xs[0].response["assigned_client_id"] == "auto-1"
    assert xs[1].request["content_type"] == "application/json"
    assert xs[1].request["user_properties"] == {"k": "v"} and xs[1].request["body"] == "{}"
    assert xs[2].request["method"] == "AUTH" and xs[2].request["reason"] == "Re-authenticate"
    assert xs[2].request["auth_data"] == "client-first"


def test_midstream_without_connect(tmp_path: Path) -> None:
    from kubeweir import pcapgen

    pkts = pcapgen.tcp_session(
        [("c", publish("a/b", b"x", qos=1, pid=7)), ("s", ack(4, 7)),
         ("s", publish("a/b", b"y")), ("c", pkt(12, 0, b"")), ("s", pkt(13, 0, b""))],
        server=("10.0.0.2", 1883), handshake=False,
    )  # fmt: skip
    f = pcapgen.write_pcap(tmp_path / "mid.pcap", pkts)
    es = capture_exchanges(str(f), "mqtt", 1883)
    assert [e["summary"] for e in es] == [
        "PUBLISH a/b qos1 1 B → Success",
        "PUBLISH a/b qos0 (broker) 1 B",
        "PINGREQ → PINGRESP",
    ]
