"""Kafka wire protocol parser: request headers paired with responses by correlation id.

Entries (``proto="kafka"``) — ``PROTOCOL_FIELDS``:

- request: ``method`` and ``api`` (the API name, ``Produce``), ``api_key``,
  ``api_version``, ``client_id``, ``correlation_id``, ``topics`` (names, for Produce,
  Fetch and Metadata), ``partitions`` (``topic:partition`` for Produce
  and Fetch), ``acks`` (Produce), ``mechanism`` (SaslHandshake), ``auth_bytes``
  (SaslAuthenticate, and the raw tokens after a v0 handshake: kept only so that the
  redaction engine replaces them).
- response: ``error_code`` and ``error`` (the first non-zero error code found in the
  response — top level, topic or partition — with its name; 0/``NONE`` when all
  succeeded), ``errors`` (``topic:partition`` → name for failing partitions), ``topics``
  (Metadata: names), ``brokers`` (Metadata: ``host:port``), ``throttle_time_ms``.

Responses carry no API key; the request's is remembered by correlation id (Kafka
protocol guide, "Requests and responses"). Other APIs are named and timed. Bodies are
read for Produce v0–v13, Fetch v0–v17 and Metadata v0–v13, flexible versions (compact
encodings and tagged fields, KIP-482) included; where a version names topics by id
(Produce v13, Fetch v13+) the id is shown in hex. A body that does not read as expected
keeps its header and says why in ``body_error``.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

from sniffer.parsers._common import Pending, PendingQueue, text
from sniffer.parsers.base import Direction, Exchange, ParseError, ParserLimits, StreamParser
from sniffer.parsers.registry import StreamProtocol, Verdict

__all__ = ["API_NAMES", "ERROR_NAMES", "PROTOCOL", "PROTOCOL_FIELDS", "KafkaParser"]

PROTOCOL_FIELDS = {
    "request": [
        "method", "api", "api_key", "api_version", "client_id", "correlation_id", "topics",
        "partitions", "acks", "mechanism", "auth_bytes",
    ],
    "response": ["error_code", "error", "errors", "topics", "brokers", "throttle_time_ms"],
}  # fmt: skip

# kafka.apache.org/protocol#protocol_api_keys
API_NAMES = (
    "Produce", "Fetch", "ListOffsets", "Metadata", "LeaderAndIsr", "StopReplica",
    "UpdateMetadata", "ControlledShutdown", "OffsetCommit", "OffsetFetch", "FindCoordinator",
    "JoinGroup", "Heartbeat", "LeaveGroup", "SyncGroup", "DescribeGroups", "ListGroups",
    "SaslHandshake", "ApiVersions", "CreateTopics", "DeleteTopics", "DeleteRecords",
    "InitProducerId", "OffsetForLeaderEpoch", "AddPartitionsToTxn", "AddOffsetsToTxn",
    "EndTxn", "WriteTxnMarkers", "TxnOffsetCommit", "DescribeAcls", "CreateAcls",
    "DeleteAcls", "DescribeConfigs", "AlterConfigs", "AlterReplicaLogDirs",
    "DescribeLogDirs", "SaslAuthenticate", "CreatePartitions", "CreateDelegationToken",
    "RenewDelegationToken", "ExpireDelegationToken", "DescribeDelegationToken",
    "DeleteGroups", "ElectLeaders", "IncrementalAlterConfigs", "AlterPartitionReassignments",
    "ListPartitionReassignments", "OffsetDelete", "DescribeClientQuotas",
    "AlterClientQuotas", "DescribeUserScramCredentials", "AlterUserScramCredentials",
    "Vote", "BeginQuorumEpoch", "EndQuorumEpoch", "DescribeQuorum", "AlterPartition",
    "UpdateFeatures", "Envelope", "FetchSnapshot", "DescribeCluster", "DescribeProducers",
    "BrokerRegistration", "BrokerHeartbeat", "UnregisterBroker", "DescribeTransactions",
    "ListTransactions", "AllocateProducerIds", "ConsumerGroupHeartbeat",
    "ConsumerGroupDescribe", "ControllerRegistration", "GetTelemetrySubscriptions",
    "PushTelemetry", "AssignReplicasToDirs", "ListClientMetricsResources",
    "DescribeTopicPartitions",
)  # fmt: skip

# first flexible version per API key (KIP-482): request header v2 / response header v1
_FLEXIBLE = {
    0: 9, 1: 12, 2: 6, 3: 9, 4: 4, 5: 2, 6: 6, 7: 3, 8: 8, 9: 6, 10: 3, 11: 6, 12: 4,
    13: 4, 14: 4, 15: 5, 16: 3, 18: 3, 19: 5, 20: 4, 21: 2, 22: 2, 23: 4, 24: 3, 25: 3,
    26: 3, 27: 1, 28: 3, 29: 2, 30: 2, 31: 2, 32: 4, 33: 2, 34: 2, 35: 2, 36: 2, 37: 2,
    38: 2, 39: 2, 40: 2, 41: 2, 42: 2, 43: 2, 44: 1, 45: 0, 46: 0, 47: 0, 48: 1, 49: 1,
}  # fmt: skip

# kafka.apache.org/protocol#protocol_error_codes (the common ones)
ERROR_NAMES = {
    -1: "UNKNOWN_SERVER_ERROR", 0: "NONE", 1: "OFFSET_OUT_OF_RANGE", 2: "CORRUPT_MESSAGE",
    3: "UNKNOWN_TOPIC_OR_PARTITION", 4: "INVALID_FETCH_SIZE", 5: "LEADER_NOT_AVAILABLE",
    6: "NOT_LEADER_OR_FOLLOWER", 7: "REQUEST_TIMED_OUT", 8: "BROKER_NOT_AVAILABLE",
    9: "REPLICA_NOT_AVAILABLE", 10: "MESSAGE_TOO_LARGE", 11: "STALE_CONTROLLER_EPOCH",
    12: "OFFSET_METADATA_TOO_LARGE", 13: "NETWORK_EXCEPTION", 14: "COORDINATOR_LOAD_IN_PROGRESS",
    15: "COORDINATOR_NOT_AVAILABLE", 16: "NOT_COORDINATOR", 17: "INVALID_TOPIC_EXCEPTION",
    18: "RECORD_LIST_TOO_LARGE", 19: "NOT_ENOUGH_REPLICAS", 20: "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    21: "INVALID_REQUIRED_ACKS", 22: "ILLEGAL_GENERATION", 23: "INCONSISTENT_GROUP_PROTOCOL",
    24: "INVALID_GROUP_ID", 25: "UNKNOWN_MEMBER_ID", 26: "INVALID_SESSION_TIMEOUT",
    27: "REBALANCE_IN_PROGRESS", 28: "INVALID_COMMIT_OFFSET_SIZE", 29: "TOPIC_AUTHORIZATION_FAILED",
    30: "GROUP_AUTHORIZATION_FAILED", 31: "CLUSTER_AUTHORIZATION_FAILED", 32: "INVALID_TIMESTAMP",
    33: "UNSUPPORTED_SASL_MECHANISM", 34: "ILLEGAL_SASL_STATE", 35: "UNSUPPORTED_VERSION",
    36: "TOPIC_ALREADY_EXISTS", 37: "INVALID_PARTITIONS", 38: "INVALID_REPLICATION_FACTOR",
    39: "INVALID_REPLICA_ASSIGNMENT", 40: "INVALID_CONFIG", 41: "NOT_CONTROLLER",
    42: "INVALID_REQUEST", 43: "UNSUPPORTED_FOR_MESSAGE_FORMAT", 44: "POLICY_VIOLATION",
    45: "OUT_OF_ORDER_SEQUENCE_NUMBER", 46: "DUPLICATE_SEQUENCE_NUMBER",
    47: "INVALID_PRODUCER_EPOCH", 48: "INVALID_TXN_STATE", 49: "INVALID_PRODUCER_ID_MAPPING",
    50: "INVALID_TRANSACTION_TIMEOUT", 51: "CONCURRENT_TRANSACTIONS",
    53: "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", 56: "KAFKA_STORAGE_ERROR",
    58: "SASL_AUTHENTICATION_FAILED", 59: "UNKNOWN_PRODUCER_ID", 72: "LISTENER_NOT_FOUND",
    74: "FENCED_LEADER_EPOCH", 75: "UNKNOWN_LEADER_EPOCH", 76: "UNSUPPORTED_COMPRESSION_TYPE",
    79: "MEMBER_ID_REQUIRED", 82: "FENCED_INSTANCE_ID", 87: "INVALID_RECORD",
    89: "THROTTLING_QUOTA_EXCEEDED", 100: "UNKNOWN_TOPIC_ID",
}  # fmt: skip

_I8, _I16, _I32, _I64 = (struct.Struct(f) for f in ("!b", "!h", "!i", "!q"))
_SIZE_HEAD = struct.Struct("!ihhi")
_MAX_MESSAGE = 100 * 1024 * 1024
_KEEP = 256 * 1024
"""Bytes of a message kept for parsing; the rest (record batches) is skipped."""


class _Short(Exception):
    """The kept bytes end before the field (a cut message): stop reading, keep results."""


class _R:
    """A cursor over one message's bytes."""

    __slots__ = ("b", "p", "flex")

    def __init__(self, b: bytes, p: int = 0) -> None:
        self.b = b
        self.p = p
        self.flex = False
        """Flexible version (KIP-482): compact strings/arrays/bytes, tagged fields."""

    # struct raises struct.error past the end of the buffer: that is the length check
    def i8(self) -> int:
        try:
            (v,) = _I8.unpack_from(self.b, self.p)
        except struct.error:
            raise _Short from None
        self.p += 1
        return int(v)

    def i16(self) -> int:
        try:
            (v,) = _I16.unpack_from(self.b, self.p)
        except struct.error:
            raise _Short from None
        self.p += 2
        return int(v)

    def i32(self) -> int:
        try:
            (v,) = _I32.unpack_from(self.b, self.p)
        except struct.error:
            raise _Short from None
        self.p += 4
        return int(v)

    def i64(self) -> int:
        try:
            (v,) = _I64.unpack_from(self.b, self.p)
        except struct.error:
            raise _Short from None
        self.p += 8
        return int(v)

    def skip(self, n: int) -> None:
        if n < 0:
            raise ParseError("kafka: negative length")
        self.p += n
        if self.p > len(self.b):
            raise _Short

    def string(self) -> str | None:
        n = self.uvarint() - 1 if self.flex else self.i16()
        if n < 0:
            return None
        if self.p + n > len(self.b):
            raise _Short
        s = self.b[self.p : self.p + n].decode("utf-8", "backslashreplace")
        self.p += n
        return s

    def bytes_(self) -> bytes | None:
        n = self.uvarint() - 1 if self.flex else self.i32()
        if n < 0:
            return None
        if self.p + n > len(self.b):
            raise _Short
        v = self.b[self.p : self.p + n]
        self.p += n
        return v

    def array(self, limit: int = 100_000) -> int:
        n = self.uvarint() - 1 if self.flex else self.i32()
        if n > limit:
            raise ParseError(f"kafka: array of {n} items")
        return max(n, 0)

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            if self.p >= len(self.b):
                raise _Short
            c = self.b[self.p]
            self.p += 1
            result |= (c & 0x7F) << shift
            if not c & 0x80:
                return result
            shift += 7
            if shift > 35:
                raise ParseError("kafka: varint too long")

    def tagged(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.skip(self.uvarint())

    def end(self) -> None:
        """The end of a structure: its tagged fields, in flexible versions."""
        if self.flex:
            self.tagged()

    def uuid(self) -> str:
        if self.p + 16 > len(self.b):
            raise _Short
        v = self.b[self.p : self.p + 16].hex()
        self.p += 16
        return v

    def topic(self, by_id: bool) -> str:
        """A topic name, or (newer versions) its id as hex."""
        return self.uuid() if by_id else self.string() or ""


@dataclass(slots=True)
class _Reader:
    buf: bytearray
    need: int = 0
    """Bytes of the current message still to come (after the size prefix)."""
    kept: bytearray | None = None
    total: int = 0
    start: float = 0.0


def api_name(key: int) -> str:
    return API_NAMES[key] if 0 <= key < len(API_NAMES) else f"api-{key}"


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"ERROR_{code}")


