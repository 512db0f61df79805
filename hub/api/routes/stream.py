"""``WS /api/v1/stream?q=``: live entries matching a filter, within the viewer's scope."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect

from hub.api.deps import compile_filter, settings_of
from hub.auth.service import AuthService
from hub.core.config import Settings
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
    settings: Settings = settings_of(app)
    auth: AuthService = app.state.auth
    try:
        viewer = auth.authenticate(ws)
    except HTTPException as exc:
        await ws.close(code=1008, reason=str(exc.detail)[:120])
        return
    await ws.accept()
    auth.store.audit(viewer.name, auth.source(ws), "stream", "/api/v1/stream", "ok", q=q)
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
