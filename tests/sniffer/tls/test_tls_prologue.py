"""Where the probes go (``prologue.plan``): fake libssl files built from assembly with the
shapes of OpenSSL's functions, and the node's own libssl when it has one."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sniffer.tls import procs, prologue

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 decoding")

# OpenSSL 3.0's shapes: SSL_read_ex = sub; call internal; SSL_read calls the same internal;
# internal starts with push; SSL_free = test %rdi,%rdi; je.
OPENSSL30 = """
    .text
    .globl SSL_read, SSL_read_ex, SSL_write, SSL_write_ex, SSL_free
    .type SSL_read,@function
SSL_read:
    sub $0x18,%rsp
    lea 8(%rsp),%rcx
    call read_internal
    add $0x18,%rsp
    ret
    .size SSL_read, .-SSL_read
    .type SSL_read_ex,@function
SSL_read_ex:
    sub $8,%rsp
    call read_internal
    add $8,%rsp
    ret
    .size SSL_read_ex, .-SSL_read_ex
    .type SSL_write,@function
SSL_write:
    sub $0x18,%rsp
    lea 8(%rsp),%rcx
    call write_internal
    add $0x18,%rsp
    ret
    .size SSL_write, .-SSL_write
    .type SSL_write_ex,@function
SSL_write_ex:
    endbr64
    sub $8,%rsp
    call write_internal
    add $8,%rsp
    ret
    .size SSL_write_ex, .-SSL_write_ex
    .type SSL_free,@function
SSL_free:
    test %rdi,%rdi
    je 1f
    push %rbx
    pop %rbx
1:  ret
    .size SSL_free, .-SSL_free
read_internal:
    push %r13
    mov $1,%eax
    pop %r13
    ret
write_internal:
    endbr64
    push %r14
    mov $1,%eax
    pop %r14
    ret
    .section .note.GNU-stack,"",@progbits
"""

# OpenSSL 3.2+'s write: SSL_write_ex passes a flags argument on (not its own four args):
# the public functions are probed; SSL_read starts with endbr64 then sub (single-stepped).
OTHER = """
    .text
    .globl SSL_read, SSL_write, SSL_write_ex
    .type SSL_read,@function
SSL_read:
    endbr64
    sub $0x18,%rsp
    add $0x18,%rsp
    ret
    .size SSL_read, .-SSL_read
    .type SSL_write,@function
SSL_write:
    endbr64
    push %rbp
    lea 8(%rsp),%rcx
    call write_internal
    pop %rbp
    ret
    .size SSL_write, .-SSL_write
    .type SSL_write_ex,@function
SSL_write_ex:
    sub $8,%rsp
    xor %ecx,%ecx
    call write_internal
    add $8,%rsp
    ret
    .size SSL_write_ex, .-SSL_write_ex
write_internal:
    push %r14
    pop %r14
    ret
    .section .note.GNU-stack,"",@progbits
"""


def build(tmp: Path, name: str, asm: str) -> tuple[str, dict[str, int]]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp / f"{name}.S"
    src.write_text(asm)
    so = tmp / f"{name}.so"
    subprocess.run([cc, "-shared", "-fPIC", "-nostdlib", "-o", str(so), str(src)], check=True)
    addrs: dict[str, int] = {}
    for line in subprocess.check_output(["nm", str(so)], text=True).splitlines():
        parts = line.split()
        if len(parts) == 3:
            addrs[parts[2]] = int(parts[0], 16)
    return str(so), addrs


def test_openssl30_shape_probes_the_shared_internal_functions(tmp_path: Path) -> None:
    so, a = build(tmp_path, "fake30", OPENSSL30)
    pts = {p.entry: p for p in prologue.plan(so)}
    assert set(pts) == {"kw_ssl_read_ex_enter", "kw_ssl_write_ex_enter", "kw_ssl_free"}
    read, write = pts["kw_ssl_read_ex_enter"], pts["kw_ssl_write_ex_enter"]
    free = pts["kw_ssl_free"]
    assert read.vaddr == a["read_internal"] and read.ret and read.emulated  # push %r13
    assert write.vaddr == a["write_internal"] + 4 and write.ret and write.emulated  # endbr64
    assert free.vaddr == a["SSL_free"] + 3 and not free.ret and free.emulated  # the je


def test_a_foreign_architecture_file_keeps_the_public_functions(tmp_path: Path) -> None:
    so, a = build(tmp_path, "fake30", OPENSSL30)
    data = bytearray(Path(so).read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine: EM_AARCH64 (under qemu-user, say)
    Path(so).write_bytes(data)
    pts = {p.what: p for p in prologue.plan(so)}
    assert set(pts) == {"SSL_read", "SSL_read_ex", "SSL_write", "SSL_write_ex", "SSL_free"}
    assert all(p.vaddr == a[p.what] and not p.emulated for p in pts.values())


def test_other_shapes_fall_back_to_the_public_functions(tmp_path: Path) -> None:
    so, a = build(tmp_path, "fake32", OTHER)
    pts = {p.what: p for p in prologue.plan(so)}
    assert set(pts) == {"SSL_read", "SSL_write", "SSL_write_ex"}
    assert pts["SSL_read"].vaddr == a["SSL_read"] and not pts["SSL_read"].emulated
    assert pts["SSL_read"].entry == "kw_ssl_read_enter"
    assert pts["SSL_write"].vaddr == a["SSL_write"] + 4 and pts["SSL_write"].emulated
    assert pts["SSL_write_ex"].vaddr == a["SSL_write_ex"] and not pts["SSL_write_ex"].emulated
    assert pts["SSL_write_ex"].entry == "kw_ssl_write_ex_enter"
    assert all(p.ret for p in pts.values())


def test_first_emulated_only_through_harmless_instructions() -> None:
    f = prologue.first_emulated
    assert f(b"\x55") == 0  # push %rbp
    assert f(b"\x41\x55") == 0  # push %r13
    assert f(b"\xf3\x0f\x1e\xfa\x55") == 4  # endbr64; push
    assert f(b"\x48\x85\xff\x74\x02") == 3  # test %rdi,%rdi; je
    assert f(b"\x85\xd2\x78\x2f") == 2  # test %edx,%edx; js
    assert f(b"\xe8\x00\x00\x00\x00") == 0  # call
    assert f(b"\x48\x83\xec\x18\xe8\0\0\0\0") is None  # sub $0x18,%rsp moves the stack
    assert f(b"\x48\x89\xfb\x55") is None  # mov %rdi,%rbx: not skipped
    assert f(b"\x85\x07\x55") is None  # test with a memory operand: not skipped
    assert f(b"") is None


def test_not_elf_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "libssl.so.3"
    bad.write_bytes(b"not an elf file at all")
    with pytest.raises(prologue.ElfError, match="not a 64-bit"):
        prologue.plan(str(bad))
    with pytest.raises(OSError):
        prologue.plan(str(tmp_path / "missing.so"))


def test_node_libssl_has_read_and_write_probes() -> None:
    libs = [
        f"/{d}/{n}" for d in procs.LIB_DIRS for n in procs.LIB_NAMES if os.path.exists(f"/{d}/{n}")
    ]
    if not libs:
        pytest.skip("no libssl on this machine")
    for lib in libs:
        entries = {p.entry for p in prologue.plan(lib)}
        assert entries & {"kw_ssl_read_enter", "kw_ssl_read_ex_enter"}, lib
        assert entries & {"kw_ssl_write_enter", "kw_ssl_write_ex_enter"}, lib
        assert "kw_ssl_free" in entries, lib
