/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* policy.h: the decision for a packet conntrack does not know (and for a
 * tracked flow whose policy changed since). Each address is looked up in
 * the active set's LPM trie to find its segment, then (source segment,
 * destination segment, protocol, port) to find the rule: a constant number
 * of trie lookups, two for the segments, at most eight for the rules, so
 * the cost does not grow with the policy. The keys are built by
 * src/policy/image.rs; "LPM trie and prefixlen" in docs/CONCEPTS.md explains
 * how a prefix length selects the bits that must match. */
#ifndef SEGFW_POLICY_H
#define SEGFW_POLICY_H

#include "maps.h"
#include "parse.h"

/* A flow as the policy sees it: originator to responder. */
struct flow {
	__u8 src[16];
	__u8 dst[16];
	__be16 port; /* dport, or bpf_htons(ICMP type) */
	__u8 proto;
	__u8 direction; /* enum segfw_direction of its first packet */
};

struct decision {
	__u32 rule_id;
	__u8 action; /* enum segfw_action as enforced (audit turns deny into allow) */
	__u8 flags;  /* rule flags: SEGFW_FLAG_LOG / SEGFW_FLAG_AUDIT */
	__u8 reason; /* SEGFW_PASS_* or SEGFW_DROP_* */
	__u8 audited; /* a deny passed by audit */
};

static __always_inline void *policy_trie(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&policy_outer, &zero);
}

/* The longest prefix of `kind` (SEGMENT, RA_SOURCE) holding addr. */
static __always_inline struct segfw_policy_value *addr_lookup(void *trie, __u32 kind,
							       const __u8 *addr)
{
	struct segfw_policy_key key = {
		.prefixlen = SEGFW_KEY_KIND_BITS + SEGFW_KEY_DATA_BITS,
		.kind = kind,
	};

	__builtin_memcpy(key.data.addr, addr, 16);
	return bpf_map_lookup_elem(trie, &key);
}

static __always_inline __u32 segment_of(void *trie, const __u8 *addr)
{
	struct segfw_policy_value *v = addr_lookup(trie, SEGFW_KIND_SEGMENT, addr);

	return v ? v->id : SEGFW_SEG_WORLD;
}

static __always_inline struct segfw_policy_value *
rule_lookup(void *trie, __u32 src, __u32 dst, __u16 proto, __be16 port, __u32 kind)
{
	struct segfw_policy_key key = {
		.prefixlen = SEGFW_KEY_KIND_BITS + SEGFW_KEY_RULE_FIXED_BITS + SEGFW_KEY_PORT_BITS,
		.kind = kind,
		.data.rule = { .src_seg = src, .dst_seg = dst, .proto = proto, .port = port },
	};

	return bpf_map_lookup_elem(trie, &key);
}

static __always_inline struct segfw_policy_value *policy_config(void *trie)
{
	struct segfw_policy_key key = {
		.prefixlen = SEGFW_KEY_KIND_BITS + SEGFW_KEY_DATA_BITS,
		.kind = SEGFW_KIND_CONFIG,
	};

	return bpf_map_lookup_elem(trie, &key);
}

/* Keeps the winner so far: any deny beats any allow; within an action the
 * lowest rule id wins, so the result does not depend on lookup order. */
static __always_inline void consider(struct segfw_policy_value *v, struct decision *d, int *found)
{
	if (!v)
		return;
	if (*found) {
		if (v->action != d->action) {
			if (v->action != SEGFW_ACTION_DENY)
				return;
		} else if (v->id >= d->rule_id) {
			return;
		}
	}
	*found = 1;
	d->rule_id = v->id;
	d->action = v->action;
	d->flags = v->flags;
}

/* Decides a new flow. Returns 0 if no policy is applied yet. */
static __noinline int decide(void *trie, const struct flow *f, struct decision *d)
{
	struct segfw_policy_value *cfg = policy_config(trie);
	__u32 src_seg, dst_seg;
	int found = 0;
	int combo;

	if (!cfg)
		return 0;

	if (f->direction == SEGFW_DIR_INGRESS && f->proto == IPPROTO_TCP &&
	    rule_lookup(trie, SEGFW_SEG_ANY, SEGFW_SEG_ANY, IPPROTO_TCP, f->port,
			SEGFW_KIND_FAILSAFE)) {
		d->rule_id = SEGFW_RULE_FAILSAFE;
		d->action = SEGFW_ACTION_ALLOW;
		d->flags = 0;
		d->reason = SEGFW_PASS_FAILSAFE;
		d->audited = 0;
		return 1;
	}

	src_seg = segment_of(trie, f->src);
	dst_seg = segment_of(trie, f->dst);

#pragma unroll
	for (combo = 0; combo < SEGFW_COMBO_COUNT; combo++) {
		if (!(cfg->combos & (1 << combo)))
			continue;
		consider(rule_lookup(trie,
				     combo & SEGFW_COMBO_SRC_ANY ? SEGFW_SEG_ANY : src_seg,
				     combo & SEGFW_COMBO_DST_ANY ? SEGFW_SEG_ANY : dst_seg,
				     combo & SEGFW_COMBO_PROTO_ANY ? SEGFW_PROTO_ANY : f->proto,
				     f->port, SEGFW_KIND_RULE),
			 d, &found);
	}

	if (!found) {
		d->rule_id = SEGFW_RULE_DEFAULT;
		d->action = cfg->action;
		d->flags = 0;
	}
	d->audited = 0;
	if (d->action == SEGFW_ACTION_ALLOW) {
		d->reason = SEGFW_PASS_ALLOWED;
		return 1;
	}
	d->reason = found ? SEGFW_DROP_POLICY : SEGFW_DROP_DEFAULT;
	if ((cfg->flags & SEGFW_FLAG_AUDIT) || (d->flags & SEGFW_FLAG_AUDIT)) {
		d->audited = 1;
		d->action = SEGFW_ACTION_ALLOW;
	}
	return 1;
}

/* A router advertisement or redirect passes only with hop limit 255 (RFC
 * 4861: it was sent on-link) and from a source of the policy's RA_SOURCE
 * entries ([defaults] router_advertisements; the default is fe80::/10).
 * A subprogram: rare, and kept out of the hot code. */
static __noinline int router_msg_reason(const struct packet *pkt)
{
	void *trie = policy_trie();
	struct segfw_policy_value *cfg;

	if (!trie)
		return SEGFW_PASS_NO_POLICY;
	cfg = policy_config(trie);
	if (!cfg)
		return SEGFW_PASS_NO_POLICY;
	if (pkt->hop_limit == SEGFW_ND_HOP_LIMIT &&
	    addr_lookup(trie, SEGFW_KIND_RA_SOURCE, pkt->src))
		return SEGFW_PASS_ND;
	if (cfg->flags & SEGFW_FLAG_AUDIT)
		return SEGFW_PASS_AUDIT;
	return SEGFW_DROP_ROUTER_MSG;
}

#endif /* SEGFW_POLICY_H */
