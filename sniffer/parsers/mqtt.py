"""MQTT 3.1, 3.1.1 and 5.0 parser: control packets paired into exchanges.

Entries (``proto="mqtt"``) — ``PROTOCOL_FIELDS``:

- request: ``method`` (the packet type: ``CONNECT``, ``PUBLISH``, ``SUBSCRIBE``,
  ``UNSUBSCRIBE``, ``PINGREQ``, ``DISCONNECT``, ``AUTH``), ``from`` (``client`` or
  ``broker``: brokers publish to subscribers too), ``packet_id``; CONNECT:
  ``client_id``, ``protocol_version`` (``3.1``, ``3.1.1``, ``5.0``), ``clean_start``,
  ``keep_alive``, ``username``, ``password`` (kept only for the redaction engine's
  ``password`` rule), ``will_topic``, and MQTT 5 ``auth_method``/``auth_data`` (the
  latter for the ``auth_data`` rule), ``session_expiry``, ``user_properties``;
  PUBLISH: ``topic``, ``qos``, ``retain``, ``dup``,
  and the payload as body fields (``body``, ``body_encoding``, ``body_size``,
  ``body_truncated``); SUBSCRIBE/UNSUBSCRIBE: ``topics`` (filters) and ``qos`` (asked).
- MQTT 5 properties worth a field are kept on the packet that carries them:
  ``content_type``, ``response_topic``, ``user_properties`` (PUBLISH), ``reason_string``,
  ``assigned_client_id``, ``server_reference`` (CONNACK, DISCONNECT, AUTH).
- response: ``packet`` (CONNACK, PUBACK, PUBCOMP, SUBACK, UNSUBACK, PINGRESP),
  ``reason_code`` and ``reason`` (CONNACK return code / MQTT 5 reason code; for SUBACK
  the list ``reason_codes``), ``session_present``, ``acks`` (QoS 2: PUBREC, PUBREL,
  PUBCOMP).

A QoS 0 PUBLISH and a DISCONNECT are entries without a response (not errors). A
connection captured from its middle (port hint) is read from its first packet; without
its CONNECT the version is taken as 3.1.1, so MQTT 5 properties then show in payloads. QoS 1
PUBLISH pairs with PUBACK, QoS 2 with PUBREC/PUBREL/PUBCOMP, by packet id, separately
for each sender (MQTT 3.1.1 §2.3.1, 5.0 §2.2.1).
"""

from __future__ import annotations

import struct
from typing import Any

from sniffer.parsers._common import Pending, PendingQueue, body_fields, text
from sniffer.parsers.base import Direction, Exchange, ParseError, ParserLimits, StreamParser
from sniffer.parsers.registry import StreamProtocol, Verdict

__all__ = ["PROTOCOL", "PROTOCOL_FIELDS", "MqttParser"]

PROTOCOL_FIELDS = {
    "request": [
        "method", "from", "packet_id", "client_id", "protocol_version", "clean_start",
        "keep_alive", "username", "password", "will_topic", "topic", "qos", "retain", "dup",
        "body", "body_encoding", "body_size", "body_truncated", "topics",
    ],
    "response": [
        "packet", "reason_code", "reason", "reason_codes", "session_present", "acks",
    ],
}  # fmt: skip

