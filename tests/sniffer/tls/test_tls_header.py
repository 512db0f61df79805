"""The ctypes mirror of ``struct kw_tls_event`` agrees with tls_event.h (compiled by the C
compiler), and the constants the loader uses are the header's."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from sniffer.tls import probes


def test_event_layout_matches_header(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    fields = [name for name, _ in probes.TlsEvent._fields_]
    src = tmp_path / "layout.c"
    src.write_text(
        '#include <stdio.h>\n#include <stddef.h>\n#include "tls_event.h"\nint main(void) {\n'
        + "".join(f'  printf("{f} %zu\\n", offsetof(struct kw_tls_event, {f}));\n' for f in fields)
        + '  printf("data %zu\\n", offsetof(struct kw_tls_event, data));\n'
        '  printf("sizeof %zu\\n", sizeof(struct kw_tls_event));\n  return 0;\n}\n'
    )
    exe = tmp_path / "layout"
    subprocess.run([cc, f"-I{probes.HEADER.parent}", "-o", str(exe), str(src)], check=True)
    out = dict(line.split() for line in subprocess.check_output([str(exe)], text=True).splitlines())
    for f in fields:
        assert int(out[f]) == getattr(probes.TlsEvent, f).offset, f
    assert int(out["data"]) == probes.HEADER_SIZE == ctypes.sizeof(probes.TlsEvent)
    assert int(out["sizeof"]) == probes.HEADER_SIZE + probes.CHUNK


def test_constants_from_header() -> None:
    c = probes.header_constants()
    assert probes.CHUNK == c["KW_TLS_CHUNK"] == 16384
    assert {probes.DIR_READ, probes.DIR_WRITE} == {c["KW_TLS_READ"], c["KW_TLS_WRITE"]}
    assert len({probes.KIND_DATA, probes.KIND_EXEC, probes.KIND_ADDR, probes.KIND_FREE}) == 4
    assert sorted(probes.COUNTER_NAMES) == list(range(c["KW_TLS_COUNTERS"]))


def test_struct_header_reads_the_ctypes_layout() -> None:
    fields = [name for name, _ in probes.TlsEvent._fields_]
    ev = probes.TlsEvent(*range(1, len(fields) + 1))
    raw = bytes(ev) + b"data"
    assert probes.EVENT_HEADER.size == probes.HEADER_SIZE
    assert probes.EVENT_HEADER.unpack_from(raw) == tuple(range(1, len(fields) + 1))
