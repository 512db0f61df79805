"""The dashboard's npm lock file: every package pinned and fetched from the npm registry
(mirrors and air-gapped installs rewrite one host, not a zoo of tarball URLs)."""

from __future__ import annotations

import json

from .conftest import FRONT

REGISTRY = "https://registry.npmjs.org/"


def test_lockfile_pins_everything_to_the_npm_registry() -> None:
    lock = json.loads((FRONT / "package-lock.json").read_text())
    pkg = json.loads((FRONT / "package.json").read_text())
    packages = {k: v for k, v in lock["packages"].items() if k}
    assert packages
    # `resolved` is either absent (npm's omit-lockfile-registry-resolved: the configured
    # registry is used) or a tarball on the npm registry; never git, file or other hosts.
    resolved = {k: v.get("resolved") for k, v in packages.items() if not v.get("link")}
    outside = {k: url for k, url in resolved.items() if url and not url.startswith(REGISTRY)}
    assert not outside, outside
    assert all(v.get("integrity", "").startswith("sha512-") for v in packages.values())
    for section in ("dependencies", "devDependencies"):
        for name, version in pkg.get(section, {}).items():
            assert version[0].isdigit(), f"{name} is not pinned: {version}"
