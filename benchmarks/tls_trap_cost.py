"""What one uprobe hit costs on this machine, apart from any workload.

    sudo .venv/bin/python -m benchmarks.tls_trap_cost [--calls 20000]

Builds (with ``cc``) a small shared library whose functions start the way OpenSSL's do,
and a C loop that calls one of them ``--calls`` times; the loop measures wall and CPU
time per call (``getrusage``: a trap's time is the caller's system time). Probes attach
to the library file with bcc, exactly as the TLS capture attaches to libssl:

- first instructions: ``sub $0x18,%rsp`` (OpenSSL 3.0's ``SSL_read``/``SSL_write``: the
  kernel single-steps it), ``push %r13`` (its ``ssl_read_internal``: emulated),
  ``endbr64; push`` (CET builds) at +0 and +4, ``sub $8,%rsp; call`` (``SSL_read_ex``)
  at +0 and on the ``call`` (+4);
- probes: none, an empty uprobe, an empty uretprobe, both, and the capture's own programs
  (``kw_ssl_read_ex_enter`` + ``kw_ssl_return`` of ``openssl.bpf.c``, the calling process
  targeted: 100 bytes copied into the ring per call, the ring drained meanwhile).

Prints a markdown table (best of 3 runs per row, by CPU time) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

# every function: f(ssl, buf, num, size_t *done) → *done = num, returns 1 (the _ex contract)
ASM = """
    .text
    .globl f_sub, f_push, f_endbr, f_call
    .type f_sub,@function
f_sub:
    sub $0x18,%rsp
    mov %rdx,(%rcx)
    mov $1,%eax
    add $0x18,%rsp
    ret
    .type f_push,@function
f_push:
    push %r13
    mov %rdx,(%rcx)
    mov $1,%eax
    pop %r13
    ret
    .type f_endbr,@function
f_endbr:
    endbr64
    push %rbp
    mov %rdx,(%rcx)
    mov $1,%eax
    pop %rbp
    ret
    .type f_call,@function
f_call:
    sub $8,%rsp
    call inner
    add $8,%rsp
    ret
inner:
    mov %rdx,(%rcx)
    mov $1,%eax
    ret
    .section .note.GNU-stack,"",@progbits
"""

LOOP = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
typedef int (*fn)(void *, void *, size_t, size_t *);
static double tv(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    fn f = (fn)dlsym(h, argv[2]);
    long n = atol(argv[3]);
    char buf[100]; memset(buf, 'x', sizeof buf);
    size_t done = 0;
    printf("%d\n", getpid()); fflush(stdout);
    char c; if (read(0, &c, 1) != 1) return 1;  /* probes attached, pid targeted */
    struct rusage r0, r1; struct timespec w0, w1;
    f((void *)0x1234, buf, sizeof buf, &done);
    getrusage(RUSAGE_SELF, &r0); clock_gettime(CLOCK_MONOTONIC, &w0);
    for (long i = 0; i < n; i++) f((void *)0x1234, buf, sizeof buf, &done);
    clock_gettime(CLOCK_MONOTONIC, &w1); getrusage(RUSAGE_SELF, &r1);
    double wall = (w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) / 1e9;
    double cpu = tv(r1.ru_utime) - tv(r0.ru_utime) + tv(r1.ru_stime) - tv(r0.ru_stime);
    printf("%.4f %.4f\n", wall / n * 1e6, cpu / n * 1e6);
    return 0;
}
"""

EMPTY = "int empty(struct pt_regs *ctx) { return 0; }\n"


