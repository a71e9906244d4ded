// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* segfw.bpf.c: tcx entry points (stub until the datapath lands). */
#include "maps.h"

/* Anchors so that every shared type reaches BTF and the Rust skeleton. */
struct segfw_btf_anchor _segfw_btf_anchor __attribute__((unused));

SEC("tcx/ingress")
int segfw_ingress(struct __sk_buff *skb)
{
	return -1;
}

SEC("tcx/egress")
int segfw_egress(struct __sk_buff *skb)
{
	return -1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
