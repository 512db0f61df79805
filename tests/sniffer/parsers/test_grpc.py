"""gRPC over HTTP/2 and protobuf decoding: schema-less and with a FileDescriptorSet;
compressed messages; fuzz; live against a grpcio server and client (generic handlers,
no code generation) captured with tcpdump."""

from __future__ import annotations

import gzip
from concurrent import futures
from pathlib import Path
from typing import Any

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sniffer.parsers.grpc import decode_messages, split_path
from sniffer.parsers.http2 import Http2Parser, make_protocol
from sniffer.parsers.protobuf import ProtobufError, ProtoSchemas, decode_raw
from tests.sniffer.parsers.h2frames import PREFACE, data, grpc_msg, headers, settings
from tests.sniffer.parsers.livecap import free_port, need, tcpdump
from tests.sniffer.parsers.protohelp import (
    C,
    S,
    capture_exchanges,
    feed_stream,
    pcap_streams,
    three_ways,
)  # fmt: skip


def schema() -> tuple[bytes, Any, Any]:
    """A FileDescriptorSet for ``demo.Greeter/Hello(HelloRequest) → HelloReply`` and the
    two message classes."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FileDescriptorProto(name="demo.proto", package="demo", syntax="proto3")
    m = f.message_type.add(name="HelloRequest")
    m.field.add(name="name", number=1, type=9, label=1)
    m.field.add(name="times", number=2, type=5, label=1)
    r = f.message_type.add(name="HelloReply")
    r.field.add(name="greeting", number=1, type=9, label=1)
    r.field.add(name="scores", number=2, type=5, label=3)
    svc = f.service.add(name="Greeter")
    svc.method.add(name="Hello", input_type=".demo.HelloRequest", output_type=".demo.HelloReply")
    svc.method.add(name="Many", input_type=".demo.HelloRequest", output_type=".demo.HelloReply",
                   server_streaming=True)  # fmt: skip
    fds = descriptor_pb2.FileDescriptorSet(file=[f])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    req_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("demo.HelloRequest"))
    rep_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("demo.HelloReply"))
    return fds.SerializeToString(), req_cls, rep_cls


def test_decode_raw_wire_types() -> None:
    # field 1 varint 150, field 2 "hi", field 3 nested {1: 1}, field 4 fixed32, 5 fixed64,
    # field 6 repeated varint (not packed)
    raw = (b"\x08\x96\x01" + b"\x12\x02hi" + b"\x1a\x02\x08\x01" + b"\x25\x00\x00\x80\x3f"
           + b"\x29" + b"\x00" * 8 + b"\x30\x01\x30\x02")  # fmt: skip
    assert decode_raw(raw) == {
        "1": 150, "2": "hi", "3": {"1": 1}, "4": {"fixed32": 0x3F800000, "float": 1.0},
        "5": {"fixed64": 0, "double": 0.0}, "6": [1, 2],
    }  # fmt: skip
    assert decode_raw(b"\x12\x03\xff\xfe\x00")["2"] == {"bytes": "//4A", "size": 3}
    with pytest.raises(ProtobufError):
        decode_raw(b"\x12\x05ab")
    with pytest.raises(ProtobufError):
        decode_raw(b"\x0b")  # group start


def test_split_path() -> None:
    assert split_path("/pkg.Svc/Do") == ("pkg.Svc", "Do")


def test_compressed_messages_and_schemas() -> None:
    fds, req_cls, rep_cls = schema()
    schemas = ProtoSchemas.from_bytes(fds)
    raw = req_cls(name="ada", times=3).SerializeToString()
    body = grpc_msg(gzip.compress(raw), compressed=True) + grpc_msg(raw)
    out = decode_messages(body, "/demo.Greeter/Hello", False, "gzip")
    assert out["messages"] == [{"1": "ada", "2": 3}] * 2 and out["message_count"] == 2
    named = decode_messages(body, "/demo.Greeter/Hello", False, "gzip", schemas)
    assert named["messages"] == [{"name": "ada", "times": 3}] * 2
    bad = decode_messages(grpc_msg(b"notgzip", compressed=True), "/x/y", False, "gzip")
    assert bad["decode_errors"] and bad["messages"][0]["size"] == 7


def grpc_call(schemas: ProtoSchemas | None) -> list[Any]:
    _, req_cls, rep_cls = schema()
    ce, se = hpack.Encoder(), hpack.Encoder()
    path = "/demo.Greeter/Hello"
    h = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "x"),
         ("content-type", "application/grpc"), ("te", "trailers")]  # fmt: skip
    reply = rep_cls(greeting="hi ada", scores=[1, 2]).SerializeToString()
    script = [
        (C, PREFACE + settings() + headers(ce, 1, h)),
        (C, data(1, grpc_msg(req_cls(name="ada").SerializeToString()), end=True)),
        (
            S,
            settings() + headers(se, 1, [(":status", "200"), ("content-type", "application/grpc")]),
        ),
        (S, data(1, grpc_msg(reply)[:4])),
        (S, data(1, grpc_msg(reply)[4:])),
        (S, headers(se, 1, [("grpc-status", "5"), ("grpc-message", "not found")], end=True)),
    ]
    return three_ways(lambda: Http2Parser(schemas=schemas), script, trailing=b"")  # type: ignore[arg-type]  # noqa: E501


def test_grpc_stream_schema_less_and_named() -> None:
    (x,) = grpc_call(None)
    assert x.proto == "grpc" and x.summary == "POST demo.Greeter/Hello → 200 NOT_FOUND"
    assert x.request["service"] == "demo.Greeter" and x.request["rpc"] == "Hello"
    assert x.request["messages"] == [{"1": "ada"}]
    assert x.response["messages"] == [{"1": "hi ada", "2": {"bytes": "AQI=", "size": 2}}]
    assert x.response["grpc_status"] == 5 and x.response["grpc_message"] == "not found"
    assert x.response["status"] == 200 and x.error == ""
    assert x.request["body"] == '[{"1":"ada"}]'
    fds, _, _ = schema()
    (y,) = grpc_call(ProtoSchemas.from_bytes(fds))
    assert y.response["messages"] == [{"greeting": "hi ada", "scores": [1, 2]}]
    assert make_protocol(ProtoSchemas.from_bytes(fds)).factory(None).schemas is not None  # type: ignore[arg-type,attr-defined]  # noqa: E501


@given(st.binary(max_size=200))
def test_fuzz_protobuf_only_protobuf_error(raw: bytes) -> None:
    try:
        decode_raw(raw)
    except ProtobufError:
        pass


@given(st.binary(max_size=200), st.sampled_from(["", "gzip", "zstd", "snappy"]))
def test_fuzz_grpc_body_never_raises(raw: bytes, enc: str) -> None:
    decode_messages(raw, "/a/b", True, enc)


def test_live_grpcio(tmp_path: Path) -> None:
    """A grpcio server (generic handlers: unary, server-streaming, an error, gzip) and a
    grpcio client over h2c on loopback, captured with tcpdump and read back."""
    import grpc

    need("tcpdump")
    fds, req_cls, rep_cls = schema()

    def hello(raw: bytes, ctx: Any) -> bytes:
        req = req_cls.FromString(raw)
        if req.name == "nobody":
            ctx.abort(grpc.StatusCode.NOT_FOUND, "no such person")
        return rep_cls(greeting=f"hello {req.name}", scores=[7]).SerializeToString()  # type: ignore[no-any-return]  # noqa: E501

    def many(raw: bytes, ctx: Any) -> Any:
        req = req_cls.FromString(raw)
        for i in range(req.times):
            yield rep_cls(greeting=f"#{i}").SerializeToString()

    handler = grpc.method_handlers_generic_handler("demo.Greeter", {
        "Hello": grpc.unary_unary_rpc_method_handler(hello),
        "Many": grpc.unary_stream_rpc_method_handler(many),
    })  # fmt: skip
    port = free_port()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    srv.add_generic_rpc_handlers((handler,))
    srv.add_insecure_port(f"127.0.0.1:{port}")
    cap = tmp_path / "grpc.pcap"
    srv.start()
    try:
        with tcpdump(cap, port):
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                say = ch.unary_unary("/demo.Greeter/Hello")
                assert (
                    rep_cls.FromString(
                        say(req_cls(name="ada").SerializeToString(), timeout=10)
                    ).greeting
                    == "hello ada"
                )
                with pytest.raises(grpc.RpcError):
                    say(req_cls(name="nobody").SerializeToString(), timeout=10)
                zipped = say(req_cls(name="zip").SerializeToString(), timeout=10,
                             compression=grpc.Compression.Gzip)  # fmt: skip
                assert rep_cls.FromString(zipped).greeting == "hello zip"
                many = ch.unary_stream("/demo.Greeter/Many")
                assert (
                    len(list(many(req_cls(name="x", times=3).SerializeToString(), timeout=10))) == 3
                )
    finally:
        srv.stop(0)
    es = capture_exchanges(str(cap), "grpc", port, "http2")
    calls = [(e["request"]["rpc"], e["response"].get("grpc_status_name"), e["request"]["messages"])
             for e in es if e["proto"] == "grpc"]  # fmt: skip
    assert calls == [
        ("Hello", "OK", [{"1": "ada"}]),
        ("Hello", "NOT_FOUND", [{"1": "nobody"}]),
        ("Hello", "OK", [{"1": "zip"}]),  # sent gzip-compressed
        ("Many", "OK", [{"1": "x", "2": 3}]),
    ]
    assert es[2]["request"]["headers"]["grpc-encoding"] == "gzip"
    many_e = [e for e in es if e["request"]["rpc"] == "Many"][0]
    assert many_e["response"]["message_count"] == 3
    assert [e["response"].get("grpc_message") for e in es][1] == "no such person"
    assert all(e["error"] == "" for e in es)
    # the same capture with the FileDescriptorSet: real field names
    schemas = ProtoSchemas.from_bytes(fds)
    named = []
    for chunks in pcap_streams(str(cap), port):
        named += feed_stream(Http2Parser(schemas=schemas), chunks)
    assert named[0].request["messages"] == [{"name": "ada"}]
    assert named[0].response["messages"] == [{"greeting": "hello ada", "scores": [7]}]


def test_grpc_web_trailers_in_body() -> None:
    ce, se = hpack.Encoder(), hpack.Encoder()
    h = [(":method", "POST"), (":scheme", "http"), (":path", "/demo.Greeter/Hello"),
         (":authority", "x"), ("content-type", "application/grpc-web+proto")]  # fmt: skip
    trailer = b"grpc-status: 7\r\ngrpc-message: denied\r\n"
    script = [
        (C, PREFACE + headers(ce, 1, h) + data(1, grpc_msg(b"\x0a\x01a"), end=True)),
        (S, headers(se, 1, [(":status", "200"), ("content-type", "application/grpc-web+proto")])),
        (
            S,
            data(
                1,
                grpc_msg(b"\x0a\x01b") + b"\x80" + len(trailer).to_bytes(4, "big") + trailer,
                end=True,
            ),
        ),
    ]
    (x,) = three_ways(Http2Parser, script, trailing=b"")  # type: ignore[arg-type]
    assert x.proto == "grpc" and x.response["grpc_status"] == 7
    assert x.response["grpc_message"] == "denied" and x.response["messages"] == [{"1": "b"}]
