"""Redaction config: the default rule set, and the YAML/Helm-values form parsed once.

The config (a YAML file, or the ``redaction`` block of the Helm values; either may be
wrapped in a top-level ``redaction:`` key)::

    defaults: true                # start from default_rules() (the default)
    disable: [pattern:email]      # drop individual defaults by id
    rules:                        # add rules: 'kind:name' strings or pattern mappings
      - header:x-internal-token
      - json:customer.tax_id
      - pattern:us-ssn            # opt in to a builtin that is off by default
      - {name: employee-id, regex: 'EMP-[0-9]{6}'}
    namespaces:                   # more rules for entries whose src or dst namespace
      payments:                   # matches (a name or a glob); only adds, never removes
        rules: [json:iban, pattern:us-ssn]

The Helm values' shorthands are accepted too, at the top and per namespace: ``headers``,
``query_params``/``queryParams`` (query parameters and form fields), ``json_keys``/
``jsonKeys``, ``fields`` (lists of bare names) and ``patterns`` (builtin names or custom
pattern mappings).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from redaction._rules import (
    BUILTIN_PATTERNS,
    NameRule,
    RedactionConfigError,
    Rule,
    parse_rule,
)

__all__ = ["RedactionConfig", "default_rules", "load_config", "parse_config"]

DEFAULT_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "x-amz-security-token",
    "x-csrf-token",
    "x-xsrf-token",
    "x-vault-token",
    "private-token",
    "x-goog-api-key",
)
DEFAULT_QUERY = (
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-security-token",
    "x-goog-signature",
    "auth",
)
DEFAULT_FORM = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "card_number",
    "cvv",
    "cvc",
)
DEFAULT_JSON = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "client_secret",
    "secret_key",
    "private_key",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "authorization",
    "card_number",
    "credit_card",
    "card.number",
    "cvv",
    "cvc",
    "ssn",
)
DEFAULT_FIELDS = (
    "password",  # PostgreSQL PasswordMessage, MQTT CONNECT
    "passwd",
    "auth_bytes",  # Kafka SaslAuthenticate
    "sasl_auth_bytes",
    "auth_data",  # MQTT 5 authentication data
    "authentication_data",
)


def default_rules() -> tuple[Rule, ...]:
    """The rules on out of the box, in a stable order."""
    specs = [
        *(f"header:{n}" for n in DEFAULT_HEADERS),
        *(f"query:{n}" for n in DEFAULT_QUERY),
        *(f"form:{n}" for n in DEFAULT_FORM),
        *(f"json:{n}" for n in DEFAULT_JSON),
        *(f"field:{n}" for n in DEFAULT_FIELDS),
    ]
    rules: list[Rule] = [parse_rule(s, "default") for s in specs]
    rules.extend(p for p in BUILTIN_PATTERNS.values() if p.default)
    return tuple(rules)


@dataclass(frozen=True)
class RedactionConfig:
    """The rules in force everywhere, and the extra rules per namespace (name or glob)."""

    rules: tuple[Rule, ...] = field(default_factory=default_rules)
    namespaces: Mapping[str, tuple[Rule, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def rules_for(self, *namespaces: str) -> tuple[Rule, ...]:
        """The global rules plus those of every namespace override matching any name given."""
        extra: list[Rule] = []
        for pattern, rules in self.namespaces.items():
            if any(ns and fnmatch.fnmatchcase(ns, pattern) for ns in namespaces):
                extra.extend(rules)
        return self.rules + tuple(extra) if extra else self.rules


# Lists of bare names, as the Helm values write them: key -> rule kinds they add.
_NAME_LISTS: dict[str, tuple[str, ...]] = {
    "headers": ("header",),
    "query_params": ("query", "form"),
    "queryParams": ("query", "form"),
    "json_keys": ("json",),
    "jsonKeys": ("json",),
    "fields": ("field",),
}
_NS_KEYS = frozenset({"rules", "patterns", *_NAME_LISTS})
_TOP_KEYS = frozenset({"defaults", "disable", "namespaces", *_NS_KEYS})
_NS_NAME = re.compile(r"[a-z0-9*?\[\]-]{1,63}")


def _check_keys(data: Mapping[Any, Any], allowed: frozenset[str], where: str) -> None:
    unknown = [str(k) for k in data if k not in allowed]
    if unknown:
        hint = " (a namespace may only add rules)" if allowed is _NS_KEYS else ""
        raise RedactionConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(sorted(allowed))}{hint}"
        )


def _rule_list(value: object, where: str) -> list[Rule]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RedactionConfigError(f"{where}: must be a list of rules")
    return [parse_rule(spec, f"{where}[{i}]") for i, spec in enumerate(value)]


def _added_rules(data: Mapping[Any, Any], prefix: str) -> list[Rule]:
    """``rules`` plus the Helm-values shorthands: ``headers``, ``query_params`` (query
    parameters and form fields), ``json_keys``, ``fields`` (bare names) and ``patterns``
    (builtin names or custom pattern mappings)."""
    out = _rule_list(data.get("rules"), f"{prefix}rules")
    for key, kinds in _NAME_LISTS.items():
        names = data.get(key)
        if names is None:
            continue
        where = f"{prefix}{key}"
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RedactionConfigError(f"{where}: must be a list of names")
        for i, name in enumerate(names):
            out += [parse_rule(f"{kind}:{name}", f"{where}[{i}]") for kind in kinds]
    patterns = data.get("patterns")
    if patterns is not None:
        if not isinstance(patterns, list):
            raise RedactionConfigError(f"{prefix}patterns: must be a list of patterns")
        for i, spec in enumerate(patterns):
            spec = f"pattern:{spec}" if isinstance(spec, str) else spec
            out.append(parse_rule(spec, f"{prefix}patterns[{i}]"))
    return out


def parse_config(data: object) -> RedactionConfig:
    """Build a config from parsed YAML/Helm values; raises ``RedactionConfigError``."""
    if data is None:
        return RedactionConfig()
    if not isinstance(data, Mapping):
        raise RedactionConfigError(
            f"redaction config: expected a mapping, not {type(data).__name__}"
        )
    if set(data) == {"redaction"}:
        return parse_config(data["redaction"])
    _check_keys(data, _TOP_KEYS, "redaction config")
    use_defaults = data.get("defaults", True)
    if not isinstance(use_defaults, bool):
        raise RedactionConfigError("defaults: must be true or false")
    base = default_rules() if use_defaults else ()
    disable = data.get("disable") or []
    if not isinstance(disable, list) or not all(isinstance(d, str) for d in disable):
        raise RedactionConfigError("disable: must be a list of rule ids ('kind:name')")
    known = {_key(r) for r in base}
    dropped: set[tuple[str, ...]] = set()
    for i, rule_id in enumerate(disable):
        rid = _disable_key(rule_id, f"disable[{i}]")
        if rid not in known:
            raise RedactionConfigError(
                f"disable[{i}] {rule_id!r}: not a default rule"
                + ("" if use_defaults else " (defaults are off)")
                + "; see redaction.default_rules() for the ids"
            )
        dropped.add(rid)
    rules = [r for r in base if _key(r) not in dropped]
    seen = {_key(r) for r in rules}
    for rule in _added_rules(data, ""):
        if _key(rule) not in seen:
            rules.append(rule)
            seen.add(_key(rule))
    namespaces: dict[str, tuple[Rule, ...]] = {}
    ns_data = data.get("namespaces") or {}
    if not isinstance(ns_data, Mapping):
        raise RedactionConfigError("namespaces: must map a namespace (or glob) to its rules")
    for ns, body in ns_data.items():
        where = f"namespaces.{ns}"
        if not isinstance(ns, str) or not _NS_NAME.fullmatch(ns):
            raise RedactionConfigError(
                f"{where}: not a namespace name or glob (lower-case letters, digits, '-', '*')"
            )
        if not isinstance(body, Mapping):
            raise RedactionConfigError(f"{where}: must be a mapping with 'rules'")
        _check_keys(body, _NS_KEYS, where)
        namespaces[ns] = tuple(_added_rules(body, f"{where}."))
    return RedactionConfig(rules=tuple(rules), namespaces=MappingProxyType(namespaces))


def _key(rule: Rule) -> tuple[str, ...]:
    """What makes two rules the same rule (``header:Authorization`` = ``header:authorization``)."""
    if isinstance(rule, NameRule):
        return (rule.kind, *rule.key)
    return ("pattern", rule.name)


def _disable_key(rule_id: str, where: str) -> tuple[str, ...]:
    kind, _, name = rule_id.partition(":")
    if kind.strip().lower() == "pattern":
        return ("pattern", name.strip())
    return _key(parse_rule(rule_id, where))


def load_config(path: str | Path) -> RedactionConfig:
    """Read a YAML config file; a missing or bad file raises ``RedactionConfigError``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RedactionConfigError(f"redaction config {p}: {exc.strerror or exc}") from None
    import yaml  # only here: `kubeweir read` with the default rules never pays for it

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as bad:
        raise RedactionConfigError(f"redaction config {p}: not valid YAML: {bad}") from None
    try:
        return parse_config(data)
    except RedactionConfigError as inner:
        raise RedactionConfigError(f"redaction config {p}: {inner}") from None
