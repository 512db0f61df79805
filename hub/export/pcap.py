"""PCAP re-synthesized from stored entries with scapy.

Each HTTP/1.x entry becomes one TCP connection: handshake, the request and the response
in MSS-sized segments (each acknowledged), and a FIN exchange, at the entry's times.
The payloads are rebuilt from the stored, already-redacted fields: what the hub holds,
not the original bytes. Bodies are the decoded, possibly truncated text, so framing
headers (Content-Length, Transfer-Encoding, Content-Encoding) are rewritten to match.
DNS entries become a UDP query and answer. Other protocols are left out.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterable
from typing import Any

__all__ = ["entries_to_pcap"]

MSS = 1400
_FRAMING = frozenset({"content-length", "transfer-encoding", "content-encoding"})
_DNS_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
              "SRV": 33, "ANY": 255}  # fmt: skip
_RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5}


def _body(msg: dict[str, Any]) -> bytes:
    text = msg.get("body")
    if not isinstance(text, str) or not text:
        return b""
    if msg.get("body_encoding") == "base64":
        try:
            return base64.b64decode(text)
        except ValueError:
            pass
    return text.encode("utf-8", "surrogatepass")


def _headers(msg: dict[str, Any], body: bytes, *, request: bool) -> bytes:
    lines = []
    for name, value in (msg.get("headers") or {}).items():
        if name.lower() in _FRAMING or name.startswith(":"):
            continue
        for v in str(value).split("\n") if name == "set-cookie" else [str(value)]:
            lines.append(f"{name}: {v}".replace("\r", " ").replace("\n", " "))
    if body or not request:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" if lines else "\r\n").encode("utf-8", "replace")


def http_request_bytes(req: dict[str, Any]) -> bytes:
    method = str(req.get("method") or "GET")
    path = str(req.get("path") or "/")
    query = req.get("query") or ""
    target = f"{path}?{query}" if query else path
    version = str(req.get("version") or "HTTP/1.1")
    body = _body(req)
    line = f"{method} {target} {version}\r\n".encode("utf-8", "replace")
    return line + _headers(req, body, request=True) + body


def http_response_bytes(resp: dict[str, Any]) -> bytes:
    status = resp.get("status")
    code = status if isinstance(status, int) else 0
    version = str(resp.get("version") or "HTTP/1.1")
    reason = str(resp.get("reason") or "")
    body = _body(resp)
    line = f"{version} {code} {reason}\r\n".encode("utf-8", "replace")
    return line + _headers(resp, body, request=False) + body


def _ip_layer(src: str, dst: str) -> Any:
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    if ":" in src or ":" in dst:
        return IPv6(src=src, dst=dst)
    return IP(src=src, dst=dst)


def _isn(entry_id: str, side: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(entry_id.encode() + side, digest_size=4).digest())


def _tcp_exchange(entry: dict[str, Any]) -> list[Any]:
    from scapy.layers.inet import TCP
    from scapy.layers.l2 import Ether

    src, dst = entry["src"], entry["dst"]
    cip, sip = src.get("ip") or "10.0.0.1", dst.get("ip") or "10.0.0.2"
    cport, sport = src.get("port") or 40000, dst.get("port") or 80
    req = http_request_bytes(entry.get("request") or {})
    resp_msg = entry.get("response") or {}
    resp = http_response_bytes(resp_msg) if resp_msg else b""
    t0 = float(entry["ts"])
    elapsed = entry.get("elapsed")
    t1 = t0 + (float(elapsed) if isinstance(elapsed, int | float) else 0.0)
    c_seq, s_seq = _isn(entry["id"], b"c"), _isn(entry["id"], b"s")
    pkts: list[Any] = []

    def c2s(flags: str, payload: bytes, t: float) -> None:
        p = Ether() / _ip_layer(cip, sip) / TCP(sport=cport, dport=sport, flags=flags)
        p[TCP].seq, p[TCP].ack = c_seq, s_seq if "A" in flags else 0
        if payload:
            p = p / payload
        p.time = t
        pkts.append(p)

    def s2c(flags: str, payload: bytes, t: float) -> None:
        p = Ether() / _ip_layer(sip, cip) / TCP(sport=sport, dport=cport, flags=flags)
        p[TCP].seq, p[TCP].ack = s_seq, c_seq
        if payload:
            p = p / payload
        p.time = t
        pkts.append(p)

    hs = min(0.0001, max(t1 - t0, 0.0) / 10)
    c2s("S", b"", t0 - 3 * hs)
    c_seq += 1
    s2c("SA", b"", t0 - 2 * hs)
    s_seq += 1
    c2s("A", b"", t0 - hs)
    for i in range(0, len(req), MSS):
        chunk = req[i : i + MSS]
        c2s("PA", chunk, t0)
        c_seq += len(chunk)
    s2c("A", b"", t0)
    for i in range(0, len(resp), MSS):
        chunk = resp[i : i + MSS]
        s2c("PA", chunk, t1)
        s_seq += len(chunk)
    if resp:
        c2s("A", b"", t1)
    c2s("FA", b"", t1)
    c_seq += 1
    s2c("FA", b"", t1)
    s_seq += 1
    c2s("A", b"", t1)
    return pkts


def _dns_exchange(entry: dict[str, Any]) -> list[Any]:
    from scapy.layers.dns import DNS, DNSQR, DNSRR
    from scapy.layers.inet import UDP
    from scapy.layers.l2 import Ether

    req = entry.get("request") or {}
    resp = entry.get("response") or {}
    name = str(req.get("name") or "")
    if not name:
        return []
    qtype = _DNS_TYPES.get(str(req.get("type") or "A"), 1)
    txid = req.get("id") if isinstance(req.get("id"), int) else 0
    src, dst = entry["src"], entry["dst"]
    cport, sport = src.get("port") or 53000, dst.get("port") or 53
    qd = DNSQR(qname=name, qtype=qtype)
    q = Ether() / _ip_layer(src["ip"], dst["ip"]) / UDP(sport=cport, dport=sport)
    q = q / DNS(id=txid, rd=1, qd=qd)
    q.time = float(entry["ts"])
    pkts = [q]
    if resp:
        answers = []
        for a in resp.get("answers") or []:
            atype = _DNS_TYPES.get(str(a.get("type") or ""))
            if atype not in (1, 28, 5, 2, 12, 16):
                continue
            answers.append(
                DNSRR(
                    rrname=a.get("name") or name,
                    type=atype,
                    ttl=int(a.get("ttl") or 0),
                    rdata=str(a.get("data") or ""),
                )  # fmt: skip
            )
        rcode = _RCODES.get(str(resp.get("rcode") or "NOERROR"), 0)
        dns = DNS(id=txid, qr=1, rd=1, ra=1, rcode=rcode, qd=qd)
        if answers:
            an = answers[0]
            for extra in answers[1:]:
                an = an / extra
            dns.an = an
        r = Ether() / _ip_layer(dst["ip"], src["ip"]) / UDP(sport=sport, dport=cport) / dns
        elapsed = entry.get("elapsed")
        r.time = float(entry["ts"]) + (float(elapsed) if isinstance(elapsed, int | float) else 0)
        pkts.append(r)
    return pkts


def entries_to_pcap(entries: Iterable[dict[str, Any]]) -> tuple[bytes, int]:
    """The HTTP/1.x and DNS entries (Entry JSON dicts with bodies) as a pcap file;
    returns the bytes and how many entries were written."""
    from scapy.utils import PcapWriter

    buf = io.BytesIO()
    writer = PcapWriter(buf, linktype=1, sync=True)
    n = 0
    for e in entries:
        proto = e.get("proto")
        if proto == "http":
            pkts = _tcp_exchange(e)
        elif proto == "dns":
            pkts = _dns_exchange(e)
        else:
            continue
        for p in pkts:
            writer.write(p)
        n += 1
    if n == 0:
        writer.write_header(None)
    data = buf.getvalue()
    return data, n
