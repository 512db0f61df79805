"""DNS (RFC 1035) over UDP: messages decoded with precompiled structs, queries paired with
answers by id on one flow.

The message decoder and the pairing are shared with DNS over TCP (``dns_tcp``).

Entry fields (``proto="dns"``):

- request: ``id``, ``name``, ``type`` (``A``, ``AAAA``, ``TYPE65534``...), ``class``,
  ``transport`` (``udp``/``tcp``), ``edns`` (``{udp_size, version, do}`` or None),
  ``method`` (= ``type``), ``opcode``, ``questions`` when there is more than one.
- response: ``rcode`` (``NOERROR``, ``NXDOMAIN``... extended by EDNS), ``status`` (the
  numeric rcode), ``answers`` (``[{name, type, ttl, data}]``: A/AAAA as addresses,
  CNAME/NS/PTR as names, MX ``"pref host"``, SRV ``"prio weight port target"``, TXT as
  quoted strings, SOA ``"mname rname serial refresh retry expire minimum"``, any other
  type as hex), ``authority_count``, ``additional_count``, ``edns``, ``truncated`` (TC).
- error: ``no response`` (unanswered within the time-out), ``no request`` (an answer
  whose query was not captured: its question fills the request).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from sniffer.parsers.base import (
    DatagramParser,
    Direction,
    Exchange,
    ParseError,
    ParserLimits,
)
from sniffer.parsers.registry import DatagramProtocol, Verdict

__all__ = [
    "DnsAnswer",
    "DnsMessage",
    "DnsPairing",
    "DnsParser",
    "DnsQuestion",
    "PROTOCOL",
    "PROTOCOL_FIELDS",
    "detect",
    "header_plausible",
    "parse_message",
]

PROTOCOL_FIELDS: dict[str, tuple[str, ...]] = {
    "request": ("id", "name", "type", "class", "transport", "edns", "method", "opcode"),
    "response": (
        "rcode", "status", "answers", "authority_count", "additional_count", "edns",
        "truncated",
    ),
}  # fmt: skip

_HEADER = struct.Struct("!HHHHHH")
_QFIXED = struct.Struct("!HH")
_RRFIXED = struct.Struct("!HHIH")
_MX = struct.Struct("!H")
_SRV = struct.Struct("!HHH")
_SOA = struct.Struct("!IIIII")
_OPT = struct.Struct("!HH")

MAX_ANSWERS = 128
"""Answer records decoded per message; the rest are counted (``answers_truncated``)."""
_MAX_JUMPS = 64
"""Compression pointers followed in one name (loop guard)."""

TYPES: dict[int, str] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    17: "RP", 18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV",
    35: "NAPTR", 36: "KX", 37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS",
    44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID",
    50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 59: "CDS",
    60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS",
    99: "SPF", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB",
    254: "MAILA", 255: "ANY", 256: "URI", 257: "CAA",
}  # fmt: skip
CLASSES = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
RCODES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
    11: "DSOTYPENI", 16: "BADVERS", 17: "BADKEY", 18: "BADTIME", 19: "BADMODE",
    20: "BADNAME", 21: "BADALG", 22: "BADTRUNC", 23: "BADCOOKIE",
}  # fmt: skip
OPCODES = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE", 6: "DSO"}


def type_name(t: int) -> str:
    """RFC 3597 §5: unknown types as ``TYPEn``."""
    return TYPES.get(t) or f"TYPE{t}"


def class_name(c: int) -> str:
    return CLASSES.get(c) or f"CLASS{c}"


def rcode_name(r: int) -> str:
    return RCODES.get(r) or f"RCODE{r}"


@dataclass(frozen=True, slots=True)
class DnsQuestion:
    name: str
    type: int
    cls: int


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    name: str
    type: int
    ttl: int
    data: str


@dataclass(frozen=True, slots=True)
class DnsMessage:
    id: int
    response: bool
    opcode: int
    flags: int
    """The 16-bit flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode)."""
    rcode: int
    """Including the EDNS extended bits (RFC 6891 §6.1.3)."""
    questions: tuple[DnsQuestion, ...]
    answers: tuple[DnsAnswer, ...]
    answer_count: int
    authority_count: int
    additional_count: int
    edns: dict[str, Any] | None


def _label_text(raw: bytes) -> str:
    """A label as dig shows it: printable ASCII, other bytes and dots escaped (RFC 4343)."""
    try:
        s = raw.decode("ascii")
        if "." not in s and "\\" not in s and s.isprintable() and " " not in s:
            return s
    except UnicodeDecodeError:
        pass
    return "".join(
        chr(c) if 0x21 <= c < 0x7F and c not in (0x2E, 0x5C) else f"\\{c:03d}" for c in raw
    )


def read_name(buf: bytes, off: int) -> tuple[str, int]:
    """RFC 1035 §3.1, §4.1.4: a (possibly compressed) domain name at ``off``.
    Returns the name (``.`` for the root) and the offset after it in place."""
    labels: list[str] = []
    after = -1
    jumps = 0
    total = 0
    n = len(buf)
    while True:
        if off >= n:
            raise ParseError("domain name runs past the end of the message")
        length = buf[off]
        if length == 0:
            off += 1
            break
        if length >= 0xC0:
            if off + 1 >= n:
                raise ParseError("truncated compression pointer")
            ptr = ((length & 0x3F) << 8) | buf[off + 1]
            if after < 0:
                after = off + 2
            jumps += 1
            # pointers go to a prior occurrence; a bounded number of them (loop guard)
            if ptr >= off or jumps > _MAX_JUMPS:
                raise ParseError("compression pointer loop")
            off = ptr
            continue
        if length >= 0x40:
            raise ParseError(f"reserved label type 0x{length:02x}")
        end = off + 1 + length
        if end > n:
            raise ParseError("label runs past the end of the message")
        total += length + 1
        if total > 255:
            raise ParseError("domain name longer than 255 bytes")
        labels.append(_label_text(buf[off + 1 : end]))
        off = end
    return (".".join(labels) if labels else "."), (after if after >= 0 else off)


def _rdata(buf: bytes, rtype: int, off: int, rdlen: int) -> str:
    """RFC 1035 §3.3, RFC 3596, RFC 2782: the record's data as display text."""
    end = off + rdlen
    try:
        if rtype == 1 and rdlen == 4:
            return socket.inet_ntop(socket.AF_INET, buf[off:end])
        if rtype == 28 and rdlen == 16:
            return socket.inet_ntop(socket.AF_INET6, buf[off:end])
        if rtype in (2, 5, 12, 39):  # NS, CNAME, PTR, DNAME
            return read_name(buf, off)[0]
        if rtype == 15 and rdlen >= 3:  # MX
            (pref,) = _MX.unpack_from(buf, off)
            return f"{pref} {read_name(buf, off + 2)[0]}"
        if rtype == 33 and rdlen >= 7:  # SRV
            prio, weight, port = _SRV.unpack_from(buf, off)
            return f"{prio} {weight} {port} {read_name(buf, off + 6)[0]}"
        if rtype in (16, 99):  # TXT, SPF: <character-string>+
            parts = []
            i = off
            while i < end:
                ln = buf[i]
                if i + 1 + ln > end:
                    raise ParseError("TXT string runs past its record")
                s = buf[i + 1 : i + 1 + ln].decode("utf-8", "backslashreplace")
                parts.append('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
                i += 1 + ln
            return " ".join(parts)
        if rtype == 6:  # SOA
            mname, i = read_name(buf, off)
            rname, i = read_name(buf, i)
            if i + 20 > end:
                raise ParseError("SOA record too short")
            serial, refresh, retry, expire, minimum = _SOA.unpack_from(buf, i)
            return f"{mname} {rname} {serial} {refresh} {retry} {expire} {minimum}"
    except ParseError:
        pass
    return buf[off:end].hex()


def parse_message(buf: bytes) -> DnsMessage:
    """RFC 1035 §4.1: decode one message. Raises ``ParseError`` (never anything else)."""
    if len(buf) < 12:
        raise ParseError(f"DNS message of {len(buf)} bytes is shorter than its header")
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(buf, 0)
    n = len(buf)
    off = 12
    questions = []
    for _ in range(qd):
        name, off = read_name(buf, off)
        if off + 4 > n:
            raise ParseError("question runs past the end of the message")
        qtype, qclass = _QFIXED.unpack_from(buf, off)
        off += 4
        questions.append(DnsQuestion(name, qtype, qclass))
    answers = []
    edns: dict[str, Any] | None = None
    ext_rcode = 0
    for i in range(an + ns + ar):
        name, off = read_name(buf, off)
        if off + 10 > n:
            raise ParseError("resource record runs past the end of the message")
        rtype, rclass, ttl, rdlen = _RRFIXED.unpack_from(buf, off)
        off += 10
        if off + rdlen > n:
            raise ParseError("record data runs past the end of the message")
        if i < an:
            if i < MAX_ANSWERS:
                answers.append(DnsAnswer(name, rtype, ttl, _rdata(buf, rtype, off, rdlen)))
        elif rtype == 41 and i >= an + ns:
            # RFC 6891 §6.1.2-3: OPT pseudo-record; class = UDP size, ttl = ext. rcode etc.
            ext_rcode = ttl >> 24
            edns = {
                "udp_size": rclass,
                "version": (ttl >> 16) & 0xFF,
                "do": bool(ttl & 0x8000),
            }
            opts = _edns_options(buf, off, rdlen)
            if opts:
                edns["options"] = opts
        off += rdlen
    return DnsMessage(
        id=ident,
        response=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0xF,
        flags=flags,
        rcode=(ext_rcode << 4) | (flags & 0xF),
        questions=tuple(questions),
        answers=tuple(answers),
        answer_count=an,
        authority_count=ns,
        additional_count=ar,
        edns=edns,
    )


_EDNS_OPTS = {3: "NSID", 8: "ECS", 10: "COOKIE", 11: "KEEPALIVE", 12: "PADDING", 15: "EDE"}


def _edns_options(buf: bytes, off: int, rdlen: int) -> list[str]:
    out: list[str] = []
    end = off + rdlen
    while off + 4 <= end and len(out) < 32:
        code, length = _OPT.unpack_from(buf, off)
        out.append(_EDNS_OPTS.get(code) or f"OPT{code}")
        off += 4 + length
    return out


def header_plausible(data: bytes | bytearray, off: int, response: bool | None) -> bool:
    """Whether a DNS header at ``off`` looks real (for content detection)."""
    if len(data) < off + 12:
        return False
    _id, flags, qd, an, ns, ar = _HEADER.unpack_from(data, off)
    opcode = (flags >> 11) & 0xF
    if opcode not in OPCODES or (flags & 0x0040):  # Z bit must be zero (RFC 1035 §4.1.1)
        return False
    if response is not None and bool(flags & 0x8000) != response:
        return False
    if qd > 8 or an > 1024 or ns > 1024 or ar > 1024:
        return False
    if not (flags & 0x8000) and (qd == 0 or (flags & 0xF)):
        return False  # a query asks something and carries no rcode
    if qd and len(data) > off + 12:
        first = data[off + 12]
        if first >= 0x40:  # the first question name starts with a label length
            return False
    return True


def _summary_data(msg: DnsMessage, qtype: int) -> str:
    for a in msg.answers:
        if a.type == qtype:
            return a.data
    return msg.answers[0].data if msg.answers else ""


def request_fields(msg: DnsMessage, transport: str) -> dict[str, Any]:
    q = msg.questions[0] if msg.questions else None
    tname = type_name(q.type) if q else ""
    fields: dict[str, Any] = {
        "id": msg.id,
        "name": q.name if q else "",
        "type": tname,
        "class": class_name(q.cls & 0x7FFF) if q else "",
        "transport": transport,
        "edns": msg.edns if not msg.response else None,
        "method": tname,
        "opcode": OPCODES.get(msg.opcode) or f"OPCODE{msg.opcode}",
    }
    if len(msg.questions) > 1:
        fields["questions"] = [
            {"name": x.name, "type": type_name(x.type), "class": class_name(x.cls & 0x7FFF)}
            for x in msg.questions
        ]
    return fields


def response_fields(msg: DnsMessage) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "rcode": rcode_name(msg.rcode),
        "status": msg.rcode,
        "answers": [
            {"name": a.name, "type": type_name(a.type), "ttl": a.ttl, "data": a.data}
            for a in msg.answers
        ],
        "authority_count": msg.authority_count,
        "additional_count": msg.additional_count,
        "edns": msg.edns,
        "truncated": bool(msg.flags & 0x0200),
    }
    if msg.answer_count > len(msg.answers):
        fields["answers_truncated"] = True
    return fields


