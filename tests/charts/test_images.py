"""The Dockerfiles can't be built here (no Docker engine): check them statically."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGES = sorted((REPO / "images").glob("*.Dockerfile"))


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_both_images_exist() -> None:
    assert {p.name for p in IMAGES} == {"hub.Dockerfile", "sniffer.Dockerfile"}


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_bases_are_pinned_and_multi_stage(path: Path) -> None:
    froms = [rest for op, rest in instructions(path) if op == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    for base in froms:
        image = base.split()[0]
        name, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{image} is not pinned"
        assert re.match(r"^\d+(\.\d+){1,2}", tag), f"{image}: pin a full version"


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_nothing_is_piped_into_a_shell(path: Path) -> None:
    for op, rest in instructions(path):
        if op == "RUN":
            assert not re.search(r"(curl|wget)[^|]*\|\s*(ba|z)?sh", rest), rest
            assert "ADD http" not in rest


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_copied_paths_exist_in_the_repository(path: Path) -> None:
    for op, rest in instructions(path):
        if op != "COPY" or "--from=" in rest:
            continue
        *sources, _dest = rest.split()
        for src in sources:
            assert (REPO / src).exists(), f"{path.name}: {src} missing"


def test_hub_runs_as_non_root() -> None:
    users = [rest for op, rest in instructions(REPO / "images" / "hub.Dockerfile") if op == "USER"]
    assert users and not users[-1].startswith(("0", "root")), users
