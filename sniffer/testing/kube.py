"""The Kubernetes API for tests: kmock's emulator in a thread with its own event loop.

The sniffer's ``kubernetes`` client is synchronous, so the emulator runs on a private
loop in a daemon thread and tests drive it through blocking helpers. Two things the
emulator does not do by itself are added here as reactions of a subclass:

- field selectors on pod lists and watches (``spec.nodeName=...``, ``metadata.name``,
  ``metadata.namespace``; ``=``, ``==``, ``!=``), and resource versions on objects;
- TokenReview creates, answered from a token table without storing the review (the
  store would answer a second create with 409).

``expire_next_watch()`` makes the next watch end with a 410 Gone event, as an API
server does when the client's resourceVersion is too old.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import kmock
import yaml

__all__ = ["KubeAPI", "ServiceAccountToken"]

T = TypeVar("T")


def _field(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def _fields_match(obj: dict[str, Any], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, val = term.split("!=", 1)
            if _field(obj, key.strip()) == val.strip():
                return False
        else:
            key, _, val = term.replace("==", "=").partition("=")
            if _field(obj, key.strip()) != val.strip():
                return False
    return True


class ServiceAccountToken:
    """A token the emulated TokenReview accepts, and whom it names."""

    def __init__(self, token: str, namespace: str, name: str, audiences: list[str]) -> None:
        self.token = token
        self.username = f"system:serviceaccount:{namespace}:{name}"
        self.audiences = audiences


class _Emulator(kmock.KubernetesEmulator):
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.tokens: dict[str, ServiceAccountToken] = {}
        self.reviews: list[dict[str, Any]] = []
        self.expire_watches = 0
        self.rv = itertools.count(1)

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        res = request.resource
        if res is not None and res.plural == "tokenreviews" and request.method == "POST":
            return aiohttp.web.json_response(self._review(request.data or {}), status=201)
        if res is not None and res.plural == "subjectaccessreviews" and request.method == "POST":
            review = await self._access_review(request.data or {})
            return aiohttp.web.json_response(review, status=201)
        if res is not None and request.method in ("POST", "PATCH") and request.data:
            # Resource versions, as an API server stamps them.
            request.data.setdefault("metadata", {})["resourceVersion"] = str(next(self.rv))
        response: aiohttp.web.StreamResponse = await super()._handle(request)
        return response

    async def _list(self, path: str) -> list[dict[str, Any]]:
        async with self.request("GET", path) as resp:
            if resp.status >= 400:
                return []
            data: dict[str, Any] = await resp.json(content_type=None)
        items: list[dict[str, Any]] = data.get("items") or []
        return items

    async def _access_review(self, body: dict[str, Any]) -> dict[str, Any]:
        """SubjectAccessReview evaluated against the stored Roles, ClusterRoles and their
        bindings, as the API server's RBAC authorizer does (without aggregation)."""
        spec = body.get("spec", {})
        attrs = spec.get("resourceAttributes") or {}
        ns = attrs.get("namespace", "")
        resource = attrs.get("resource", "")
        if attrs.get("subresource"):
            resource = f"{resource}/{attrs['subresource']}"
        wanted = (attrs.get("group", ""), resource, attrs.get("verb", ""))
        user, groups = spec.get("user", ""), set(spec.get("groups") or [])
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        bindings = await self._list(f"{rbac}/namespaces/{ns}/rolebindings") if ns else []
        bindings += await self._list(f"{rbac}/clusterrolebindings")
        allowed = False
        for b in bindings:
            subjects = b.get("subjects") or []
            if not any(
                (s.get("kind") == "User" and s.get("name") == user)
                or (s.get("kind") == "Group" and s.get("name") in groups)
                for s in subjects
            ):
                continue
            ref = b.get("roleRef", {})
            if ref.get("kind") == "Role":
                roles = await self._list(f"{rbac}/namespaces/{ns}/roles")
            else:
                roles = await self._list(f"{rbac}/clusterroles")
            role = next((r for r in roles if r["metadata"]["name"] == ref.get("name")), None)
            for rule in (role or {}).get("rules") or []:
                if (
                    (wanted[0] in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", []))
                    and (wanted[1] in rule.get("resources", []) or "*" in rule.get("resources", []))
                    and (wanted[2] in rule.get("verbs", []) or "*" in rule.get("verbs", []))
                ):
                    allowed = True
        self.reviews.append(spec)
        return {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": spec,
            "status": {"allowed": allowed},
        }

    def _review(self, body: dict[str, Any]) -> dict[str, Any]:
        spec = body.get("spec", {})
        self.reviews.append(spec)
        sa = self.tokens.get(spec.get("token", ""))
        wanted = spec.get("audiences") or []
        status: dict[str, Any]
        if sa is None:
            status = {"authenticated": False, "error": "invalid bearer token"}
        elif wanted and not set(wanted) & set(sa.audiences):
            status = {"authenticated": False, "error": "token audiences do not match"}
        else:
            status = {
                "authenticated": True,
                "user": {
                    "username": sa.username,
                    "uid": f"uid-{sa.username}",
                    "groups": ["system:serviceaccounts", "system:authenticated"],
                },
                "audiences": [a for a in wanted if a in sa.audiences] or sa.audiences,
            }
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }

    async def _serve_list(self, request: Any) -> Any:
        result: Any = await super()._serve_list(request)
        sel = request.params.get("fieldSelector", "")
        items = [o for o in result["items"] if _fields_match(o, sel)]
        rvs = [int(o.get("metadata", {}).get("resourceVersion", 0) or 0) for o in items]
        return {**result, "items": items,
                "metadata": {"resourceVersion": str(max(rvs, default=0))}}  # fmt: skip

    async def _serve_watch(self, request: Any) -> AsyncIterator[Any]:
        sel = request.params.get("fieldSelector", "")
        if self.expire_watches > 0:
            self.expire_watches -= 1
            yield b""
            yield {
                "type": "ERROR",
                "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "code": 410, "reason": "Expired",
                           "message": "too old resource version"},
            }  # fmt: skip
            return
        async for event in super()._serve_watch(request):
            if isinstance(event, dict) and not _fields_match(event.get("object", {}), sel):
                continue
            yield event


