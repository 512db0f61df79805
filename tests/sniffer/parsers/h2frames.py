"""Building HTTP/2 frames for tests (hpack's encoder for header blocks)."""

from __future__ import annotations

import struct

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(t: int, flags: int, sid: int, payload: bytes) -> bytes:
    n = len(payload)
    return struct.pack("!HBBBI", n >> 8, n & 0xFF, t, flags, sid) + payload


def settings(*pairs: tuple[int, int], ack: bool = False) -> bytes:
    return frame(4, 1 if ack else 0, 0, b"".join(struct.pack("!HI", k, v) for k, v in pairs))


def headers(enc: hpack.Encoder, sid: int, pairs: list[tuple[str, str]], end: bool = False,
            split: int = 0, padded: int = 0) -> bytes:  # fmt: skip
    block = enc.encode(pairs)
    flags = 1 if end else 0
    if split and len(block) > split:
        first, rest = block[:split], block[split:]
        out = frame(1, flags, sid, first)
        while rest:
            part, rest = rest[:split], rest[split:]
            out += frame(9, 4 if not rest else 0, sid, part)
        return out
    payload = block
    if padded:
        flags |= 8
        payload = bytes([padded]) + block + b"\0" * padded
    return frame(1, flags | 4, sid, payload)


def data(sid: int, payload: bytes, end: bool = False, padded: int = 0) -> bytes:
    flags = 1 if end else 0
    if padded:
        flags |= 8
        payload = bytes([padded]) + payload + b"\0" * padded
    return frame(0, flags, sid, payload)


def grpc_msg(raw: bytes, compressed: bool = False) -> bytes:
    return struct.pack("!BI", 1 if compressed else 0, len(raw)) + raw


def window_update(sid: int, n: int) -> bytes:
    return frame(8, 0, sid, struct.pack("!I", n))


def ping(ack: bool = False) -> bytes:
    return frame(6, 1 if ack else 0, 0, b"12345678")


def rst(sid: int, code: int) -> bytes:
    return frame(3, 0, sid, struct.pack("!I", code))


def goaway(last: int, code: int) -> bytes:
    return frame(7, 0, 0, struct.pack("!II", last, code))
