"""The built dashboard (``front/dist``) at ``/``, with SPA fallback to ``index.html``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response

_NOT_BUILT = """<!doctype html><html><head><meta charset="utf-8"><title>kubeweir</title></head>
<body><h1>kubeweir hub</h1><p>The dashboard isn't built. Build it with
<code>npm --prefix front ci &amp;&amp; npm --prefix front run build</code>; the API is at
<a href="/docs">/docs</a>.</p></body></html>"""


def front_router(dist: Path | None) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    root = dist.resolve() if dist is not None and (dist / "index.html").is_file() else None

    @router.get("/{path:path}")
    def front(path: str) -> Response:
        if path.startswith(("api/", "auth/")) or path in ("api", "auth"):
            raise HTTPException(404, detail="not found")
        if root is None:
            return HTMLResponse(_NOT_BUILT)
        candidate = (root / path).resolve()
        if path and candidate.is_relative_to(root) and candidate.is_file():
            return FileResponse(candidate)
        return FileResponse(root / "index.html", headers={"Cache-Control": "no-cache"})

    return router
