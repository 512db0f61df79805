"""DNS over UDP and TCP: decoding of every record type we show, compression and its loop
guard, EDNS, pairing by id, expiry; TCP framing three ways."""

from __future__ import annotations

import socket
import struct

import pytest

from sniffer.parsers.base import Direction, ParseError, ParserLimits
from sniffer.parsers.dns import (
    PROTOCOL,
    DnsParser,
    detect,
    parse_message,
    read_name,
)
from sniffer.parsers.dns_tcp import PROTOCOL as TCP_PROTOCOL
from sniffer.parsers.dns_tcp import DnsTcpParser
from sniffer.parsers.dns_tcp import detect as detect_tcp
from sniffer.parsers.registry import Verdict
from tests.sniffer.parsers.threeway import C, Gap, S, datagram_ways, three_ways


def name(n: str) -> bytes:
    if n in ("", "."):
        return b"\0"
    return b"".join(bytes([len(x)]) + x.encode() for x in n.split(".")) + b"\0"


def rr(owner: bytes, rtype: int, rdata: bytes, ttl: int = 300, cls: int = 1) -> bytes:
    return owner + struct.pack("!HHIH", rtype, cls, ttl, len(rdata)) + rdata


def message(
    ident: int,
    qname: str,
    qtype: int,
    *,
    response: bool = False,
    rcode: int = 0,
    answers: list[bytes] | None = None,
    authority: list[bytes] | None = None,
    additional: list[bytes] | None = None,
    flags: int = 0x0100,
) -> bytes:
    answers, authority, additional = answers or [], authority or [], additional or []
    f = flags | (0x8000 | 0x0080 if response else 0) | rcode
    head = struct.pack("!HHHHHH", ident, f, 1, len(answers), len(authority), len(additional))
    q = name(qname) + struct.pack("!HH", qtype, 1)
    return head + q + b"".join(answers) + b"".join(authority) + b"".join(additional)


PTR_Q = b"\xc0\x0c"  # compression pointer to the question name at offset 12


def opt(udp: int = 1232, do: bool = True, ext_rcode: int = 0, options: bytes = b"") -> bytes:
    ttl = (ext_rcode << 24) | (0 << 16) | (0x8000 if do else 0)
    return b"\0" + struct.pack("!HHIH", 41, udp, ttl, len(options)) + options


def test_a_query_and_answer_three_kinds_of_data() -> None:
    q = message(0x1234, "example.com", 1, additional=[opt()])
    a = message(
        0x1234,
        "example.com",
        1,
        response=True,
        answers=[
            rr(PTR_Q, 5, name("edge.example.net")),
            rr(name("edge.example.net"), 1, socket.inet_aton("93.184.216.34")),
        ],
        additional=[opt(udp=4096, do=False)],
    )
    ex = datagram_ways(DnsParser, [(C, q), (S, a)])
    [e] = ex
    assert e.txid == 0x1234 and e.error == "" and (e.ts, e.end) == (1.0, 2.0)
    assert e.request == {
        "id": 0x1234,
        "name": "example.com",
        "type": "A",
        "class": "IN",
        "transport": "udp",
        "edns": {"udp_size": 1232, "version": 0, "do": True},
        "method": "A",
        "opcode": "QUERY",
    }
    assert e.response["rcode"] == "NOERROR" and e.response["status"] == 0
    assert e.response["answers"] == [
        {"name": "example.com", "type": "CNAME", "ttl": 300, "data": "edge.example.net"},
        {"name": "edge.example.net", "type": "A", "ttl": 300, "data": "93.184.216.34"},
    ]
    assert e.response["edns"] == {"udp_size": 4096, "version": 0, "do": False}
    assert e.response["additional_count"] == 1 and e.response["authority_count"] == 0
    assert e.summary == "A example.com → NOERROR 93.184.216.34"


def test_record_types() -> None:
    soa = (
        name("ns1.x.org") + name("admin.x.org") + struct.pack("!IIIII", 2024, 7200, 900, 86400, 60)
    )
    answers = [
        rr(PTR_Q, 28, socket.inet_pton(socket.AF_INET6, "2001:db8::1")),
        rr(PTR_Q, 15, struct.pack("!H", 10) + name("mx.x.org")),
        rr(PTR_Q, 33, struct.pack("!HHH", 1, 5, 389) + name("dc.x.org")),
        rr(PTR_Q, 16, b'\x05hello\x0asay "hi" \\'),
        rr(PTR_Q, 12, name("host.x.org")),
        rr(PTR_Q, 2, name("ns.x.org")),
        rr(PTR_Q, 6, soa),
        rr(PTR_Q, 257, b"\x00\x05issueca.example"),
        rr(PTR_Q, 65280, b"\xde\xad"),
    ]
    m = parse_message(message(1, "x.org", 255, response=True, answers=answers))
    got = [(a.type, a.data) for a in m.answers]
    assert got == [
        (28, "2001:db8::1"),
        (15, "10 mx.x.org"),
        (33, "1 5 389 dc.x.org"),
        (16, '"hello" "say \\"hi\\" \\\\"'),
        (12, "host.x.org"),
        (2, "ns.x.org"),
        (6, "ns1.x.org admin.x.org 2024 7200 900 86400 60"),
        (257, "0005697373756563612e6578616d706c65"),
        (65280, "dead"),
    ]
    p = DnsParser()
    p.feed(S, message(1, "x.org", 255, response=True, answers=answers), 1.0)
    [e] = p.take()
    assert [a["type"] for a in e.response["answers"]][-2:] == ["CAA", "TYPE65280"]
    assert e.error == "no request" and e.request["name"] == "x.org"


