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
from pathlib import Path

from setuptools import setup

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
        target_dir="build/native",
    )

setup(ext_modules=ext_modules)
