"""Targeting rules from the hub (heartbeat answers) over the rules file."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from hub.main import create_app
from sniffer.agent import Agent
from sniffer.settings import SnifferSettings
from sniffer.targeting import Targeting, pod_from_object
from tests.hub.conftest import ADMIN, hub_settings, serve
from tests.sniffer.test_targeting import _pod


def _targeting(tmp_path: Path) -> Targeting:
    path = tmp_path / "rules.yaml"
    path.write_text("labelSelector: app=web\n")
    t = Targeting("n1", rules_path=path)
    web = _pod("a", labels={"app": "web"})
    db = _pod("b", ns="pay", labels={"app": "db"}, ip="10.0.0.2")
    t.set_pods([pod_from_object(web), pod_from_object(db)])
    assert t.targets == {"10.0.0.1"}
    return t


def _agent(tmp_path: Path, targeting: Targeting, hub: str = "http://127.0.0.1:9") -> Agent:
    settings = SnifferSettings(
        hub=hub,
        node="n1",
        token="ingest-secret",  # type: ignore[arg-type]
        spool_dir=tmp_path / "spool",
        heartbeat_interval=0.1,
        redact=False,
    )
    return Agent(settings, targeting)


def test_heartbeat_answer_with_rules_changes_selection(tmp_path: Path) -> None:
    t = _targeting(tmp_path)
    agent = _agent(tmp_path, t)
    # an older hub (no targeting in the answer): the file's rules stay
    assert not agent.apply_heartbeat_answer({"ok": True})
    assert not agent.apply_heartbeat_answer({"ok": True, "targeting_version": 0})
    assert t.targets == {"10.0.0.1"}
    answer = {"ok": True, "targeting_version": 3, "targeting": {"namespaces": ["pay"]}}
    assert agent.apply_heartbeat_answer(answer)
    assert t.targets == {"10.0.0.2"} and t.status()["rules_source"] == "hub v3"
    assert not agent.apply_heartbeat_answer(answer)  # same version: nothing to do
    # while the hub has rules, a changed file is read but not applied
    path = tmp_path / "rules.yaml"
    path.write_text("labelSelector: app in (web,db)\n")
    os.utime(path, (time.time() + 1, time.time() + 1))
    assert not t.check_rules_file()
    assert t.targets == {"10.0.0.2"}
    # bad hub rules keep the previous ones, reported
    bad = {"targeting_version": 4, "targeting": {"podRegex": "("}}
    assert not agent.apply_heartbeat_answer(bad)
    assert t.targets == {"10.0.0.2"} and "podRegex" in t.status()["rules_error"]
    # malformed answers are ignored
    assert not agent.apply_heartbeat_answer({"targeting_version": "x", "targeting": None})
    # the hub dropping its rules (version 0): back to the file's current rules
    assert agent.apply_heartbeat_answer({"targeting_version": 0, "targeting": None})
    assert t.targets == {"10.0.0.1", "10.0.0.2"} and t.status()["rules_source"] == "file"


def test_agent_picks_up_rules_set_on_a_real_hub(tmp_path: Path) -> None:
    app = create_app(hub_settings(db=str(tmp_path / "hub.duckdb")))
    with contextmanager(serve)(app) as address:
        t = _targeting(tmp_path)
        agent = _agent(tmp_path, t, hub=f"http://{address}")
        beat = threading.Thread(target=agent._heartbeat, daemon=True)
        beat.start()
        try:
            deadline = time.monotonic() + 5
            while agent.heartbeats_sent < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert agent.heartbeats_sent >= 2
            assert t.targets == {"10.0.0.1"}  # the hub has no rules: the file's apply
            r = httpx.put(f"http://{address}/api/v1/targeting", headers=ADMIN,
                          json={"namespaces": ["pay"], "labelSelector": "app=db"})  # fmt: skip
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + 5
            while t.targets != {"10.0.0.2"} and time.monotonic() < deadline:
                time.sleep(0.05)
            assert t.targets == {"10.0.0.2"}
            assert t.hub_version == 1
        finally:
            agent._stop.set()
            beat.join(timeout=5)