def test_rcodes_and_extended_rcode() -> None:
    m = parse_message(message(7, "nope.example", 1, response=True, rcode=3))
    assert m.rcode == 3
    # RFC 6891 §6.1.3: BADVERS = 16 is ext-rcode 1 with header rcode 0
    m = parse_message(message(7, "x", 1, response=True, additional=[opt(ext_rcode=1)]))
    assert m.rcode == 16
    p = DnsParser()
    p.feed(C, message(7, "x", 1), 1.0)
    p.feed(S, message(7, "x", 1, response=True, additional=[opt(ext_rcode=1)]), 1.5)
    [e] = p.take()
    assert e.response["rcode"] == "BADVERS" and e.response["status"] == 16
    assert e.summary == "A x → BADVERS"


def test_edns_options_listed() -> None:
    cookie = struct.pack("!HH", 10, 8) + b"\x01" * 8
    m = parse_message(message(1, "a.b", 1, additional=[opt(options=cookie)]))
    assert m.edns is not None and m.edns["options"] == ["COOKIE"]


def test_names_root_and_escapes() -> None:
    assert read_name(b"\0", 0) == (".", 1)
    assert read_name(b"\x03a.b\x02\xff\x00\0", 0)[0] == "a\\046b.\\255\\000"


@pytest.mark.parametrize(
    "raw",
    [
        b"\xc0\x00",  # points at itself
        b"\x01a\xc0\x00",  # a loop through a label
        b"\x01a\xc0\x05\x00\x00",  # points forward
        b"\x40abc",  # reserved label type
        b"\x05ab",  # label past the end
        b"\xc0",  # truncated pointer
        (b"\x3f" + b"a" * 63) * 5 + b"\0",  # longer than 255
    ],
)
def test_bad_names_raise_parse_error(raw: bytes) -> None:
    with pytest.raises(ParseError):
        read_name(raw, 0)


def test_pointer_chain_is_followed() -> None:
    buf = b"\x03com\x00" + b"\x07example\xc0\x00" + b"\x03www\xc0\x05"
    assert read_name(buf, 15) == ("www.example.com", 21)


def test_pairing_by_id_question_retransmit_and_expiry() -> None:
    p = DnsParser()
    p.feed(C, message(1, "a.x", 1), 1.0)
    p.feed(C, message(1, "a.x", 1), 1.5)  # retransmission: same id, same question
    p.feed(C, message(2, "b.x", 28), 2.0)
    p.feed(S, message(2, "other.x", 28, response=True), 2.1)  # same id, other question
    p.feed(S, message(1, "a.x", 1, response=True), 2.5)
    ex = p.take()
    assert [(e.summary, e.error) for e in ex] == [
        ("AAAA other.x → NOERROR", "no request"),
        ("A a.x → NOERROR", ""),
    ]
    assert ex[1].ts == 1.0 and ex[1].end == 2.5 and ex[1].request["retransmits"] == 1
    p.expire(5.0, 10.0)
    assert p.take() == []
    p.expire(12.0, 10.0)
    [late] = p.take()
    assert late.error == "no response" and late.summary == "AAAA b.x → no response"
    assert late.end is None and late.txid == 2


def test_close_flushes_unanswered() -> None:
    p = DnsParser()
    p.feed(C, message(9, "z.x", 1), 1.0)
    p.close(2.0)
    [e] = p.take()
    assert e.error == "no response"


def test_pending_bound() -> None:
    p = DnsParser(ParserLimits(max_pending=2))
    for i in range(3):
        p.feed(C, message(i, f"n{i}.x", 1), float(i))
    [e] = p.take()
    assert e.txid == 0 and "too many pending" in e.error


def test_short_and_truncated_messages() -> None:
    full = message(3, "abc.example", 1, response=True, answers=[rr(PTR_Q, 1, b"\1\2\3\4")])
    p = DnsParser()
    with pytest.raises(ParseError, match="shorter than its header"):
        p.feed(S, full[:5], 1.0)
    with pytest.raises(ParseError):
        p.feed(S, full[:-2], 1.0)


