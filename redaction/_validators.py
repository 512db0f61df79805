"""Checks that turn a regex candidate into a real secret (Luhn, IBAN mod-97, JWT header).

Each validator takes the matched text and returns the part to redact as a ``(start, end)``
span relative to the match, or ``None`` when the candidate is not a secret.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable

__all__ = ["VALIDATORS", "Span", "luhn_ok", "iban_ok"]

Span = tuple[int, int]
Validator = Callable[[str], Span | None]


def luhn_ok(digits: str) -> bool:
    """ISO/IEC 7812-1 Annex B: the Luhn mod-10 check digit."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(text: str) -> Span | None:
    """A payment card number: 13–19 digits, a major network prefix (2–6), Luhn-valid.

    Groups may be separated by single spaces or dashes; a longer run of groups is tried
    prefix by prefix at group boundaries (``4111 1111 1111 1111 2030`` → the first four),
    and the longest valid prefix wins.
    """
    best: Span | None = None
    digits = ""
    start = 0
    for i in range(len(text) + 1):
        if i < len(text) and text[i] not in " -":
            continue
        digits += text[start:i]
        start = i + 1
        if len(digits) > 19:
            break
        if len(digits) >= 13 and digits[0] in "23456" and luhn_ok(digits):
            best = (0, i)
    return best


# ISO 13616 registry: IBAN length per country.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_ok(iban: str) -> bool:
    """ISO 13616 / ISO 7064 MOD 97-10: the country's length and a remainder of 1."""
    iban = iban.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _iban(text: str) -> Span | None:
    """An IBAN of its country's length (the match may run into the next word)."""
    want = IBAN_LENGTHS.get(text[:2])
    if want is None:
        return None
    seen = 0
    for i, ch in enumerate(text):
        if ch != " ":
            seen += 1
            if seen == want:
                return (0, i + 1) if iban_ok(text[: i + 1]) else None
    return None


def _b64url_json(part: str) -> object:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError):
        return None


def _jwt(text: str) -> Span | None:
    """RFC 7519 §7.2: the JOSE header decodes to a JSON object naming ``alg`` or ``enc``."""
    header = _b64url_json(text.split(".", 1)[0])
    if isinstance(header, dict) and ("alg" in header or "enc" in header):
        return (0, len(text))
    return None


def _bearer(text: str) -> Span | None:
    """RFC 6750 §2.1 ``b64token``; a real token has a digit or mixed case (not a word)."""
    if any(c.isdigit() for c in text) or (not text.islower() and not text.isupper()):
        return (0, len(text))
    return None


_FILE_SUFFIXES = frozenset(
    "png jpg jpeg gif svg webp ico css js mjs map json html htm txt xml pdf woff woff2".split()
)


def _email(text: str) -> Span | None:
    """An address with a real top-level domain, not ``logo@2x.png``."""
    tld = text.rsplit(".", 1)[-1].lower()
    return None if tld in _FILE_SUFFIXES else (0, len(text))


def _always(text: str) -> Span | None:
    return (0, len(text))


VALIDATORS: dict[str, Validator] = {
    "none": _always,
    "luhn": _card,
    "iban": _iban,
    "jwt": _jwt,
    "bearer": _bearer,
    "email": _email,
}
