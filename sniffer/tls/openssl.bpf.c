// kubeweir TLS plaintext: uprobes on OpenSSL's SSL_read/SSL_write (and the _ex forms).
// Where prologue.py finds it, the probes sit on the internal function both forms call
// (ssl_read_internal(s, buf, num, &readbytes)): the _ex entry programs, one event per call.
//
// Only targeted processes are read: their tgids sit in `targets`, filled by user space
// (processes in the targeted pods' network namespaces) and inherited by forked children
// here at once. No kernel structures are read (no kprobes, no struct offsets): the socket
// behind an SSL* is found from the fd of the read/write/send/recv syscalls the thread makes
// inside the SSL call (socket BIOs), or, for memory BIOs (Python's asyncio), from the
// socket the thread received on just before SSL_read / sends on just after SSL_write.
#include <uapi/linux/ptrace.h>
#include "tls_event.h"

struct kw_call {
    u64 ssl;
    u64 buf;
    u64 lenp;   // size_t * of the _ex forms (bytes done), 0 for SSL_read/SSL_write
    int fd;     // fd of a syscall made inside the call, -1 if none
    u32 dir;
};

struct kw_ssl_key {
    u32 tgid;
    u32 pad;
    u64 ssl;
};

BPF_HASH(targets, u32, u8, KW_TLS_MAX_PIDS);
BPF_TABLE("lru_hash", u64, struct kw_call, inflight, KW_TLS_INFLIGHT);
BPF_TABLE("lru_hash", struct kw_ssl_key, int, ssl_fds, KW_TLS_INFLIGHT);
BPF_TABLE("lru_hash", u64, int, last_recv, KW_TLS_INFLIGHT);
BPF_TABLE("lru_hash", u64, u64, after_write, KW_TLS_INFLIGHT);
BPF_PERCPU_ARRAY(scratch, struct kw_tls_event, 1);
BPF_PERCPU_ARRAY(counters, u64, KW_TLS_COUNTERS);
BPF_RINGBUF_OUTPUT(events, KW_TLS_RING_PAGES);

static __always_inline void kw_count(int slot) {
    u64 *v = counters.lookup(&slot);
    if (v)
        (*v)++;
}

static __always_inline int kw_targeted(u64 id) {
    u32 tgid = id >> 32;
    return targets.lookup(&tgid) != 0;
}

static __always_inline int kw_enter(struct pt_regs *ctx, u32 dir, int ex) {
    u64 id = bpf_get_current_pid_tgid();
    if (!kw_targeted(id))
        return 0;
    struct kw_call call = {};
    call.ssl = PT_REGS_PARM1(ctx);
    call.buf = PT_REGS_PARM2(ctx);
    call.lenp = ex ? PT_REGS_PARM4(ctx) : 0;
    call.fd = -1;
    call.dir = dir;
    inflight.update(&id, &call);
    return 0;
}

static __always_inline int kw_return(struct pt_regs *ctx) {
    u64 id = bpf_get_current_pid_tgid();
    struct kw_call *p = inflight.lookup(&id);
    if (!p)
        return 0;
    struct kw_call call = *p;
    inflight.delete(&id);
    long ret = PT_REGS_RC(ctx);
    u64 n = 0;
    if (call.lenp) {
        if (ret != 1)
            return 0;
        if (bpf_probe_read_user(&n, sizeof(n), (void *)call.lenp) != 0)
            return 0;
    } else {
        if ((int)ret <= 0)
            return 0;
        n = (u32)ret;
    }
    if (n == 0)
        return 0;
    kw_count(KW_TLS_CALLS);

    struct kw_ssl_key key = {.tgid = id >> 32, .pad = 0, .ssl = call.ssl};
    // a new SSL* wakes the reader at once (it names its connection while the socket is
    // still there); later calls are drained in batches
    u64 wake = ssl_fds.lookup(&key) ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP;
    int fd = call.fd;
    if (fd >= 0) {
        ssl_fds.update(&key, &fd);  // a syscall inside the call: the BIO's socket
    } else if (call.dir == KW_TLS_READ) {
        // memory BIO (or bytes already buffered): the socket this thread just received on.
        // Preferred over ssl_fds, which may still name a freed SSL*'s old connection.
        int *last = last_recv.lookup(&id);
        if (last) {
            fd = *last;
            ssl_fds.update(&key, &fd);
        } else {
            int *known = ssl_fds.lookup(&key);
            if (known)
                fd = *known;
        }
    } else {
        int *known = ssl_fds.lookup(&key);
        if (known)
            fd = *known;
        else
            after_write.update(&id, &call.ssl);  // memory BIO: the next send names it
    }

    int zero = 0;
    struct kw_tls_event *ev = scratch.lookup(&zero);
    if (!ev)
        return 0;
    ev->ts_ns = bpf_ktime_get_ns();
    ev->ssl = call.ssl;
    ev->kind = KW_TLS_DATA;
    ev->tgid = id >> 32;
    ev->tid = (u32)id;
    ev->fd = fd;
    ev->dir = call.dir;
    ev->len = n > 0xffffffffULL ? 0xffffffff : (u32)n;
    if (n > (u64)KW_TLS_CHUNK * KW_TLS_MAX_CHUNKS) {
        kw_count(KW_TLS_TRUNCATED);
        n = (u64)KW_TLS_CHUNK * KW_TLS_MAX_CHUNKS;
    }
    for (int i = 0; i < KW_TLS_MAX_CHUNKS; i++) {
        u64 off = (u64)i * KW_TLS_CHUNK;
        if (off >= n)
            break;
        u64 size = n - off;
        if (size > KW_TLS_CHUNK)
            size = KW_TLS_CHUNK;
        ev->off = off;
        ev->size = size;
        if (bpf_probe_read_user(ev->data, size, (void *)(call.buf + off)) != 0) {
            kw_count(KW_TLS_READ_FAULT);
            ev->size = 0;  // user space records the missing bytes as a gap
            size = 0;
        }
        if (events.ringbuf_output(ev, offsetof(struct kw_tls_event, data) + size, wake) != 0)
            kw_count(KW_TLS_RING_FULL);
        else
            kw_count(KW_TLS_EVENTS);
    }
    return 0;
}

