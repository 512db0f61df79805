"""Build hook: the modules listed in kubeweir/_native.py are compiled with mypyc.

Everything else about the distribution is in pyproject.toml. ``pip install .`` (the
container images) builds a wheel with the compiled modules beside their sources;
``make native`` (scripts/native.py) builds them in place in a source checkout.
``KUBEWEIR_NATIVE=0`` builds a pure-Python distribution (the editable install of
scripts/setup.sh uses it: ``make native`` compiles the checkout).
"""

from __future__ import annotations

import os
import runpy
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext


class ParallelBuildExt(build_ext):
    """build_ext that compiles the C files of one extension in parallel (``--parallel``):
    mypyc's multi-file output is one extension of many C files, which setuptools would
    compile one after the other."""

    def build_extension(self, ext: Any) -> None:
        # pip gives no --parallel: every CPU then
        jobs = int(self.parallel) if self.parallel not in (None, True) else os.cpu_count() or 1
        compile_one = self.compiler.compile
        if jobs < 2 or len(ext.sources) < 2:
            super().build_extension(ext)
            return

        def compile_all(sources: list[str], *args: Any, **kwargs: Any) -> list[str]:
            # the biggest first, so that the long ones do not end up last and alone
            order = sorted(sources, key=lambda f: -os.path.getsize(f))
            with ThreadPoolExecutor(jobs) as pool:
                objs = pool.map(lambda f: compile_one([f], *args, **kwargs), order)
                done = dict(zip(order, objs, strict=True))
            return [obj for f in sources for obj in done[f]]

        self.compiler.compile = compile_all
        try:
            super().build_extension(ext)
        finally:
            self.compiler.compile = compile_one


ROOT = Path(__file__).resolve().parent
native = runpy.run_path(str(ROOT / "kubeweir" / "_native.py"))

ext_modules = []
if os.environ.get("KUBEWEIR_NATIVE", "1") != "0":
    from mypyc.build import mypycify

    os.chdir(ROOT)  # mypycify takes paths relative to the project root
    ext_modules = mypycify(
        [str(native["source_path"](m, Path("."))) for m in native["NATIVE_MODULES"]],
        opt_level=os.environ.get("MYPYC_OPT_LEVEL", "3"),
        group_name=native["GROUP_NAME"],
        multi_file=True,  # a C file per module, compiled in parallel (ParallelBuildExt)
        target_dir="build/native",
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": ParallelBuildExt})
