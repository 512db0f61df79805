"""PostgreSQL parser: startup/SSL/GSS, simple and extended query, errors; three ways,
fuzzed, on the shared capture (compared with tshark), and live against a real server."""

from __future__ import annotations

import contextlib
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sniffer.parsers.postgres import PROTOCOL, PostgresParser, sql_verb
from sniffer.parsers.registry import Verdict
from tests.conftest import pcap
from tests.sniffer.parsers.livecap import free_port, need, server, tcpdump
from tests.sniffer.parsers.protohelp import C, S, capture_exchanges, fuzz_feed, run, three_ways


def msg(t: bytes, body: bytes) -> bytes:
    return t + struct.pack("!i", len(body) + 4) + body


def startup(**params: str) -> bytes:
    body = struct.pack("!i", 196608)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def auth(code: int, extra: bytes = b"") -> bytes:
    return msg(b"R", struct.pack("!i", code) + extra)


READY = msg(b"Z", b"I")


def cc(tag: str) -> bytes:
    return msg(b"C", tag.encode() + b"\0")


def rowdesc(*names: str) -> bytes:
    body = struct.pack("!h", len(names))
    for n in names:
        body += n.encode() + b"\0" + b"\0" * 18
    return msg(b"T", body)


def datarow(*vals: bytes) -> bytes:
    body = struct.pack("!h", len(vals))
    for v in vals:
        body += struct.pack("!i", len(v)) + v
    return msg(b"D", body)


def error(code: str, text: str) -> bytes:
    return msg(b"E", b"SERROR\0VERROR\0C" + code.encode() + b"\0M" + text.encode() + b"\0\0")


def parse(q: str, name: str = "") -> bytes:
    return msg(b"P", name.encode() + b"\0" + q.encode() + b"\0" + struct.pack("!h", 0))


def bind(nparams: int, stmt: str = "") -> bytes:
    body = b"\0" + stmt.encode() + b"\0" + struct.pack("!h", 0) + struct.pack("!h", nparams)
    for i in range(nparams):
        v = str(i).encode()
        body += struct.pack("!i", len(v)) + v
    return msg(b"B", body + struct.pack("!h", 0))


EXECUTE = msg(b"E", b"\0" + struct.pack("!i", 0))
SYNC = msg(b"S", b"")
DESCRIBE = msg(b"D", b"P\0")

SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def conversation() -> list[tuple[object, bytes]]:
    return [
        (C, SSL_REQUEST),
        (S, b"N"),
        (C, startup(user="app", database="shop", application_name="psql")),
        (S, auth(3)),
        (C, msg(b"p", b"hunter2\0")),
        (S, auth(0) + msg(b"S", b"server_version\x0016.1\0") + READY),
        (C, msg(b"Q", b"SELECT id, name FROM users\0")),
        (S, rowdesc("id", "name") + datarow(b"1", b"a") + datarow(b"2", b"b") + cc("SELECT 2")),
        (S, READY),
        (C, msg(b"Q", b"SELECT * FROM nope\0")),
        (S, error("42P01", 'relation "nope" does not exist') + READY),
        (C, parse("UPDATE t SET x = $1 WHERE id = $2") + bind(2) + DESCRIBE + EXECUTE + SYNC),
        (S, msg(b"1", b"") + msg(b"2", b"") + msg(b"n", b"") + cc("UPDATE 3") + READY),
        (C, parse("SELECT 1/0") + bind(0) + EXECUTE + parse("SELECT 2") + bind(0) + EXECUTE),
        (C, SYNC),
        (S, msg(b"1", b"") + msg(b"2", b"") + error("22012", "division by zero") + READY),
    ]


