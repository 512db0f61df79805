"""`kubeweir read --jobs N`: the same entries and counters as one process, whatever N;
damage, worker failures, a closed stdout and Ctrl-C handled without orphans."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from scapy.layers.dns import DNS, DNSQR, DNSRR

from kubeweir import pcapgen as g
from kubeweir.entry import Entry
from sniffer import read_jobs
from sniffer.capture import open_capture
from sniffer.pipeline import FlowShare, Pipeline, PipelineSettings
from sniffer.read_cmd import read
from sniffer.read_jobs import CpuWatch, WorkerFailed, auto_jobs, idle_cpus, read_with_jobs
from tests.conftest import pcap

SHARED = [
    "http1_keepalive_37req_split_header.pcapng",
    "http1_keepalive_gzip.pcap",
    "http1_keepalive_lost_segments.pcap",
    "http1_chunked_gzip_no_syn.pcap",
    "http1_post_json_101_port2375.pcap",
    "redis_large_reply.pcap",
    "h2c_post_json_port29518.pcapng",
    "mqtt311_large_publish_ipv6.pcap",
    "dns_udp_mixed_qtypes.pcap",
    "dns_tcp_20_queries_one_segment.pcap",
]


def _mixed(path: Path) -> Path:
    """Eleven HTTP connections (IPv4, IPv6, one IP-fragmented, one picked up mid-stream)
    interleaved in time, and DNS over UDP from five client ports."""
    pkts: list[Any] = []
    for i in range(8):
        pkts += g.http_conversation(
            3 + i % 3, client=("10.0.0.1", 40000 + i), t0=g.T0 + i * 0.0003, step=0.002
        )
    pkts += g.http_conversation(4, ipv6=True, t0=g.T0 + 0.0011, step=0.002)
    pkts += g.fragment_packets(
        g.http_conversation(2, client=("10.0.0.7", 41000), chunked_gzip=True, t0=g.T0 + 0.0017),
        120,
    )
    pkts += g.midstream(g.http_conversation(4, client=("10.0.0.8", 42000), t0=g.T0 + 0.0019), 5)
    for i in range(5):
        q = DNS(id=100 + i, rd=1, qd=DNSQR(qname=f"svc{i}.example.", qtype="A"))
        a = DNS(id=100 + i, qr=1, qd=q.qd, an=DNSRR(rrname=f"svc{i}.example.", rdata="10.9.0.1"))
        pkts += g.udp_exchange(
            [("c", bytes(q)), ("s", bytes(a))],
            client=("10.0.0.1", 53000 + i),
            t0=g.T0 + 0.0005 * i,
        )
    pkts.sort(key=lambda p: float(p.time))
    return g.write_pcap(path, pkts)


def _run(path: Path, *args: str) -> tuple[int, list[str], str]:
    r = CliRunner().invoke(read, [str(path), "--no-redact", *args])
    return r.exit_code, r.stdout.splitlines(), r.stderr


def _counters(stderr: str) -> str:
    line = [ln for ln in stderr.splitlines() if "packets" in ln][-1]
    return re.sub(r"\s+\(\d+\.\d+ s[^)]*\)$", "", line)


def _check_same(path: Path, jobs: tuple[int, ...] = (2, 3)) -> list[str]:
    code, one, err1 = _run(path, "--jobs", "1")
    assert code == 0, err1
    assert one
    by_stream = _per_stream(one)
    for n in jobs:
        code, many, err = _run(path, "--jobs", str(n))
        assert code == 0, err
        assert sorted(many) == sorted(one), f"--jobs {n}"
        assert _per_stream(many) == by_stream  # a connection's entries keep their order
        assert _counters(err) == _counters(err1), f"--jobs {n}"
        assert f"jobs {n}, peak RSS summed" in err
    return one


def _per_stream(lines: list[str]) -> dict[tuple[Any, ...], list[str]]:
    """Lines by connection (the endpoints: generated captures reuse ISNs, so `stream`
    alone does not tell connections apart)."""
    out: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for ln in lines:
        e = json.loads(ln)
        out[(e["src"]["ip"], e["src"]["port"], e["dst"]["ip"], e["dst"]["port"])].append(ln)
    return dict(out)


@pytest.mark.parametrize("name", SHARED)
def test_shared_captures_same_entries_and_counters(name: str) -> None:
    _check_same(pcap(name))


def test_generated_mixed_capture(tmp_path: Path) -> None:
    one = _check_same(_mixed(tmp_path / "mixed.pcap"), jobs=(2, 3, 5))
    protos = {json.loads(ln)["proto"] for ln in one}
    assert {"http", "dns"} <= protos
    assert len(one) >= 40


def test_benchmark_capture_and_table_format(tmp_path: Path) -> None:
    p = g.write_http_benchmark(tmp_path / "b.pcap", 600, connections=5)
    _check_same(p)
    code, t1, _ = _run(p, "--jobs", "1", "--format", "table")
    code2, t2, _ = _run(p, "--jobs", "2", "--format", "table")
    assert code == code2 == 0
    assert t2[0] == t1[0] and t1[0].startswith("TIME (UTC)")  # one header, first
    assert sorted(t2[1:]) == sorted(t1[1:]) and len(t1) == 601


def test_flow_share_is_symmetric_and_total() -> None:
    shares = [FlowShare(i, 3) for i in range(3)]
    flows = [
        (bytes([10, 0, i >> 8, i & 255]), bytes([10, 1, 0, 1]), 30000 + i, 80)
        for i in range(FlowShare.ROUND_ROBIN + 300)
    ]
    count = [0, 0, 0]
    for src, dst, sp, dp in flows:
        fwd = (6, src, dst, sp, dp)
        rev = (6, dst, src, dp, sp)
        owners = [i for i, s in enumerate(shares) if s.owns(fwd)]
        assert len(owners) == 1
        assert [i for i, s in enumerate(shares) if s.owns(rev)] == owners
        count[owners[0]] += 1
    assert max(count) - min(count) < 0.1 * len(flows)  # dealt evenly, then hashed
    # the first flows are dealt round-robin by first appearance
    assert [FlowShare(0, 2).owner(*f) for f in flows[:1]] == [0]
    with pytest.raises(ValueError):
        FlowShare(2, 2)


def test_auto_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = g.write_pcap(tmp_path / "s.pcap", g.http_conversation(1))
    assert auto_jobs(str(small)) == 1
    assert auto_jobs(str(tmp_path / "missing")) == 1
    big = tmp_path / "big.pcap"
    big.write_bytes(small.read_bytes() + b"\0" * (5 << 20))
    cpus = len(os.sched_getaffinity(0))
    idle = idle_cpus(0.02)
    assert idle is not None and 0 <= idle <= os.cpu_count()  # type: ignore[operator]
    monkeypatch.setattr(read_jobs, "idle_cpus", lambda: 64.0)
    assert auto_jobs(str(big)) == (1 if cpus < 2 else min(cpus, 4))
    monkeypatch.setattr(read_jobs, "idle_cpus", lambda: 0.4)  # a busy machine
    assert auto_jobs(str(big)) == 1
    monkeypatch.setattr(read_jobs, "idle_cpus", lambda: 1.1)  # one CPU and a bit
    assert auto_jobs(str(big)) == 1
    monkeypatch.setattr(read_jobs, "idle_cpus", lambda: 1.3)
    assert auto_jobs(str(big)) == min(cpus, 2)
    monkeypatch.setattr(read_jobs, "idle_cpus", lambda: None)  # no /proc/stat
    assert auto_jobs(str(big)) == (1 if cpus < 2 else min(cpus, 4))

    code, _, err = _run(small, "--jobs", "0")
    assert code == 2 and "--jobs" in err
    code, _, err = _run(small, "--jobs", "two")
    assert code == 2 and "--jobs" in err
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert auto_jobs(str(fifo)) == 1
    code, _, err = _run(fifo, "--jobs", "2")
    assert code == 2 and "not a regular file" in err


class _Watch:
    def __init__(self, free: float) -> None:
        self.free = free

    def available(self) -> float:
        return self.free


def test_cpu_watch_counts_its_own_busy_cpu(tmp_path: Path) -> None:
    w = CpuWatch()
    t = time.process_time()
    while time.process_time() - t < 0.08:  # set-up work keeps this CPU busy
        pass
    free = w.available()
    # its own busy share counts as free (however loaded the machine, it had some of it)
    assert free is not None and 0 < free <= (os.cpu_count() or 1) + 1
    big = tmp_path / "big.pcap"
    big.write_bytes(g.write_pcap(tmp_path / "s.pcap", g.http_conversation(1)).read_bytes())
    with big.open("ab") as f:
        f.write(b"\0" * (5 << 20))
    cpus = len(os.sched_getaffinity(0))
    assert auto_jobs(str(big), _Watch(0.9)) == 1  # type: ignore[arg-type]
    assert auto_jobs(str(big), _Watch(1.3)) == min(cpus, 2)  # type: ignore[arg-type]


def test_truncated_and_damaged_files_same_messages(tmp_path: Path) -> None:
    p = g.write_http_benchmark(tmp_path / "b.pcap", 200, connections=3)
    data = p.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2 + 37])
    bad = tmp_path / "bad.pcap"  # a corrupt record header in the middle, then more records
    mid = bytearray(data)
    pos = 24
    while pos < len(data) // 3:  # walk the records to one a third of the way in
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    mid[pos : pos + 16] = b"\xff" * 16
    bad.write_bytes(bytes(mid))
    for f in (cut, bad):
        code1, one, err1 = _run(f, "--jobs", "1")
        code2, two, err2 = _run(f, "--jobs", "2")
        assert code1 == code2 == 0
        assert sorted(one) == sorted(two) and one
        damage1 = [ln for ln in err1.splitlines() if "byte offset" in ln]
        damage2 = [ln for ln in err2.splitlines() if "byte offset" in ln]
        assert damage1 and damage1 == damage2
        assert _counters(err1) == _counters(err2)
    nothing = tmp_path / "nothing.pcap"
    nothing.write_bytes(data[:24] + b"\x01\x02\x03\x00" * 30)
    for n in ("1", "2"):
        code, out, err = _run(nothing, "--jobs", n)
        assert code == 1 and not out and "nothing could be read" in err
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all" * 10)
    code, _, err = _run(junk, "--jobs", "2")
    assert code == 2 and "not a pcap or pcapng file" in err


def test_worker_failure_surfaces_and_loses_no_other_output(tmp_path: Path) -> None:
    p = g.write_http_benchmark(tmp_path / "b.pcap", 300, connections=4)
    ids_all = {e.id for e in _entries(p)}

    def write(entries: Iterator[Entry], sink: Any) -> None:
        for n, e in enumerate(entries):
            sink.write(e.id.encode() + b"\n")
            if n == 20 and e.src.port % 2:  # the worker owning odd client ports breaks
                raise RuntimeError("boom")
        sink.flush()

    out = tmp_path / "out"
    with out.open("wb") as f, pytest.raises(WorkerFailed, match="worker 1 of 2: .*boom"):
        read_with_jobs(str(p), PipelineSettings(), 2, write, f)
    got = out.read_bytes().decode().split()
    assert len(got) == len(set(got)) and set(got) <= ids_all
    # worker 0's whole share (2 of the 4 connections) and the 21 lines worker 1 wrote
    assert len(got) == 150 + 21


def _entries(p: Path) -> list[Entry]:
    pipe = Pipeline(PipelineSettings())
    with open_capture(p) as r:
        return list(pipe.run(r))


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/proc/{p}") and _state(p) != "Z" for p in pids):
            return True
        time.sleep(0.05)
    return False


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


def _cmd(p: Path) -> list[str]:
    return [sys.executable, "-m", "kubeweir", "read", "--no-redact", "--jobs", "2", str(p)]


def test_closed_stdout_stops_the_workers(tmp_path: Path) -> None:
    p = g.write_http_benchmark(tmp_path / "b.pcap", 3000, connections=4)
    proc = subprocess.Popen(_cmd(p), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert json.loads(first)["proto"] == "http"
    kids: list[int] = []
    deadline = time.monotonic() + 10
    while not kids and time.monotonic() < deadline and proc.poll() is None:
        kids = _children(proc.pid)
    proc.stdout.close()  # like `| head -1`
    assert proc.wait(20) == 0
    assert _gone(kids)


def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    p = g.write_http_benchmark(tmp_path / "b.pcap", 3000, connections=4)
    proc = subprocess.Popen(
        _cmd(p), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # running; nobody reads on, so the pipes fill and it waits
    kids = _children(proc.pid)
    assert kids
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the whole group
    _, err = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert b"Traceback" not in err, err.decode()
    assert _gone(kids)


def test_killed_parent_leaves_no_worker(tmp_path: Path) -> None:
    p = g.write_http_benchmark(tmp_path / "b.pcap", 3000, connections=4)
    proc = subprocess.Popen(_cmd(p), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.readline()  # running, and blocked on the full pipe
    kids = _children(proc.pid)
    assert kids
    proc.kill()
    proc.wait(10)
    proc.stdout.close()
    assert _gone(kids)


def test_entry_that_fails_to_encode_leaves_no_partial_line(tmp_path: Path) -> None:
    """An entry msgspec can't encode (a lone surrogate from a buggy parser or rule) fails
    its worker; the lines already out stay whole: no half-encoded line (and none of the
    encoder's spare buffer bytes) runs into another worker's output."""
    import msgspec

    from sniffer.read_cmd import _write_all

    p = g.write_http_benchmark(tmp_path / "b.pcap", 300, connections=4)
    seen: dict[int, int] = defaultdict(int)

    def redact(e: Entry) -> Entry:
        seen[e.src.port] += 1
        if e.src.port % 2 and seen[e.src.port] == 21:
            return msgspec.structs.replace(e, summary="bad \udcff")
        return e

    def write(entries: Iterator[Entry], sink: Any) -> None:
        _write_all(entries, sink, "ndjson", False, header=False)

    out = tmp_path / "out"
    with out.open("wb") as f, pytest.raises(WorkerFailed, match="worker 1 of 2: .*surrogate"):
        read_with_jobs(str(p), PipelineSettings(redact=redact), 2, write, f)
    data = out.read_bytes()
    assert data.endswith(b"\n")
    lines = data.splitlines()
    assert all(json.loads(ln)["proto"] == "http" for ln in lines)
    # worker 0's share (2 of the 4 connections), and worker 1's entries before the bad one
    odd = [e.src.port for e in _entries(p) if e.src.port % 2]
    count: dict[int, int] = defaultdict(int)
    before = 0
    for port in odd:
        count[port] += 1
        if count[port] == 21:
            break
        before += 1
    assert len(lines) == 150 + before and before >= 20
