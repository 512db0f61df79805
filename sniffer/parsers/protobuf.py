"""Protocol Buffers messages as plain maps: schema-less (wire format), or with real field
names when a FileDescriptorSet is configured.

Schema-less decoding follows the wire format (protobuf.dev "Encoding"): each field is a
tag (field number, wire type) and a value. Length-delimited values are guessed: a nested
message when the bytes parse as one completely, else UTF-8 text, else base64 bytes.
Everything is bounded (depth, fields, bytes); malformed input raises ``ProtobufError``.
"""

from __future__ import annotations

import base64
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mypy_extensions import mypyc_attr

__all__ = ["ProtobufError", "ProtoSchemas", "decode_raw"]

_F64 = struct.Struct("<d")
_F32 = struct.Struct("<f")
_MAX_DEPTH = 8
_MAX_FIELDS = 256
_MAX_TEXT = 1024


class ProtobufError(ValueError):
    """The bytes are not a protobuf message."""


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    n = len(data)
    while True:
        if pos >= n:
            raise ProtobufError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def _guess_bytes(raw: bytes, depth: int) -> Any:
    """Text when the bytes are printable UTF-8, else a nested message when they parse as
    one completely, else base64 bytes."""
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        s = None
    if s is not None and all(c.isprintable() or c in "\r\n\t" for c in s):
        return s if len(s) <= _MAX_TEXT else s[:_MAX_TEXT] + "…"
    if raw and depth < _MAX_DEPTH:
        try:
            nested = _decode(raw, depth + 1)
        except ProtobufError:
            pass
        else:
            if nested:
                return nested
    kept = raw[:_MAX_TEXT]
    return {"bytes": base64.b64encode(kept).decode("ascii"), "size": len(raw)}


def _decode(data: bytes, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pos = 0
    n = len(data)
    count = 0
    while pos < n:
        key, pos = _varint(data, pos)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise ProtobufError("field number 0")
        value: Any
        if wt == 0:
            value, pos = _varint(data, pos)
        elif wt == 1:
            if pos + 8 > n:
                raise ProtobufError("truncated fixed64")
            value = {"fixed64": int.from_bytes(data[pos : pos + 8], "little"),
                     "double": _finite(_F64.unpack_from(data, pos)[0])}  # fmt: skip
            pos += 8
        elif wt == 5:
            if pos + 4 > n:
                raise ProtobufError("truncated fixed32")
            value = {"fixed32": int.from_bytes(data[pos : pos + 4], "little"),
                     "float": _finite(_F32.unpack_from(data, pos)[0])}  # fmt: skip
            pos += 4
        elif wt == 2:
            length, pos = _varint(data, pos)
            if pos + length > n:
                raise ProtobufError("truncated length-delimited field")
            value = _guess_bytes(data[pos : pos + length], depth)
            pos += length
        else:
            raise ProtobufError(f"wire type {wt} (groups are not decoded)")
        count += 1
        if count > _MAX_FIELDS:
            out["…"] = f"more fields after {_MAX_FIELDS}"
            return out
        k = str(num)
        if k in out:
            old = out[k]
            if isinstance(old, _Repeated):
                old.append(value)
            else:
                out[k] = _Repeated([old, value])
        else:
            out[k] = value
    return {k: list(v) if isinstance(v, _Repeated) else v for k, v in out.items()}


@mypyc_attr(native_class=False)  # mypyc compiles no subclass of this builtin
class _Repeated(list[Any]):
    """Marks a list made of repeated fields (not a value that was a list already)."""


def decode_raw(data: bytes) -> dict[str, Any]:
    """A message as ``{"<field number>": value}``: varints as ints, fixed64/fixed32 as
    ``{"fixed64": n}``, length-delimited as nested maps, text or ``{"bytes": b64}``;
    repeated fields as lists. Raises ``ProtobufError``."""
    return _decode(bytes(data), 0)


@dataclass(frozen=True, slots=True)
class ProtoSchemas:
    """Message types from a FileDescriptorSet (``protoc --descriptor_set_out``,
    ``--include_imports``), looked up by gRPC method path."""

    pool: Any
    methods: dict[str, tuple[str, str]]
    """``/pkg.Service/Method`` → (input type, output type) full names."""

    @classmethod
    def from_bytes(cls, data: bytes) -> ProtoSchemas:
        from google.protobuf import descriptor_pb2, descriptor_pool

        fds = descriptor_pb2.FileDescriptorSet.FromString(data)
        pool = descriptor_pool.DescriptorPool()
        for f in fds.file:
            pool.Add(f)
        methods: dict[str, tuple[str, str]] = {}
        for f in fds.file:
            pkg = f.package
            for svc in f.service:
                full = f"{pkg}.{svc.name}" if pkg else svc.name
                for m in svc.method:
                    methods[f"/{full}/{m.name}"] = (
                        m.input_type.lstrip("."),
                        m.output_type.lstrip("."),
                    )
        return cls(pool=pool, methods=methods)

    @classmethod
    def from_file(cls, path: str | Path) -> ProtoSchemas:
        return cls.from_bytes(Path(path).read_bytes())

    def decode(self, path: str, response: bool, data: bytes) -> dict[str, Any] | None:
        """The message of method ``path`` (its input, or output when ``response``) as a
        map with field names; None when the method is unknown. Raises ``ProtobufError``."""
        types = self.methods.get(path)
        if types is None:
            return None
        from google.protobuf import json_format, message_factory
        from google.protobuf.message import DecodeError

        desc = self.pool.FindMessageTypeByName(types[1] if response else types[0])
        cls = message_factory.GetMessageClass(desc)
        try:
            msg = cls.FromString(bytes(data))
        except DecodeError as e:
            raise ProtobufError(str(e)) from None
        out: dict[str, Any] = json_format.MessageToDict(msg, preserving_proto_field_name=True)
        return out