def test_conversation_three_ways() -> None:
    xs = three_ways(PostgresParser, conversation(), trailing=msg(b"Q", b"SELECT 3\0")[:7])  # type: ignore[arg-type]
    assert [x.summary for x in xs] == [
        "SSLRequest → refused",
        "STARTUP app@shop → ready (auth cleartext)",
        "SELECT id, name FROM users → SELECT 2",
        'SELECT * FROM nope → ERROR 42P01 relation "nope" does not exist',
        "UPDATE t SET x = $1 WHERE id = $2 → UPDATE 3",
        "SELECT 1/0 → ERROR 22012 division by zero",
        "SELECT 2",
    ]
    ssl, st_, sel, bad, upd, div, skipped = xs
    assert st_.request["user"] == "app" and st_.request["database"] == "shop"
    assert st_.request["password"] == "hunter2"
    assert st_.response == {"auth": "cleartext", "server_version": "16.1"}
    assert sel.request == {
        "method": "SELECT",
        "kind": "simple",
        "query": "SELECT id, name FROM users",
    }
    assert sel.response == {"columns": ["id", "name"], "tag": "SELECT 2", "rows": 2}
    assert sel.ts == 7.0 and sel.end == 9.0
    assert bad.response["sqlstate"] == "42P01" and bad.error == ""
    assert upd.request["params"] == 2 and upd.request["kind"] == "extended"
    assert upd.response["rows"] == 3 and upd.request["method"] == "UPDATE"
    assert div.response["sqlstate"] == "22012"
    assert skipped.error.startswith("not executed")


def test_ssl_accepted_stops_parsing() -> None:
    xs = run(
        PostgresParser, [(C, SSL_REQUEST), (S, b"S"), (C, b"\x16\x03\x01garbage"), (S, b"\x16\x03")]
    )
    assert len(xs) == 1 and xs[0].response["encrypted"] is True
    assert xs[0].summary == "SSLRequest → accepted, encrypted from here"


def test_sasl_bytes_go_to_password_and_prepare_only() -> None:
    script = [
        (C, startup(user="u", database="d")),
        (S, auth(10, b"SCRAM-SHA-256\0\0")),
        (C, msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", 8) + b"n,,n=,r=")),
        (S, auth(11, b"r=xyz")),
        (C, msg(b"p", b"c=biws,p=proof")),
        (S, auth(12, b"v=sig") + auth(0) + READY),
        (C, parse("SELECT $1::int", "s1") + SYNC),
        (S, msg(b"1", b"") + READY),
    ]
    xs = run(PostgresParser, script)
    assert xs[0].request["password"] == "n,,n=,r=\nc=biws,p=proof"
    assert xs[0].request["sasl_mechanism"] == "SCRAM-SHA-256"
    assert xs[0].response["auth"] == "sasl"
    assert xs[1].request["kind"] == "prepare" and xs[1].request["statement"] == "s1"
    assert xs[1].summary == "SELECT $1::int → parsed"


def test_big_datarow_is_skipped_not_buffered() -> None:
    big = datarow(b"x" * 500_000)
    p = PostgresParser()
    p.feed(C, startup(user="u"), 0.0)
    p.feed(S, auth(0) + READY, 0.1)
    p.take()
    p.feed(C, msg(b"Q", b"SELECT blob FROM t\0"), 1.0)
    for i in range(0, len(big), 1460):
        p.feed(S, big[i : i + 1460], 1.1)
    assert len(p._r[1].buf) < 70_000
    p.feed(S, cc("SELECT 1") + READY, 2.0)
    (x,) = p.take()
    assert x.response["rows"] == 1 and x.end == 2.0


def test_verbs_and_detect() -> None:
    assert sql_verb("  -- hi\n /* c */ (select 1)") == "SELECT"
    assert sql_verb("with x as (select 1) select * from x") == "WITH"
    assert PROTOCOL.detect(startup(user="x"), C) is Verdict.YES
    assert PROTOCOL.detect(SSL_REQUEST, C) is Verdict.YES
    assert PROTOCOL.detect(b"\0\0", C) is Verdict.MORE
    assert PROTOCOL.detect(b"GET / HTTP/1.1\r\n", C) is Verdict.NO


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=64)), max_size=12))
def test_fuzz_only_parse_error(chunks: list[tuple[bool, bytes]]) -> None:
    fuzz_feed(PostgresParser, chunks)


@given(st.lists(st.tuples(st.booleans(), st.sampled_from([
    startup(user="u"), SSL_REQUEST, b"N", b"S", READY, auth(0), auth(10, b"X\0\0"),
    msg(b"Q", b"SELECT 1\0"), parse("x"), bind(1), EXECUTE, SYNC, cc("SELECT 1"),
    error("1", "x"), datarow(b"1"), rowdesc("a"), msg(b"p", b"pw\0"), msg(b"s", b""),
])), max_size=30))  # fmt: skip
def test_fuzz_message_soup(chunks: list[tuple[bool, bytes]]) -> None:
    fuzz_feed(PostgresParser, chunks)


