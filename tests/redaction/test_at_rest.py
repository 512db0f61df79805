"""Redacted secrets are on no disk and in no export: real capture path, the hub's DuckDB
file, the sniffer's spool directory, HAR and PCAP exports, and the logs of all of these.

Traffic is generated with pcapgen (gzip'd and chunked bodies too), read with
``read_pcap`` and the default engine, then written where the issue says a secret must
never be found, and every byte there is searched for every secret.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from kubeweir import pcapgen
from kubeweir.entry import Entry, encode_batch, entry_to_builtins, entry_to_json
from redaction import default_engine
from sniffer.pipeline import PipelineSettings, read_pcap

JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJ1c2VyLTQyIiwic2NvcGUiOiJvcmRlcnMifQ.c2lnbmF0dXJlLWJ5dGVzLTEyMzQ1Njc4OTA"
)
CARD = "4242424242424242"
IBAN = "GB82WEST12345698765432"
EMAIL = "jane.secret@example.org"
PASSWORD = "Hunter2-Correct-Horse"
TOKEN = "qTok3n-9f8e7d6c5b4a"
SESSION = "sess-a1b2c3d4e5f6a7b8"
AWS = "AKIAIOSFODNN7EXAMPLE"
SECRETS = [JWT, CARD, IBAN, EMAIL, PASSWORD, TOKEN, SESSION, AWS]


def _chunked(data: bytes) -> bytes:
    half = len(data) // 2
    parts = (data[:half], data[half:])
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


def _traffic() -> list[tuple[str, bytes]]:
    order = json.dumps({"customer": {"email": EMAIL}, "card": {"number": CARD, "exp": "1/30"}})
    login = f"user=jane&password={quote(PASSWORD)}&remember=1"
    note = f"wire to {IBAN} with key {AWS}".encode()
    gz = gzip.compress(json.dumps({"access_token": TOKEN, "ok": True}).encode(), mtime=0)
    return [
        (
            "c",
            f"POST /api/orders?token={TOKEN} HTTP/1.1\r\nHost: shop\r\n"
            f"Authorization: Bearer {JWT}\r\nCookie: session={SESSION}; theme=dark\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(order)}\r\n\r\n"
            f"{order}".encode(),
        ),
        (
            "s",
            b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n"
            + f"Set-Cookie: session={SESSION}; HttpOnly\r\n".encode()
            + f"Content-Length: {len(note)}\r\n\r\n".encode()
            + note,
        ),
        (
            "c",
            f"POST /login HTTP/1.1\r\nHost: shop\r\nContent-Type: application/x-www-form-urlencoded"
            f"\r\nContent-Length: {len(login)}\r\n\r\n{login}".encode(),
        ),
        (
            "s",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(gz),
        ),
    ]


def _forms(secret: str) -> list[bytes]:
    return [
        secret.encode(),
        secret.encode("utf-16-le"),  # in case anything stores UTF-16
        base64.b64encode(secret.encode())[:-4] or secret.encode(),
        quote(secret, safe="").encode(),
    ]


def _assert_clean(where: str, data: bytes) -> None:
    for s in SECRETS:
        for form in _forms(s):
            assert form not in data, f"{s!r} found in {where}"


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cap") / "secrets.pcap"
    pcapgen.write_pcap(path, pcapgen.tcp_session(_traffic(), mss=200))
    return path


@pytest.fixture(scope="module")
def entries(capture: Path) -> list[Entry]:
    plain = b"".join(entry_to_json(e) for e in read_pcap(capture, PipelineSettings()))
    for s in SECRETS:  # the test means something only if the parser saw every secret
        assert s.encode() in plain or quote(s, safe="").encode() in plain, s
    out = list(read_pcap(capture, PipelineSettings(redact=default_engine().apply)))
    assert [e.proto for e in out] == ["http", "http"]
    return out


def test_entries_list_what_was_replaced(entries: list[Entry]) -> None:
    first, second = entries
    for path in (
        "request.query.token",
        "request.headers.authorization",
        "request.headers.cookie",
        "request.body.customer.email",
        "request.body.card.number",
        "response.headers.set-cookie",
        "response.body",
        "summary",
    ):
        assert path in first.redacted, (path, first.redacted)
    assert "request.body.password" in second.redacted
    assert "response.body.access_token" in second.redacted
    for e in entries:
        _assert_clean("entry msgpack", encode_batch([e]))
        _assert_clean("entry JSON", entry_to_json(e))


def test_duckdb_file_and_exports(
    entries: list[Entry], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from hub.export import entries_to_har, entries_to_pcap
    from hub.storage.duckdb import DuckDBStorage
    from hub.storage.rows import row_to_entry

    caplog.set_level(logging.DEBUG)
    db = tmp_path / "hub.duckdb"
    storage = DuckDBStorage(str(db))
    try:
        assert storage.ingest(entries).accepted == len(entries)
        rows = list(storage.iter_rows(sa.true(), 100, with_bodies=True))
        assert len(rows) == len(entries)
        full = [row_to_entry(r, with_bodies=True, with_headers=True) for r in rows]
        har = json.dumps(entries_to_har(full)).encode()
        assert b'"entries": [{' in har  # the export has the entries
        _assert_clean("HAR export", har)
        pcap, count = entries_to_pcap(full)
        assert count == len(entries)
        _assert_clean("PCAP export", pcap)
        _assert_clean("stored rows", json.dumps(full, default=str).encode())
    finally:
        storage.close()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert db in files and db.stat().st_size > 0
    for f in files:  # the database and any WAL left beside it
        _assert_clean(str(f), f.read_bytes())
    _assert_clean("logs", caplog.text.encode())


def test_sniffer_spool(entries: list[Entry], tmp_path: Path) -> None:
    from sniffer.spool import Spool

    spool = Spool(tmp_path / "spool")
    spool.put(encode_batch(entries, sniffer="node-a"), len(entries))
    got = spool.oldest()
    assert got is not None and got[1] == encode_batch(entries, sniffer="node-a")
    files = [p for p in (tmp_path / "spool").rglob("*") if p.is_file()]
    assert files
    for f in files:
        _assert_clean(str(f), f.read_bytes())


def test_unredacted_control_is_caught(capture: Path, tmp_path: Path) -> None:
    """The same checks fail without redaction: the greps above can see a secret."""
    plain = list(read_pcap(capture, PipelineSettings()))
    with pytest.raises(AssertionError):
        _assert_clean("control", b"".join(entry_to_json(e) for e in plain))
    assert entry_to_builtins(plain[0])["request"]["headers"]["authorization"].endswith(JWT)
