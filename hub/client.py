"""A small client of the hub's HTTP API: ship entries, page through queries, export.

Used by ``kubeweir read --to-hub``, ``kubeweir query``, ``kubeweir export`` and
``kubeweir login``; the sniffer's own shipper (spool, retries) lives in ``sniffer/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import zstandard

from kubeweir.entry import Entry, encode_batch

__all__ = [
    "HubClient",
    "HubError",
    "ShipResult",
    "config_dir",
    "resolve_token",
    "saved_hub",
    "ship",
]


class HubError(Exception):
    """The hub refused a request; ``status`` and ``detail`` say why."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status, self.detail = status, detail
        if isinstance(detail, dict) and "message" in detail:
            text = f"{detail['message']} (at {detail.get('position', 0)})"
            if detail.get("hint"):
                text += f"; {detail['hint']}"
        else:
            text = str(detail)
        super().__init__(f"hub answered {status}: {text}")


@dataclass(frozen=True, slots=True)
class ShipResult:
    accepted: int
    duplicates: int
    batches: int


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kubeweir"


def resolve_token(token: str | None) -> str | None:
    """``--token``, else ``$KUBEWEIR_TOKEN``, else the file ``kubeweir login`` wrote."""
    if token:
        return token
    env = os.environ.get("KUBEWEIR_TOKEN")
    if env:
        return env
    path = config_dir() / "token"
    if path.is_file():
        return path.read_text().strip() or None
    return None


def saved_hub() -> str | None:
    path = config_dir() / "hub"
    return path.read_text().strip() or None if path.is_file() else None


def _raise_for(r: httpx.Response) -> None:
    if r.status_code < 400:
        return
    try:
        detail = r.json().get("detail", r.text)
    except ValueError:
        detail = r.text
    raise HubError(r.status_code, detail)


class HubClient:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        verify: bool | str = True,
        timeout: float = 60.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, verify=verify, timeout=timeout
        )

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def get_json(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params={k: v for k, v in params.items() if v is not None})
        _raise_for(r)
        return r.json()

    def whoami(self) -> dict[str, Any]:
        out: dict[str, Any] = self.get_json("/api/v1/whoami")
        return out

    def entries(
        self,
        q: str = "",
        *,
        start: str | None = None,
        end: str | None = None,
        limit: int | None = None,
        page: int = 500,
    ) -> Iterator[dict[str, Any]]:
        """Matching entries newest first, following cursors until ``limit``."""
        cursor = None
        left = limit
        while left is None or left > 0:
            n = page if left is None else min(page, left)
            body = self.get_json(
                "/api/v1/entries", q=q, limit=n, cursor=cursor, **{"from": start, "to": end}
            )
            yield from body["entries"]
            if left is not None:
                left -= len(body["entries"])
            cursor = body.get("next_cursor")
            if not cursor or not body["entries"]:
                return

    def export(self, kind: str, q: str = "", **params: Any) -> bytes:
        r = self.http.get(
            f"/api/v1/export.{kind}",
            params={"q": q, **{k: v for k, v in params.items() if v is not None}},
        )
        _raise_for(r)
        return r.content

    def ingest(self, entries: list[Entry], sniffer: str = "") -> dict[str, int]:
        body = zstandard.ZstdCompressor(level=3).compress(encode_batch(entries, sniffer))
        r = self.http.post(
            "/api/v1/ingest",
            content=body,
            headers={"Content-Encoding": "zstd", "Content-Type": "application/msgpack"},
        )
        if r.status_code == 413 and len(entries) > 1:
            half = len(entries) // 2
            a = self.ingest(entries[:half], sniffer)
            b = self.ingest(entries[half:], sniffer)
            return {k: a[k] + b[k] for k in ("accepted", "duplicates")}
        _raise_for(r)
        out: dict[str, int] = r.json()
        return out


def ship(
    entries: Iterable[Entry],
    url: str,
    token: str,
    *,
    batch_size: int = 1000,
    sniffer: str = "",
    verify: bool | str = True,
) -> ShipResult:
    """Send entries to a hub in zstd-compressed msgpack batches (halving a batch the hub
    finds too large). Raises ``HubError`` when the hub refuses a batch."""
    accepted = duplicates = batches = 0
    with HubClient(url, token, verify=verify) as client:
        batch: list[Entry] = []
        for e in entries:
            batch.append(e)
            if len(batch) >= batch_size:
                r = client.ingest(batch, sniffer)
                accepted, duplicates, batches = (
                    accepted + r["accepted"], duplicates + r["duplicates"], batches + 1
                )  # fmt: skip
                batch = []
        if batch:
            r = client.ingest(batch, sniffer)
            accepted, duplicates, batches = (
                accepted + r["accepted"], duplicates + r["duplicates"], batches + 1
            )  # fmt: skip
    return ShipResult(accepted, duplicates, batches)
