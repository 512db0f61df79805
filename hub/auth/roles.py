"""From IdP groups to a viewer's scope: the union of the roles its groups map to."""

from __future__ import annotations

from dataclasses import dataclass

from hub.auth.config import AuthSettings

__all__ = ["Grant", "grant_for_groups"]


@dataclass(frozen=True, slots=True)
class Grant:
    """What a set of roles allows: namespace globs and permissions."""

    roles: tuple[str, ...]
    namespaces: tuple[str, ...]
    permissions: frozenset[str]

    @property
    def empty(self) -> bool:
        return not self.namespaces


def grant_for_groups(settings: AuthSettings, groups: tuple[str, ...] | list[str]) -> Grant:
    """The union of the roles the groups map to (no role → an empty grant: no access)."""
    names: list[str] = []
    for group in groups:
        for mapped in settings.group_roles.get(group, []):
            if mapped not in names:
                names.append(mapped)
    namespaces: list[str] = []
    permissions: set[str] = set()
    for role_name in names:
        role = settings.roles[role_name]
        namespaces.extend(ns for ns in role.namespaces if ns not in namespaces)
        permissions.update(role.permissions)
    return Grant(tuple(names), tuple(namespaces), frozenset(permissions))
