/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* events.h: what the last step of a packet leaves for userspace. Counters:
 * per-CPU arrays indexed by rule id and by reason, which `segfw stats`
 * sums over CPUs (no atomics needed: each CPU writes its own copy). Events:
 * deny, audit and log records reserved in and submitted to the ring buffer
 * that `segfw events` reads, at most a budget per CPU and second so that a
 * flood cannot starve userspace. See "Maps" (per-CPU) and "Ring buffer" in
 * docs/CONCEPTS.md. */
#ifndef SEGFW_EVENTS_H
#define SEGFW_EVENTS_H

#include "maps.h"
#include "parse.h"

/* Spends one event from this CPU's budget for the current second;
 * what the budget refuses is counted as suppressed, not lost silently. */
static __always_inline int event_budget_ok(const struct segfw_runtime *rt, __u64 now)
{
	__u32 zero = 0;
	struct segfw_ratelimit *rl = bpf_map_lookup_elem(&ratelimit, &zero);

	if (!rl)
		return 0;
	if (now - rl->window_start_ns >= 1000000000ULL) {
		rl->window_start_ns = now;
		rl->sent = 0;
	}
	if (rt->events_per_sec && rl->sent >= rt->events_per_sec) {
		rl->suppressed++;
		return 0;
	}
	rl->sent++;
	return 1;
}

static __always_inline void count_suppressed(void)
{
	__u32 zero = 0;
	struct segfw_ratelimit *rl = bpf_map_lookup_elem(&ratelimit, &zero);

	if (rl)
		rl->suppressed++;
}

/* What an event reports beyond the packet. */
struct event_what {
	__u32 rule_id;
	__u8 kind;      /* enum segfw_event_kind */
	__u8 direction; /* enum segfw_direction */
	__u8 reason;
	__u8 verdict;   /* enum segfw_action */
};

/* A subprogram, not inlined: events are rare (and rate-limited), and four
 * inlined copies made the program's hot code larger. */
static __noinline void write_event(struct __sk_buff *skb, const struct packet *pkt,
				   const struct segfw_runtime *rt, __u64 now,
				   const struct event_what *what)
{
	struct segfw_event *ev;

	if (!event_budget_ok(rt, now))
		return;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count_suppressed();
		return;
	}
	ev->ts_ns = now;
	__builtin_memcpy(ev->src, pkt->src, 16);
	__builtin_memcpy(ev->dst, pkt->dst, 16);
	ev->sport = pkt->sport;
	ev->dport = pkt->dport;
	ev->ifindex = skb->ifindex;
	ev->rule_id = what->rule_id;
	ev->proto = pkt->proto;
	ev->kind = what->kind;
	ev->direction = what->direction;
	ev->reason = what->reason;
	ev->verdict = what->verdict;
	__builtin_memset(ev->reserved, 0, sizeof(ev->reserved));
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline void emit_event(struct __sk_buff *skb, const struct packet *pkt,
				       const struct segfw_runtime *rt, __u64 now, __u8 kind,
				       __u8 direction, __u32 rule_id, __u8 reason, __u8 verdict)
{
	struct event_what what = {
		.rule_id = rule_id,
		.kind = kind,
		.direction = direction,
		.reason = reason,
		.verdict = verdict,
	};

	write_event(skb, pkt, rt, now, &what);
}

static __always_inline void count_reason(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&reason_stats, &reason);

	if (n)
		*n += 1;
}

static __always_inline void count_rule(__u32 rule_id, __u32 bytes, __u64 now)
{
	struct segfw_rule_stats *s = bpf_map_lookup_elem(&rule_stats, &rule_id);

	if (!s)
		return;
	s->packets++;
	s->bytes += bytes;
	/* the flow-cache path reads no clock; its flow's full path, at least
	 * once per SEGFW_FLOW_CACHE_JIFFIES, keeps last_hit_ns current */
	if (now)
		s->last_hit_ns = now;
}

#endif /* SEGFW_EVENTS_H */
