"""The shipper against a real hub over TLS: delivery, outage, restart, refusal, tokens."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubeweir.entry import Endpoint, Entry, tcp_entry_id
from sniffer.shipper import Shipper, ShipperConfig, TokenSource
from sniffer.spool import Spool, SpooledBatch
from sniffer.testing.hub import INGEST_TOKEN, HubProcess


def _entries(n: int, start: int = 0) -> list[Entry]:
    return [
        Entry(
            id=tcp_entry_id(1000 + i, 2000 + i, 40000, 0),
            ts=time.time(),
            proto="http",
            src=Endpoint(ip="10.244.1.2", port=40000, pod="cli", namespace="shop"),
            dst=Endpoint(ip="10.244.1.3", port=8080, pod="web", namespace="shop"),
            request={"method": "GET", "path": f"/call/{i}"},
            response={"status": 200},
            summary=f"GET /call/{i} → 200",
        )
        for i in range(start, start + n)
    ]


def _wait(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    h = HubProcess(tmp_path / "hub").start()
    yield h
    h.kill()


def _shipper(hub: HubProcess, spool_dir: Path, **kw: object) -> Shipper:
    cfg = ShipperConfig(hub_url=hub.url, node="node-a", ca_file=hub.ca, max_batch_age=0.1,
                        backoff_min=0.05, backoff_max=0.5, **kw)  # type: ignore[arg-type]  # fmt: skip
    return Shipper(cfg, Spool(spool_dir), TokenSource(INGEST_TOKEN))


def test_delivers_in_bounded_batches(hub: HubProcess, tmp_path: Path) -> None:
    s = _shipper(hub, tmp_path / "spool", max_batch_entries=40).start()
    try:
        s.add(_entries(100))
        _wait(lambda: s.entries_sent == 100)
        assert s.batches_sent >= 3  # 100 entries in batches of at most 40
        assert hub.total() == 100
        assert len(s.spool) == 0 and s.latencies
    finally:
        s.stop()


def test_hub_outage_loses_nothing_and_resends_dedupe(hub: HubProcess, tmp_path: Path) -> None:
    s = _shipper(hub, tmp_path / "spool").start()
    try:
        s.add(_entries(50))
        _wait(lambda: s.entries_sent == 50)
        hub.kill()
        s.add(_entries(50, start=50))
        _wait(lambda: s.send_errors >= 2)
        assert s.spool.pending_entries == 50  # kept on disk while the hub is down
        hub.start()
        _wait(lambda: s.entries_sent == 100)
        s.add(_entries(100))  # a resend of everything: stored once
        _wait(lambda: s.entries_sent == 200)
        assert hub.total() == 100
        assert s.entries_duplicate == 100
    finally:
        s.stop()


def test_restart_resumes_the_spool(hub: HubProcess, tmp_path: Path) -> None:
    hub.kill()
    s = _shipper(hub, tmp_path / "spool").start()
    s.add(_entries(30))
    s.stop(drain_timeout=0.5)  # hub down: the batch stays spooled
    assert Spool(tmp_path / "spool").pending_entries == 30
    hub.start()
    again = _shipper(hub, tmp_path / "spool").start()
    try:
        _wait(lambda: again.entries_sent == 30)
        assert hub.total() == 30
    finally:
        again.stop()


def test_bad_credential_keeps_batches(hub: HubProcess, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("wrong")
    cfg = ShipperConfig(hub_url=hub.url, node="node-a", ca_file=hub.ca, max_batch_age=0.05,
                        backoff_min=0.05, backoff_max=0.2)  # fmt: skip
    s = Shipper(cfg, Spool(tmp_path / "spool"), TokenSource(path=token_file)).start()
    try:
        s.add(_entries(10))
        _wait(lambda: s.send_errors >= 2)
        assert ("401" in s.last_error or "403" in s.last_error) and s.spool.pending_entries == 10
        token_file.write_text(INGEST_TOKEN + "\n")  # rotated: re-read
        _wait(lambda: s.entries_sent == 10)
        assert hub.total() == 10
    finally:
        s.stop()


def test_refused_batch_is_dropped_loudly(hub: HubProcess, tmp_path: Path) -> None:
    s = _shipper(hub, tmp_path / "spool").start()
    try:
        s.spool.put(b"not a zstd batch", 7)
        _wait(lambda: s.spool.evicted_entries == 7)
        s.add(_entries(5))
        _wait(lambda: s.entries_sent == 5)  # the spool is not blocked behind it
    finally:
        s.stop()


def test_wrong_ca_is_refused(hub: HubProcess, tmp_path: Path) -> None:
    from sniffer.testing.hub import make_tls

    other_ca = make_tls(tmp_path / "other")[0]
    cfg = ShipperConfig(hub_url=hub.url, node="n", ca_file=other_ca, max_batch_age=0.05,
                        backoff_min=0.05, backoff_max=0.2)  # fmt: skip
    s = Shipper(cfg, Spool(tmp_path / "spool"), TokenSource(INGEST_TOKEN)).start()
    try:
        s.add(_entries(3))
        _wait(lambda: s.send_errors >= 1)
        assert "CERTIFICATE_VERIFY_FAILED" in s.last_error
        assert s.spool.pending_entries == 3
    finally:
        s.stop(drain_timeout=0.2)


def test_batches_are_bounded_in_bytes(tmp_path: Path) -> None:
    cfg = ShipperConfig(hub_url="https://127.0.0.1:9", max_batch_entries=1000,
                        max_batch_bytes=4000)  # fmt: skip
    s = Shipper(cfg, Spool(tmp_path / "spool"), TokenSource("t"))
    big = _entries(10)
    for e in big:
        e.request["body"] = "x" * 1500
    s.add(big)
    sizes = []
    while s.queued:
        sizes.append(len(s._cut()[0]))
    assert sum(sizes) == 10 and max(sizes) == 2  # two 1.5 KB entries fit in 4 KB, not three
    s._client.close()


def test_full_queue_drops_new_entries_counted(tmp_path: Path) -> None:
    cfg = ShipperConfig(hub_url="https://127.0.0.1:9", max_queue=5)
    s = Shipper(cfg, Spool(tmp_path / "spool"), TokenSource("t"))
    s.add(_entries(8))
    assert s.queued == 5 and s.entries_dropped_queue == 3
    s._client.close()


def test_sealed_body_is_the_standard_batch_encoding(tmp_path: Path) -> None:
    import msgspec
    import zstandard

    from kubeweir.entry import encode_batch

    cfg = ShipperConfig(hub_url="https://127.0.0.1:9", node="node-a", max_batch_entries=20)
    s = Shipper(cfg, Spool(tmp_path / "spool"), TokenSource("t"))
    for n in (1, 15, 16, 20):  # msgpack fixarray and array16 headers
        s.add(_entries(n))
        batch, encoded = s._cut()
        body = zstandard.ZstdDecompressor().decompress(s._seal(encoded))
        assert body == encode_batch(batch, sniffer="node-a")
        assert body == zstandard.ZstdDecompressor().decompress(s._encode(batch))
        assert msgspec.msgpack.decode(body)["entries"][0]["id"] == batch[0].id
    s._client.close()


def test_spool_write_error_keeps_the_entries(tmp_path: Path) -> None:
    """A batch the spool cannot write (disk full) goes back to the queue: sealed once
    the disk takes it again, not lost uncounted."""

    class FailingOnce(Spool):
        failed = False

        def put(self, body: bytes, entries: int) -> SpooledBatch:
            if not self.failed:
                self.failed = True
                raise OSError(28, "No space left on device")
            return super().put(body, entries)

    cfg = ShipperConfig(hub_url="https://127.0.0.1:9", max_batch_age=0.05, senders=1,
                        backoff_min=5.0, backoff_max=5.0)  # fmt: skip
    spool = FailingOnce(tmp_path / "spool")
    s = Shipper(cfg, spool, TokenSource("t")).start()
    try:
        s.add(_entries(10))
        _wait(lambda: spool.failed and spool.pending_entries == 10, timeout=5.0)
        assert s.entries_dropped_queue == 0
    finally:
        s.stop(drain_timeout=0.1)


def test_sender_survives_a_spool_error_while_splitting(tmp_path: Path) -> None:
    """A batch the hub finds too large is split into the spool; a write error there
    (disk full) is a failed try, not the end of the sender thread."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    stored: list[int] = []

    class Hub(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            import zstandard

            from kubeweir.entry import decode_batch

            n = len(decode_batch(zstandard.ZstdDecompressor().decompress(body)).entries)
            code, answer = (413, b"too large") if n > 2 else (200, b"")
            if code == 200:
                stored.append(n)
                answer = json.dumps({"accepted": n, "duplicates": 0}).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    class FailingSplit(Spool):
        failed = False

        def put(self, body: bytes, entries: int) -> SpooledBatch:
            if threading.current_thread().name.startswith("sender") and not self.failed:
                self.failed = True
                raise OSError(28, "No space left on device")
            return super().put(body, entries)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = ShipperConfig(hub_url=f"http://127.0.0.1:{server.server_address[1]}",
                        max_batch_age=0.05, senders=1, backoff_min=0.05,
                        backoff_max=0.1)  # fmt: skip
    spool = FailingSplit(tmp_path / "spool")
    s = Shipper(cfg, spool, TokenSource("t")).start()
    try:
        s.add(_entries(4))
        # the hub counts a batch before it answers; the sender forgets it once answered
        _wait(lambda: sum(stored) == 4 and len(spool) == 0, timeout=10.0)
        assert spool.failed and s.send_errors >= 1 and sum(stored) == 4
    finally:
        s.stop(drain_timeout=0.1)
        server.shutdown()
        server.server_close()
