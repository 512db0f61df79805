"""The entry: one request/response exchange, the contract between sniffer and hub.

This module is the only thing that crosses the line between the node and the hub. Both
sides import it; a change to the fields bumps ``SCHEMA_VERSION``.

Per-protocol ``request``/``response`` are plain maps so that every protocol can carry its
own fields (documented in ``PROTOCOL_FIELDS`` of each parser). Conventions shared by all:

- ``body`` is text: UTF-8 as captured, or base64 when ``body_encoding == "base64"``
  (as in HAR). It is bounded; ``body_size`` is the real size on the wire and
  ``body_truncated`` says the kept body is shorter than the decoded one.
- ``headers`` maps lower-cased names to values; repeated headers are joined by ``", "``
  (``set-cookie`` by ``"\\n"``, since cookie values may hold commas).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = [
    "SCHEMA_VERSION",
    "Batch",
    "Endpoint",
    "Entry",
    "decode_batch",
    "decode_entry_json",
    "encode_batch",
    "entry_to_json",
    "entry_to_builtins",
    "tcp_connection_ids",
    "tcp_entry_id",
    "udp_entry_id",
]

SCHEMA_VERSION = 1

REDACTED = "[REDACTED]"


class Endpoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One end of an exchange, as the sniffer saw it and as the hub enriched it."""

    ip: str
    """IPv4 or IPv6 address, text form."""
    port: int = 0
    """TCP/UDP port; 0 when the protocol has none."""
    pod: str = ""
    """Pod name, when the address belongs to a known pod."""
    namespace: str = ""
    """Namespace of that pod (or of the service)."""
    workload: str = ""
    """Owning workload as ``Kind/name`` (``Deployment/orders``), or the pod name alone."""
    service: str = ""
    """A Service that selects the pod, or whose ClusterIP this is."""
    labels: dict[str, str] = {}
    """The pod's labels."""
    node: str = ""
    """The node that runs the pod."""


class Entry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One request/response exchange (or one DNS query/answer, one Redis command/reply...)."""

    id: str
    """Deterministic id: both ends' sniffers give the same id to the same call."""
    ts: float
    """Request start, seconds since the epoch on the capture clock."""
    proto: str
    """``http``, ``http2``, ``grpc``, ``dns``, ``redis``, ``postgres``, ``kafka``, ``tcp``..."""
    src: Endpoint
    """The client side."""
    dst: Endpoint
    """The server side."""
    elapsed: float | None = None
    """Seconds from the request start to the end of the response; None without a response."""
    request: dict[str, Any] = {}
    """Protocol fields of the request (method, path, headers, body...)."""
    response: dict[str, Any] = {}
    """Protocol fields of the response (status, headers, body...); empty when none seen."""
    summary: str = ""
    """One line for lists: ``GET /api/orders/7 → 200``."""
    redacted: list[str] = []
    """Paths of the values that redaction replaced (``request.headers.authorization``)."""
    tls: bool = False
    """Whether the plaintext came from a TLS library hook rather than the wire."""
    error: str = ""
    """Why the exchange is incomplete: ``no response``, ``gap``, ``parse error: ...``."""
    gaps: int = 0
    """Bytes missing from the capture inside this exchange (lost segments)."""
    stream: str = ""
    """Id of the connection (or UDP flow) the exchange travelled on."""
    index: int = 0
    """The exchange's index on its connection, from 0."""
    node: str = ""
    """The node whose sniffer captured it."""


class Batch(msgspec.Struct, kw_only=True):
    """What a sniffer ships to the hub in one request."""

    v: int
    """Schema version of the entries; the hub refuses versions it does not speak."""
    entries: list[Entry]
    sniffer: str = ""
    """Name of the sending sniffer (its node), for metrics and logs."""


_msgpack_enc = msgspec.msgpack.Encoder()
_batch_dec = msgspec.msgpack.Decoder(Batch)
_json_enc = msgspec.json.Encoder()
_entry_json_dec = msgspec.json.Decoder(Entry)


def encode_batch(entries: list[Entry], sniffer: str = "") -> bytes:
    """Serialize entries as a msgpack batch of the current schema version."""
    return _msgpack_enc.encode(Batch(v=SCHEMA_VERSION, entries=entries, sniffer=sniffer))


def decode_batch(data: bytes) -> Batch:
    """Parse and validate a msgpack batch; raises ``msgspec.DecodeError`` or
    ``msgspec.ValidationError`` with the reason. The version is checked by the caller."""
    return _batch_dec.decode(data)


def entry_to_json(entry: Entry) -> bytes:
    """One entry as compact JSON (one NDJSON line, without the newline)."""
    return _json_enc.encode(entry)


def decode_entry_json(data: bytes | str) -> Entry:
    """Parse one JSON entry, validating it against the schema."""
    return _entry_json_dec.decode(data)


def entry_to_builtins(entry: Entry) -> dict[str, Any]:
    """The entry as plain dicts and lists (for CEL evaluation, templates, HAR)."""
    out: dict[str, Any] = msgspec.to_builtins(entry)
    return out


_ID = struct.Struct("!IIHQ")


def tcp_entry_id(client_isn: int, server_isn: int, client_port: int, index: int) -> str:
    """Deterministic id of the ``index``-th exchange on a TCP connection.

    Both sides' initial sequence numbers and the client port identify the connection
    the same way on the client's node and the server's node (addresses may be NATed,
    the ISNs are not), so both sniffers name the same call alike.
    """
    raw = _ID.pack(client_isn & 0xFFFFFFFF, server_isn & 0xFFFFFFFF, client_port, index)
    return hashlib.blake2b(raw, digest_size=12, person=b"kubeweir-tcp").hexdigest()


_TCP_ID = hashlib.blake2b(digest_size=12, person=b"kubeweir-tcp")
_ID_CONN = struct.Struct("!IIH")
_ID_INDEX = struct.Struct("!Q").pack


def tcp_connection_ids(client_isn: int, server_isn: int, client_port: int) -> Callable[[int], str]:
    """``tcp_entry_id`` for one connection, its part hashed once:
    ``ids(index) == tcp_entry_id(client_isn, server_isn, client_port, index)`` (the same
    bytes through the same hash, in two updates) at about half the cost per entry."""
    conn = _TCP_ID.copy()
    conn.update(_ID_CONN.pack(client_isn & 0xFFFFFFFF, server_isn & 0xFFFFFFFF, client_port))
    copy = conn.copy
    pack = _ID_INDEX

    def ids(index: int) -> str:
        h = copy()
        h.update(pack(index))
        return h.hexdigest()

    return ids


def udp_entry_id(
    client_ip: str, client_port: int, server_ip: str, server_port: int, txid: int, ts: float
) -> str:
    """Deterministic id of a UDP transaction (a DNS id, say) from the client's side.

    The transaction id and the client's address and port identify it; the second of the
    request separates reuses of the same id and port far apart in time.
    """
    raw = f"{client_ip}|{client_port}|{server_ip}|{server_port}|{txid}|{int(ts)}".encode()
    return hashlib.blake2b(raw, digest_size=12, person=b"kubeweir-udp").hexdigest()
