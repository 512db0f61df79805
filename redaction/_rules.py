"""Redaction rules: small immutable objects parsed once from their spec.

A rule is written as a string ``kind:name`` (``header:x-api-key``, ``query:token``,
``form:password``, ``json:card.number``, ``field:password``, ``pattern:email``) or, for a
custom value pattern, as a mapping ``{name, regex, validator, ignore_case, group}``.
The spec string is also the rule's id (what ``disable`` names). ``parse_rule`` is the
one parser (mitmproxy's ``blocklist.parse_spec`` shape); a bad spec raises
``RedactionConfigError`` naming the rule and the problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from redaction._validators import VALIDATORS

__all__ = [
    "BUILTIN_PATTERNS",
    "NAME_KINDS",
    "NameRule",
    "PatternRule",
    "RedactionConfigError",
    "Rule",
    "normalize",
    "parse_rule",
]


class RedactionConfigError(ValueError):
    """A redaction rule or config that can't be used; the message names the rule."""


_DROP = str.maketrans("", "", "-_")


@lru_cache(maxsize=8192)
def normalize(name: str) -> str:
    """One spelling per name: case and ``-``/``_`` ignored (``Access-Token`` → ``accesstoken``)."""
    return name.translate(_DROP).lower()


NAME_KINDS = ("header", "query", "form", "json", "field")
"""header: HTTP header names; query: URL query parameters; form: urlencoded and multipart
form fields; json: JSON body keys at any depth (or dotted paths); field: protocol fields
of any protocol outside HTTP headers/query/body (PostgreSQL ``password``, Kafka
``auth_bytes``, MQTT ``password``)."""


@dataclass(frozen=True, slots=True)
class NameRule:
    """Redact the value of whatever is named ``name`` (header, parameter, key, field)."""

    kind: str
    name: str
    """As written in the config."""
    key: tuple[str, ...]
    """Normalized segments: one for a name, several for a dotted JSON path."""

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True, eq=False)
class PatternRule:
    """Redact values that match ``regex`` and pass ``validator`` wherever strings are scanned.

    Compared by identity (a builtin is one object), which keeps membership tests cheap."""

    name: str
    regex: re.Pattern[str]
    """Binary bodies are scanned as text decoded with ``surrogateescape``, so the same
    pattern runs over their bytes and writes them back unchanged where nothing matched."""
    validator: str = "none"
    """Key of ``VALIDATORS``: ``none``, ``luhn``, ``iban``, ``jwt``, ``bearer``, ``email``."""
    group: int = 0
    """Which group is the secret (0: the whole match; ``Bearer <token>`` keeps ``Bearer``)."""
    anchors: tuple[str, ...] = ()
    """Where to try the regex: only at occurrences of these strings (``eyJ`` for JWTs)."""
    shapes: tuple[str, ...] = ()
    """Where to try the regex: at occurrences of these strings in the text with digits,
    spaces, dashes and ``+`` mapped to ``0`` and capitals to ``A`` (13 ``0`` for cards,
    ``AA00`` for IBANs). Without anchors or shapes (custom patterns) the regex is
    searched everywhere."""
    starts: tuple[str, ...] = ()
    """With ``shapes``: the regex is tried only where the text starts with one of these."""
    back: int = 0
    """The match starts this many characters before the anchor (``B`` of ``earer``)."""
    left: str = ""
    """Characters the match may start up to 64 of before the anchor (e-mail local parts:
    the anchor is ``@``)."""
    hint: str = ""
    """An RE2 regex matching wherever ``regex`` may hit (a superset, no look-arounds): all
    hints are searched in one linear pass, and the regex runs only if its hint matched.
    Empty (custom patterns): the regex always runs."""
    default: bool = True
    """Whether a builtin is on out of the box (``False``: opt in with ``pattern:<name>``)."""

    @property
    def id(self) -> str:
        return f"pattern:{self.name}"


Rule = NameRule | PatternRule