class _Query:
    __slots__ = ("ts", "msg", "request", "retransmits")

    def __init__(self, ts: float, msg: DnsMessage, request: dict[str, Any]) -> None:
        self.ts = ts
        self.msg = msg
        self.request = request
        self.retransmits = 0


class DnsPairing:
    """Queries waiting for answers, keyed by id (RFC 1035 §7.3: the id and the question
    match an answer to its query); bounded."""

    def __init__(self, transport: str, limit: int) -> None:
        self.transport = transport
        self.limit = limit
        self._pending: dict[int, _Query] = {}
        self._done: list[Exchange] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, msg: DnsMessage, ts: float) -> None:
        if msg.response:
            self._answer(msg, ts)
        else:
            self._query(msg, ts)

    def _query(self, msg: DnsMessage, ts: float) -> None:
        old = self._pending.get(msg.id)
        if old is not None:
            if old.msg.questions == msg.questions:
                old.retransmits += 1  # a retry of the same query: keep the first
                old.request["retransmits"] = old.retransmits
                return
            del self._pending[msg.id]
            self._fail(old, "no response")
        if len(self._pending) >= self.limit:
            oldest = next(iter(self._pending))
            self._fail(self._pending.pop(oldest), "no response (too many pending queries)")
        self._pending[msg.id] = _Query(ts, msg, request_fields(msg, self.transport))

    def _answer(self, msg: DnsMessage, ts: float) -> None:
        q = self._pending.get(msg.id)
        if q is not None and msg.questions and q.msg.questions != msg.questions:
            q = None  # same id, other question: not its answer
        response = response_fields(msg)
        if q is None:
            request = request_fields(msg, self.transport)
            request["edns"] = None
            self._done.append(
                Exchange(
                    proto="dns",
                    ts=ts,
                    end=ts,
                    request=request,
                    response=response,
                    summary=self._summary(request, msg),
                    error="no request",
                    txid=msg.id,
                )
            )
            return
        del self._pending[msg.id]
        self._done.append(
            Exchange(
                proto="dns",
                ts=q.ts,
                end=ts,
                request=q.request,
                response=response,
                summary=self._summary(q.request, msg),
                txid=msg.id,
            )
        )

    @staticmethod
    def _summary(request: dict[str, Any], msg: DnsMessage) -> str:
        qtype = msg.questions[0].type if msg.questions else 0
        data = _summary_data(msg, qtype)
        s = f"{request['type']} {request['name']} → {rcode_name(msg.rcode)}"
        return f"{s} {data}" if data else s

    def _fail(self, q: _Query, error: str) -> None:
        self._done.append(
            Exchange(
                proto="dns",
                ts=q.ts,
                end=None,
                request=q.request,
                summary=f"{q.request['type']} {q.request['name']} → {error}",
                error=error,
                txid=q.msg.id,
            )
        )

    def expire(self, now: float, timeout: float) -> None:
        late = [k for k, q in self._pending.items() if now - q.ts >= timeout]
        for k in late:
            self._fail(self._pending.pop(k), "no response")

    def close(self) -> None:
        for q in self._pending.values():
            self._fail(q, "no response")
        self._pending.clear()

    def take(self) -> list[Exchange]:
        out = self._done
        self._done = []
        return out


class DnsParser(DatagramParser):
    """DNS on one UDP flow: each datagram is one message."""

    proto: ClassVar[str] = "dns"

    def __init__(self, limits: ParserLimits | None = None) -> None:
        super().__init__(limits)
        self._pairing = DnsPairing("udp", self.limits.max_pending)

    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        self._pairing.add(parse_message(bytes(data)), ts)

    def expire(self, now: float, timeout: float) -> None:
        self._pairing.expire(now, timeout)

    def close(self, ts: float) -> None:
        """The flow ended (end of capture): every unanswered query gets its error."""
        self._pairing.close()

    def take(self) -> list[Exchange]:
        return self._pairing.take()


def detect(data: bytes, direction: Direction) -> Verdict:
    """A plausible DNS header: QR matching the direction, known opcode, sane counts."""
    if len(data) < 12:
        return Verdict.NO  # a datagram is whole: short means not DNS
    return Verdict.YES if header_plausible(data, 0, direction == Direction.SERVER) else Verdict.NO


PROTOCOL = DatagramProtocol(
    name="dns",
    factory=DnsParser,
    detect=detect,
    ports=frozenset({53, 5353, 5355}),
)
