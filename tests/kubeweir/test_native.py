"""The mypyc-compiled modules: really compiled after `make native`, never run stale."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from importlib.machinery import ExtensionFileLoader
from pathlib import Path

import pytest

from kubeweir import _native
from kubeweir._native import NATIVE_MODULES, NativeBuildError, check, compiled_path

REPO = Path(__file__).resolve().parents[2]


def test_listed_modules_are_compiled() -> None:
    mode = os.environ.get("KUBEWEIR_NATIVE")
    if mode == "0":
        pytest.skip("KUBEWEIR_NATIVE=0: a pure-Python run")
    if mode is None and not _native.built_files():
        pytest.skip("not built: run `make native` (make test sets KUBEWEIR_NATIVE=1 to require it)")
    for name in NATIVE_MODULES:
        mod = importlib.import_module(name)
        assert isinstance(mod.__loader__, ExtensionFileLoader), f"{name} runs as Python"
        assert mod.__file__ == str(compiled_path(name)), name
    assert _native.group_library().is_file()
    # a compiled class really is native: its methods are builtins, not Python functions
    from sniffer.pipeline import Pipeline

    assert type(Pipeline.feed).__name__ != "function"


def test_list_names_existing_sources() -> None:
    assert len(set(NATIVE_MODULES)) == len(NATIVE_MODULES)
    for name in NATIVE_MODULES:
        assert _native.source_path(name).is_file(), name
        assert not name.endswith("__init__")


def fake_tree(root: Path, modules: list[str]) -> None:
    """A source checkout with a .py and an (empty) compiled file per module."""
    (root / "pyproject.toml").write_text("")
    for name in modules:
        py = _native.source_path(name, root)
        py.parent.mkdir(parents=True, exist_ok=True)
        py.write_text("")
        so = compiled_path(name, root)
        so.write_bytes(b"")
        os.utime(py, (1000, 1000))
        os.utime(so, (2000, 2000))


def test_stale_compiled_module_refuses_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBEWEIR_NATIVE", raising=False)
    fake_tree(tmp_path, list(NATIVE_MODULES[:3]))
    check(tmp_path)  # compiled after the sources: fine
    py = _native.source_path(NATIVE_MODULES[1], tmp_path)
    os.utime(py, (3000, 3000))  # edited after the build
    with pytest.raises(NativeBuildError) as err:
        check(tmp_path)
    assert str(py) in str(err.value) and "make native" in str(err.value)
    # deleting the compiled file makes it run as Python: fine again
    compiled_path(NATIVE_MODULES[1], tmp_path).unlink()
    check(tmp_path)
    # a compiled file whose source is gone is stale too
    _native.source_path(NATIVE_MODULES[2], tmp_path).unlink()
    with pytest.raises(NativeBuildError, match="make native"):
        check(tmp_path)


def test_pure_mode_refuses_compiled_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tree(tmp_path, list(NATIVE_MODULES[:1]))
    monkeypatch.setenv("KUBEWEIR_NATIVE", "0")
    with pytest.raises(NativeBuildError, match="KUBEWEIR_NATIVE=0 make native"):
        check(tmp_path)
    compiled_path(NATIVE_MODULES[0], tmp_path).unlink()
    check(tmp_path)


def test_installed_copy_is_not_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel's files get their install time in any order: no pyproject.toml, no check."""
    monkeypatch.delenv("KUBEWEIR_NATIVE", raising=False)
    fake_tree(tmp_path, list(NATIVE_MODULES[:1]))
    os.utime(_native.source_path(NATIVE_MODULES[0], tmp_path), (3000, 3000))
    (tmp_path / "pyproject.toml").unlink()
    check(tmp_path)


def test_import_fails_on_a_stale_tree_but_the_build_runs(tmp_path: Path) -> None:
    """`import kubeweir` names the stale file; scripts/native.py still runs on that tree."""
    fake_tree(tmp_path, [NATIVE_MODULES[0]])
    for rel in ("kubeweir/__init__.py", "kubeweir/_native.py", "scripts/native.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    py = _native.source_path(NATIVE_MODULES[0], tmp_path)
    os.utime(py, (3000, 3000))
    env = dict(os.environ, PYTHONPATH=str(tmp_path), KUBEWEIR_NATIVE="1")
    r = subprocess.run(
        [sys.executable, "-c", "import kubeweir"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert "NativeBuildError" in r.stderr and str(py) in r.stderr and "make native" in r.stderr
    r = subprocess.run(
        [sys.executable, str(tmp_path / "scripts" / "native.py"), "--status"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert f"stale    {NATIVE_MODULES[0]}" in r.stdout
    assert f"missing  {NATIVE_MODULES[1]}" in r.stdout