int kw_ssl_read_enter(struct pt_regs *ctx) { return kw_enter(ctx, KW_TLS_READ, 0); }
int kw_ssl_read_ex_enter(struct pt_regs *ctx) { return kw_enter(ctx, KW_TLS_READ, 1); }
int kw_ssl_write_enter(struct pt_regs *ctx) { return kw_enter(ctx, KW_TLS_WRITE, 0); }
int kw_ssl_write_ex_enter(struct pt_regs *ctx) { return kw_enter(ctx, KW_TLS_WRITE, 1); }
int kw_ssl_return(struct pt_regs *ctx) { return kw_return(ctx); }

// SSL_free: the connection of this SSL* is over (its address will be reused by the next
// SSL_new); user space closes the stream, and the next SSL* here starts fresh.
int kw_ssl_free(struct pt_regs *ctx) {
    u64 id = bpf_get_current_pid_tgid();
    if (!kw_targeted(id))
        return 0;
    struct kw_ssl_key key = {.tgid = id >> 32, .pad = 0, .ssl = PT_REGS_PARM1(ctx)};
    ssl_fds.delete(&key);
    struct kw_tls_event *ev = events.ringbuf_reserve(offsetof(struct kw_tls_event, data));
    if (!ev)
        return 0;
    __builtin_memset(ev, 0, offsetof(struct kw_tls_event, data));
    ev->kind = KW_TLS_FREE;
    ev->ts_ns = bpf_ktime_get_ns();
    ev->ssl = key.ssl;
    ev->tgid = id >> 32;
    ev->tid = (u32)id;
    ev->fd = -1;
    events.ringbuf_submit(ev, 0);
    return 0;
}

// --- which socket: syscalls of targeted threads ---------------------------------------
static __always_inline int kw_syscall(int fd, int recv) {
    u64 id = bpf_get_current_pid_tgid();
    struct kw_call *call = inflight.lookup(&id);
    if (call) {
        if (call->fd < 0)
            call->fd = fd;
        return 0;
    }
    if (!kw_targeted(id))
        return 0;
    if (recv) {
        last_recv.update(&id, &fd);
        return 0;
    }
    u64 *ssl = after_write.lookup(&id);
    if (ssl) {
        struct kw_ssl_key key = {.tgid = id >> 32, .pad = 0, .ssl = *ssl};
        ssl_fds.update(&key, &fd);
        after_write.delete(&id);
    }
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_read) { return kw_syscall(args->fd, 1); }
TRACEPOINT_PROBE(syscalls, sys_enter_recvfrom) { return kw_syscall(args->fd, 1); }
TRACEPOINT_PROBE(syscalls, sys_enter_recvmsg) { return kw_syscall(args->fd, 1); }
TRACEPOINT_PROBE(syscalls, sys_enter_write) { return kw_syscall(args->fd, 0); }
TRACEPOINT_PROBE(syscalls, sys_enter_sendto) { return kw_syscall(args->fd, 0); }
TRACEPOINT_PROBE(syscalls, sys_enter_sendmsg) { return kw_syscall(args->fd, 0); }

