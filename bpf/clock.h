/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* clock.h: the one clock read of a packet, for conntrack and fragment ages
 * and event times (segfw.bpf.c reads it once, after the flow cache missed).
 * It is CLOCK_MONOTONIC_COARSE (what userspace reads for ages), cached per
 * CPU. The coarse clock only moves at a tick, so its value is read again
 * only when jiffies (which the verifier inlines to a load) has moved: a
 * helper call and the timekeeper's cache line cost a tracked packet ~60 ns
 * under load, the cached copy a few. */
#ifndef SEGFW_CLOCK_H
#define SEGFW_CLOCK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct clock_copy {
	__u64 jiffies;
	__u64 ns;
};

/* Not pinned: it holds nothing that outlives the programs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct clock_copy);
} clock_cache SEC(".maps");

/* Now, in ns. A copy taken just as jiffies moved but before the timekeeper
 * did may lag a tick behind another CPU's: callers comparing with times
 * other CPUs wrote must allow for a `now` that is slightly older. */
static __always_inline __u64 coarse_now(void)
{
	__u32 zero = 0;
	struct clock_copy *c = bpf_map_lookup_elem(&clock_cache, &zero);
	__u64 j = bpf_jiffies64();

	if (!c)
		return bpf_ktime_get_coarse_ns();
	if (c->jiffies != j) {
		c->ns = bpf_ktime_get_coarse_ns();
		c->jiffies = j;
	}
	return c->ns;
}

#endif /* SEGFW_CLOCK_H */