class KafkaParser(StreamParser):
    """Size-prefixed requests and responses of one client connection to a broker."""

    proto = "kafka"

    def __init__(self, limits: ParserLimits | None = None) -> None:
        super().__init__(limits)
        self._r = [_Reader(bytearray()), _Reader(bytearray())]
        self._q = PendingQueue("kafka", self.limits.max_pending)
        self._sync = [True, True]
        self._requests_seen = False
        """Whether each direction is at a message boundary (False after a gap)."""
        self._raw_sasl = False
        """After a SaslHandshake v0, the client sends raw SASL tokens (KIP-43)."""

    # -- framing --

    def gap(self, direction: Direction, length: int, ts: float) -> None:
        """Lost bytes: the message in progress is dropped and this direction resumes at
        the next segment that starts a message — a plausible request header from the
        client, a response whose correlation id is awaited from the server. Requests
        already read still pair by correlation id."""
        self._r[direction] = _Reader(bytearray())
        self._sync[direction] = False

    def _resume(self, direction: Direction, data: bytes) -> bool:
        if direction is Direction.CLIENT:
            ok = detect(data[:64], direction) is Verdict.YES
        else:
            ok = len(data) >= 8 and any(
                p.key == _I32.unpack_from(data, 4)[0] for p in self._q
            ) and 0 <= _I32.unpack_from(data)[0] <= _MAX_MESSAGE  # fmt: skip
        self._sync[direction] = ok
        return ok

    def feed(self, direction: Direction, data: bytes, ts: float) -> None:
        if direction is Direction.SERVER and not self._requests_seen:
            return  # a capture that began mid-connection: replies to unseen requests
        if not self._sync[direction] and not self._resume(direction, data):
            return
        r = self._r[direction]
        mv = memoryview(data)
        while mv:
            if r.kept is None and not r.buf and len(mv) >= 4:
                # fast path: a whole message in this chunk, read in place
                (size,) = _I32.unpack_from(mv)
                if 0 <= size <= _KEEP and len(mv) >= 4 + size:
                    msg = bytes(mv[4 : 4 + size])
                    mv = mv[4 + size :]
                    if direction is Direction.CLIENT:
                        self._request(msg, size, ts)
                    else:
                        self._response(msg, size, ts, ts)
                    continue
            if r.kept is None:
                if not r.buf:
                    r.start = ts
                take = 4 - len(r.buf)
                r.buf += mv[:take]
                mv = mv[take:]
                if len(r.buf) < 4:
                    return
                (size,) = _I32.unpack(r.buf)
                if size < 0 or size > _MAX_MESSAGE:
                    raise ParseError(f"kafka: message size {size}")
                r.buf.clear()
                r.kept = bytearray()
                r.need = r.total = size
            take = min(r.need, len(mv))
            room = _KEEP - len(r.kept)
            if room > 0:
                r.kept += mv[: min(take, room)]
            mv = mv[take:]
            r.need -= take
            if r.need:
                return
            msg, r.kept = bytes(r.kept), None
            if direction is Direction.CLIENT:
                self._request(msg, r.total, r.start)
            else:
                self._response(msg, r.total, r.start, ts)

    # -- requests --

    def _request(self, msg: bytes, total: int, ts: float) -> None:
        self._requests_seen = True
        if self._raw_sasl:
            self._raw_sasl = False
            raw: dict[str, Any] = {
                "method": "SaslAuthenticate", "api": "SaslAuthenticate", "raw": True,
                "auth_bytes": base64.b64encode(msg[:1024]).decode("ascii"),
            }  # fmt: skip
            self._q.push(Pending(ts, raw, "SaslAuthenticate (raw)", key="raw-sasl"))
            return
        rd = _R(msg)
        try:
            key, version, corr = rd.i16(), rd.i16(), rd.i32()
            client = rd.string()
        except _Short:
            raise ParseError("kafka: request header cut short") from None
        if key < 0 or version < 0:
            raise ParseError(f"kafka: bad api key {key} / version {version}")
        name = api_name(key)
        req: dict[str, Any] = {
            "method": name, "api": name, "api_key": key, "api_version": version,
            "client_id": client or "", "correlation_id": corr,
        }  # fmt: skip
        rd.flex = version >= _FLEXIBLE.get(key, 1 << 16)
        try:
            if rd.flex:
                rd.tagged()
            body = _REQUEST_BODIES.get(key)
            if body is not None and version <= _BODY_VERSIONS.get(key, 1 << 16):
                body(rd, version, req, self.limits.max_args)
        except _Short:
            req["truncated"] = True
        except ParseError as e:  # a body we misread: keep the header, say why
            req["body_error"] = str(e)
        summary = f"{name} v{version}"
        if req.get("topics"):
            summary += " " + ",".join(req["topics"][:3])
        self._q.push(Pending(ts, req, summary, key=corr))

    # -- responses --

    def _response(self, msg: bytes, total: int, ts: float, end: float) -> None:
        head = self._q.head()
        if head is not None and head.key == "raw-sasl":
            self._q.pop()
            self._q.finish(head, end, {"size": total}, f"{head.summary} → {total} bytes")
            return
        rd = _R(msg)
        try:
            corr = rd.i32()
        except _Short:
            raise ParseError("kafka: response header cut short") from None
        p = self._q.pop_key(corr)
        if p is None:
            summary = f"→ response to unknown correlation id {corr}"
            lone = {"correlation_id": corr, "size": total}
            self._q.lone(ts, end, {}, lone, summary, error="no request")
            return
        key, version = p.request["api_key"], p.request["api_version"]
        resp: dict[str, Any] = {"size": total}
        errors: dict[str, str] = {}
        first_error = 0
        flexible = version >= _FLEXIBLE.get(key, 1 << 16)
        try:
            # ApiVersions responses always use header v0 (KIP-511)
            if flexible and key != 18:
                rd.tagged()
            rd.flex = flexible
            body = _RESPONSE_BODIES.get(key)
            if body is not None and version <= _BODY_VERSIONS.get(key, 1 << 16):
                first_error = body(rd, version, resp, errors, self.limits.max_args)
            elif key in _TOP_ERROR:
                first_error = rd.i16()
                if key == 36:
                    msg_ = rd.string()
                    if msg_:
                        resp["error_message"] = msg_
        except _Short:
            resp["truncated"] = True
        except ParseError as e:
            resp["body_error"] = str(e)
        resp["error_code"] = first_error
        resp["error"] = error_name(first_error)
        if errors:
            resp["errors"] = dict(list(errors.items())[: self.limits.max_args])
        if key == 17 and version == 0 and first_error == 0:
            self._raw_sasl = True
        tail = resp["error"]
        if key == 3 and "topics" in resp:
            tail = f"{len(resp['topics'])} topic(s)" + ("" if not first_error else f" {tail}")
        self._q.finish(p, end, resp, f"{p.summary} → {tail}")

    def close(self, ts: float) -> None:
        self._q.close()

    def take(self) -> list[Exchange]:
        return self._q.take()