class KubeAPI:
    """kmock's Kubernetes emulator served on 127.0.0.1 from a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._stack: Any = None
        self.emulator: _Emulator | None = None
        self.url = ""

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> KubeAPI:
        self._thread.start()

        async def enter() -> None:
            from contextlib import AsyncExitStack

            self._stack = AsyncExitStack()
            self.emulator = await self._stack.enter_async_context(_Emulator())
            self.emulator.resources["v1/pods"] = kmock.ResourceInfo(kind="Pod", namespaced=True)
            rbac = "rbac.authorization.k8s.io/v1"
            for plural, kind, namespaced in (
                ("roles", "Role", True), ("rolebindings", "RoleBinding", True),
                ("clusterroles", "ClusterRole", False),
                ("clusterrolebindings", "ClusterRoleBinding", False),
            ):  # fmt: skip
                self.emulator.resources[f"{rbac}/{plural}"] = kmock.ResourceInfo(
                    kind=kind, namespaced=namespaced
                )
            server = await self._stack.enter_async_context(kmock.Server(self.emulator))
            self.url = str(server.url).rstrip("/")

        self._call(enter())
        return self

    def close(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            try:
                self._call(stack.aclose())
            except Exception:  # noqa: BLE001 - teardown goes on regardless
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> KubeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- driving it ----------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        assert self.emulator is not None

        async def go() -> dict[str, Any]:
            assert self.emulator is not None
            async with self.emulator.request(method, path, json=body) as resp:
                data: dict[str, Any] = await resp.json(content_type=None)
                if resp.status >= 400:
                    raise RuntimeError(f"{method} {path}: {resp.status} {data}")
                return data

        return self._call(go())

    def create_pod(self, obj: dict[str, Any]) -> dict[str, Any]:
        ns = obj["metadata"]["namespace"]
        return self._request("POST", f"/api/v1/namespaces/{ns}/pods", obj)

    def patch_pod(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}", patch)

    def delete_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self._request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}")

    def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create any object (a Namespace, a Role, a RoleBinding...) at its collection path."""
        return self._request("POST", path, obj)

    def add_token(self, sa: ServiceAccountToken) -> None:
        assert self.emulator is not None
        self.emulator.tokens[sa.token] = sa

    def expire_next_watch(self, count: int = 1) -> None:
        assert self.emulator is not None
        self.emulator.expire_watches += count

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig pointing at the emulator (no credentials)."""
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}],
            "current-context": "kmock",
        }
        path.write_text(yaml.safe_dump(cfg))
        return path
