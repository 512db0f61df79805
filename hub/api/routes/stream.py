"""``WS /api/v1/stream?q=``: live entries matching a filter, within the viewer's scope."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect

from hub.api.deps import compile_filter, viewer_from_credentials
from hub.core.config import Settings, get_settings
from hub.core.security import SESSION_COOKIE
from hub.metrics import HubMetrics
from hub.scope import VIEW_BODIES
from hub.storage.base import Storage
from hub.stream import Broadcaster, Subscriber

router = APIRouter(tags=["stream"])


@router.websocket("/stream")
async def stream(ws: WebSocket, q: str = "") -> None:
    """Messages: ``{"type": "entry", "entry": {...}}``, ``{"type": "missed", "count": n}``
    when this client fell behind, ``{"type": "error", "detail": {...}}`` for a bad query."""
    app = ws.app
    settings: Settings = app.dependency_overrides.get(get_settings, get_settings)()
    viewer = viewer_from_credentials(
        settings, ws.headers.get("authorization"), ws.cookies.get(SESSION_COOKIE)
    )
    if viewer is None:
        await ws.close(code=1008, reason="authentication required")
        return
    await ws.accept()
    storage: Storage = app.state.storage
    try:
        f = compile_filter(viewer, storage.table, q)
    except HTTPException as exc:
        await ws.send_json({"type": "error", "detail": exc.detail})
        await ws.close(code=1008)
        return
    broadcaster: Broadcaster = app.state.broadcaster
    metrics: HubMetrics = app.state.metrics
    sub = broadcaster.subscribe(
        Subscriber(
            matches=f.matches,
            loop=asyncio.get_running_loop(),
            maxsize=settings.stream_queue,
            headers=viewer.may(VIEW_BODIES),
            on_missed=metrics.stream_missed.inc,
        )
    )
    metrics.stream_clients.inc()

    async def sender() -> None:
        while True:
            await sub.wake.wait()
            sub.wake.clear()
            while True:
                missed = sub.take_missed()
                if missed:
                    await ws.send_json({"type": "missed", "count": missed})
                try:
                    entry = sub.queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                await ws.send_json({"type": "entry", "entry": entry})

    async def receiver() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.receive_text()

    tasks = [asyncio.create_task(sender()), asyncio.create_task(receiver())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        broadcaster.unsubscribe(sub)
        metrics.stream_clients.dec()
