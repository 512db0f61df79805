"""TLS plaintext from OpenSSL through eBPF uprobes (``kubeweir sniff --tls``).

Kubeshark and Pixie read HTTPS where the TLS library handles it; so does this package.
``openssl.bpf.c`` (event layout in ``tls_event.h``) puts entry and return uprobes on
``SSL_read``, ``SSL_read_ex``, ``SSL_write`` and ``SSL_write_ex`` (and an entry probe on
``SSL_free``, which ends a connection's stream) of every ``libssl.so.3``
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

Cost: the probes sit on the libssl *file*, so every process mapping it takes the uprobe
trap on each SSL call (targeted or not; the ``targets`` check comes after the trap), and
each traced call takes two (entry + return). On this machine (a VM) a trap costs tens of
microseconds: ``benchmarks/tls_capture.py`` measures it (BENCHMARKS.md) — the overhead bar
is not met here. Attaching per process (perf ``pid`` filter, breakpoints only in targeted
processes) would spare untargeted workloads, at the price of a probe set per process and
a race with short-lived programs; not done.

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
