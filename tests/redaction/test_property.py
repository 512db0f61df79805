"""Property: a secret planted anywhere in generated traffic is in no output byte.

Two levels: generated entries through the engine (any header, query parameter, URL
path, JSON path, form field, text body), and generated HTTP/1.1 traffic through the real
capture path (pcapgen → ``read_pcap`` with redaction on), with gzip and chunked bodies.
The secrets are either values the patterns know (cards, JWTs, AWS keys, IBANs, e-mail
addresses, private keys, bearer tokens) or any value under a sensitive name.
"""

from __future__ import annotations

import base64
import gzip
import json
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeweir import pcapgen
from kubeweir.entry import Entry, encode_batch, entry_to_json
from kubeweir.testing import make_http_entry
from redaction import default_engine
from redaction._config import DEFAULT_FORM, DEFAULT_HEADERS, DEFAULT_JSON, DEFAULT_QUERY
from sniffer.pipeline import PipelineSettings, read_pcap

ENGINE = default_engine()
ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Secret:
    planted: str
    """What goes into the traffic."""
    hidden: str
    """What must appear nowhere afterwards (``Bearer x`` keeps the word ``Bearer``)."""
    kind: str


def _luhn_complete(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@st.composite
def pattern_secrets(draw: st.DrawFn, *, url_safe: bool = False, one_line: bool = False) -> Secret:
    kinds = ["card", "jwt", "aws", "iban", "email"]
    if not url_safe:
        kinds.append("bearer")
        if not one_line:
            kinds.append("private-key")
    kind = draw(st.sampled_from(kinds))
    if kind == "card":
        first = draw(st.sampled_from("3456"))
        length = draw(st.sampled_from([15, 16]))
        rest = draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
        card = _luhn_complete(first + rest)
        if not url_safe and draw(st.booleans()):
            card = " ".join(card[i : i + 4] for i in range(0, len(card), 4))
        return Secret(card, card, kind)
    if kind == "jwt":
        alg = draw(st.sampled_from(["HS256", "RS256", "ES384", "none"]))
        head = _b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        payload = _b64url(json.dumps({"sub": draw(st.text(ALNUM, min_size=1))}).encode())
        sig = draw(st.text(ALNUM + "-_", min_size=10, max_size=60))
        token = f"{head}.{payload}.{sig}"
        return Secret(token, token, kind)
    if kind == "aws":
        key = draw(st.sampled_from(["AKIA", "ASIA"])) + draw(
            st.text(string.ascii_uppercase + "234567", min_size=16, max_size=16)
        )
        return Secret(key, key, kind)
    if kind == "iban":
        bban = draw(st.text("0123456789", min_size=18, max_size=18))
        check = 98 - int(bban + "131400") % 97  # D=13 E=14 00
        iban = f"DE{check:02d}{bban}"
        return Secret(iban, iban, kind)
    if kind == "email":
        local = draw(st.text(string.ascii_lowercase + string.digits, min_size=3, max_size=12))
        domain = draw(st.text(string.ascii_lowercase, min_size=3, max_size=10))
        tld = draw(st.sampled_from(["com", "org", "net", "io", "de"]))
        addr = f"{local}.x@{domain}.{tld}"
        return Secret(addr, addr, kind)
    if kind == "bearer":
        token = draw(st.text(ALNUM, min_size=12, max_size=40)) + "7"
        return Secret(f"Bearer {token}", token, kind)
    body = draw(st.text(ALNUM + "+/", min_size=40, max_size=200))
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    key = f"-----BEGIN RSA PRIVATE KEY-----\n{lines}\n-----END RSA PRIVATE KEY-----"
    return Secret(key, body[:40], kind)  # one line of it: no escaping to account for


def name_values() -> st.SearchStrategy[str]:
    # "sK" and a digit: never part of the filler (no digits) or of ids (lower-case hex)
    return st.text(ALNUM, min_size=8, max_size=24).map(lambda s: f"sK{s}9")


def spellings(name: str) -> st.SearchStrategy[str]:
    """``access_token`` as ``accessToken``, ``Access-Token``, ``ACCESS_TOKEN``..."""
    words = name.replace("-", "_").split("_")
    return st.sampled_from(
        [
            name,
            "_".join(words).upper(),
            "-".join(w.capitalize() for w in words),
            words[0] + "".join(w.capitalize() for w in words[1:]),
        ]
    )


filler_keys = st.text(string.ascii_lowercase, min_size=1, max_size=8).map(lambda s: "f" + s)
filler_values = st.text(string.ascii_letters + " .,:", max_size=30)


def blobs(entry: Entry) -> list[bytes]:
    return [encode_batch([entry], sniffer="n"), entry_to_json(entry)]


def forms(secret: str) -> set[bytes]:
    """The secret as it may be written: raw, JSON-escaped, percent-encoded."""
    return {
        secret.encode(),
        msgspec.json.encode(secret)[1:-1],
        quote(secret, safe="").encode(),
        quote_plus(secret, safe="").encode(),
    }


def assert_hidden(entry: Entry, secret: str) -> None:
    for blob in blobs(entry):
        for form in forms(secret):
            assert form not in blob, (secret, blob)


@st.composite
def planted_entries(draw: st.DrawFn) -> tuple[Entry, str, tuple[str, ...]]:
    """An HTTP entry with filler everywhere and one secret at a random place.
    Returns the entry, what must vanish, and the path ``redacted`` must list."""
    place = draw(st.sampled_from(["header", "query", "path", "json", "form", "text"]))
    also = ""
    by_name = place in ("header", "query", "json", "form") and draw(st.booleans())
    side = draw(st.sampled_from(["request", "response"]))
    headers = draw(st.dictionaries(filler_keys.map(lambda k: f"x-{k}"), filler_values, max_size=5))
    query_pairs = draw(st.lists(st.tuples(filler_keys, filler_values), max_size=4))
    body_obj = draw(
        st.dictionaries(filler_keys, st.one_of(filler_values, st.integers()), max_size=5)
    )
    path = "/" + "/".join(draw(st.lists(filler_keys, min_size=1, max_size=3)))
    ctype = "application/json"
    body = ""
    if by_name:
        value = draw(name_values())
        secret = Secret(value, value, "name")
    else:
        secret = draw(
            pattern_secrets(url_safe=place in ("path", "query", "form"), one_line=place == "header")
        )
    hidden = secret.hidden
    if place == "header":
        name = draw(st.sampled_from(DEFAULT_HEADERS)) if by_name else f"x-{draw(filler_keys)}"
        if name in ("cookie",):
            headers[name] = f"sid={secret.planted}"
        elif name == "set-cookie":
            headers[name] = f"sid={secret.planted}; Path=/"
        else:
            headers[name] = secret.planted if by_name else f"v {secret.planted} v"
        want = f"{side}.headers.{name}"
    elif place == "query":
        side = "request"
        name = (
            draw(spellings(draw(st.sampled_from(DEFAULT_QUERY)))) if by_name else draw(filler_keys)
        )
        at = draw(st.integers(0, len(query_pairs)))
        query_pairs.insert(at, (name, secret.planted))
        want = f"request.query.{name}"
    elif place == "path":
        side = "request"
        segs = path.split("/")
        at = draw(st.integers(1, len(segs)))
        segs.insert(at, quote(secret.planted, safe="@"))
        path = "/".join(segs)
        want = "request.path"
    elif place == "json":
        keys = draw(st.lists(filler_keys, min_size=0, max_size=3))
        last = (
            draw(spellings(draw(st.sampled_from(DEFAULT_JSON)).split(".")[-1]))
            if by_name
            else draw(filler_keys)
        )
        if by_name and last.lower().replace("_", "").replace("-", "") == "number":
            keys.append("card")
        node = body_obj
        for k in keys:
            child = node.get(k)
            if not isinstance(child, dict):
                child = node[k] = {}
            node = child
        node[last] = secret.planted if by_name else f" {secret.planted} "
        want = ".".join([f"{side}.body", *keys, last])
        if not by_name:
            # a pattern hit in JSON is listed at its key, or as the body when the engine
            # could replace it without parsing (values that can only sit in a string)
            also = f"{side}.body"
    elif place == "form":
        ctype = "application/x-www-form-urlencoded"
        name = (
            draw(spellings(draw(st.sampled_from(DEFAULT_FORM)))) if by_name else draw(filler_keys)
        )
        pairs = [(k, str(v)) for k, v in body_obj.items()]
        pairs.insert(draw(st.integers(0, len(pairs))), (name, secret.planted))
        body = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)
        want = f"{side}.body.{name}"
    else:
        ctype = draw(st.sampled_from(["text/plain", "text/html", "application/xml", ""]))
        body = f"{draw(filler_values)} {secret.planted} {draw(filler_values)}"
        want = f"{side}.body"
    if place in ("json", "header", "query", "path"):
        body = json.dumps(body_obj)
    qs = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in query_pairs)
    full_path = path + (f"?{qs}" if qs else "")
    if ctype:
        headers.setdefault("content-type", ctype)
    req_headers = headers if side == "request" else {"content-type": ctype} if ctype else {}
    resp_headers = headers if side == "response" else {}
    entry = make_http_entry(
        "POST",
        full_path,
        request_headers=req_headers or {"host": "svc"},
        response_headers=resp_headers or {"x-ok": "1"},
        request_body=body if side == "request" else "",
        response_body=body if side == "response" else "",
    )
    return entry, hidden, (want, also) if also else (want,)