def test_answer_count_bound() -> None:
    answers = [rr(PTR_Q, 1, bytes([10, 0, i // 256, i % 256])) for i in range(300)]
    p = DnsParser()
    p.feed(S, message(1, "many.x", 1, response=True, answers=answers), 1.0)
    [e] = p.take()
    assert len(e.response["answers"]) == 128 and e.response["answers_truncated"] is True


def tcp(msg: bytes) -> bytes:
    return struct.pack("!H", len(msg)) + msg


def test_tcp_several_messages_per_segment_three_ways() -> None:
    queries = b"".join(tcp(message(i, f"{i}.google.com", 1)) for i in range(5))
    answers = [tcp(message(i, f"{i}.google.com", 1, response=True, rcode=3)) for i in range(5)]
    script = [(C, queries)] + [(S, a) for a in answers[::-1]]
    ex = three_ways(DnsTcpParser, script, {C: b"\x00\x30\x00"})
    assert [(e.txid, e.response["rcode"], e.request["transport"]) for e in ex] == [
        (i, "NXDOMAIN", "tcp") for i in range(4, -1, -1)
    ]
    assert [e.end for e in ex] == [2.0, 3.0, 4.0, 5.0, 6.0]


def test_tcp_unanswered_at_close() -> None:
    ex = three_ways(DnsTcpParser, [(C, tcp(message(1, "a.b", 1)))], {S: b"\x00"})
    [e] = ex
    assert e.error == "no response" and e.request["transport"] == "tcp"


def test_tcp_runt_message_is_a_parse_error() -> None:
    p = DnsTcpParser()
    with pytest.raises(ParseError):
        p.feed(C, b"\x00\x02ab", 1.0)


@pytest.mark.parametrize(
    ("data", "direction", "verdict"),
    [
        (message(1, "a.b", 1), Direction.CLIENT, Verdict.YES),
        (message(1, "a.b", 1, response=True), Direction.SERVER, Verdict.YES),
        (message(1, "a.b", 1, response=True), Direction.CLIENT, Verdict.NO),
        (b"GET / HTTP/1.1\r\n\r\n", Direction.CLIENT, Verdict.NO),
        (b"\x00\x01", Direction.CLIENT, Verdict.NO),
    ],
)
def test_detect_udp(data: bytes, direction: Direction, verdict: Verdict) -> None:
    assert detect(data[:64], direction) is verdict


def test_detect_tcp() -> None:
    assert detect_tcp(tcp(message(1, "a.b", 1))[:64], C) is Verdict.YES
    assert detect_tcp(b"\x00\x1d\x12", C) is Verdict.MORE
    assert detect_tcp(b"GET / HTTP/1.1\r\n\r\n", C) is Verdict.NO
    assert detect_tcp(b"\x00\x05" + b"\0" * 20, C) is Verdict.NO


def test_protocol_objects() -> None:
    assert PROTOCOL.name == "dns" and 53 in PROTOCOL.ports
    assert TCP_PROTOCOL.name == "dns" and TCP_PROTOCOL.ports == frozenset({53})
    assert isinstance(TCP_PROTOCOL.factory(ParserLimits()), DnsTcpParser)


def test_tcp_gap_resynchronises_on_the_next_message() -> None:
    answers = [tcp(message(i, f"{i}.x", 1, response=True)) for i in range(3)]
    script = [
        (C, b"".join(tcp(message(i, f"{i}.x", 1)) for i in range(3))),
        (S, answers[0] + answers[1][:9]),
        Gap(S, 5),
        (S, answers[1][14:] + answers[2]),
    ]
    ex = three_ways(DnsTcpParser, script, {C: b"\x00"})
    assert [(e.txid, e.error) for e in ex] == [(0, ""), (2, ""), (1, "no response")]


def test_tcp_gap_after_fin_is_harmless() -> None:
    q = tcp(message(5, "a.x", 1))
    ex = three_ways(
        DnsTcpParser,
        [(C, q), Gap(C, 1), (S, tcp(message(5, "a.x", 1, response=True)))],
        {S: b"\x00"},
    )
    assert [(e.txid, e.error) for e in ex] == [(5, "")]


def test_tcp_expire() -> None:
    p = DnsTcpParser()
    p.feed(C, tcp(message(1, "a.x", 1)) + tcp(message(2, "b.x", 1)), 1.0)
    p.feed(S, tcp(message(2, "b.x", 1, response=True)), 1.2)
    p.expire(40.0, 30.0)
    assert [(e.txid, e.error) for e in p.take()] == [(2, ""), (1, "no response")]
