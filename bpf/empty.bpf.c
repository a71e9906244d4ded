// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* empty.bpf.c: the floor for benchmarks, a tcx program that only passes. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tcx/ingress")
int empty_ingress(struct __sk_buff *skb)
{
	return -1; /* TCX_NEXT */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