_TYPES = (
    "", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
    "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT",
    "AUTH",
)  # fmt: skip
_CONNACK_V3 = (
    "Accepted", "Unacceptable protocol version", "Identifier rejected", "Server unavailable",
    "Bad user name or password", "Not authorized",
)  # fmt: skip
# MQTT 5.0 §2.4 reason codes
_REASONS = {
    0: "Success", 1: "Granted QoS 1", 2: "Granted QoS 2", 4: "Disconnect with Will Message",
    16: "No matching subscribers", 17: "No subscription existed", 24: "Continue authentication",
    25: "Re-authenticate", 128: "Unspecified error", 129: "Malformed Packet",
    130: "Protocol Error", 131: "Implementation specific error",
    132: "Unsupported Protocol Version", 133: "Client Identifier not valid",
    134: "Bad User Name or Password", 135: "Not authorized", 136: "Server unavailable",
    137: "Server busy", 138: "Banned", 139: "Server shutting down",
    140: "Bad authentication method", 141: "Keep Alive timeout", 142: "Session taken over",
    143: "Topic Filter invalid", 144: "Topic Name invalid", 145: "Packet Identifier in use",
    146: "Packet Identifier not found", 147: "Receive Maximum exceeded",
    148: "Topic Alias invalid", 149: "Packet too large", 150: "Message rate too high",
    151: "Quota exceeded", 152: "Administrative action", 153: "Payload format invalid",
    154: "Retain not supported", 155: "QoS not supported", 156: "Use another server",
    157: "Server moved", 158: "Shared Subscriptions not supported",
    159: "Connection rate exceeded", 160: "Maximum connect time",
    161: "Subscription Identifiers not supported", 162: "Wildcard Subscriptions not supported",
}  # fmt: skip
_U16 = struct.Struct("!H")
_MAX_PACKET = 268_435_455


class _Short(Exception):
    """The kept bytes end before the field (a big packet cut at the keep bound)."""


class _R:
    __slots__ = ("b", "p")

    def __init__(self, b: bytes) -> None:
        self.b = b
        self.p = 0

    def u8(self) -> int:
        if self.p >= len(self.b):
            raise _Short
        self.p += 1
        return self.b[self.p - 1]

    def u16(self) -> int:
        if self.p + 2 > len(self.b):
            raise _Short
        (v,) = _U16.unpack_from(self.b, self.p)
        self.p += 2
        return int(v)

    def binary(self) -> bytes:
        n = self.u16()
        if self.p + n > len(self.b):
            raise _Short
        v = self.b[self.p : self.p + n]
        self.p += n
        return v

    def string(self) -> str:
        return self.binary().decode("utf-8", "backslashreplace")

    def varint(self) -> int:
        mult = 1
        value = 0
        for _ in range(4):
            c = self.u8()
            value += (c & 0x7F) * mult
            if not c & 0x80:
                return value
            mult *= 128
        raise ParseError("mqtt: variable byte integer longer than 4 bytes")

    def properties(self) -> dict[str, Any]:
        """MQTT 5 properties (§2.2.2.2) by name; user properties as a map. Unknown
        identifiers end the reading (the rest of the block is skipped)."""
        n = self.varint()
        end = self.p + n
        if end > len(self.b):
            raise _Short
        out: dict[str, Any] = {}
        while self.p < end:
            ident = self.varint()
            kind, name = _PROPS.get(ident, ("", ""))
            if kind == "b":
                v: Any = self.u8()
            elif kind == "h":
                v = self.u16()
            elif kind == "i":
                v = self.u16() << 16 | self.u16()
            elif kind == "v":
                v = self.varint()
            elif kind == "s":
                v = self.string()
            elif kind == "d":
                v = text(self.binary(), 1024)
            elif kind == "p":
                k = self.string()
                out.setdefault("user_properties", {})[k] = self.string()
                continue
            else:
                break
            out[name] = v
        self.p = end
        return out


