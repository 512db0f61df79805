"""Credentials in the shared third-party captures (PostgreSQL password and SASL messages,
AMQP PLAIN start-ok) come out of ``read_pcap`` redacted, with their paths listed."""

from __future__ import annotations

import pytest

from kubeweir.entry import REDACTED, entry_to_json
from redaction import default_engine
from sniffer.pipeline import PipelineSettings, read_pcap
from tests.conftest import pcap


@pytest.mark.parametrize(
    ("name", "side", "count"),
    [("pgsql_extended_query.pcap", "request", 3), ("amqp091_publish_consume.pcap", "response", 2)],
)
def test_password_fields_redacted(name: str, side: str, count: int) -> None:
    path = pcap(name)
    plain = [
        getattr(e, side)["password"]
        for e in read_pcap(path, PipelineSettings())
        if "password" in getattr(e, side)
    ]
    assert len(plain) == count and all(p != REDACTED for p in plain)
    out = list(read_pcap(path, PipelineSettings(redact=default_engine().apply)))
    with_pw = [e for e in out if "password" in getattr(e, side)]
    assert len(with_pw) == count
    for e in with_pw:
        assert getattr(e, side)["password"] == REDACTED
        assert f"{side}.password" in e.redacted
    blob = b"".join(entry_to_json(e) for e in out)
    users = {getattr(e, side).get("user") for e in out}
    for p in plain:
        if p not in users:  # AMQP's guest/guest: the user name stays, as it should
            assert p.encode() not in blob
