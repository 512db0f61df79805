"""TLS plaintext from OpenSSL through eBPF uprobes (``kubeweir sniff --tls``).

Kubeshark and Pixie read HTTPS where the TLS library handles it; so does this package.
``openssl.bpf.c`` (event layout in ``tls_event.h``) puts entry and return uprobes on
``SSL_read``, ``SSL_read_ex``, ``SSL_write`` and ``SSL_write_ex`` — on the internal
function both forms share, when the library's code shows it (``prologue.py``) — and an
entry probe on ``SSL_free`` (which ends a connection's stream) of every ``libssl.so.3``
/ ``libssl.so.1.1`` that a targeted pod's processes use — each process's own file,
through ``/proc/PID/root``, so containers with their own OpenSSL work — and reports the
plaintext of each call (16 KiB per event, up to 64 KiB per call, the true length always)
through a BPF ring buffer. Only processes in the ``targets`` map are read: the processes
of the targeted pods' network namespaces (``procs.py``), kept current by a /proc scan
every second, by ``exec`` events and by the kernel itself for forked children. The kernel
needs uprobes and tracepoints only (no kprobes, no kernel struct offsets: the running
kernel's headers need not match). ``capture.TlsCapture`` ties each ``SSL*`` to its TCP
connection, feeds the plaintext to the same parsers and redaction as captured packets,
and hands entries (``tls: true``, same endpoints, pod identities and id scheme as the
wire's) to the same spool and shipper.

What ``--tls`` needs from the node (DaemonSet pod spec):

- ``CAP_BPF`` + ``CAP_PERFMON`` (or ``CAP_SYS_ADMIN`` on older kernels) to load the
  program and attach uprobes and tracepoints; tracefs mounted at ``/sys/kernel/tracing``
  (mounted by the sniffer when absent, which takes ``CAP_SYS_ADMIN``).
- ``hostPID: true`` and ``CAP_SYS_PTRACE`` to read other processes' ``/proc/PID/root``,
  ``/proc/PID/maps``, ``/proc/PID/fd`` and ``/proc/PID/net``; ``CAP_DAC_READ_SEARCH``
  when containers' files are not world-readable.
- Kernel: uprobes (``CONFIG_UPROBE_EVENTS``), ``CONFIG_BPF_EVENTS``, syscall tracepoints
  (``CONFIG_FTRACE_SYSCALLS``), BPF ring buffer (5.8+).

Cost: a uprobe hit is a trap into the kernel. Where the probed instruction is one the
kernel emulates (``push``, ``call``, jumps) that is ≈ 0.6 µs here, ≈ 2 µs per SSL call with
the return probe and this program copying the data; where it must single-step the
instruction out of line (OpenSSL 3.0's ``SSL_read`` starts with ``sub $0x18,%rsp``) a
second trap follows (``#DB``), and on this VM a hit then costs ≈ 25 µs.
``prologue.plan`` therefore attaches at points the kernel emulates (OpenSSL's
``ssl_read_internal``/``ssl_write_internal``, which start with ``push``; past ``endbr64``
and ``test``) and says in the log which probes, if any, are still single-stepped
(``benchmarks/tls_trap_cost.py``, BENCHMARKS.md). The probes sit on the libssl *file*, so
every process mapping it takes the trap on each SSL call, targeted or not (the
``targets`` check comes after the trap): ≈ 1 µs per call for untargeted processes.
Attaching per process (perf ``pid`` filter, breakpoints only in targeted processes) would
spare them, at the price of a probe set per process, attached and detached as processes
come and go (a window for new ones); not done.

Limits: statically linked TLS (Go's crypto/tls, BoringSSL in Envoy, rustls) is not
OpenSSL's ``libssl`` and is not seen; a program in a new pod that starts speaking TLS
within a few milliseconds of its ``exec`` may lose its first call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sniffer.tls.capture import TlsCapture

__all__ = ["start_for_agent"]


def start_for_agent(agent: Any) -> TlsCapture:
    """Start TLS capture wired to a running ``sniffer.agent.Agent``: its targeting, its
    pipeline settings (hints, redaction, pod identities), its packet pipeline's ISNs, and
    its shipper."""
    from sniffer.tls.capture import TlsCapture

    wire = agent.pipeline if agent.pool is None else None  # worker processes: not here
    tls = TlsCapture(
        agent.pipeline.settings,
        agent.shipper.add,
        isn_lookup=wire.isns if wire is not None else None,
        wire_clock=(lambda: wire.watermark) if wire is not None else None,
    ).start()
    agent.targeting.on_targets(tls.set_targets)
    return tls
