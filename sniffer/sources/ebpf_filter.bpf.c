// kubeweir eBPF socket filter: pass a packet when its source or destination IP is in
// the target maps, drop it otherwise. The capture socket is SOCK_DGRAM, so offset 0 is
// the network header on every device. Targets are changed by updating the maps from
// user space; the program itself is never reloaded or re-attached.
#include <uapi/linux/if_ether.h>
#include "ebpf_filter.h"

BPF_HASH(targets4, u32, u8, KW_MAX_TARGETS);
BPF_HASH(targets6, struct kw_ip6, u8, KW_MAX_TARGETS);
BPF_PERCPU_ARRAY(counters, u64, KW_COUNTERS);

static __always_inline void kw_count(int slot) {
    u64 *v = counters.lookup(&slot);
    if (v)
        (*v)++;
}

int kw_filter(struct __sk_buff *skb) {
    kw_count(KW_SEEN);
    if (skb->protocol == bpf_htons(ETH_P_IP)) {
        u32 addrs[2];  // saddr, daddr at offset 12 of the IPv4 header
        if (bpf_skb_load_bytes(skb, 12, addrs, sizeof(addrs)) < 0) {
            kw_count(KW_SHORT);
            return 0;
        }
        if (targets4.lookup(&addrs[0]) || targets4.lookup(&addrs[1])) {
            kw_count(KW_PASSED);
            return -1;  // whole packet
        }
        return 0;
    }
    if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
        struct kw_ip6 a;  // saddr at offset 8, daddr at 24 of the IPv6 header
        if (bpf_skb_load_bytes(skb, 8, &a, sizeof(a)) < 0) {
            kw_count(KW_SHORT);
            return 0;
        }
        if (targets6.lookup(&a)) {
            kw_count(KW_PASSED);
            return -1;
        }
        if (bpf_skb_load_bytes(skb, 24, &a, sizeof(a)) < 0) {
            kw_count(KW_SHORT);
            return 0;
        }
        if (targets6.lookup(&a)) {
            kw_count(KW_PASSED);
            return -1;
        }
        return 0;
    }
    kw_count(KW_NOT_IP);
    return 0;
}
