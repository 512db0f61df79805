"""Viewer scope: the SQL clause and the Python predicate agree; globs are not patterns."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from hub.main import create_app
from hub.scope import glob_to_like, in_scope, scope_clause
from hub.storage.duckdb import DuckDBStorage
from hub.stream import entry_dict
from kubeweir.testing import make_endpoint, make_entry, make_viewer
from tests.hub.conftest import ADMIN, hub_settings

_store = DuckDBStorage()
_alphabet = st.sampled_from(list("ab%_\\*?-."))
_ns = st.text(_alphabet, max_size=5)


def test_glob_to_like_escapes_like_metacharacters() -> None:
    assert glob_to_like("pay*") == "pay%"
    assert glob_to_like("a?c") == "a_c"
    assert glob_to_like("50%_off\\") == "50\\%\\_off\\\\"


@given(
    src=_ns,
    dst=_ns,
    globs=st.lists(st.text(_alphabet, max_size=4), max_size=3),
)
def test_sql_and_python_scope_agree(src: str, dst: str, globs: list[str]) -> None:
    viewer = make_viewer(namespaces=tuple(globs))
    e = make_entry(
        src=make_endpoint("10.0.0.1", 1, namespace=src),
        dst=make_endpoint("10.0.0.2", 2, namespace=dst),
    )
    _store.ingest([e])
    in_sql = _store.get(e.id, scope_clause(viewer, _store.table)) is not None
    assert in_sql == in_scope(viewer, entry_dict(e))


def test_no_namespaces_sees_nothing() -> None:
    viewer = make_viewer(namespaces=())
    assert _store.count(scope_clause(viewer, _store.table)) == 0
    assert _store.count(scope_clause(make_viewer(), _store.table)) == _store.count(sa.true())


def test_openapi_documents_the_routes() -> None:
    with TestClient(create_app(hub_settings())) as c:
        r = c.get("/api/v1/openapi.json", headers=ADMIN)  # for viewers, with auth
        if r.status_code == 404:
            r = c.get("/openapi.json")
        spec = r.json()
    for path in ("/api/v1/entries", "/api/v1/entries/{entry_id}", "/api/v1/stats",
                 "/api/v1/servicemap", "/api/v1/ingest", "/api/v1/query/validate",
                 "/api/v1/query/fields", "/api/v1/export.har", "/api/v1/export.pcap",
                 "/api/v1/whoami", "/api/v1/status", "/api/v1/sniffers/heartbeat"):  # fmt: skip
        assert path in spec["paths"], path


def test_dashboard_not_built_page(tmp_path: Path) -> None:
    with TestClient(create_app(hub_settings(front_dist=tmp_path))) as c:
        r = c.get("/")
    assert r.status_code == 200 and "isn't built" in r.text