# -- bodies (kafka.apache.org/protocol#protocol_messages; flexible versions read through
# the reader's compact encodings) --


def _produce_req(rd: _R, v: int, req: dict[str, Any], limit: int) -> None:
    if v >= 3:
        rd.string()  # transactional_id
    req["acks"] = rd.i16()
    rd.i32()  # timeout
    topics: list[str] = []
    parts: list[str] = []
    for _ in range(rd.array()):
        t = rd.topic(v >= 13)
        topics.append(t)
        for _ in range(rd.array()):
            idx = rd.i32()
            rd.bytes_()  # records
            rd.end()
            parts.append(f"{t}:{idx}")
        rd.end()
    req["topics"] = topics[:limit]
    req["partitions"] = parts[:limit]


def _fetch_req(rd: _R, v: int, req: dict[str, Any], limit: int) -> None:
    if v < 15:
        rd.i32()  # replica_id
    rd.i32(), rd.i32()  # max_wait_ms, min_bytes
    if v >= 3:
        rd.i32()  # max_bytes
    if v >= 4:
        rd.i8()  # isolation_level
    if v >= 7:
        rd.i32(), rd.i32()  # session_id, session_epoch
    topics: list[str] = []
    parts: list[str] = []
    for _ in range(rd.array()):
        t = rd.topic(v >= 13)
        topics.append(t)
        for _ in range(rd.array()):
            idx = rd.i32()
            if v >= 9:
                rd.i32()  # current_leader_epoch
            rd.i64()  # fetch_offset
            if v >= 12:
                rd.i32()  # last_fetched_epoch
            if v >= 5:
                rd.i64()  # log_start_offset
            rd.i32()  # partition_max_bytes
            rd.end()
            parts.append(f"{t}:{idx}")
        rd.end()
    req["topics"] = topics[:limit]
    req["partitions"] = parts[:limit]