def _pattern(
    name: str,
    regex: str,
    validator: str = "none",
    *,
    group: int = 0,
    anchors: tuple[str, ...] = (),
    shapes: tuple[str, ...] = (),
    starts: tuple[str, ...] = (),
    back: int = 0,
    left: str = "",
    hint: str = "",
    flags: int = 0,
    default: bool = True,
) -> PatternRule:
    return PatternRule(
        name=name,
        regex=re.compile(regex, flags | re.ASCII),
        validator=validator,
        group=group,
        anchors=anchors,
        shapes=shapes,
        starts=starts,
        back=back,
        left=left,
        hint=hint,
        default=default,
    )


# AWS access key id prefixes (IAM user AKIA, STS ASIA, and the other unique-id kinds).
_AWS_PREFIXES = tuple("AKIA ASIA ABIA ACCA AGPA AIDA AIPA ANPA ANVA APKA AROA ASCA".split())
_EMAIL_LOCAL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-"

BUILTIN_PATTERNS: dict[str, PatternRule] = {
    p.name: p
    for p in (
        # Payment card numbers (PAN): 13–19 digits in groups, Luhn-checked by the validator.
        _pattern(
            "card",
            r"(?<![0-9])[2-6][0-9](?:[ -]?[0-9]){11,22}(?![0-9])",
            "luhn",
            shapes=("0" * 13,),
            hint=r"[2-6][0-9](?:[ +-]?[0-9]){11}",
        ),
        # RFC 7519 JWS/JWE compact serialization; the header must decode to a JOSE header.
        _pattern(
            "jwt",
            r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)?",
            "jwt",
            anchors=("eyJ",),
            hint=r"eyJ[A-Za-z0-9_-]{4}",
        ),
        # RFC 6750 §2.1: "Bearer" 1*SP b64token; the token is redacted, the word stays.
        _pattern(
            "bearer",
            r"(?<![A-Za-z0-9])[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]{8,}=*)",
            "bearer",
            group=1,
            anchors=("earer", "EARER"),
            back=1,
            hint=r"[Bb][Ee][Aa][Rr][Ee][Rr] +[A-Za-z0-9._~+/-]{8}",
        ),
        # AWS access key ids (IAM user, STS, role, group... prefixes).
        _pattern(
            "aws-access-key",
            r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)"
            r"[A-Z0-9]{16}(?![A-Za-z0-9])",
            shapes=("AAAA",),
            starts=_AWS_PREFIXES,
            hint=r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|PKA|ROA|SCA)[A-Z0-9]{16}",
        ),
        # RFC 7468 PEM private keys (PKCS#1/#8, EC, OpenSSH, encrypted) and PGP key blocks;
        # a block cut short by a body bound is redacted to the end.
        _pattern(
            "private-key",
            r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)",
            anchors=("-----BEGIN",),
            hint=r"-----BEGIN[ A-Z0-9]*PRIVATE KEY",
        ),
        # E-mail addresses (RFC 5322 dot-atom local part, a domain with a letter TLD).
        _pattern(
            "email",
            r"[A-Za-z0-9._%+-]{1,64}@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}"
            r"(?![A-Za-z0-9-])",
            "email",
            anchors=("@",),
            left=_EMAIL_LOCAL,
            hint=r"[A-Za-z0-9._%+-]@[A-Za-z0-9]",
        ),
        # ISO 13616 IBAN, country length and mod-97 checked by the validator.
        _pattern(
            "iban",
            r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])",
            "iban",
            shapes=("AA00",),
            hint=r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11}",
        ),
        # Opt-in: US social security numbers (SSA rules: no 000/666/9xx area, 00 group,
        # 0000 serial).
        _pattern(
            "us-ssn",
            r"(?<![0-9-])(?!000|666|9[0-9][0-9])[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}(?![0-9-])",
            shapes=("0" * 11,),
            hint=r"[0-9]{3}-[0-9]{2}-[0-9]{4}",
            default=False,
        ),
    )
}
"""Value patterns known by name; those with ``default`` are on out of the box."""