@given(planted_entries())
def test_planted_secret_is_in_no_encoding(case: tuple[Entry, str, tuple[str, ...]]) -> None:
    entry, hidden, wants = case
    before = encode_batch([entry])
    assert any(f in before for f in forms(hidden))  # the secret really is in there
    out = ENGINE.apply(entry)
    assert_hidden(out, hidden)
    assert any(w in out.redacted for w in wants), (wants, out.redacted)


# -- through the real capture path ------------------------------------------------------------


def _chunked(data: bytes, cuts: list[int]) -> bytes:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    out = b""
    for a, b in zip(points, points[1:], strict=False):
        if b > a:
            out += f"{b - a:x}\r\n".encode() + data[a:b] + b"\r\n"
    return out + b"0\r\n\r\n"


@st.composite
def http_traffic(draw: st.DrawFn) -> tuple[list[tuple[str, bytes]], str]:
    """One HTTP/1.1 exchange with a secret in a (maybe gzip'd, maybe chunked) body,
    a header, or the query string."""
    place = draw(st.sampled_from(["request-body", "response-body", "header", "query"]))
    secret = draw(pattern_secrets(url_safe=place == "query", one_line=place == "header"))
    by_name = draw(st.booleans())
    if by_name:
        value = draw(name_values())
        secret = Secret(value, value, "name")
    filler = {
        k: v for k, v in draw(st.dictionaries(filler_keys, filler_values, max_size=4)).items()
    }
    body_kind = draw(st.sampled_from(["json", "form", "text"]))
    key = draw(spellings("password")) if by_name else draw(filler_keys)
    if body_kind == "json":
        ctype, body = "application/json", json.dumps({**filler, key: f"{secret.planted}"})
    elif body_kind == "form":
        ctype = "application/x-www-form-urlencoded"
        body = "&".join(
            f"{quote_plus(k)}={quote_plus(v)}" for k, v in [*filler.items(), (key, secret.planted)]
        )
    else:
        ctype, body = "text/plain", f"note {secret.planted} end"
        if by_name:
            body = f"note password: {secret.planted} end"  # text bodies go by pattern only
            secret = draw(pattern_secrets(one_line=True))
            body = f"note {secret.planted} end"
    raw = body.encode()
    head = [f"Content-Type: {ctype}"]
    if draw(st.booleans()):
        raw = gzip.compress(raw, mtime=0)
        head.append("Content-Encoding: gzip")
    if draw(st.booleans()):
        raw = _chunked(raw, draw(st.lists(st.integers(0, 4096), max_size=4)))
        head.append("Transfer-Encoding: chunked")
    else:
        head.append(f"Content-Length: {len(raw)}")
    plain_head = ["Content-Type: text/plain", "Content-Length: 2"]
    target = "/api/v1/items"
    extra = "X-Trace: t1"
    if place == "header":
        hname = "Authorization" if by_name else "X-Forwarded-Note"
        extra = f"{hname}: {secret.planted}" if by_name else f"{hname}: a {secret.planted} b"
    if place == "query":
        qname = draw(spellings("access_token")) if by_name else draw(filler_keys)
        target += f"?page=2&{qname}={quote_plus(secret.planted)}"
    req_body, req_head = (raw, head) if place == "request-body" else (b"ok", plain_head)
    resp_body, resp_head = (raw, head) if place == "response-body" else (b"ok", plain_head)
    request = (
        (
            f"POST {target} HTTP/1.1\r\nHost: shop.svc\r\n{extra}\r\n" + "\r\n".join(req_head)
        ).encode()
        + b"\r\n\r\n"
        + req_body
    )
    response = ("HTTP/1.1 200 OK\r\n" + "\r\n".join(resp_head)).encode() + b"\r\n\r\n" + resp_body
    return [("c", request), ("s", response)], secret.hidden


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(http_traffic(), st.sampled_from([100, 536, 1400]))
def test_planted_secret_through_read_pcap(
    case: tuple[list[tuple[str, bytes]], str], mss: int
) -> None:
    messages, hidden = case
    with tempfile.TemporaryDirectory() as d:
        cap = Path(d) / "t.pcap"
        pcapgen.write_pcap(cap, pcapgen.tcp_session(messages, mss=mss))
        plain = b"".join(entry_to_json(e) for e in read_pcap(cap, PipelineSettings()))
        assert any(f in plain for f in forms(hidden)), ("secret not parsed", plain)
        entries = list(read_pcap(cap, PipelineSettings(redact=ENGINE.apply)))
    assert entries and all(e.proto == "http" for e in entries)
    for e in entries:
        assert_hidden(e, hidden)
    assert any(e.redacted for e in entries)