def _metadata_req(rd: _R, v: int, req: dict[str, Any], limit: int) -> None:
    n = rd.array()
    if rd.flex and n == 0 and rd.b[rd.p - 1 : rd.p] == b"\0":
        n = -1  # a null compact array: all topics
    elif not rd.flex and rd.b[rd.p - 4 : rd.p] == b"\xff\xff\xff\xff":
        n = -1
    topics: list[str] = []
    for _ in range(max(n, 0)):
        if v >= 10:
            tid = rd.uuid()
        name = rd.string()
        rd.end()
        topics.append(name if name is not None else tid)
    req["topics"] = topics[:limit]
    if n < 0 or (n == 0 and v == 0):
        req["all_topics"] = True


def _sasl_handshake_req(rd: _R, v: int, req: dict[str, Any], limit: int) -> None:
    req["mechanism"] = rd.string() or ""


def _sasl_auth_req(rd: _R, v: int, req: dict[str, Any], limit: int) -> None:
    data = rd.bytes_() or b""
    req["auth_bytes"] = text(data, 1024)


def _produce_resp(rd: _R, v: int, resp: dict[str, Any], errors: dict[str, str], limit: int) -> int:
    first = 0
    for _ in range(rd.array()):
        t = rd.topic(v >= 13)
        for _ in range(rd.array()):
            idx, code = rd.i32(), rd.i16()
            rd.i64()  # base_offset
            if v >= 2:
                rd.i64()  # log_append_time_ms
            if v >= 5:
                rd.i64()  # log_start_offset
            if v >= 8:
                for _ in range(rd.array()):
                    rd.i32(), rd.string()
                    rd.end()
                rd.string()  # error_message
            rd.end()
            if code:
                errors[f"{t}:{idx}"] = error_name(code)
                first = first or code
        rd.end()
    if v >= 1:
        resp["throttle_time_ms"] = rd.i32()
    return first


