"""Prometheus metrics of one hub app (its own registry, so apps in one process don't mix)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["HubMetrics"]


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ingest_batches = Counter("kubeweir_ingest_batches", "Batches accepted", registry=r)
        self.ingest_entries = Counter("kubeweir_ingest_entries", "Entries stored (new)", registry=r)
        self.ingest_duplicates = Counter(
            "kubeweir_ingest_duplicates", "Entries skipped as already stored", registry=r
        )
        self.ingest_rejected = Counter(
            "kubeweir_ingest_rejected", "Batches refused", ["reason"], registry=r
        )
        self.ingest_seconds = Histogram(
            "kubeweir_ingest_seconds", "Time to store a batch", registry=r
        )
        self.query_seconds = Histogram(
            "kubeweir_query_seconds", "Time to answer a query", ["route"], registry=r
        )
        self.stream_clients = Gauge(
            "kubeweir_stream_clients", "Connected live-stream clients", registry=r
        )
        self.stream_missed = Counter(
            "kubeweir_stream_missed", "Entries a slow stream client missed", registry=r
        )
        self.auth_failures = Counter(
            "kubeweir_auth_failures", "Failed logins and refused credentials", registry=r
        )
        self.denials = Counter(
            "kubeweir_denials", "Authenticated requests refused (scope, role, CSRF)", registry=r
        )
        self.rate_limited = Counter(
            "kubeweir_rate_limited", "Requests refused with 429 after repeated failures", registry=r
        )
        self.stored_entries = Gauge("kubeweir_stored_entries", "Entries in storage", registry=r)
        self.storage_bytes = Gauge("kubeweir_storage_bytes", "Storage size", registry=r)
        self.retention_deleted = Gauge(
            "kubeweir_retention_deleted", "Entries deleted by retention so far", registry=r
        )
        self.ingest_writes = Gauge(
            "kubeweir_ingest_writes", "Storage writes (one statement each) so far", registry=r
        )
        self.ingest_written_batches = Gauge(
            "kubeweir_ingest_written_batches",
            "Batches stored by those writes (group commit joins concurrent ones)",
            registry=r,
        )