def test_shared_capture_matches_tshark() -> None:
    # tshark -r pgsql_extended_query.pcap -Y pgsql -T fields -e tcp.stream -e pgsql.type
    #   -e pgsql.query -e pgsql.tag
    # → 6 connections: 2 md5 startups (user oryx, database mailstore), queries with tags
    #   begin→BEGIN, select revision…→SELECT, commit→COMMIT, select u.id…→SELECT (×2,
    #   the second a Bind of the named-less statement again), select * from mailboxes→
    #   SELECT, select id,name from flag_names where id>0→SELECT; 2 GSSENCRequests (the
    #   server answers 'G', then the client leaves), 2 SSLRequests (refused) followed by
    #   SCRAM-SHA-256 startups of user test, one completed (server_version 13devel).
    es = capture_exchanges(str(pcap("pgsql_extended_query.pcap")), "postgres", 5432)
    got = [(e["request"].get("query") or e["request"]["method"], e["response"].get("tag"))
           for e in es]  # fmt: skip
    long_q = (
        "select u.id, u.address, u.inbox, n.name as parentspace, u.login, u.id, u.secret, "
        "a.name, a.localpart, a.domain from users u, addresses a, namespaces n where "
        "u.login=$1 and u.id=a.id and n.id=u.parentspace"
    )
    assert got == [
        ("STARTUP", None),
        ("STARTUP", None),
        ("select * from mailboxes", "SELECT"),
        ("select id,name from flag_names where id>0", "SELECT"),
        ("begin", "BEGIN"),
        ("select revision from mailstore for update", "SELECT"),
        ("commit", "COMMIT"),
        (long_q, "SELECT"),
        (long_q, "SELECT"),
        ("GSSENCRequest", None),
        ("SSLRequest", None),
        ("STARTUP", None),
        ("GSSENCRequest", None),
        ("SSLRequest", None),
        ("STARTUP", None),
    ]
    startups = [e for e in es if e["request"]["method"] == "STARTUP"]
    assert [s["request"]["user"] for s in startups] == ["oryx", "oryx", "test", "test"]
    assert all(s["request"].get("password") for s in startups[:2])
    assert startups[3]["response"]["server_version"] == "13devel"
    assert startups[2]["error"] == "no response"  # the client gave up during SCRAM
    gss = [e for e in es if e["request"]["method"] == "GSSENCRequest"]
    assert all(g["response"]["encrypted"] for g in gss)
    sel = [e for e in es if e["request"].get("query", "").startswith("select revision")]
    assert sel[0]["response"]["rows"] == 1  # tshark: the one DataRow


def test_live_postgres_server() -> None:
    """A real PostgreSQL (initdb + postgres as user postgres) on loopback, psycopg as
    client (SCRAM auth, SSL refused, simple and extended queries, an error)."""
    need("initdb", "postgres", "runuser")
    # pytest's tmp dirs are private to root: the server's files live where postgres can go
    with tempfile.TemporaryDirectory(prefix="kubeweir-pg-") as tmp:
        _live_postgres(Path(tmp))