# MQTT 5.0 §2.2.2.2: property identifier → (b byte, h two bytes, i four bytes, v varint,
# s UTF-8 string, d binary data, p string pair), name
_PROPS = {
    0x01: ("b", "payload_format"), 0x02: ("i", "message_expiry"), 0x03: ("s", "content_type"),
    0x08: ("s", "response_topic"), 0x09: ("d", "correlation_data"),
    0x0B: ("v", "subscription_id"), 0x11: ("i", "session_expiry"),
    0x12: ("s", "assigned_client_id"), 0x13: ("h", "server_keep_alive"),
    0x15: ("s", "auth_method"), 0x16: ("d", "auth_data"), 0x17: ("b", "request_problem_info"),
    0x18: ("i", "will_delay"), 0x19: ("b", "request_response_info"),
    0x1A: ("s", "response_info"), 0x1C: ("s", "server_reference"),
    0x1F: ("s", "reason_string"), 0x21: ("h", "receive_maximum"),
    0x22: ("h", "topic_alias_maximum"), 0x23: ("h", "topic_alias"), 0x24: ("b", "maximum_qos"),
    0x25: ("b", "retain_available"), 0x26: ("p", "user_property"),
    0x27: ("i", "maximum_packet_size"), 0x28: ("b", "wildcard_available"),
    0x29: ("b", "subscription_ids_available"), 0x2A: ("b", "shared_available"),
}  # fmt: skip
_KEEP_PROPS = (
    "auth_method", "auth_data", "reason_string", "content_type", "response_topic",
    "assigned_client_id", "user_properties", "session_expiry", "server_reference",
)  # fmt: skip


def _keep(props: dict[str, Any]) -> dict[str, Any]:
    """The properties worth an entry field (``auth_data`` is redacted by name)."""
    return {k: props[k] for k in _KEEP_PROPS if k in props}


def reason_name(code: int, v5: bool, connack: bool = False) -> str:
    if connack and not v5:
        return _CONNACK_V3[code] if code < len(_CONNACK_V3) else f"refused ({code})"
    return _REASONS.get(code, f"0x{code:02x}")


class _Reader:
    __slots__ = ("head", "kept", "need", "total", "first", "start")

    def __init__(self) -> None:
        self.head = bytearray()
        self.kept: bytearray | None = None
        self.need = 0
        self.total = 0
        self.first = 0
        self.start = 0.0


