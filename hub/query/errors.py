"""The one error a query can fail with: what is wrong, where, and a hint."""

from __future__ import annotations

__all__ = ["QueryError"]


class QueryError(ValueError):
    """A query that cannot be compiled (syntax, unknown field, type, limit, regex).

    ``position`` is the 0-based character offset in the query text; ``hint`` suggests a
    fix (nearest field names, the accepted types) or is empty.
    """

    def __init__(self, message: str, position: int = 0, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.hint = hint

    def as_dict(self) -> dict[str, object]:
        """The ``detail`` object of the hub's 400 answer."""
        return {"message": self.message, "position": self.position, "hint": self.hint}

    def __str__(self) -> str:
        text = f"{self.message} (at {self.position})"
        return f"{text}; {self.hint}" if self.hint else text
