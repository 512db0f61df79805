"""The entry contract: serialization round-trips and deterministic ids."""

from __future__ import annotations

import msgspec
import pytest

from kubeweir.entry import (
    SCHEMA_VERSION,
    decode_batch,
    decode_entry_json,
    encode_batch,
    entry_to_json,
    tcp_connection_ids,
    tcp_entry_id,
    udp_entry_id,
)
from kubeweir.testing import make_http_entry


def test_msgpack_batch_round_trip() -> None:
    entries = [make_http_entry(path=f"/x/{i}", status=200 + i) for i in range(3)]
    batch = decode_batch(encode_batch(entries, sniffer="node-1"))
    assert batch.v == SCHEMA_VERSION
    assert batch.sniffer == "node-1"
    assert batch.entries == entries


def test_json_round_trip() -> None:
    e = make_http_entry(request_body='{"a": 1}', redacted=["request.headers.authorization"])
    assert decode_entry_json(entry_to_json(e)) == e


def test_batch_validation_names_the_field() -> None:
    bad = msgspec.msgpack.encode({"v": 1, "entries": [{"id": "x", "ts": "yesterday"}]})
    with pytest.raises(msgspec.ValidationError, match=r"entries\[0\]"):
        decode_batch(bad)


def test_tcp_ids_are_deterministic_and_distinct() -> None:
    a = tcp_entry_id(1000, 2000, 40000, 0)
    assert a == tcp_entry_id(1000, 2000, 40000, 0)
    others = {
        tcp_entry_id(1001, 2000, 40000, 0),
        tcp_entry_id(1000, 2001, 40000, 0),
        tcp_entry_id(1000, 2000, 40001, 0),
        tcp_entry_id(1000, 2000, 40000, 1),
    }
    assert a not in others and len(others) == 4


def test_connection_ids_equal_tcp_entry_id() -> None:
    for c_isn, s_isn, port in ((1000, 2000, 40000), (0, 0xFFFFFFFF, 65535), (2**33 + 5, 7, 1)):
        ids = tcp_connection_ids(c_isn, s_isn, port)
        for index in (0, 1, 2, 255, 2**40):
            assert ids(index) == tcp_entry_id(c_isn, s_isn, port, index)


def test_udp_ids() -> None:
    a = udp_entry_id("10.0.0.1", 5353, "10.0.0.53", 53, 0x1234, 1700000000.2)
    assert a == udp_entry_id("10.0.0.1", 5353, "10.0.0.53", 53, 0x1234, 1700000000.7)
    assert a != udp_entry_id("10.0.0.1", 5353, "10.0.0.53", 53, 0x1235, 1700000000.2)
