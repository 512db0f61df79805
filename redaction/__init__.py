"""Redaction at the source: sensitive values in entries replaced before they leave the node.

Rules are parsed once from config into small immutable objects (``parse_rule``,
``load_config``); ``Engine(config).apply(entry)`` returns the entry with each sensitive
value replaced by ``[REDACTED]`` and the path of each replacement listed in
``entry.redacted``. No I/O happens in the engine; one engine is safe to share.
"""

from __future__ import annotations

from redaction._config import RedactionConfig, default_rules, load_config, parse_config
from redaction._engine import Engine
from redaction._rules import (
    BUILTIN_PATTERNS,
    NameRule,
    PatternRule,
    RedactionConfigError,
    Rule,
    normalize,
    parse_rule,
)

__all__ = [
    "BUILTIN_PATTERNS",
    "Engine",
    "NameRule",
    "PatternRule",
    "RedactionConfig",
    "RedactionConfigError",
    "Rule",
    "default_engine",
    "default_rules",
    "load_config",
    "normalize",
    "parse_config",
    "parse_rule",
]


def default_engine() -> Engine:
    """An engine with the default rules (``default_rules()``)."""
    return Engine(RedactionConfig())
