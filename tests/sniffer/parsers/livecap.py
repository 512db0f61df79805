"""Live captures for the protocol tests: a real server on loopback, its port captured
with tcpdump while a real client talks to it (bounded in time and size)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(
    port: int, timeout: float = 15.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def need(*tools: str) -> None:
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"{t} is not installed")
    if os.geteuid() != 0:
        pytest.skip("tcpdump on lo needs root")


@contextlib.contextmanager
def tcpdump(path: Path, port: int, timeout: float = 60.0) -> Iterator[Path]:
    """Capture ``tcp port {port}`` on lo into ``path`` for the duration of the block."""
    need("tcpdump")
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-s", "0", "-c", "200000",
         "-w", str(path), "tcp", "port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        os.set_blocking(proc.stderr.fileno(), False)
        deadline = time.monotonic() + 10
        seen = b""
        while b"listening on" not in seen:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tcpdump did not start: {seen!r}")
            chunk = proc.stderr.read()
            seen += chunk or b""
            time.sleep(0.02)
        time.sleep(0.5)
        yield path
        time.sleep(0.3)  # let the last segments reach the file
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), True)
    stats = proc.stderr.read().decode("utf-8", "replace")
    m = re.search(r"(\d+) packets? dropped by kernel", stats)
    if m and int(m.group(1)):
        pytest.skip(
            f"tcpdump dropped {m.group(1)} packets (machine under load): capture incomplete"
        )


@contextlib.contextmanager
def server(
    args: list[str],
    port: int,
    *,
    user: str | None = None,
    timeout: float = 20.0,
    cwd: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process until the block ends; wait for its port first."""
    if user is not None:
        args = ["runuser", "-u", user, "--", *args]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=cwd, start_new_session=True)  # fmt: skip
    try:
        wait_port(port, timeout, proc)
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
