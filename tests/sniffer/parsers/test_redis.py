"""Redis parser: RESP2/RESP3 commands and replies, three ways, fuzzed, on the shared
capture, and live against a real redis-server captured with tcpdump."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sniffer.parsers.base import ParserLimits
from sniffer.parsers.redis import PROTOCOL, RedisParser, command_keys
from sniffer.parsers.registry import Verdict
from tests.conftest import pcap
from tests.sniffer.parsers.livecap import free_port, need, server, tcpdump
from tests.sniffer.parsers.protohelp import C, S, capture_exchanges, fuzz_feed, run, three_ways


def cmd(*words: str | bytes) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for w in words:
        b = w.encode() if isinstance(w, str) else w
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def test_get_set_three_ways() -> None:
    script = [
        (C, cmd("SET", "user:1", "alice")),
        (S, b"+OK\r\n"),
        (C, cmd("GET", "user:1")),
        (S, b"$5\r\nalice\r\n"),
        (C, cmd("GET", "nope")),
        (S, b"$-1\r\n"),
    ]
    xs = three_ways(RedisParser, script, trailing=b"*2\r\n$3\r\nGET")
    assert [x.summary for x in xs] == [
        "SET user:1 → OK",
        'GET user:1 → "alice"',
        "GET nope → (nil)",
    ]
    assert xs[0].request == {
        "method": "SET", "command": "SET", "keys": ["user:1"], "args": ["user:1", "alice"],
        "args_count": 2,
    }  # fmt: skip
    assert xs[1].response == {"type": "bulk", "value": '"alice"', "size": 5}
    assert xs[1].ts == 3.0 and xs[1].end == 4.0
    assert xs[2].response["type"] == "null"


def test_errors_integers_and_aggregates() -> None:
    script = [
        (C, cmd("FOO")),
        (S, b"-ERR unknown command 'FOO'\r\n"),
        (C, cmd("INCR", "n")),
        (S, b":42\r\n"),
        (C, cmd("LRANGE", "l", "0", "-1")),
        (S, b"*3\r\n$1\r\na\r\n$1\r\nb\r\n*1\r\n:1\r\n"),
        (C, cmd("HGETALL", "h")),
        (S, b"%1\r\n+f\r\n,3.5\r\n"),
    ]
    xs = three_ways(RedisParser, script, trailing=b"*1\r\n")
    assert xs[0].response["error"] == "ERR unknown command 'FOO'"
    assert xs[0].error == ""
    assert xs[0].summary == "FOO → ERR unknown command 'FOO'"
    assert xs[1].summary == "INCR n → (integer) 42"
    assert xs[2].response == {"type": "array", "value": "array(3)", "size": 3}
    assert xs[3].response["type"] == "map"


def test_pipelining_pairs_in_order() -> None:
    script = [
        (C, cmd("SET", "a", "1") + cmd("SET", "b", "2") + cmd("MGET", "a", "b", "c")),
        (S, b"+OK\r\n+OK\r\n*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n"),
    ]
    xs = three_ways(RedisParser, script, trailing=b"")
    assert [x.request["command"] for x in xs] == ["SET", "SET", "MGET"]
    assert xs[2].request["keys"] == ["a", "b", "c"]
    assert [x.response["value"] for x in xs] == ["OK", "OK", "array(3)"]


def test_auth_password_kept_out_of_args_and_summary() -> None:
    script = [
        (C, cmd("AUTH", "s3cret")),
        (S, b"+OK\r\n"),
        (C, cmd("AUTH", "bob", "hunter2")),
        (S, b"-WRONGPASS invalid username-password pair\r\n"),
        (C, cmd("HELLO", "3", "AUTH", "bob", "pw3")),
        (S, b"%1\r\n+server\r\n+redis\r\n"),
    ]
    xs = run(RedisParser, script)
    assert xs[0].request["password"] == "s3cret"
    assert "s3cret" not in repr(xs[0].request["args"]) + xs[0].summary
    assert xs[1].request["user"] == "bob" and xs[1].request["password"] == "hunter2"
    assert xs[1].request["args"] == ["bob"]
    assert xs[1].response["error"].startswith("WRONGPASS")
    assert xs[2].request["password"] == "pw3" and "pw3" not in repr(xs[2].request["args"])


def test_pubsub_resp2_confirmations_and_messages() -> None:
    script = [
        (C, cmd("SUBSCRIBE", "news", "sport")),
        (S, b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"),
        (S, b"*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n"),
        (S, b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"),
        (C, cmd("PING")),
        (S, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"),
        (C, cmd("UNSUBSCRIBE")),
        (S, b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:1\r\n"),
        (S, b"*3\r\n$11\r\nunsubscribe\r\n$5\r\nsport\r\n:0\r\n"),
        (C, cmd("LRANGE", "x", "0", "1")),
        (S, b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n"),
    ]
    xs = three_ways(RedisParser, script, trailing=b"")
    assert [x.summary for x in xs] == [
        "SUBSCRIBE → subscribe 2 channel(s)",
        'push message news → "hello"',
        "PING → array(2)",
        "UNSUBSCRIBE → unsubscribe 2 channel(s)",
        "LRANGE x → array(3)",  # not subscribed any more: an ordinary reply
    ]
    assert xs[0].response["channels"] == ["news", "sport"]
    assert xs[1].request == {} and xs[1].response["channel"] == "news"


def test_resp3_push_is_not_a_reply() -> None:
    script = [
        (C, cmd("GET", "k")),
        (S, b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"),
        (S, b"$1\r\nv\r\n"),
    ]
    xs = run(RedisParser, script)
    assert xs[0].request == {} and xs[0].response["kind"] == "message"
    assert xs[1].summary == 'GET k → "v"'


def test_args_bounded_and_truncated() -> None:
    big = b"x" * 5000
    words = ["RPUSH", "list"] + [f"v{i}" for i in range(40)]
    xs = run(
        lambda: RedisParser(ParserLimits(max_args=4)),
        [(C, cmd("SET", "k", big)), (S, b"+OK\r\n"), (C, cmd(*words)), (S, b":40\r\n")],
    )
    assert len(xs[0].request["args"][1]) == 257 and xs[0].request["args"][1].endswith("…")
    assert xs[1].request["args"] == ["list", "v0", "v1", "v2"]
    assert xs[1].request["args_count"] == 41


def test_large_bulk_reply_is_streamed() -> None:
    size = 300_000
    reply = b"$%d\r\n" % size + b"y" * size + b"\r\n"
    p = RedisParser()
    p.feed(C, cmd("GET", "big"), 1.0)
    for i in range(0, len(reply), 1000):
        p.feed(S, reply[i : i + 1000], 2.0 + i / 1e6)
    (x,) = p.take()
    assert x.response["size"] == size and len(p._readers[1].buf) == 0


def test_inline_commands_and_no_response() -> None:
    xs = run(RedisParser, [(C, b"PING\r\n"), (S, b"+PONG\r\n"), (C, cmd("GET", "z"))])
    assert xs[0].summary == "PING → PONG"
    assert xs[1].error == "no response" and xs[1].end is None


def test_keys_spec() -> None:
    assert command_keys("MSET", [b"MSET", b"a", b"1", b"b", b"2"]) == [b"a", b"b"]
    assert command_keys("EVAL", [b"EVAL", b"s", b"2", b"k1", b"k2", b"a"]) == [b"k1", b"k2"]
    assert command_keys("BLPOP", [b"BLPOP", b"a", b"b", b"0"]) == [b"a", b"b"]
    assert command_keys("XREAD", [b"XREAD", b"STREAMS", b"s1", b"s2", b"0", b"0"]) == [
        b"s1",
        b"s2",
    ]
    assert command_keys("PING", [b"PING"]) == []


def test_detect() -> None:
    assert PROTOCOL.detect(cmd("GET", "a"), C) is Verdict.YES
    assert PROTOCOL.detect(b"*2\r", C) is Verdict.MORE
    assert PROTOCOL.detect(b"GET / HTTP/1.1\r\n", C) is Verdict.NO
    assert PROTOCOL.detect(b"+OK\r\n", S) is Verdict.NO


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=64)), max_size=12))
def test_fuzz_only_parse_error(chunks: list[tuple[bool, bytes]]) -> None:
    fuzz_feed(RedisParser, chunks)


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(
    [b"*", b"$", b"3", b"\r\n", b"-1", b"%", b">", b"|", b"1", b"+OK", b":", b"~", b"_"]
)), max_size=40))  # fmt: skip
def test_fuzz_resp_tokens(chunks: list[tuple[bool, bytes]]) -> None:
    fuzz_feed(RedisParser, chunks)


def test_shared_capture_matches_tshark() -> None:
    # tshark -r redis_large_reply.pcap -Y resp -T fields -e tcp.srcport
    #   -e resp.bulk_string.value   → client commands (hex-decoded):
    #   COMMAND DOCS; SET FIVE_HUNDRED_X <500 X>; SET THOUSAND_X <1000 X>;
    #   GET FIVE_HUNDRED_X; GET THOUSAND_X — answered by a ~240 KB array, +OK ×2 and the
    #   two values.
    es = capture_exchanges(str(pcap("redis_large_reply.pcap")), "redis", 6379)
    assert [(e["request"]["command"], e["request"]["keys"]) for e in es] == [
        ("COMMAND DOCS", []),
        ("SET", ["FIVE_HUNDRED_X"]),
        ("SET", ["THOUSAND_X"]),
        ("GET", ["FIVE_HUNDRED_X"]),
        ("GET", ["THOUSAND_X"]),
    ]
    assert [e["response"]["type"] for e in es] == ["array", "simple", "simple", "bulk", "bulk"]
    assert [e["response"].get("size") for e in es[3:]] == [500, 1000]
    assert all(not e["error"] for e in es)


def test_live_redis_server(tmp_path: Path) -> None:
    """redis-server on loopback, redis-py (RESP2 and RESP3), tcpdump on its port."""
    import redis

    need("redis-server")
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--requirepass", "sekret", "--dir", str(tmp_path)]  # fmt: skip
    cap = tmp_path / "redis.pcap"
    with server(args, port), tcpdump(cap, port):
        r = redis.Redis(port=port, password="sekret", protocol=2)
        r.set("user:1", "alice")
        assert r.get("user:1") == b"alice"
        with contextlib.suppress(redis.ResponseError):
            r.execute_command("NOSUCHCMD", "x")
        pipe = r.pipeline(transaction=False)
        pipe.incr("n").lpush("l", "a", "b").lrange("l", 0, -1)
        pipe.execute()
        ps = r.pubsub()
        ps.subscribe("news")
        assert ps.get_message(timeout=2)["type"] == "subscribe"
        r.publish("news", "hello")
        msg = ps.get_message(timeout=2)
        assert msg is not None and msg["data"] == b"hello"
        ps.close()
        r3 = redis.Redis(port=port, password="sekret", protocol=3)
        r3.hset("h", mapping={"f": "v"})
        assert r3.hgetall("h") == {b"f": b"v"}
        r.close()
        r3.close()
    es = capture_exchanges(str(cap), "redis", port, "redis")
    cmds = [e["request"].get("command") for e in es]
    for want in ["SET", "GET", "NOSUCHCMD", "INCRBY", "LPUSH", "LRANGE", "SUBSCRIBE",
                 "PUBLISH", "HELLO", "HSET", "HGETALL"]:  # fmt: skip
        assert want in cmds, (want, [(e["summary"], e["error"]) for e in es])
    by = {e["request"].get("command"): e for e in es}
    assert by["GET"]["summary"] == 'GET user:1 → "alice"'
    assert by["NOSUCHCMD"]["response"]["error"].startswith("ERR unknown command")
    assert by["LRANGE"]["response"]["value"] == "array(2)"
    assert by["HGETALL"]["response"]["type"] == "map"  # RESP3
    pushes = [e for e in es if e["response"].get("type") == "push"]
    assert [(p["response"]["channel"], p["response"]["value"]) for p in pushes] == [
        ("news", '"hello"')
    ]
    auths = [e for e in es if e["request"].get("password")]
    assert auths and all(a["request"]["password"] == "sekret" for a in auths)
    assert all("sekret" not in repr(e["request"].get("args")) + e["summary"] for e in es)
    assert all(e["error"] in ("", "no response") for e in es)


def test_gap_resynchronises_at_next_command() -> None:
    from tests.sniffer.parsers.threeway import Gap, feed_script

    script = [
        (C, cmd("GET", "a")),
        (S, b"$10\r\n01234"),
        Gap(S, 7),
        (S, b"+OK\r\n"),  # not trusted: no command seen since the gap
        (C, b"$3\r\nxyz\r\n"),  # the tail of a command: skipped
        (C, cmd("GET", "b")),
        (S, b"$1\r\nB\r\n"),
    ]
    before, after = feed_script(RedisParser, script)
    xs = before + after
    assert [(x.summary, x.error, x.gaps) for x in xs] == [
        ("GET a", "gap: 7 bytes lost", 7),
        ('GET b → "B"', "", 0),
    ]


def test_midstream_capture_starts_with_a_reply_tail(tmp_path: Path) -> None:
    from kubeweir import pcapgen

    pkts = pcapgen.tcp_session(
        [("s", b"lue-of-an-earlier-reply\r\n"), ("c", cmd("GET", "k")), ("s", b"$1\r\nv\r\n")],
        server=("10.0.0.2", 6379), handshake=False,
    )  # fmt: skip
    f = pcapgen.write_pcap(tmp_path / "mid.pcap", pkts)
    es = capture_exchanges(str(f), "redis", 6379)
    assert [e["summary"] for e in es] == ['GET k → "v"']
