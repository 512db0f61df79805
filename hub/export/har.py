"""HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/) from HTTP-like entries, as
browsers' devtools import it. Entries of other protocols have no HAR form and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["HTTP_PROTOS", "entries_to_har"]

HTTP_PROTOS = frozenset({"http", "http2", "grpc"})


def _headers(msg: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for name, value in (msg.get("headers") or {}).items():
        # set-cookie values were joined with "\n" by the sniffer: one HAR header each
        for v in str(value).split("\n") if name == "set-cookie" else [str(value)]:
            out.append({"name": str(name), "value": v})
    return out


def _content_type(msg: dict[str, Any]) -> str:
    ct = msg.get("content_type") or (msg.get("headers") or {}).get("content-type") or ""
    return str(ct)


def _url(entry: dict[str, Any]) -> str:
    req = entry.get("request") or {}
    headers = req.get("headers") or {}
    dst = entry.get("dst") or {}
    host = req.get("host") or headers.get("host") or headers.get(":authority") or ""
    if not host:
        ip, port = dst.get("ip", ""), dst.get("port", 0)
        host = f"[{ip}]" if ":" in ip else ip
        if port:
            host += f":{port}"
    scheme = "https" if entry.get("tls") else "http"
    path = req.get("path") or "/"
    if entry.get("proto") == "grpc" and req.get("service") and path == "/":
        path = f"/{req['service']}/{req.get('rpc', '')}"
    query = req.get("query") or ""
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


def _http_version(msg: dict[str, Any], proto: str) -> str:
    v = msg.get("version")
    if v:
        return str(v)
    return "HTTP/2" if proto in ("http2", "grpc") else "HTTP/1.1"


def _har_entry(entry: dict[str, Any]) -> dict[str, Any]:
    req = entry.get("request") or {}
    resp = entry.get("response") or {}
    proto = entry.get("proto", "http")
    elapsed = entry.get("elapsed")
    ms = round(elapsed * 1000, 3) if isinstance(elapsed, int | float) else -1
    started = datetime.fromtimestamp(entry["ts"], UTC).isoformat(timespec="milliseconds")
    request: dict[str, Any] = {
        "method": str(req.get("method") or "GET"),
        "url": _url(entry),
        "httpVersion": _http_version(req, proto),
        "cookies": [],
        "headers": _headers(req),
        "queryString": [
            {"name": k, "value": v}
            for k, v in parse_qsl(str(req.get("query") or ""), keep_blank_values=True)
        ],
        "headersSize": -1,
        "bodySize": int(req.get("body_size") or 0),
    }
    if "body" in req:
        post: dict[str, Any] = {"mimeType": _content_type(req), "text": req["body"]}
        if req.get("body_encoding") == "base64":
            post["encoding"] = "base64"  # not in HAR 1.2 postData, but Chrome reads it
        request["postData"] = post
    content: dict[str, Any] = {
        "size": int(resp.get("body_size") or 0),
        "mimeType": _content_type(resp),
    }
    if "body" in resp:
        content["text"] = resp["body"]
        if resp.get("body_encoding") == "base64":
            content["encoding"] = "base64"
    status = resp.get("status")
    response = {
        "status": int(status) if isinstance(status, int) else 0,
        "statusText": str(resp.get("reason") or ""),
        "httpVersion": _http_version(resp, proto),
        "cookies": [],
        "headers": _headers(resp),
        "content": content,
        "redirectURL": str((resp.get("headers") or {}).get("location") or ""),
        "headersSize": -1,
        "bodySize": int(resp.get("body_size") or 0) if resp else -1,
    }
    dst = entry.get("dst") or {}
    return {
        "startedDateTime": started,
        "time": max(ms, 0),
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"send": 0, "wait": max(ms, 0), "receive": 0},
        "serverIPAddress": dst.get("ip", ""),
        "connection": str(entry.get("stream") or ""),
        "comment": str(entry.get("summary") or ""),
        "_kubeweir": {
            "id": entry["id"],
            "proto": proto,
            "src": entry.get("src"),
            "dst": dst,
            "redacted": entry.get("redacted") or [],
            "error": entry.get("error") or "",
        },
    }


def entries_to_har(entries: Iterable[dict[str, Any]], *, version: str = "0.1.0") -> dict[str, Any]:
    """A HAR log of the HTTP, HTTP/2 and gRPC entries (Entry JSON dicts), oldest first."""
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "kubeweir", "version": version},
            "entries": [_har_entry(e) for e in entries if e.get("proto") in HTTP_PROTOS],
        }
    }
