"""The modules compiled with mypyc, and the import-time check that none is stale.

``NATIVE_MODULES`` is the one list of compiled modules: ``setup.py`` (``pip install .``,
the container images) and ``scripts/native.py`` (``make native``, an in-place build for a
source checkout) both read it with ``runpy`` from this file, without importing the
kubeweir package, so a stale build never stops the build that fixes it. Only the standard
library is used here.

In a source checkout, a compiled module sits next to its source as
``name.cpython-311-x86_64-linux-gnu.so`` and Python imports it instead of the ``.py``.
``check()`` (called by ``kubeweir/__init__.py``) refuses to run when a listed source is
newer than its compiled module: the edit would be silently ignored. With
``KUBEWEIR_NATIVE=0`` it refuses to run while any compiled module is present, so a
"pure" run really is pure (``KUBEWEIR_NATIVE=0 make native`` removes them).
"""

from __future__ import annotations

import importlib.machinery
import os
from pathlib import Path

# Hot paths only: capture decoding, reassembly, the pipeline, every parser (a parser
# subclasses StreamParser/DatagramParser, so all of them are compiled with their base),
# redaction, the live sniffer's ring/socket/spool/shipper, and the hub's ingest rows.
# Not here: sniffer/sources/afpacket.py (mypyc 2.4.1 emits C that does not compile for
# its ctypes.Structure classes; it only sets the socket up, off the per-packet path),
# FastAPI route modules (FastAPI introspects signatures), kubeweir/entry.py
# (msgspec Structs), click commands.
NATIVE_MODULES: tuple[str, ...] = (
    "redaction._compiled",
    "redaction._config",
    "redaction._engine",
    "redaction._rules",
    "redaction._validators",
    "sniffer.capture.decode",
    "sniffer.capture.files",
    "sniffer.reassembly",
    "sniffer.pipeline",
    "sniffer.parsers._common",
    "sniffer.parsers._http_body",
    "sniffer.parsers._http_events",
    "sniffer.parsers._http_reader",
    "sniffer.parsers._http_wire",
    "sniffer.parsers.amqp",
    "sniffer.parsers.base",
    "sniffer.parsers.dns",
    "sniffer.parsers.dns_tcp",
    "sniffer.parsers.grpc",
    "sniffer.parsers.http1",
    "sniffer.parsers.http2",
    "sniffer.parsers.kafka",
    "sniffer.parsers.mqtt",
    "sniffer.parsers.postgres",
    "sniffer.parsers.protobuf",
    "sniffer.parsers.redis",
    "sniffer.parsers.registry",
    "sniffer.sources.ring",
    "sniffer.spool",
    "sniffer.shipper",
    "hub.storage.rows",
    "hub.storage.recent",
)

# mypyc's runtime and the code of all modules live in one shared library at the top of
# the tree; each listed module gets a small extension that loads its part of it.
GROUP_NAME = "kubeweir_native"

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


class NativeBuildError(RuntimeError):
    """A compiled module does not match its source (or compiled code is unwanted)."""


def source_path(module: str, root: Path = ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def compiled_path(module: str, root: Path = ROOT) -> Path:
    parts = module.split(".")
    return root.joinpath(*parts[:-1], parts[-1] + SUFFIX)


def group_library(root: Path = ROOT) -> Path:
    return root / f"{GROUP_NAME}__mypyc{SUFFIX}"


def built_files(root: Path = ROOT) -> list[Path]:
    """The compiled files present in this tree (module extensions and the group library)."""
    files = [compiled_path(m, root) for m in NATIVE_MODULES] + [group_library(root)]
    return [f for f in files if f.exists()]


def stale(root: Path = ROOT) -> list[tuple[Path, Path]]:
    """(source, compiled) pairs whose compiled module is older than the source or lacks it.

    A module without a compiled file is not stale: it runs as Python.
    """
    out = []
    for module in NATIVE_MODULES:
        so = compiled_path(module, root)
        try:
            built = so.stat().st_mtime
        except FileNotFoundError:
            continue
        py = source_path(module, root)
        try:
            newer = py.stat().st_mtime > built
        except FileNotFoundError:
            newer = True  # source gone: the compiled copy is of code that no longer exists
        if newer:
            out.append((py, so))
    return out


def native_wanted() -> bool:
    return os.environ.get("KUBEWEIR_NATIVE", "1") != "0"


def check(root: Path = ROOT) -> None:
    """Raise NativeBuildError when compiled code in a source checkout would run stale.

    Installed copies (a wheel: no pyproject.toml beside the packages) are built in one
    go from one source and are not checked.
    """
    if not (root / "pyproject.toml").is_file():
        return
    if not native_wanted():
        present = built_files(root)
        if present:
            raise NativeBuildError(
                f"KUBEWEIR_NATIVE=0 but compiled modules are present (e.g. {present[0]}): "
                "run `KUBEWEIR_NATIVE=0 make native` to remove them"
            )
        return
    bad = stale(root)
    if bad:
        py, so = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise NativeBuildError(
            f"{py} is newer than its compiled module {so}{more}: the compiled copy would "
            "run instead of your edit. Run `make native` to rebuild, or delete the .so "
            "files (`KUBEWEIR_NATIVE=0 make native`) to run pure Python."
        )
