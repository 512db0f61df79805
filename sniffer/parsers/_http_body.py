"""HTTP message bodies: bounded keeping, bounded content decoding, display fields.

A ``BodySink`` takes the payload bytes of one message (already de-chunked) as they arrive.
It keeps at most ``max_body`` bytes of what will be shown (the decoded form when the
message has a ``Content-Encoding`` we know), records the real size on the wire, and stops
decoding once the decoded size passes ``max_decoded`` (decompression-bomb guard), saying
so in ``error``. No I/O, no globals with state.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any, Protocol

import brotli

__all__ = ["BodySink", "body_fields", "make_decoder"]


class _Decoder(Protocol):
    def decode(self, data: bytes, limit: int) -> bytes:
        """Decode ``data``; return at most ``limit`` bytes (may return fewer if the
        input is incomplete). Raises ``ValueError`` on corrupt input."""

    def more(self, limit: int) -> bytes:
        """Output still pending from earlier input (after a call hit ``limit``)."""


class _ZlibDecoder:
    """gzip and deflate (RFC 9110 §8.4.1.2, §8.4.1.3). ``deflate`` is meant to be the
    zlib format but some servers send raw deflate: the first two bytes decide (a zlib
    header has compression method 8 and a check sum divisible by 31, RFC 1950 §2.2)."""

    __slots__ = ("_d", "_head")

    def __init__(self, gzip: bool) -> None:
        # 32 + 15: zlib or gzip header, auto-detected
        self._d: Any = zlib.decompressobj(47) if gzip else None
        self._head = b""

    def decode(self, data: bytes, limit: int) -> bytes:
        if self._d is None:
            head = self._head + data
            if len(head) < 2:
                self._head = head
                return b""
            zlib_header = (head[0] & 0x0F) == 8 and ((head[0] << 8) | head[1]) % 31 == 0
            self._d = zlib.decompressobj(15 if zlib_header else -15)
            self._head = b""
            data = head
        try:
            return bytes(self._d.decompress(data, limit))
        except zlib.error as e:
            raise ValueError(f"bad compressed data: {e}") from None

    def more(self, limit: int) -> bytes:
        if self._d is None:
            return b""
        tail = self._d.unconsumed_tail
        if not tail:
            return b""
        try:
            return bytes(self._d.decompress(tail, limit))
        except zlib.error as e:
            raise ValueError(f"bad compressed data: {e}") from None


class _BrotliDecoder:
    """br (RFC 7932)."""

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def decode(self, data: bytes, limit: int) -> bytes:
        try:
            if not self._d.can_accept_more_data():
                # the previous call stopped at its limit: drain first, then feed
                out = bytes(self._d.process(b"", output_buffer_limit=limit))
                if len(out) >= limit:
                    return out
                return out + bytes(self._d.process(data, output_buffer_limit=limit - len(out)))
            return bytes(self._d.process(data, output_buffer_limit=limit))
        except brotli.error as e:
            raise ValueError(f"bad brotli data: {e}") from None

    def more(self, limit: int) -> bytes:
        if self._d.can_accept_more_data():
            return b""
        try:
            return bytes(self._d.process(b"", output_buffer_limit=limit))
        except brotli.error as e:
            raise ValueError(f"bad brotli data: {e}") from None


def make_decoder(content_encoding: str) -> _Decoder | None:
    """A decoder for a single known coding, or None (identity, unknown or stacked)."""
    ce = content_encoding.strip().lower()
    if ce in ("gzip", "x-gzip"):
        return _ZlibDecoder(gzip=True)
    if ce == "deflate":
        return _ZlibDecoder(gzip=False)
    if ce == "br":
        return _BrotliDecoder()
    return None


_STEP = 64 * 1024
"""Bytes decoded per call, so one call never allocates more than this."""


class BodySink:
    """Collects one message body, bounded."""

    __slots__ = (
        "size",
        "decoded_size",
        "error",
        "_kept",
        "_kept_len",
        "_max_body",
        "_max_decoded",
        "_decoder",
        "_decoding",
        "encoding",
    )

    def __init__(self, max_body: int, max_decoded: int, content_encoding: str = "") -> None:
        self.size = 0
        """Bytes of payload on the wire (after de-chunking, before decoding)."""
        self.decoded_size = 0
        self.error = ""
        self._kept: list[bytes] = []
        self._kept_len = 0
        self._max_body = max_body
        self._max_decoded = max_decoded
        self.encoding = content_encoding.strip().lower() if content_encoding else ""
        self._decoder = make_decoder(self.encoding) if self.encoding else None
        self._decoding = self._decoder is not None

    def _keep(self, data: bytes) -> None:
        room = self._max_body - self._kept_len
        if room > 0:
            part = data if len(data) <= room else data[:room]
            self._kept.append(part)
            self._kept_len += len(part)

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self._decoder is None:
            self._keep(data)
            return
        if not self._decoding:
            return
        try:
            room = self._max_decoded - self.decoded_size + 1
            out = self._decoder.decode(data, min(room, _STEP))
            while out:
                self.decoded_size += len(out)
                self._keep(out)
                if self.decoded_size > self._max_decoded:
                    self.decoded_size = self._max_decoded
                    self.error = (
                        f"decoding stopped at {self._max_decoded} bytes "
                        "(decompression bound; possible bomb)"
                    )
                    self._decoding = False
                    return
                room = self._max_decoded - self.decoded_size + 1
                out = self._decoder.more(min(room, _STEP))
        except ValueError as e:
            self.error = f"{self.encoding} decoding failed: {e}"
            self._decoding = False

    def fields(self, complete: bool = True) -> dict[str, Any]:
        """The entry-contract body fields (plus ``body_error``/``decoded_size`` when
        they apply)."""
        data = b"".join(self._kept)
        if self._decoder is not None:
            if self.error:
                truncated = True
            else:
                truncated = self.decoded_size > len(data)
        else:
            truncated = self.size > len(data)
        out = body_fields(data, self.size, truncated)
        if self._decoder is not None:
            out["decoded_size"] = self.decoded_size
        if self.error:
            out["body_error"] = self.error
        if not complete:
            out["body_truncated"] = True
        return out


def body_fields(data: bytes, size: int, truncated: bool) -> dict[str, Any]:
    """``body`` (UTF-8 text, else base64), ``body_encoding``, ``body_size``,
    ``body_truncated`` for the kept bytes ``data`` of a body of ``size`` wire bytes."""
    if not data:
        return {"body": "", "body_encoding": "utf8", "body_size": size, "body_truncated": truncated}
    try:
        return {
            "body": data.decode("utf-8"),
            "body_encoding": "utf8",
            "body_size": size,
            "body_truncated": truncated,
        }
    except UnicodeDecodeError as e:
        # a multi-byte character cut at the bound: drop the partial tail
        if truncated and e.start >= len(data) - 3 and e.reason == "unexpected end of data":
            return {
                "body": data[: e.start].decode("utf-8"),
                "body_encoding": "utf8",
                "body_size": size,
                "body_truncated": truncated,
            }
    return {
        "body": base64.b64encode(data).decode("ascii"),
        "body_encoding": "base64",
        "body_size": size,
        "body_truncated": truncated,
    }