def _fetch_resp(rd: _R, v: int, resp: dict[str, Any], errors: dict[str, str], limit: int) -> int:
    first = 0
    if v >= 1:
        resp["throttle_time_ms"] = rd.i32()
    if v >= 7:
        first = rd.i16()
        rd.i32()  # session_id
    for _ in range(rd.array()):
        t = rd.topic(v >= 13)
        for _ in range(rd.array()):
            idx, code = rd.i32(), rd.i16()
            rd.i64()  # high_watermark
            if v >= 4:
                rd.i64()  # last_stable_offset
                if v >= 5:
                    rd.i64()  # log_start_offset
                for _ in range(rd.array()):
                    rd.i64(), rd.i64()  # aborted transactions
                    rd.end()
            if v >= 11:
                rd.i32()  # preferred_read_replica
            rd.bytes_()  # records
            rd.end()
            if code:
                errors[f"{t}:{idx}"] = error_name(code)
                first = first or code
        rd.end()
    return first


def _metadata_resp(rd: _R, v: int, resp: dict[str, Any], errors: dict[str, str], limit: int) -> int:
    first = 0
    if v >= 3:
        resp["throttle_time_ms"] = rd.i32()
    brokers: list[str] = []
    for _ in range(rd.array()):
        rd.i32()  # node_id
        host = rd.string() or ""
        port = rd.i32()
        if v >= 1:
            rd.string()  # rack
        rd.end()
        brokers.append(f"{host}:{port}")
    resp["brokers"] = brokers[:limit]
    if v >= 2:
        rd.string()  # cluster_id
    if v >= 1:
        rd.i32()  # controller_id
    topics: list[str] = []
    for _ in range(rd.array()):
        code = rd.i16()
        name = rd.string()
        tid = rd.uuid() if v >= 10 else ""
        t = name if name is not None else tid
        topics.append(t)
        if code:
            errors[t] = error_name(code)
            first = first or code
        if v >= 1:
            rd.i8()  # is_internal
        for _ in range(rd.array()):
            pcode, idx = rd.i16(), rd.i32()
            rd.i32()  # leader
            if v >= 7:
                rd.i32()  # leader_epoch
            for _ in range(rd.array()):
                rd.i32()  # replicas
            for _ in range(rd.array()):
                rd.i32()  # isr
            if v >= 5:
                for _ in range(rd.array()):
                    rd.i32()  # offline replicas
            rd.end()
            if pcode:
                errors[f"{t}:{idx}"] = error_name(pcode)
                first = first or pcode
        if v >= 8:
            rd.i32()  # topic_authorized_operations
        rd.end()
    resp["topics"] = topics[:limit]
    return first


