"""The hub's FastAPI application: ``create_app(settings)``; nothing happens at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from hub.api.routes import (
    audit,
    auth,
    entries,
    export,
    front,
    health,
    ingest,
    me,
    query,
    saml,
    stats,
    targeting,
    tokens,
)
from hub.api.routes import stream as stream_routes
from hub.auth import middleware
from hub.auth.service import AuthService
from hub.core.config import Settings, get_settings
from hub.enrich import ClusterIndex, Enricher
from hub.ingest import ConversionPool, default_workers
from hub.metrics import HubMetrics
from hub.sniffers import SnifferRegistry
from hub.storage.base import Storage
from hub.stream import Broadcaster

__all__ = ["create_app", "open_storage"]

log = logging.getLogger(__name__)

API = "/api/v1"
_DEFAULT_DIST = Path(__file__).resolve().parent.parent / "front" / "dist"


def open_storage(settings: Settings) -> Storage:
    """The storage back end the settings name (DuckDB, the only one so far)."""
    from hub.storage.duckdb import DuckDBStorage

    return DuckDBStorage(
        settings.db,
        dedupe_window=settings.dedupe_window,
        retention_max_age=settings.retention_max_age,
        retention_max_bytes=settings.retention_max_bytes,
        retention_interval=settings.retention_interval,
        memory_limit=settings.db_memory_limit,
        checkpoint_threshold=settings.db_checkpoint_threshold,
    )


def make_auth(cfg: Settings, storage: Storage, metrics: HubMetrics) -> AuthService:
    """The viewer authentication of an app, on the storage's database."""
    from hub.scope import Viewer

    config_tokens = {
        token: Viewer(v.name, tuple(v.namespaces), frozenset(v.permissions))
        for token, v in cfg.viewer_tokens.items()
    }
    kube = None
    if cfg.auth.authz == "kubernetes" and cfg.kubeconfig:
        from kubernetes import client, config

        conf = client.Configuration()
        config.load_kube_config(cfg.kubeconfig, client_configuration=conf)  # type: ignore[no-untyped-call]
        kube = client.ApiClient(conf)
    return AuthService(
        cfg.auth,
        storage.sql_engine(),
        cfg.secret_key.get_secret_value(),
        cookie_secure=cfg.cookie_secure,
        config_tokens=config_tokens,
        kube_api_client=kube,
        metrics=metrics,
    )


def create_app(settings: Settings | None = None, storage: Storage | None = None) -> FastAPI:
    """A hub app. With ``settings`` given the app uses them instead of ``get_settings()``;
    with ``storage`` given the app uses it (and does not close it)."""
    cfg = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = storage is None
        store = open_storage(cfg) if own else storage
        assert store is not None
        app.state.storage = store
        app.state.auth = make_auth(cfg, store, app.state.metrics)
        watcher = None
        if cfg.enrich:
            from hub.enrich import ClusterWatcher

            index = ClusterIndex()
            app.state.enricher = Enricher(index)
            watcher = ClusterWatcher.from_config(index, cfg.kubeconfig)
            watcher.start()
        workers = default_workers() if cfg.ingest_workers is None else cfg.ingest_workers
        app.state.ingest_pool = (
            ConversionPool(workers, cfg.ingest_pool_min_concurrent) if workers else None
        )
        try:
            if app.state.ingest_pool is not None:
                app.state.ingest_pool.start()
            if own:
                store.start()
            yield
        finally:
            if app.state.ingest_pool is not None:
                app.state.ingest_pool.close()
                app.state.ingest_pool = None
            if watcher is not None:
                watcher.stop()
            if own:
                store.close()

    app = FastAPI(
        title="kubeweir hub",
        version="0.1.0",
        description="Ingest, storage, CEL queries and live streams of API-call entries.",
        lifespan=lifespan,
        # Air-gapped and deny-by-default: no CDN-served docs pages; the OpenAPI document
        # is served to viewers at /api/v1/openapi.json.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = cfg
    app.state.metrics = HubMetrics()
    app.state.broadcaster = Broadcaster()
    app.state.sniffers = SnifferRegistry()
    app.state.enricher = None
    app.state.ingest_pool = None
    app.state.storage = storage

    app.state.auth = None
    middleware.install(app)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(saml.router)
    for module in (ingest, entries, stats, query, me, export, tokens, audit, targeting):
        app.include_router(module.router, prefix=API)
    app.include_router(stream_routes.router, prefix=API)
    app.include_router(front.front_router(cfg.front_dist or _DEFAULT_DIST))
    return app
