"""Authorization delegated to Kubernetes RBAC: for each namespace, a SubjectAccessReview
asks whether the SAML user (and groups) may ``get`` ``traffic`` in ``kubeweir.io``.

Answers are cached briefly; an API-server failure denies (and is not cached).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["RbacAuthorizer", "RbacDecision"]


@dataclass(frozen=True, slots=True)
class RbacDecision:
    namespaces: tuple[str, ...]
    """Namespaces whose traffic the user may see."""
    pcap_namespaces: tuple[str, ...]
    """Namespaces whose traffic the user may download as PCAP."""
    error: str = ""
    """Why the answer is empty when the API server could not be asked."""


class RbacAuthorizer:
    """Asks the API server; ``api_client`` is a ``kubernetes.client.ApiClient``."""

    def __init__(
        self,
        api_client: Any,
        *,
        resource: str = "traffic",
        group: str = "kubeweir.io",
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        namespaces: Callable[[], list[str]] | None = None,
    ) -> None:
        from kubernetes import client

        self._authz = client.AuthorizationV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._client = client
        self.resource = resource
        self.group = group
        self.ttl = ttl
        self._clock = clock
        self._namespaces = namespaces or self._api_namespaces
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[float, RbacDecision]] = {}
        self._lock = threading.Lock()

    def _allowed(self, user: str, groups: tuple[str, ...], ns: str, sub: str | None) -> bool:
        c = self._client
        review = c.V1SubjectAccessReview(
            spec=c.V1SubjectAccessReviewSpec(
                user=user,
                groups=list(groups),
                resource_attributes=c.V1ResourceAttributes(
                    namespace=ns,
                    verb="get",
                    group=self.group,
                    resource=self.resource,
                    subresource=sub,
                ),
            )
        )
        result = self._authz.create_subject_access_review(review)
        return bool(result.status and result.status.allowed)

    def _api_namespaces(self) -> list[str]:
        items = self._core.list_namespace().items
        return [str(n.metadata.name) for n in items if n.metadata and n.metadata.name]

    def decide(self, user: str, groups: tuple[str, ...]) -> RbacDecision:
        key = (user, tuple(sorted(groups)))
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        try:
            namespaces = self._namespaces()
            seen = tuple(ns for ns in namespaces if self._allowed(user, groups, ns, None))
            pcap = tuple(ns for ns in seen if self._allowed(user, groups, ns, "pcap"))
        except Exception as exc:  # any API failure denies; never cached
            return RbacDecision((), (), error=f"Kubernetes API: {type(exc).__name__}: {exc}"[:300])
        decision = RbacDecision(seen, pcap)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now + self.ttl, decision)
        return decision
