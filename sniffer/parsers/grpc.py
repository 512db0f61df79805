"""gRPC over HTTP/2: the length-prefixed messages of a body, decompressed and decoded.

The framing is gRPC's "Length-Prefixed-Message" (doc/PROTOCOL-HTTP2.md): a compressed
flag byte, a 4-byte big-endian length, the message. Compressed messages use the
``grpc-encoding`` of their side (gzip, deflate, zstd). Messages are decoded as
protobuf: with field names when ``ProtoSchemas`` knows the method, schema-less otherwise.
The HTTP/2 parser (``sniffer.parsers.http2``) calls this when a stream's content-type is
``application/grpc``; the entries it makes have ``proto="grpc"``.
"""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import zstandard

from sniffer.parsers.protobuf import ProtobufError, ProtoSchemas, decode_raw

__all__ = ["GrpcBody", "decode_messages", "split_path"]

_PREFIX = struct.Struct("!BI")
_MAX_MESSAGES = 64
"""Messages decoded and kept per body (the rest are counted)."""

# grpc-status codes (grpc/doc/statuscodes.md)
STATUS_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)  # fmt: skip


def split_path(path: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` → (``pkg.Service``, ``Method``)."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    if len(parts) >= 2:
        return parts[-2], parts[-1]
    return "", parts[0] if parts else ""


def _inflate(data: bytes, encoding: str, limit: int) -> bytes:
    enc = encoding.lower()
    try:
        if enc in ("gzip", "deflate"):
            d = zlib.decompressobj(47 if enc == "gzip" else 15)
            out = d.decompress(data, limit + 1)
        elif enc == "zstd":
            out = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        else:
            raise ValueError(f"unknown grpc-encoding {encoding!r}")
    except (zlib.error, zstandard.ZstdError) as e:
        raise ValueError(f"{enc} decoding failed: {e}") from None
    if len(out) > limit:
        raise ValueError(f"message inflates past {limit} bytes (decompression bound)")
    return out


class GrpcBody:
    """One side's length-prefixed messages, decoded as they complete (bounded)."""

    __slots__ = ("encoding", "path", "response", "schemas", "limit", "buf", "messages",
                 "count", "size", "errors", "trailers")  # fmt: skip

    def __init__(
        self, path: str, response: bool, encoding: str, schemas: ProtoSchemas | None, limit: int
    ) -> None:
        self.path = path
        self.response = response
        self.encoding = encoding
        self.schemas = schemas
        self.limit = limit
        self.buf = bytearray()
        self.messages: list[Any] = []
        self.count = 0
        self.size = 0
        self.errors: list[str] = []
        self.trailers: dict[str, str] = {}
        """gRPC-Web trailers (a body frame flagged 0x80)."""

    def add(self, data: bytes) -> None:
        self.size += len(data)
        self.buf += data
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 5:
            flag, length = _PREFIX.unpack_from(buf, pos)
            if flag == 0x80 and length <= 65536:  # gRPC-Web: trailers in the body
                if len(buf) - pos - 5 < length:
                    break
                for line in bytes(buf[pos + 5 : pos + 5 + length]).split(b"\r\n"):
                    k, sep, v = line.partition(b":")
                    if sep:
                        key = k.strip().lower().decode("latin-1")
                        self.trailers[key] = v.strip().decode("utf-8", "replace")
                pos += 5 + length
                continue
            if length > self.limit or flag > 1:
                self.errors.append(f"bad message prefix (flag {flag}, length {length})")
                buf.clear()
                return
            if len(buf) - pos - 5 < length:
                break
            self._message(bytes(buf[pos + 5 : pos + 5 + length]), bool(flag))
            pos += 5 + length
        if pos:
            del buf[:pos]

    def _message(self, raw: bytes, compressed: bool) -> None:
        self.count += 1
        if len(self.messages) >= _MAX_MESSAGES:
            return
        try:
            if compressed:
                raw = _inflate(raw, self.encoding or "identity", self.limit)
            decoded = None
            if self.schemas is not None:
                decoded = self.schemas.decode(self.path, self.response, raw)
            if decoded is None:
                decoded = decode_raw(raw)
            self.messages.append(decoded)
        except (ValueError, ProtobufError) as e:
            self.errors.append(str(e))
            self.messages.append(
                {"bytes": base64.b64encode(raw[:1024]).decode("ascii"), "size": len(raw)}
            )

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"messages": self.messages, "message_count": self.count}
        if self.buf:
            out["incomplete_bytes"] = len(self.buf)
        if self.errors:
            out["decode_errors"] = self.errors[:8]
        return out


def decode_messages(
    body: bytes, path: str, response: bool, encoding: str = "",
    schemas: ProtoSchemas | None = None, limit: int = 1 << 20,
) -> dict[str, Any]:  # fmt: skip
    """All messages of a complete body (tests, tools)."""
    g = GrpcBody(path, response, encoding, schemas, limit)
    g.add(body)
    return g.fields()