// --- which connection: socket addresses the process itself asks for -------------------
// accept4 with an address buffer (asyncio), getpeername/getsockname (uvloop, most servers
// and clients): read from the process's buffer at syscall exit, reported with the fd, so
// that a connection closed before user space looks at /proc is still named.
struct kw_addr_call {
    u64 addr;
    u64 lenp;
    int fd;     // the socket (getpeername/getsockname); -1 for accept (the result is)
    u32 which;  // KW_TLS_PEER / KW_TLS_LOCAL
};
BPF_TABLE("lru_hash", u64, struct kw_addr_call, addr_calls, KW_TLS_INFLIGHT);

static __always_inline int kw_addr_enter(u64 addr, u64 lenp, int fd, u32 which) {
    u64 id = bpf_get_current_pid_tgid();
    if (!addr || !kw_targeted(id))
        return 0;
    struct kw_addr_call c = {.addr = addr, .lenp = lenp, .fd = fd, .which = which};
    addr_calls.update(&id, &c);
    return 0;
}

static __always_inline int kw_addr_exit(long ret) {
    u64 id = bpf_get_current_pid_tgid();
    struct kw_addr_call *p = addr_calls.lookup(&id);
    if (!p)
        return 0;
    struct kw_addr_call c = *p;
    addr_calls.delete(&id);
    if (ret < 0)
        return 0;
    int fd = c.fd < 0 ? (int)ret : c.fd;
    struct kw_tls_event *ev =
        events.ringbuf_reserve(offsetof(struct kw_tls_event, data) + KW_TLS_ADDR_MAX);
    if (!ev)
        return 0;
    __builtin_memset(ev, 0, offsetof(struct kw_tls_event, data) + KW_TLS_ADDR_MAX);
    ev->kind = KW_TLS_ADDR;
    ev->ts_ns = bpf_ktime_get_ns();
    ev->tgid = id >> 32;
    ev->tid = (u32)id;
    ev->fd = fd;
    ev->dir = c.which;
    ev->size = KW_TLS_ADDR_MAX;
    bpf_probe_read_user(ev->data, KW_TLS_ADDR_MAX, (void *)c.addr);
    events.ringbuf_submit(ev, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_accept4) {
    return kw_addr_enter((u64)args->upeer_sockaddr, (u64)args->upeer_addrlen, -1, KW_TLS_PEER);
}
TRACEPOINT_PROBE(syscalls, sys_exit_accept4) { return kw_addr_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_accept) {
    return kw_addr_enter((u64)args->upeer_sockaddr, (u64)args->upeer_addrlen, -1, KW_TLS_PEER);
}
TRACEPOINT_PROBE(syscalls, sys_exit_accept) { return kw_addr_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_getpeername) {
    return kw_addr_enter((u64)args->usockaddr, (u64)args->usockaddr_len, args->fd, KW_TLS_PEER);
}
TRACEPOINT_PROBE(syscalls, sys_exit_getpeername) { return kw_addr_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_getsockname) {
    return kw_addr_enter((u64)args->usockaddr, (u64)args->usockaddr_len, args->fd, KW_TLS_LOCAL);
}
TRACEPOINT_PROBE(syscalls, sys_exit_getsockname) { return kw_addr_exit(args->ret); }

// --- which processes: children of targeted processes are targeted at once; execs are
// reported so that user space can check the new program's network namespace quickly.
TRACEPOINT_PROBE(sched, sched_process_fork) {
    u32 parent = args->parent_pid;
    if (targets.lookup(&parent)) {
        u32 child = args->child_pid;
        u8 one = 1;
        targets.update(&child, &one);
    }
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exec) {
    struct kw_tls_event *ev = events.ringbuf_reserve(offsetof(struct kw_tls_event, data));
    if (!ev)
        return 0;
    __builtin_memset(ev, 0, offsetof(struct kw_tls_event, data));
    ev->kind = KW_TLS_EXEC;
    ev->ts_ns = bpf_ktime_get_ns();
    ev->tgid = args->pid;
    ev->tid = args->pid;
    ev->fd = -1;
    events.ringbuf_submit(ev, 0);
    return 0;
}

// --- process exit: forget its in-flight calls (a process may exit inside SSL_read) ------
TRACEPOINT_PROBE(sched, sched_process_exit) {
    u64 id = bpf_get_current_pid_tgid();
    inflight.delete(&id);
    last_recv.delete(&id);
    after_write.delete(&id);
    return 0;
}