_REQUEST_BODIES: dict[int, Any] = {
    0: _produce_req, 1: _fetch_req, 3: _metadata_req, 17: _sasl_handshake_req,
    36: _sasl_auth_req,
}  # fmt: skip
_RESPONSE_BODIES: dict[int, Any] = {0: _produce_resp, 1: _fetch_resp, 3: _metadata_resp}
_BODY_VERSIONS = {0: 13, 1: 17, 3: 13, 17: 1, 36: 2}
"""The newest version of each API whose body this module reads."""
_TOP_ERROR = {17, 18, 36}
"""APIs whose response starts with a top-level error code."""


def detect(data: bytes, direction: Direction) -> Verdict:
    """A client's first request: size, a known API key, a small version, a correlation
    id and a printable (or null) client id."""
    if direction is not Direction.CLIENT:
        return Verdict.NO
    if len(data) < 14:
        return Verdict.MORE
    size, key, version, _corr = _SIZE_HEAD.unpack_from(data)
    if (
        not (10 <= size <= _MAX_MESSAGE)
        or not (0 <= key < len(API_NAMES))
        or not 0 <= version <= 20
    ):
        return Verdict.NO
    (clen,) = _I16.unpack_from(data, 12)
    if clen == -1:
        return Verdict.YES
    if clen < 0 or clen > 512 or 14 + clen > size + 4:
        return Verdict.NO
    cid = data[14 : 14 + clen]
    if cid and not all(32 <= c < 127 for c in cid):
        return Verdict.NO
    return Verdict.YES


PROTOCOL = StreamProtocol(
    name="kafka",
    factory=KafkaParser,
    detect=detect,
    ports=frozenset({9092}),
)
