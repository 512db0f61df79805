"""Sniffer identity at the hub: a projected ServiceAccount token checked by TokenReview.

In a cluster each sniffer sends the token the kubelet projects into its pod (audience
``kubeweir``). The hub asks the API server (``POST .../tokenreviews``, with that audience)
whether the token is valid and whose it is, and accepts it only when the user is one of
the configured sniffer service accounts (``system:serviceaccount:<ns>:<name>``).
Answers are cached briefly per token hash so a batch costs no API round trip; a token the
API refuses is cached for a few seconds so a bad sniffer can't hammer the API server.
Standalone mode keeps the shared ingest token (``hub.core.security.ingest_token_ok``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["SnifferAuthError", "SnifferIdentity", "TokenReviewer", "service_account_user"]

log = logging.getLogger("kubeweir.hub.sniffer_auth")


class SnifferAuthError(Exception):
    """The credential is not a sniffer's; ``status`` is 401 (invalid) or 403 (not ours),
    or 503 when the API server could not be asked."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SnifferIdentity:
    username: str
    """``system:serviceaccount:<namespace>:<name>``."""
    uid: str = ""


def service_account_user(spec: str) -> str:
    """``namespace/name`` (or the full username) → ``system:serviceaccount:ns:name``."""
    if spec.startswith("system:serviceaccount:"):
        return spec
    ns, sep, name = spec.partition("/")
    if not sep or not ns or not name:
        raise ValueError(f"sniffer service account {spec!r}: expected namespace/name")
    return f"system:serviceaccount:{ns}:{name}"


class TokenReviewer:
    """Validates sniffer tokens with TokenReview; thread-safe, with a small cache."""

    def __init__(
        self,
        api_client: Any,
        service_accounts: Iterable[str],
        audience: str = "kubeweir",
        ttl: float = 60.0,
        negative_ttl: float = 5.0,
        max_cache: int = 1024,
    ) -> None:
        from kubernetes import client

        self.api = client.AuthenticationV1Api(api_client)
        self.allowed = frozenset(service_account_user(s) for s in service_accounts)
        self.audience = audience
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_cache = max_cache
        self.reviews = 0
        self._cache: OrderedDict[bytes, tuple[float, SnifferIdentity | SnifferAuthError]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls, kubeconfig: str | None, service_accounts: Iterable[str], audience: str = "kubeweir"
    ) -> TokenReviewer:
        from kubernetes import client, config

        if kubeconfig:
            api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        else:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            api_client = client.ApiClient()
        return cls(api_client, service_accounts, audience)

    def authenticate(self, token: str) -> SnifferIdentity:
        """The sniffer behind ``token``, or ``SnifferAuthError``."""
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                result = hit[1]
                if isinstance(result, SnifferAuthError):
                    raise result
                return result
        try:
            result = self._review(token)
            ttl = self.ttl
        except SnifferAuthError as exc:
            if exc.status == 503:
                raise  # the API server's trouble is not the sniffer's verdict: don't cache
            result, ttl = exc, self.negative_ttl
        with self._lock:
            self._cache[key] = (now + ttl, result)
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_cache:
                self._cache.popitem(last=False)
        if isinstance(result, SnifferAuthError):
            raise result
        return result

    def _review(self, token: str) -> SnifferIdentity:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        body = client.V1TokenReview(
            spec=client.V1TokenReviewSpec(token=token, audiences=[self.audience])
        )
        self.reviews += 1
        try:
            review = self.api.create_token_review(body, _request_timeout=10)
        except ApiException as exc:
            log.error("TokenReview failed: %s %s", exc.status, exc.reason)
            raise SnifferAuthError(503, "cannot verify the sniffer token now") from exc
        except Exception as exc:  # noqa: BLE001 - connection errors of every kind
            log.error("TokenReview failed: %s", exc)
            raise SnifferAuthError(503, "cannot verify the sniffer token now") from exc
        status = review.status
        if status is None or not status.authenticated:
            reason = (status.error if status is not None else "") or "not authenticated"
            raise SnifferAuthError(401, f"sniffer token rejected: {reason}")
        if status.audiences and self.audience not in status.audiences:
            raise SnifferAuthError(401, "sniffer token is not for this audience")
        user = status.user
        username = user.username if user is not None else ""
        if username not in self.allowed:
            log.warning("token of %r refused: not a sniffer service account", username)
            raise SnifferAuthError(403, f"{username} is not a kubeweir sniffer")
        return SnifferIdentity(username=username, uid=(user.uid or "") if user else "")


_reviewer_lock = threading.Lock()


def reviewer_for(app: Any, settings: Any) -> TokenReviewer:
    """The app's TokenReviewer, made on first use from the hub settings
    (``kubeconfig``, ``sniffer_service_accounts``, ``sniffer_token_audience``)."""
    reviewer: TokenReviewer | None = getattr(app.state, "token_reviewer", None)
    if reviewer is None:
        with _reviewer_lock:
            reviewer = getattr(app.state, "token_reviewer", None)
            if reviewer is None:
                reviewer = TokenReviewer.from_config(
                    settings.kubeconfig,
                    settings.sniffer_service_accounts,
                    settings.sniffer_token_audience,
                )
                app.state.token_reviewer = reviewer
    return reviewer
