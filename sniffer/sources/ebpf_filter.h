/* Shared by the eBPF socket filter (ebpf_filter.bpf.c) and its loader (ebpf.py):
 * map key layouts, counter slots and sizes. The loader mirrors these in Python
 * (EBPF_COUNTERS, MAX_TARGETS) and a test checks the two agree. */
#ifndef KUBEWEIR_EBPF_FILTER_H
#define KUBEWEIR_EBPF_FILTER_H

/* An IPv6 address as it sits in the packet (network order). IPv4 keys are the
 * 4 address bytes loaded as a u32 (network order, as in the packet). */
struct kw_ip6 {
    unsigned char addr[16];
};

/* Slots of the per-CPU `counters` array. */
#define KW_SEEN 0      /* packets the filter looked at */
#define KW_PASSED 1    /* passed: source or destination is a target */
#define KW_NOT_IP 2    /* neither IPv4 nor IPv6 */
#define KW_SHORT 3     /* too short to hold the addresses */
#define KW_COUNTERS 4

#define KW_MAX_TARGETS 65536

#endif
