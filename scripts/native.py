"""`make native`: compile the modules of kubeweir/_native.py with mypyc, in place.

Builds only when a listed source is newer than its compiled module (or one is missing),
so it is fast when up to date. ``KUBEWEIR_NATIVE=0`` removes the compiled modules
instead, so that everything runs as pure Python. Usage::

    .venv/bin/python scripts/native.py          # build if needed
    .venv/bin/python scripts/native.py --clean  # remove the compiled modules
    .venv/bin/python scripts/native.py --status # say what is compiled and what is stale

The module list is read from kubeweir/_native.py with runpy: the kubeweir package is
not imported (its import-time check would refuse a stale tree, which is what this fixes).
"""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
native = runpy.run_path(str(ROOT / "kubeweir" / "_native.py"))
MODULES: tuple[str, ...] = native["NATIVE_MODULES"]


def compiled(module: str) -> Path:
    return native["compiled_path"](module, ROOT)  # type: ignore[no-any-return]


def todo() -> list[str]:
    """Listed modules whose compiled file is missing or older than the source."""
    stale = {str(py) for py, _ in native["stale"](ROOT)}
    return [
        m
        for m in MODULES
        if not compiled(m).exists() or str(native["source_path"](m, ROOT)) in stale
    ]


def clean() -> int:
    removed = 0
    for f in native["built_files"](ROOT):
        f.unlink()
        removed += 1
    shutil.rmtree(ROOT / "build" / "native", ignore_errors=True)
    print(f"[native] removed {removed} compiled files: running pure Python", file=sys.stderr)
    return 0


def build(jobs: int) -> int:
    need = todo()
    if not need:
        print(f"[native] {len(MODULES)} compiled modules up to date", file=sys.stderr)
        return 0
    print(
        f"[native] compiling {len(MODULES)} modules with mypyc "
        f"({len(need)} out of date, e.g. {need[0]})",
        file=sys.stderr,
    )
    t0 = time.monotonic()
    started = time.time()
    cmd = [sys.executable, "setup.py", "-q", "build_ext", "--inplace", f"--parallel={jobs}"]
    env = dict(os.environ, KUBEWEIR_NATIVE="1")
    r = subprocess.run(cmd, cwd=ROOT, env=env)
    if r.returncode:
        print("[native] mypyc build failed (see above)", file=sys.stderr)
        return r.returncode
    # setuptools skips linking a module's extension whose C is unchanged; the module's
    # source may still be newer (an edit that compiles to the same C, a checkout). Mark
    # everything as built when the build started, from the sources it read: a source
    # edited while it ran stays newer, so it is reported below and the import check
    # refuses it, instead of passing for built.
    for f in native["built_files"](ROOT):
        os.utime(f, (started, started))
    left = todo()
    if left:
        print(f"[native] still not compiled after the build: {left}", file=sys.stderr)
        return 1
    print(f"[native] compiled in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 0


def status() -> int:
    need = set(todo())
    for m in MODULES:
        state = "missing" if not compiled(m).exists() else "stale" if m in need else "ok"
        print(f"{state:8} {m}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", action="store_true", help="remove the compiled modules")
    ap.add_argument("--status", action="store_true", help="list each module's state")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    if args.status:
        return status()
    if args.clean or not native["native_wanted"]():
        return clean()
    return build(args.jobs)


if __name__ == "__main__":
    sys.exit(main())