class MqttParser(StreamParser):
    """MQTT control packets from both sides of one client connection."""

    proto = "mqtt"

    def __init__(self, limits: ParserLimits | None = None) -> None:
        super().__init__(limits)
        self._r = (_Reader(), _Reader())
        self._q = PendingQueue("mqtt", self.limits.max_pending)
        self._keep = self.limits.max_body + 70_000
        """Bytes kept of one packet: its headers (a topic is at most 64 KiB) and the part
        of a payload that is shown; the rest is counted and skipped."""
        self.v5 = False

    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        r = self._r[direction]
        mv = memoryview(data)
        while mv:
            if r.kept is None:
                if not r.head:
                    r.start = ts
                # fixed header: type/flags byte and 1-4 length bytes (§2.2)
                while mv and (len(r.head) < 2 or r.head[-1] & 0x80):
                    r.head.append(mv[0])
                    mv = mv[1:]
                    if len(r.head) > 5:
                        raise ParseError("mqtt: remaining length longer than 4 bytes")
                if len(r.head) < 2 or r.head[-1] & 0x80:
                    return
                length = 0
                for i, c in enumerate(bytes(r.head[1:])):
                    length += (c & 0x7F) << (7 * i)
                r.first = r.head[0]
                r.head.clear()
                r.kept = bytearray()
                r.need = r.total = length
            take = min(r.need, len(mv))
            room = self._keep - len(r.kept)
            if room > 0:
                r.kept += mv[: min(take, room)]
            mv = mv[take:]
            r.need -= take
            if r.need:
                return
            body, r.kept = bytes(r.kept), None
            self._packet(direction, r.first, body, r.total, r.start, ts)

    # -- packets --

    def _packet(
        self, d: Direction, first: int, body: bytes, total: int, start: float, end: float
    ) -> None:
        t, flags = first >> 4, first & 0x0F
        if t == 0:
            raise ParseError("mqtt: reserved packet type 0")
        # §2.1.3: fixed flags for everything but PUBLISH
        if t in (6, 8, 10) and flags != 2 or t not in (3, 6, 8, 10) and flags != 0:
            raise ParseError(f"mqtt: bad flags {flags:#x} for {_TYPES[t]}")
        name = _TYPES[t]
        rd = _R(body)
        sender = "client" if d is Direction.CLIENT else "broker"
        try:
            if t == 1:
                self._connect(rd, start)
            elif t == 3:
                self._publish(rd, flags, total, sender, start)
            elif t in (8, 10):
                self._subscribe(rd, name, t == 8, start)
            elif t == 12:
                self._q.push(Pending(start, {"method": name, "from": sender}, name))
            elif t == 14 or t == 15:
                req: dict[str, Any] = {"method": name, "from": sender}
                if self.v5 and total:
                    code = rd.u8()
                    req["reason_code"], req["reason"] = code, reason_name(code, True)
                    if total > 1:
                        req.update(_keep(rd.properties()))
                self._q.lone(start, None, req, {}, f"{name} ({sender})")
            else:
                self._ack(rd, t, name, d, total, end)
        except _Short:
            if t != 3:
                raise ParseError(f"mqtt: {name} shorter than its fields") from None

    def _connect(self, rd: _R, ts: float) -> None:
        proto_name = rd.string()
        level = rd.u8()
        if proto_name not in ("MQTT", "MQIsdp"):
            raise ParseError(f"mqtt: protocol name {proto_name[:20]!r}")
        self.v5 = level == 5
        cflags = rd.u8()
        keep = rd.u16()
        props = rd.properties() if self.v5 else {}
        client_id = rd.string()
        req: dict[str, Any] = {
            "method": "CONNECT", "from": "client", "client_id": client_id,
            "protocol_version": {3: "3.1", 4: "3.1.1", 5: "5.0"}.get(level, str(level)),
            "clean_start": bool(cflags & 0x02), "keep_alive": keep,
        }  # fmt: skip
        req.update(_keep(props))
        if cflags & 0x04:  # will flag
            if self.v5:
                rd.properties()
            req["will_topic"] = rd.string()
            rd.binary()
        if cflags & 0x80:
            req["username"] = rd.string()
        if cflags & 0x40:
            req["password"] = text(rd.binary(), 1024)
        self._q.push(Pending(ts, req, f"CONNECT {client_id}", key=("connect",)))

    def _publish(self, rd: _R, flags: int, total: int, sender: str, ts: float) -> None:
        qos = (flags >> 1) & 3
        if qos == 3:
            raise ParseError("mqtt: PUBLISH with QoS 3")
        req: dict[str, Any] = {"method": "PUBLISH", "from": sender, "qos": qos,
                               "retain": bool(flags & 1), "dup": bool(flags & 8)}  # fmt: skip
        try:
            req["topic"] = rd.string()
            if qos:
                req["packet_id"] = rd.u16()
            if self.v5:
                req.update(_keep(rd.properties()))
        except _Short:
            req.setdefault("topic", "")
            req["truncated"] = True
        payload = rd.b[rd.p :] if rd.p <= len(rd.b) else b""
        size = max(0, total - rd.p) if rd.p <= len(rd.b) else 0
        req.update(body_fields(payload, size, self.limits.max_body))
        summary = f"PUBLISH {req['topic']} qos{qos}" + (" (broker)" if sender == "broker" else "")
        summary += f" {size} B"
        if qos == 0:
            self._q.lone(ts, None, req, {}, summary)
            return
        self._q.push(Pending(ts, req, summary, key=(sender, req.get("packet_id"))))

    def _subscribe(self, rd: _R, name: str, sub: bool, ts: float) -> None:
        pid = rd.u16()
        if self.v5:
            rd.properties()
        topics: list[str] = []
        qos: list[int] = []
        while rd.p < len(rd.b):
            topics.append(rd.string())
            if sub:
                qos.append(rd.u8() & 3)
        req: dict[str, Any] = {"method": name, "from": "client", "packet_id": pid,
                               "topics": topics[: self.limits.max_args]}  # fmt: skip
        if sub:
            req["qos"] = qos[: self.limits.max_args]
        summary = f"{name} {','.join(topics[:3])}"
        self._q.push(Pending(ts, req, summary, key=("client", pid)))

    def _ack(self, rd: _R, t: int, name: str, d: Direction, total: int, end: float) -> None:
        origin = "broker" if d is Direction.CLIENT else "client"  # who sent the request
        resp: dict[str, Any] = {"packet": name}
        code = 0
        if t == 2:  # CONNACK
            resp["session_present"] = bool(rd.u8() & 1)
            code = rd.u8()
            resp["reason_code"], resp["reason"] = code, reason_name(code, self.v5, True)
            if self.v5 and rd.p < len(rd.b):
                resp.update(_keep(rd.properties()))
            p = self._q.pop_key(("connect",))
        elif t == 13:  # PINGRESP
            p = self._q.pop_key(None)  # PINGREQs are the only requests without a key
        elif t == 9 or t == 11:  # SUBACK / UNSUBACK
            pid = rd.u16()
            if self.v5:
                rd.properties()
            codes = list(rd.b[rd.p :])[: self.limits.max_args]
            if codes:
                resp["reason_codes"] = codes
                bad = [c for c in codes if c >= 0x80]
                code = bad[0] if bad else 0
                resp["reason"] = reason_name(code, self.v5) if self.v5 or bad else "Success"
            p = self._q.pop_key(("client", pid))
        else:  # PUBACK, PUBREC, PUBREL, PUBCOMP
            pid = rd.u16()
            if self.v5 and total > 2:
                code = rd.u8()
            resp["reason_code"], resp["reason"] = code, reason_name(code, True)
            if t == 6:  # PUBREL travels the other way: publisher → receiver
                origin = "client" if d is Direction.CLIENT else "broker"
            key = (origin, pid)
            if t in (5, 6):  # QoS 2 in progress: note the step, keep waiting
                for q in self._q:
                    if q.key == key:
                        q.extra.setdefault("acks", []).append(name)
                        if t == 5 and code >= 0x80:  # refused at PUBREC: no PUBREL follows
                            self._q.pop_key(key)
                            resp["acks"] = q.extra["acks"]
                            self._q.finish(q, end, resp, f"{q.summary} → {resp['reason']}")
                        return
                self._q.lone(end, end, {}, resp, f"{name} {pid} (request not seen)",
                             error="no request")  # fmt: skip
                return
            p = self._q.pop_key(key)
            if p is not None and "acks" in p.extra:
                resp["acks"] = [*p.extra["acks"], name]
        if p is None:
            self._q.lone(end, end, {}, resp, f"{name} (request not seen)", error="no request")
            return
        tail = resp.get("reason", name)
        self._q.finish(p, end, resp, f"{p.summary} → {tail}")

    def close(self, ts: float) -> None:
        self._q.close()

    def take(self) -> list[Exchange]:
        return self._q.take()


def detect(data: bytes, direction: Direction) -> Verdict:
    """A client's CONNECT: type 1, remaining length, then "MQTT" (3.1.1/5) or "MQIsdp"."""
    if direction is not Direction.CLIENT:
        return Verdict.NO
    if not data:
        return Verdict.MORE
    if data[0] != 0x10:
        return Verdict.NO
    i = 1
    while i < len(data) and i < 5 and data[i] & 0x80:
        i += 1
    rest = data[i + 1 :]
    for name in (b"\x00\x04MQTT", b"\x00\x06MQIsdp"):
        n = min(len(rest), len(name))
        if rest[:n] == name[:n]:
            return Verdict.YES if n == len(name) else Verdict.MORE
    return Verdict.NO


PROTOCOL = StreamProtocol(
    name="mqtt",
    factory=MqttParser,
    detect=detect,
    ports=frozenset({1883}),
    midstream=True,
)
