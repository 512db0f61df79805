"""A real hub for sniffer tests: ``hub.main.create_app`` under uvicorn in a subprocess.

A subprocess, so a test can SIGKILL it mid-load and start it again on the same port and
DuckDB file (a kill, not a graceful shutdown). TLS with a throwaway CA made here. Counts
and entries are read back through the hub's own API with an admin viewer token.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["HubProcess", "make_tls"]

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "test-admin-token"
INGEST_TOKEN = "test-ingest-token"


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost: (ca, cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeweir test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeweir-hub")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = (directory / "ca.pem", directory / "hub.pem", directory / "hub.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class HubProcess:
    """The hub on 127.0.0.1 over TLS, with a DuckDB file that outlives restarts."""

    def __init__(self, workdir: Path, **settings: Any) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.ca, self.cert, self.key = make_tls(workdir / "tls")
        self.port = _free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.settings: dict[str, Any] = {
            "db": str(workdir / "hub.duckdb"),
            "ingest_token": INGEST_TOKEN,
            "secret_key": "test-secret",
            "retention_max_age": None,
            "retention_max_bytes": None,
            "viewer_tokens": {
                ADMIN_TOKEN: {"name": "admin", "namespaces": ["*"], "permissions": ["admin"]}
            },
            **settings,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "hub.log"

    def start(self, timeout: float = 30.0) -> HubProcess:
        cfg = self.workdir / "hub-settings.json"
        cfg.write_text(json.dumps(self.settings))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sniffer.testing.hub_main", str(cfg), str(self.port),
                 str(self.cert), str(self.key)],
                cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited ({self.proc.returncode}): {self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.client().get("/healthz").status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"hub did not come up in {timeout}s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            verify=ssl.create_default_context(cafile=str(self.ca)),
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )

    def entries(self, q: str = "", limit: int = 1000) -> list[dict[str, Any]]:
        """Every entry matching ``q`` (newest first), following cursors."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        with self.client() as c:
            while True:
                params: dict[str, Any] = {"q": q, "limit": limit, "from": 0}
                if cursor:
                    params["cursor"] = cursor
                r = c.get("/api/v1/entries", params=params)
                r.raise_for_status()
                data = r.json()
                out.extend(data["entries"])
                cursor = data.get("next_cursor")
                if not cursor:
                    return out

    def total(self, q: str = "") -> int:
        with self.client() as c:
            r = c.get("/api/v1/stats", params={"q": q, "from": 0})
            r.raise_for_status()
            total: int = r.json()["total"]
            return total

    def status(self) -> dict[str, Any]:
        with self.client() as c:
            r = c.get("/api/v1/status")
            r.raise_for_status()
            result: dict[str, Any] = r.json()
            return result