_HEADER_NAME = re.compile(r":?[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PARAM_NAME = re.compile(r"[^\s=&;]+")
_CUSTOM_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_PATTERN_KEYS = frozenset({"name", "regex", "validator", "ignore_case", "group"})


def parse_rule(spec: object, where: str = "rule") -> Rule:
    """Parse one rule spec; ``where`` names it in errors (``rules[3]``)."""
    if isinstance(spec, Mapping):
        return _parse_custom_pattern(spec, where)
    if not isinstance(spec, str):
        raise RedactionConfigError(
            f"{where}: a rule is a string 'kind:name' or a pattern mapping, "
            f"not {type(spec).__name__}"
        )
    kind, sep, name = spec.partition(":")
    kind = kind.strip().lower()
    name = name.strip()
    label = f"{where} {spec!r}"
    if not sep or not name:
        raise RedactionConfigError(
            f"{label}: expected 'kind:name' with kind one of {', '.join((*NAME_KINDS, 'pattern'))}"
        )
    if kind == "pattern":
        rule = BUILTIN_PATTERNS.get(name)
        if rule is None:
            raise RedactionConfigError(
                f"{label}: unknown builtin pattern {name!r}; known: "
                f"{', '.join(sorted(BUILTIN_PATTERNS))} (a custom pattern is a mapping "
                f"with name and regex)"
            )
        return rule
    if kind not in NAME_KINDS:
        raise RedactionConfigError(
            f"{label}: unknown rule kind {kind!r}; known: {', '.join((*NAME_KINDS, 'pattern'))}"
        )
    if kind == "header":
        if not _HEADER_NAME.fullmatch(name):
            raise RedactionConfigError(f"{label}: {name!r} is not a valid header name")
        key: tuple[str, ...] = (normalize(name),)
    elif kind == "json":
        segments = name.split(".")
        if any(not s.strip() for s in segments):
            raise RedactionConfigError(f"{label}: empty segment in JSON path {name!r}")
        key = tuple(normalize(s.strip()) for s in segments)
    else:
        if not _PARAM_NAME.fullmatch(name):
            raise RedactionConfigError(
                f"{label}: {name!r} is not a valid {kind} name (no spaces, '=', '&' or ';')"
            )
        key = (normalize(name),)
    if any(not k for k in key):
        raise RedactionConfigError(f"{label}: the name is empty once '-' and '_' are ignored")
    return NameRule(kind=kind, name=name, key=key)


def _parse_custom_pattern(spec: Mapping[Any, Any], where: str) -> PatternRule:
    name = spec.get("name")
    label = f"{where} (pattern {name!r})" if name else where
    unknown = set(spec) - _PATTERN_KEYS
    if unknown:
        raise RedactionConfigError(
            f"{label}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
            f"a pattern has {', '.join(sorted(_PATTERN_KEYS))}"
        )
    if not isinstance(name, str) or not _CUSTOM_NAME.fullmatch(name):
        raise RedactionConfigError(
            f"{label}: 'name' must be lower-case letters, digits and '-' (got {name!r})"
        )
    if name in BUILTIN_PATTERNS:
        raise RedactionConfigError(
            f"{label}: {name!r} is a builtin pattern; enable it with 'pattern:{name}' "
            f"or pick another name"
        )
    regex = spec.get("regex")
    if not isinstance(regex, str) or not regex:
        raise RedactionConfigError(f"{label}: 'regex' must be a non-empty string")
    validator = spec.get("validator", "none")
    if validator not in VALIDATORS:
        raise RedactionConfigError(
            f"{label}: unknown validator {validator!r}; known: {', '.join(sorted(VALIDATORS))}"
        )
    ignore_case = spec.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        raise RedactionConfigError(f"{label}: 'ignore_case' must be true or false")
    group = spec.get("group", 0)
    if not isinstance(group, int) or isinstance(group, bool) or group < 0:
        raise RedactionConfigError(f"{label}: 'group' must be a group number >= 0")
    flags = re.IGNORECASE if ignore_case else 0
    try:
        compiled = re.compile(regex, flags)
    except re.error as exc:
        raise RedactionConfigError(f"{label}: bad regex {regex!r}: {exc}") from None
    if group > compiled.groups:
        raise RedactionConfigError(
            f"{label}: 'group' is {group} but the regex has {compiled.groups} group(s)"
        )
    if compiled.search("") is not None:
        raise RedactionConfigError(f"{label}: the regex {regex!r} matches the empty string")
    return PatternRule(
        name=name,
        regex=compiled,
        validator=validator,
        group=group,
    )