def _live_postgres(tmp_path: Path) -> None:
    import psycopg

    tmp_path.chmod(0o755)
    data = tmp_path / "pg"
    data.mkdir()
    (tmp_path / "pw").write_text("s3cret-pw\n")
    shutil.chown(tmp_path, "postgres")
    shutil.chown(data, "postgres")
    shutil.chown(tmp_path / "pw", "postgres")
    subprocess.run(
        ["runuser", "-u", "postgres", "--", "initdb", "-D", str(data), "-U", "app",
         "--pwfile", str(tmp_path / "pw"), "--auth-host=scram-sha-256", "--auth-local=trust",
         "--no-sync", "-E", "UTF8"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = free_port()
    args = ["postgres", "-D", str(data), "-p", str(port), "-k", str(tmp_path),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "ssl=off"]  # fmt: skip
    cap = tmp_path / "pg.pcap"
    dsn = f"host=127.0.0.1 port={port} user=app password=s3cret-pw dbname=postgres"
    with server(args, port, user="postgres", timeout=60), tcpdump(cap, port):
        with psycopg.connect(dsn + " sslmode=prefer gssencmode=disable") as conn:
            conn.autocommit = True
            conn.pgconn.exec_(b"CREATE TABLE t (id int, name text)")
            conn.execute("INSERT INTO t VALUES (%s, %s), (%s, %s)", (1, "a", 2, "b"))
            assert conn.execute("SELECT name FROM t WHERE id > %s", (0,)).fetchall() == [
                ("a",),
                ("b",),
            ]
            with contextlib.suppress(psycopg.errors.UndefinedTable):
                conn.execute("SELECT * FROM missing")
            conn.pgconn.exec_(b"SELECT 1; SELECT 2")
    es = capture_exchanges(str(cap), "postgres", port, "postgres")
    kinds = [(e["request"]["method"], e["request"]["kind"]) for e in es]
    assert ("SSLRequest", "ssl") in kinds
    start = next(e for e in es if e["request"]["kind"] == "startup")
    assert start["request"]["user"] == "app" and start["request"]["database"] == "postgres"
    assert start["response"]["auth"] == "sasl" and start["request"]["password"]
    assert "s3cret-pw" not in repr(start["summary"])
    by = {e["request"].get("query"): e for e in es}
    assert by["CREATE TABLE t (id int, name text)"]["response"]["tag"] == "CREATE TABLE"
    ins = by["INSERT INTO t VALUES ($1, $2), ($3, $4)"]
    assert ins["request"]["params"] == 4 and ins["response"]["tag"] == "INSERT 0 2"
    sel = by["SELECT name FROM t WHERE id > $1"]
    assert sel["response"]["rows"] == 2 and sel["response"]["columns"] == ["name"]
    assert by["SELECT * FROM missing"]["response"]["sqlstate"] == "42P01"
    assert by["SELECT 1; SELECT 2"]["response"]["tag"] == "SELECT 1"
    assert all(e["error"] == "" for e in es)


def test_named_statements_are_bounded_and_closed() -> None:
    from sniffer.parsers import postgres as pg

    p = PostgresParser()
    p.feed(C, startup(user="u"), 0.0)
    p.feed(S, auth(0) + READY, 0.1)
    for i in range(pg._MAX_NAMED + 10):
        p.feed(C, parse(f"SELECT {i}", f"s{i}"), 1.0)
    assert len(p._statements) == pg._MAX_NAMED and "s0" not in p._statements
    p.feed(C, msg(b"C", b"Ss10\0"), 2.0)
    assert "s10" not in p._statements


def test_midstream_connection_from_a_pool(tmp_path: Path) -> None:
    """A pooled connection opened before the capture: no startup, the first bytes are a
    query. The detector knows a Query/Parse; the parser starts there."""
    from kubeweir import pcapgen

    q = msg(b"Q", b"SELECT 1\0")
    assert PROTOCOL.detect(q, C) is Verdict.YES
    assert PROTOCOL.detect(parse("UPDATE t SET a = 1"), C) is Verdict.YES
    assert PROTOCOL.detect(b"Q\0\0\0\x0c\x01\x02\x03\x04\x05\x06\x07", C) is Verdict.NO
    xs = three_ways(PostgresParser, [
        (C, q),
        (S, rowdesc("?column?") + datarow(b"1") + cc("SELECT 1") + READY),
        (C, parse("SELECT $1") + bind(1) + EXECUTE + SYNC),
        (S, msg(b"1", b"") + msg(b"2", b"") + datarow(b"x") + cc("SELECT 1") + READY),
    ], trailing=b"")  # fmt: skip
    assert [x.summary for x in xs] == ["SELECT 1 → SELECT 1", "SELECT $1 → SELECT 1"]
    pkts = pcapgen.tcp_session(
        [("c", q), ("s", rowdesc("a") + datarow(b"1") + cc("SELECT 1") + READY)],
        server=("10.0.0.2", 5432), handshake=False,
    )  # fmt: skip
    f = pcapgen.write_pcap(tmp_path / "pool.pcap", pkts)
    (e,) = capture_exchanges(str(f), "postgres", 5432)
    assert e["response"]["tag"] == "SELECT 1" and e["error"] == ""
