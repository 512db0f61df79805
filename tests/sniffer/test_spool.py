"""The spool: durable, ordered, bounded (oldest evicted, counted), resumed after restart."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sniffer.spool import Spool


def test_put_oldest_ack_in_order(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool")
    a = s.put(b"first", 3)
    b = s.put(b"second", 2)
    assert len(s) == 2 and s.bytes == len(b"first") + len(b"second")
    assert s.pending_entries == 5
    got = s.oldest()
    assert got is not None and got == (a, b"first")
    s.ack(a)
    got = s.oldest()
    assert got is not None and got == (b, b"second")
    s.ack(b)
    assert s.oldest() is None and s.bytes == 0
    assert list((tmp_path / "spool").iterdir()) == []


def test_resumes_after_restart_and_ignores_partial_writes(tmp_path: Path) -> None:
    d = tmp_path / "spool"
    s = Spool(d)
    s.put(b"one", 1)
    s.put(b"two", 2)
    (d / ".0000000000000003-9.zst.tmp").write_bytes(b"half a batch")  # crash mid-write
    (d / "unrelated.txt").write_text("not ours")
    again = Spool(d)
    assert again.resumed == 2 and again.pending_entries == 3
    first = again.oldest()
    assert first is not None and first[1] == b"one"
    nxt = again.put(b"three", 3)
    assert nxt.seq == 3  # numbering continues after what was there
    assert not (d / ".0000000000000003-9.zst.tmp").exists()


def test_full_spool_evicts_oldest_with_counter_and_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = Spool(tmp_path / "spool", max_bytes=250)
    with caplog.at_level(logging.ERROR, logger="kubeweir.sniffer.spool"):
        for i in range(5):
            s.put(bytes([i]) * 100, 10)
    assert s.bytes <= 250 and len(s) == 2
    assert s.evicted_batches == 3 and s.evicted_entries == 30
    assert "spool full" in caplog.text
    got = s.oldest()
    assert got is not None and got[1] == bytes([3]) * 100  # the newest two are kept


def test_adopt_takes_over_another_spools_batches(tmp_path: Path) -> None:
    old = Spool(tmp_path / "spool" / "worker-3")
    old.put(b"left behind", 4)
    s = Spool(tmp_path / "spool")
    s.put(b"mine", 1)
    assert s.adopt(tmp_path / "spool" / "worker-3") == 1
    assert s.pending_entries == 5 and len(s) == 2
    assert list((tmp_path / "spool" / "worker-3").iterdir()) == []
    assert Spool(tmp_path / "spool").pending_entries == 5  # durable under the new names


def test_claim_hands_each_batch_to_one_sender_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    a = spool.put(b"a", 1)
    b = spool.put(b"b", 2)
    first = spool.claim()
    second = spool.claim()
    assert first is not None and second is not None
    assert (first[0].name, first[1]) == (a.name, b"a")
    assert (second[0].name, second[1]) == (b.name, b"b")
    assert spool.claim() is None  # both held
    spool.release(a)  # a failed POST gives it back: claimed again, still the oldest
    again = spool.claim()
    assert again is not None and again[0].name == a.name
    spool.ack(a)
    spool.ack(b)
    assert len(spool) == 0 and spool.claim() is None and spool.oldest() is None
