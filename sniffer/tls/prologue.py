"""Where to put the uprobes in one libssl file so that the kernel never single-steps.

A uprobe replaces an instruction with ``int3``. When the probe fires the kernel must then
run the displaced instruction: a few instructions (``push``, ``call``, ``jmp``, ``jcc``,
``nop``) it *emulates*; every other one it copies to a page of its own and single-steps,
which takes a second trap (``#DB``). On this Firecracker VM that second trap is the
whole cost — likely because the hypervisor intercepts ``#DB`` (KVM does) — measured
≈ 25 µs per probe hit when single-stepping against ≈ 0.6 µs when emulated
(``benchmarks/tls_trap_cost.py``). OpenSSL 3.0's ``SSL_read`` starts with
``sub $0x18,%rsp`` — single-stepped.

So, per file (from its ELF dynamic symbols and the first bytes of the functions):

- ``SSL_read_ex`` in OpenSSL 1.1.1/3.x is ``ssl_read_internal(s, buf, num, readbytes)``
  clamped at 0, and ``SSL_read`` calls the same ``ssl_read_internal`` with a
  ``&readbytes`` of its own. When ``SSL_read_ex``'s code is exactly ``[endbr64] sub
  $imm,%rsp; call X`` (its four argument registers passed on untouched) and ``SSL_read``
  calls the same ``X``, the entry and return probes go on ``X``: one pair of probes sees
  both forms with the ``_ex`` contract (returns 1, ``*readbytes`` = bytes), and ``X``
  (a static function, not exported) starts with ``push`` in the builds seen — emulated.
  The same for ``SSL_write``/``SSL_write_ex``/``ssl_write_internal``. A build where the
  pattern does not hold (OpenSSL 3.2+'s ``SSL_write_ex`` → ``SSL_write_ex2`` with a flags
  argument, a compiler that inlined differently) gets the probes on the public functions,
  as before.
- Each probe goes at the first instruction the kernel emulates, when only instructions
  that change neither the stack pointer nor the argument registers come before it
  (``endbr64``, ``test reg,reg``): ``SSL_free``'s ``test %rdi,%rdi; je`` → on the ``je``.
  The stack pointer unchanged means a return probe there still finds the return address
  at ``[rsp]``. Otherwise the probe stays on the function's first byte (single-stepped).

x86-64 only; elsewhere (and for files this reader does not understand) the plan is the
public symbols at offset 0, exactly what bcc does by name.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

__all__ = ["ElfError", "ProbePoint", "first_emulated", "functions", "plan"]

_X86_64 = os.uname().machine == "x86_64"

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_PT_LOAD = 1
_SHT_DYNSYM = 11
_STT_FUNC = 2
_EM_X86_64 = 62


class ElfError(ValueError):
    """Not an ELF64 little-endian file this reader understands."""


@dataclass(frozen=True, slots=True)
class ProbePoint:
    """One attach point: ``vaddr`` (ELF virtual address, as bcc's ``addr=`` takes it)."""

    what: str
    """For logs: the function(s) this point stands for."""
    vaddr: int
    entry: str
    """Name of the BPF function of the entry probe."""
    ret: bool
    """With the shared return probe (``kw_ssl_return``) at the same address."""
    emulated: bool
    """The instruction there is one the kernel emulates (no single-step)."""


class _Elf:
    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if len(d) < _EHDR.size or d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
            raise ElfError(f"{path}: not a 64-bit little-endian ELF file")
        h = _EHDR.unpack_from(d)
        self.x86_64 = _X86_64 and h[2] == _EM_X86_64
        """Code this reader may decode: an x86-64 file on an x86-64 host (a foreign file,
        e.g. under qemu-user, keeps its public symbols at offset 0)."""
        phoff, shoff, phentsize, phnum, shentsize, shnum = h[5], h[6], h[9], h[10], h[11], h[12]
        self.loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
        for i in range(phnum):
            p = _PHDR.unpack_from(d, phoff + i * phentsize)
            if p[0] == _PT_LOAD:
                self.loads.append((p[3], p[2], p[5]))
        self.sections = [_SHDR.unpack_from(d, shoff + i * shentsize) for i in range(shnum)]

    def funcs(self, names: set[str]) -> dict[str, tuple[int, int]]:
        """Defined functions among ``names`` in ``.dynsym``: name → (vaddr, size)."""
        out: dict[str, tuple[int, int]] = {}
        d = self.data
        for sh in self.sections:
            if sh[1] != _SHT_DYNSYM:
                continue
            strtab = self.sections[sh[6]]
            str_off = strtab[4]
            for i in range(sh[5] // _SYM.size):
                name_off, info, _other, shndx, value, size = _SYM.unpack_from(d, sh[4] + i * 24)
                if shndx == 0 or info & 0xF != _STT_FUNC or not value:
                    continue
                end = d.find(b"\0", str_off + name_off)
                name = d[str_off + name_off : end].decode("ascii", "replace")
                if name in names:
                    out[name] = (value, size)
        return out

    def code(self, vaddr: int, size: int) -> bytes:
        for start, off, filesz in self.loads:
            if start <= vaddr < start + filesz:
                n = min(size, start + filesz - vaddr)
                return self.data[off + vaddr - start : off + vaddr - start + n]
        return b""


def _emulated_len(code: bytes, i: int) -> int:
    """Length of the instruction at ``code[i]`` when it is one x86 uprobes emulate, else 0."""
    if i >= len(code):
        return 0
    b = code[i]
    if 0x50 <= b <= 0x57 or b == 0x90:  # push r64, nop
        return 1
    if b == 0x41 and i + 1 < len(code) and 0x50 <= code[i + 1] <= 0x57:  # push r8..r15
        return 2
    if b in (0xE8, 0xE9):  # call / jmp rel32
        return 5
    if b == 0xEB or 0x70 <= b <= 0x7F:  # jmp / jcc rel8
        return 2
    if b == 0x0F and i + 1 < len(code) and 0x80 <= code[i + 1] <= 0x8F:  # jcc rel32
        return 6
    return 0


def _harmless_len(code: bytes, i: int) -> int:
    """Length of an instruction that changes neither rsp nor any register (flags only),
    else 0: ``endbr64``, ``test reg,reg`` (32/64-bit, register operands)."""
    if code[i : i + 4] == b"\xf3\x0f\x1e\xfa":
        return 4
    j = i + 1 if i < len(code) and 0x48 <= code[i] <= 0x4F else i  # REX
    if j + 1 < len(code) and code[j] == 0x85 and code[j + 1] >> 6 == 3:
        return j + 2 - i
    return 0


def first_emulated(code: bytes) -> int | None:
    """Offset of the first emulated instruction reached through harmless ones only."""
    i = 0
    for _ in range(4):
        if _emulated_len(code, i):
            return i
        n = _harmless_len(code, i)
        if not n:
            return None
        i += n
    return None


def _call_after_prologue(code: bytes, vaddr: int) -> int | None:
    """``[endbr64] sub $imm8,%rsp; call rel32`` → the call's target, else None."""
    i = 4 if code[:4] == b"\xf3\x0f\x1e\xfa" else 0
    if code[i : i + 3] != b"\x48\x83\xec":
        return None
    i += 4
    if len(code) < i + 5 or code[i] != 0xE8:
        return None
    rel = int.from_bytes(code[i + 1 : i + 5], "little", signed=True)
    return vaddr + i + 5 + rel


def _calls(code: bytes, vaddr: int, target: int) -> bool:
    """Whether ``code`` holds a ``call rel32`` to ``target`` (a byte scan: a false match
    needs the exact 32-bit displacement to the target after a 0xe8 byte)."""
    i = code.find(b"\xe8")
    while 0 <= i <= len(code) - 5:
        rel = int.from_bytes(code[i + 1 : i + 5], "little", signed=True)
        if vaddr + i + 5 + rel == target:
            return True
        i = code.find(b"\xe8", i + 1)
    return False


def _point(elf: _Elf | None, what: str, vaddr: int, entry: str, ret: bool) -> ProbePoint:
    code = elf.code(vaddr, 16) if elf is not None else b""
    off = first_emulated(code) if elf is not None and elf.x86_64 else None
    return ProbePoint(what, vaddr + (off or 0), entry, ret, off is not None)


def functions(path: str, names: set[str]) -> dict[str, tuple[int, int]]:
    """Exported functions of an ELF file among ``names``: name → (virtual address, size)."""
    return _Elf(path).funcs(names)


def plan(path: str) -> list[ProbePoint]:
    """The probe points for the libssl at ``path`` (empty when it exports none of the
    functions). Raises ``OSError`` when the file can't be read, ``ElfError`` when it is
    no ELF64 file."""
    elf = _Elf(path)
    names = {"SSL_read", "SSL_read_ex", "SSL_write", "SSL_write_ex", "SSL_free"}
    syms = elf.funcs(names)
    out: list[ProbePoint] = []
    for kind in ("read", "write"):
        plain, ex = f"SSL_{kind}", f"SSL_{kind}_ex"
        internal = None
        if elf.x86_64 and plain in syms and ex in syms:
            ex_addr, ex_size = syms[ex]
            target = _call_after_prologue(elf.code(ex_addr, max(ex_size, 16)), ex_addr)
            pl_addr, pl_size = syms[plain]
            if target is not None and elf.code(target, 1) and pl_size > 0:
                if _calls(elf.code(pl_addr, pl_size), pl_addr, target):
                    internal = target
        if internal is not None:
            out.append(
                _point(
                    elf,
                    f"{plain}+{ex} (via {internal:#x})",
                    internal,
                    f"kw_ssl_{kind}_ex_enter",
                    True,
                )  # fmt: skip
            )
            continue
        for sym, fn in ((plain, f"kw_ssl_{kind}_enter"), (ex, f"kw_ssl_{kind}_ex_enter")):
            if sym in syms:
                out.append(_point(elf, sym, syms[sym][0], fn, True))
    if "SSL_free" in syms:
        out.append(_point(elf, "SSL_free", syms["SSL_free"][0], "kw_ssl_free", False))
    return out
