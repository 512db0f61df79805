"""Time helpers shared by both back ends: ``now() + offset`` clamped to the datetime range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["as_utc", "shifted"]

_MIN = datetime.min.replace(tzinfo=UTC)
_MAX = datetime.max.replace(tzinfo=UTC)


def as_utc(t: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def shifted(now: datetime, offset: timedelta) -> datetime:
    """``now + offset`` in UTC, clamped to the representable range."""
    try:
        return as_utc(now) + offset
    except OverflowError:
        return _MAX if offset > timedelta(0) else _MIN
