"""The fields, macros and functions of the query language: one table that the compiler,
both back ends and the help text (``/api/v1/query/fields``) all read.

Each field says where it lives in an entry (``entry_to_builtins`` dict) and in storage
(a column of the ``entries`` table, or a JSON pointer below the ``request``/``response``
column), its type and its default. A field with a default (the struct defaults of
``kubeweir.entry``) is never missing; one without is missing when absent or null.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from hub.query.errors import QueryError

__all__ = [
    "FIELDS",
    "FUNCTIONS",
    "MACROS",
    "FieldInfo",
    "FieldSpec",
    "FunctionInfo",
    "MacroInfo",
    "fields",
    "functions",
    "macros",
    "resolve_field",
]

# Value types. "dyn" is a protocol field whose type is only known per entry (JSON).
STRING, INT, DOUBLE, BOOL = "string", "int", "double", "bool"
DURATION, TIMESTAMP, BYTES = "duration", "timestamp", "bytes"
MAP, LIST, DYN = "map(string, string)", "list", "dyn"
NUMBER_TYPES = frozenset({INT, DOUBLE})


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One line of the field catalog (``/api/v1/query/fields``)."""

    name: str
    type: str
    doc: str


@dataclass(frozen=True, slots=True)
class MacroInfo:
    """A bare word that stands for a condition (``http`` = ``proto == "http"``)."""

    name: str
    expands_to: str
    doc: str


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """A function or method the compiler accepts."""

    name: str
    signature: str
    doc: str


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Where a field lives and what it holds.

    ``path`` is the path in the entry dict; ``column`` the storage column. When ``json``
    is set the column holds a JSON document and ``path[1:]`` is the pointer below it.
    ``fallback`` names the sibling key read when ``path`` is absent (the ``path`` column
    holds ``request.name`` for protocols without a path, such as DNS).
    """

    name: str
    type: str
    doc: str
    path: tuple[str, ...]
    column: str
    default: Any = None
    json: bool = False
    fallback: str = ""

    @property
    def info(self) -> FieldInfo:
        return FieldInfo(self.name, self.type, self.doc)


_ENDPOINT = (
    ("ip", STRING, "IPv4 or IPv6 address", ""),
    ("port", INT, "TCP/UDP port (0 when none)", 0),
    ("pod", STRING, "pod name (empty when unknown)", ""),
    ("namespace", STRING, "namespace of the pod or service", ""),
    ("workload", STRING, "owning workload as Kind/name", ""),
    ("service", STRING, "a Service that selects the pod", ""),
    ("node", STRING, "node that runs the pod", ""),
)


def _build() -> dict[str, FieldSpec]:
    specs: list[FieldSpec] = [
        FieldSpec("id", STRING, "deterministic entry id", ("id",), "id"),
        FieldSpec(
            "ts", TIMESTAMP, "request start (compare with timestamp(), now())", ("ts",), "ts"
        ),
        FieldSpec(
            "elapsed",
            DURATION,
            "time to the end of the response (compare with duration() or seconds); "
            "missing without a response",
            ("elapsed",),
            "elapsed",
        ),
        FieldSpec(
            "proto", STRING, "protocol: http, http2, grpc, dns, redis, ...", ("proto",), "proto"
        ),
    ]
    for side, what in (("src", "client"), ("dst", "server")):
        for name, typ, doc, default in _ENDPOINT:
            specs.append(
                FieldSpec(
                    f"{side}.{name}", typ, f"{what} {doc}", (side, name), f"{side}_{name}", default
                )
            )
        specs.append(
            FieldSpec(
                f"{side}.labels",
                MAP,
                f'{what} pod labels: {side}.labels["app"]',
                (side, "labels"),
                f"{side}_labels",
                {},
            )
        )
    specs += [
        FieldSpec(
            "request.method",
            STRING,
            "what was asked: HTTP method, Redis command, SQL verb, Kafka api...",
            ("request", "method"),
            "method",
        ),
        FieldSpec(
            "request.path",
            STRING,
            "HTTP/gRPC path; for protocols without one (DNS) the request name",
            ("request", "path"),
            "path",
            fallback="name",
        ),
        FieldSpec(
            "response.status", INT, "HTTP status, gRPC status...", ("response", "status"), "status"
        ),
        FieldSpec(
            "request.body",
            BYTES,
            "request body (decoded from base64 when so encoded); empty when none",
            ("request", "body"),
            "req_body",
            b"",
        ),
        FieldSpec(
            "response.body",
            BYTES,
            "response body; empty when none",
            ("response", "body"),
            "resp_body",
            b"",
        ),
        FieldSpec("summary", STRING, "one-line summary", ("summary",), "summary", ""),
        FieldSpec(
            "error",
            STRING,
            "why the exchange is incomplete (empty when complete)",
            ("error",),
            "error",
            "",
        ),
        FieldSpec("tls", BOOL, "plaintext came from a TLS library hook", ("tls",), "tls", False),
        FieldSpec(
            "redacted",
            LIST,
            "paths of the values redaction replaced",
            ("redacted",),
            "redacted",
            [],
        ),
        FieldSpec("node", STRING, "node whose sniffer captured it", ("node",), "node", ""),
        FieldSpec("stream", STRING, "id of the connection", ("stream",), "stream", ""),
        FieldSpec("index", INT, "index of the exchange on its connection", ("index",), "idx", 0),
        FieldSpec("gaps", INT, "bytes missing from the capture", ("gaps",), "gaps", 0),
    ]
    for side in ("request", "response"):
        specs.append(
            FieldSpec(
                f"{side}.headers",
                MAP,
                f'{side} headers, lower-cased names: {side}.headers["content-type"]',
                (side, "headers"),
                side,
                json=True,
            )
        )
    for side, name, typ, doc in _PROTOCOL_FIELDS:
        specs.append(FieldSpec(f"{side}.{name}", typ, doc, (side, name), side, json=True))
    return {s.name: s for s in specs}


# Documented protocol fields kept in the request/response JSON. Any other name under
# request./response. is accepted too, as a field of type dyn.
_PROTOCOL_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("request", "query", STRING, "HTTP query string; PostgreSQL query text"),
    ("request", "version", STRING, "HTTP version"),
    ("request", "host", STRING, "HTTP host"),
    ("request", "content_type", STRING, "content type of the request body"),
    ("request", "body_size", INT, "real request body size on the wire"),
    ("request", "body_truncated", BOOL, "the kept body is shorter than the real one"),
    ("request", "body_encoding", STRING, "utf8 or base64"),
    ("request", "name", STRING, "DNS question name"),
    ("request", "type", STRING, "DNS question type (A, AAAA, SRV...)"),
    ("request", "class", STRING, "DNS question class"),
    ("request", "transport", STRING, "DNS transport: udp or tcp"),
    ("request", "service", STRING, "gRPC service"),
    ("request", "rpc", STRING, "gRPC method"),
    ("request", "command", STRING, "Redis command"),
    ("request", "keys", LIST, "Redis keys"),
    ("request", "args", LIST, "Redis arguments"),
    ("request", "kind", STRING, "PostgreSQL message kind"),
    ("request", "api", STRING, "Kafka API name"),
    ("request", "api_key", INT, "Kafka API key"),
    ("request", "api_version", INT, "Kafka API version"),
    ("request", "client_id", STRING, "Kafka client id"),
    ("request", "topics", LIST, "Kafka topics"),
    ("response", "reason", STRING, "HTTP reason phrase"),
    ("response", "version", STRING, "HTTP version"),
    ("response", "content_type", STRING, "content type of the response body"),
    ("response", "body_size", INT, "real response body size on the wire"),
    ("response", "body_truncated", BOOL, "the kept body is shorter than the real one"),
    ("response", "body_encoding", STRING, "utf8 or base64"),
    ("response", "rcode", STRING, "DNS response code (NOERROR, NXDOMAIN...)"),
    ("response", "answers", LIST, "DNS answers [{name, type, ttl, data}]"),
    ("response", "grpc_status", DYN, "gRPC status code"),
    ("response", "grpc_message", STRING, "gRPC status message"),
    ("response", "tag", STRING, "PostgreSQL command tag"),
    ("response", "sqlstate", STRING, "PostgreSQL error code"),
    ("response", "message", STRING, "PostgreSQL error message"),
)

FIELDS: dict[str, FieldSpec] = _build()

PROTOCOLS = ("http", "http2", "grpc", "dns", "redis", "postgres", "kafka", "mqtt", "amqp", "tcp")

MACROS: dict[str, MacroInfo] = {
    p: MacroInfo(p, f'proto == "{p}"', f"entries of protocol {p}") for p in PROTOCOLS
}

FUNCTIONS: tuple[FunctionInfo, ...] = (
    FunctionInfo("startsWith", "string.startsWith(string) -> bool", "prefix test; bodies too"),
    FunctionInfo("endsWith", "string.endsWith(string) -> bool", "suffix test; bodies too"),
    FunctionInfo("contains", "string.contains(string) -> bool", "substring test; bodies too"),
    FunctionInfo(
        "matches",
        "string.matches(string) -> bool",
        "RE2 regular expression search (unanchored); no backreferences or lookaround, "
        "no nested unbounded repeats",
    ),
    FunctionInfo(
        "size",
        "size(x) / x.size() -> int",
        "characters of a string, bytes of a body, items of a list or map",
    ),
    FunctionInfo("has", "has(field) -> bool", "the field is present and not null"),
    FunctionInfo(
        "in",
        'x in [a, b] / "key" in map / "item" in list -> bool',
        "membership in a literal list; key presence in labels or headers",
    ),
    FunctionInfo("duration", 'duration("250ms") -> duration', "units h m s ms us ns"),
    FunctionInfo("timestamp", 'timestamp("2026-01-01T00:00:00Z") -> timestamp', "RFC 3339"),
    FunctionInfo(
        "now", "now() -> timestamp", "time of the request (history) or of the evaluation (stream)"
    ),
)


def fields() -> list[FieldInfo]:
    """Every named field, in catalog order."""
    return [s.info for s in FIELDS.values()]


def macros() -> list[MacroInfo]:
    return list(MACROS.values())


def functions() -> list[FunctionInfo]:
    return list(FUNCTIONS)


_GROUPS = {"src", "dst", "request", "response"}


def _suggest(name: str) -> str:
    names = [*FIELDS, *MACROS]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not close and "." in name:
        head, _, tail = name.partition(".")
        near = difflib.get_close_matches(head, sorted(_GROUPS), n=1, cutoff=0.6)
        if near:
            close = difflib.get_close_matches(f"{near[0]}.{tail}", names, n=3, cutoff=0.5)
    return "did you mean: " + ", ".join(close) if close else ""


def resolve_field(names: list[str], position: int) -> tuple[FieldSpec, tuple[str, ...]]:
    """The field named by a dotted path, and the rest of the path below it.

    ``request.x`` for an undocumented ``x`` is a ``dyn`` JSON field. Raises
    ``QueryError`` naming the nearest fields for unknown names.
    """
    for n in range(min(len(names), 2), 0, -1):
        spec = FIELDS.get(".".join(names[:n]))
        if spec is not None:
            return spec, tuple(names[n:])
    head = names[0]
    if head in ("request", "response") and len(names) >= 2:
        spec = FieldSpec(
            f"{head}.{names[1]}", DYN, "protocol field", (head, names[1]), head, json=True
        )
        return spec, tuple(names[2:])
    dotted = ".".join(names)
    if head in _GROUPS and len(names) == 1:
        members = [f for f in FIELDS if f.startswith(head + ".")]
        raise QueryError(
            f"{head!r} is a group of fields, not a value",
            position,
            "use one of: " + ", ".join(members[:8]),
        )
    shown = dotted if len(dotted) <= 80 else dotted[:77] + "..."
    raise QueryError(f"unknown field {shown!r}", position, _suggest(dotted[:200]))
