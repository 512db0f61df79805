"""Entries between workloads, as the sniffer and the hub's enrichment shape them."""

from __future__ import annotations

import json
import time
from typing import Any

from kubeweir.entry import Entry
from kubeweir.testing import make_endpoint, make_http_entry


def call(
    src: str,
    dst: str,
    *,
    path: str = "/api/orders",
    status: int = 200,
    ts: float | None = None,
    method: str = "GET",
    elapsed: float = 0.012,
    **fields: Any,
) -> Entry:
    """An HTTP call from ``src`` to ``dst``, each given as ``namespace/workload-name``."""
    s_ns, s_name = src.split("/")
    d_ns, d_name = dst.split("/")
    return make_http_entry(
        method,
        path,
        status,
        ts=time.time() if ts is None else ts,
        elapsed=elapsed,
        src=make_endpoint(
            "10.1.0.1",
            41000,
            namespace=s_ns,
            pod=f"{s_name}-6d8f9-abcde",
            workload=f"Deployment/{s_name}",
            node="node-1",
        ),
        dst=make_endpoint(
            "10.1.0.2",
            8080,
            namespace=d_ns,
            pod=f"{d_name}-5c7b4-xyz12",
            workload=f"Deployment/{d_name}",
            labels={"app": d_name},
            node="node-1",
        ),
        node="node-1",
        **fields,
    )


def secret_call(ts: float | None = None) -> Entry:
    """A POST whose credentials the node redacted (header and a JSON body field)."""
    body = json.dumps({"item": 7, "qty": 2, "card": "[REDACTED]"})
    return call(
        "shop/web",
        "pay/ledger",
        path="/api/charge?order=7",
        method="POST",
        status=201,
        ts=ts,
        request_headers={
            "host": "ledger.pay:8080",
            "authorization": "[REDACTED]",
            "content-type": "application/json",
        },
        request_body=body,
        response_headers={"content-type": "application/json"},
        response_body=json.dumps({"charged": True, "id": "ch_1"}),
        redacted=["request.headers.authorization", "request.body.card"],
        stream="stream-charge-1",
    )
