"""Helpers of the TLS capture tests (and the benchmark): the HTTPS server pod, an entry sink."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeweir.entry import Entry, entry_to_builtins
from sniffer.testing.hub import make_tls
from sniffer.testing.node import Pod

SERVER = Path(__file__).with_name("https_server.py")
PORT = 8443


def https_server(pod: Pod, tmp: Path, port: int = PORT) -> Any:
    _, cert, key = make_tls(tmp / f"tls-{pod.name}")
    proc = pod.popen(sys.executable, str(SERVER), str(port), str(cert), str(key))
    pod.wait_port(port)
    return proc


@dataclass
class Sink:
    """Entries handed over by a TlsCapture (from its thread)."""

    entries: list[Entry] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, batch: list[Entry]) -> None:
        with self.lock:
            self.entries.extend(batch)

    def by_path(self, prefix: str) -> list[dict[str, Any]]:
        with self.lock:
            got = list(self.entries)
        return [
            entry_to_builtins(e) for e in got if str(e.request.get("path", "")).startswith(prefix)
        ]