class Bench:
    def __init__(self, workdir: Path, calls: int) -> None:
        from bcc import BPF

        from sniffer.tls.probes import HEADER, SOURCE

        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("no C compiler")
        (workdir / "fns.S").write_text(ASM)
        (workdir / "loop.c").write_text(LOOP)
        self.lib = str(workdir / "libkwtrap.so")
        self.loop = str(workdir / "loop")
        subprocess.run([cc, "-shared", "-fPIC", "-o", self.lib, str(workdir / "fns.S")],
                       check=True)  # fmt: skip
        subprocess.run([cc, "-O2", "-o", self.loop, str(workdir / "loop.c"), "-ldl"], check=True)
        self.calls = calls
        self.empty: Any = BPF(text=EMPTY)
        self.real: Any = BPF(src_file=str(SOURCE).encode(), cflags=[f"-I{HEADER.parent}"])
        self.real[b"events"].open_ring_buffer(lambda ctx, data, size: 0)

    def run_once(self, fn: str, target: bool) -> tuple[float, float]:
        p = subprocess.Popen(
            [self.loop, self.lib, fn, str(self.calls)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert p.stdin is not None and p.stdout is not None
        pid = int(p.stdout.readline())
        targets = self.real[b"targets"]
        if target:
            targets[targets.Key(pid)] = targets.Leaf(1)
        stop = threading.Event()

        def drain() -> None:
            while not stop.is_set():
                self.real.ring_buffer_poll(10)

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        try:
            p.stdin.write("x")
            p.stdin.flush()
            wall, cpu = (float(x) for x in p.stdout.readline().split())
            p.wait(timeout=60)
        finally:
            stop.set()
            t.join()
            targets.clear()
        return wall, cpu

    def case(self, fn: str, probes: list[tuple[str, str, int]], target: bool = False) -> str:
        """``probes``: (kind "p"/"r", BPF function, offset) on ``fn`` of the library."""
        lib = self.lib.encode()
        attached = []
        try:
            for kind, prog, off in probes:
                b = self.real if prog.startswith("kw_") else self.empty
                if kind == "p":
                    b.attach_uprobe(name=lib, sym=fn.encode(), fn_name=prog.encode(), sym_off=off)
                else:
                    addr = self._addr(fn) + off
                    b.attach_uretprobe(name=lib, addr=addr, fn_name=prog.encode())
                attached.append((b, kind, off))
            wall, cpu = min((self.run_once(fn, target) for _ in range(3)), key=lambda r: r[1])
        finally:
            for b, kind, off in attached:
                if kind == "p":
                    b.detach_uprobe(name=lib, sym=fn.encode(), sym_off=off)
                else:
                    b.detach_uretprobe(name=lib, addr=self._addr(fn) + off)
        return f"{wall:.2f} | {cpu:.2f}"

    def _addr(self, fn: str) -> int:
        from sniffer.tls.prologue import functions

        return functions(self.lib, {fn})[fn][0]


SHAPES = (
    ("f_sub", "`sub $0x18,%rsp` (SSL_read)", (0,)),
    ("f_push", "`push %r13` (ssl_read_internal)", (0,)),
    ("f_endbr", "`endbr64; push %rbp`", (0, 4)),
    ("f_call", "`sub $8,%rsp; call` (SSL_read_ex)", (0, 4)),
)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20000)
    a = ap.parse_args()
    from sniffer.testing.node import require_root

    why = require_root()
    if why:
        sys.stdout.write(f"### uprobe trap cost\n\nskipped: {why}\n")
        return 0
    out = [
        "### Uprobe cost per call (benchmarks/tls_trap_cost.py)",
        "",
        f"`uname -r` = {os.uname().release}; {a.calls:,} calls per run, best of 3; "
        "µs per call of a function that does nothing, with the probe(s) on it.",
        "",
        "| first instruction(s) | probe at | no probe | empty uprobe | empty uretprobe "
        "| uprobe + uretprobe | kubeweir programs (targeted) |",
        "|---|---|---|---|---|---|---|",
    ]
    with TemporaryDirectory() as tmp:
        b = Bench(Path(tmp), a.calls)
        for fn, label, offsets in SHAPES:
            for off in offsets:
                row = [label, f"+{off}"]
                # "wall | cpu" cells: CPU (the caller's user + system time) is what counts
                row.append(b.case(fn, []).split(" | ")[1])
                for probes, target in (
                    ([("p", "empty", off)], False),
                    ([("r", "empty", off)], False),
                    ([("p", "empty", off), ("r", "empty", off)], False),
                    ([("p", "kw_ssl_read_ex_enter", off), ("r", "kw_ssl_return", off)], True),
                ):
                    if off and fn == "f_call" and any(k == "r" for k, _, _ in probes):
                        row.append("— (stack moved)")  # a return probe needs [rsp] = return
                        continue
                    row.append(b.case(fn, probes, target).split(" | ")[1])
                out.append("| " + " | ".join(row) + " |")
                sys.stderr.write(out[-1] + "\n")
    out.append("")
    out.append("Command: `sudo .venv/bin/python -m benchmarks.tls_trap_cost`")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
