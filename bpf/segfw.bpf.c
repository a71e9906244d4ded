// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* segfw.bpf.c: the tcx entry points. Each packet runs the pipeline
 * parse -> conntrack -> policy -> verdict -> counters/event. */
#include "maps.h"
#include "parse.h"
#include "conntrack.h"
#include "policy.h"
#include "events.h"
#include "frag.h"
#include "clock.h"

/* tcx and legacy tc share these codes: TCX_NEXT/TC_ACT_UNSPEC lets the
 * next program (or the stack) have the packet; TCX_DROP/TC_ACT_SHOT. */
#define SEGFW_RET_PASS -1
#define SEGFW_RET_DROP 2

/* Constants of this build, in .rodata: libbpf freezes that map after load,
 * so not even root can change them in a loaded datapath. The anchor makes
 * every shared type reach BTF and the Rust skeleton. */
const volatile __u32 segfw_abi_version = SEGFW_ABI_VERSION;
const volatile struct segfw_btf_anchor _segfw_btf_anchor __attribute__((unused));

struct verdict {
	__u64 now;
	__u32 rule_id;
	__u8 reason;
	__u8 ct_hit;
	__u8 has_rule; /* the packet is accounted to rule_id */
};

/* Every function of the pipeline takes `explain` and is inlined into the
 * entry point, which passes a constant: clang folds each `if (explain)`
 * away, so the attached programs carry no explain code at all and the
 * explain program none of the side effects. */

/* Ends the pipeline: counts (or, for explain, reports through cb) and
 * turns the reason into the return code. */
static __always_inline int finish(struct __sk_buff *skb, int explain, struct verdict v)
{
	int pass = v.reason < SEGFW_REASON_FIRST_DROP;

	if (explain) {
		skb->cb[SEGFW_EXPLAIN_CB_VERDICT] = pass | (v.reason << 8);
		skb->cb[SEGFW_EXPLAIN_CB_RULE] = v.has_rule ? v.rule_id : SEGFW_EXPLAIN_NO_RULE;
		skb->cb[SEGFW_EXPLAIN_CB_CT_HIT] = v.ct_hit;
	} else {
		count_reason(v.reason);
		if (v.has_rule)
			count_rule(v.rule_id, skb->len, v.now);
	}
	return pass ? SEGFW_RET_PASS : SEGFW_RET_DROP;
}

static __always_inline int verdict_only(struct __sk_buff *skb, int explain, __u8 reason)
{
	struct verdict v = { .reason = reason };

	return finish(skb, explain, v);
}

/* The tracked flow's original direction, for re-checking it. */
static __always_inline void flow_of_entry(const struct packet *pkt,
					  const struct segfw_ct_value *ct, int from_orig,
					  struct flow *f)
{
	if (from_orig) {
		__builtin_memcpy(f->src, pkt->src, 16);
		__builtin_memcpy(f->dst, pkt->dst, 16);
	} else {
		__builtin_memcpy(f->src, pkt->dst, 16);
		__builtin_memcpy(f->dst, pkt->src, 16);
	}
	f->port = ct->policy_port;
	f->proto = pkt->proto;
	f->direction = ct->flags & SEGFW_CT_ORIG_INGRESS ? SEGFW_DIR_INGRESS : SEGFW_DIR_EGRESS;
}

static __always_inline void flow_of_packet(const struct packet *pkt, __u8 dir, struct flow *f)
{
	__builtin_memcpy(f->src, pkt->src, 16);
	__builtin_memcpy(f->dst, pkt->dst, 16);
	f->port = pkt->policy_port;
	f->proto = pkt->proto;
	f->direction = dir;
}

static __always_inline void ct_insert(const struct segfw_ct_key *key, const struct packet *pkt,
				      const struct decision *d, const struct segfw_runtime *rt,
				      int src_is_lo, __u8 dir, __u64 now, int *failed)
{
	struct segfw_ct_value val = {
		.created_ns = now,
		.last_seen_ns = now,
		.rule_id = d->rule_id,
		.generation = rt->generation,
		.policy_port = pkt->policy_port,
		.state = ct_initial_state(pkt),
	};

	val.flags = (src_is_lo ? SEGFW_CT_ORIG_IS_LO : 0) |
		    (dir == SEGFW_DIR_INGRESS ? SEGFW_CT_ORIG_INGRESS : 0) |
		    (d->audited ? SEGFW_CT_AUDITED : 0);
	*failed = bpf_map_update_elem(&conntrack, key, &val, BPF_ANY) != 0;
}

/* A tracked flow whose policy changed is decided again, as its first
 * packet was: revocation reaches established sessions. */
static __always_inline int ct_recheck(struct __sk_buff *skb, const struct packet *pkt,
				      struct segfw_ct_value *ct, const struct segfw_ct_key *key,
				      int from_orig, const struct segfw_runtime *rt, __u64 now,
				      __u8 dir, int explain, struct verdict *v)
{
	void *trie = policy_trie();
	struct decision d = {};
	struct flow f;

	flow_of_entry(pkt, ct, from_orig, &f);
	if (!trie || !decide(trie, &f, &d))
		return 1; /* no policy: nothing to revoke against */
	if (d.action == SEGFW_ACTION_DENY) {
		v->rule_id = d.rule_id;
		v->reason = SEGFW_DROP_REVOKED;
		v->has_rule = 1;
		if (!explain) {
			bpf_map_delete_elem(&conntrack, key);
			emit_event(skb, pkt, rt, now, SEGFW_EVENT_DENY, dir, d.rule_id,
				   SEGFW_DROP_REVOKED, SEGFW_ACTION_DENY);
		}
		return 0;
	}
	if (!explain) {
		ct->generation = rt->generation;
		ct->rule_id = d.rule_id;
		if (d.audited)
			ct->flags |= SEGFW_CT_AUDITED;
		else
			ct->flags &= ~SEGFW_CT_AUDITED;
	}
	return 1;
}

static __always_inline int new_flow(struct __sk_buff *skb, const struct packet *pkt,
				    const struct segfw_ct_key *key, int src_is_lo, int may_track,
				    const struct segfw_runtime *rt, __u64 now, __u8 dir, int explain)
{
	void *trie = policy_trie();
	struct verdict v = { .now = now };
	struct decision d = {};
	struct flow f;
	int failed = 0;

	flow_of_packet(pkt, dir, &f);
	if (!trie || !decide(trie, &f, &d)) {
		if (pkt->frag == FRAG_FIRST)
			frag_first_passed(pkt, now, explain);
		return verdict_only(skb, explain, SEGFW_PASS_NO_POLICY);
	}

	v.rule_id = d.rule_id;
	v.has_rule = 1;
	v.reason = d.reason;
	if (d.action == SEGFW_ACTION_DENY) {
		if (!explain)
			emit_event(skb, pkt, rt, now, SEGFW_EVENT_DENY, dir, d.rule_id, d.reason,
				   SEGFW_ACTION_DENY);
		return finish(skb, explain, v);
	}
	if (d.audited)
		v.reason = SEGFW_PASS_AUDIT;
	else if (d.reason == SEGFW_PASS_ALLOWED && may_track && pkt->proto == IPPROTO_TCP &&
		 ct_initial_state(pkt) == SEGFW_CT_ESTABLISHED && !(pkt->tcp_flags & TCPF_RST))
		/* counted apart: this is how conntrack evictions show */
		v.reason = SEGFW_PASS_PICKUP;

	if (!explain) {
		if (d.audited)
			emit_event(skb, pkt, rt, now, SEGFW_EVENT_AUDIT, dir, d.rule_id, d.reason,
				   SEGFW_ACTION_ALLOW);
		else if (d.flags & SEGFW_FLAG_LOG)
			emit_event(skb, pkt, rt, now, SEGFW_EVENT_LOG, dir, d.rule_id, d.reason,
				   SEGFW_ACTION_ALLOW);

		/* a RST, a later fragment or an ICMP type other than an echo
		 * request opens nothing; it is just passed */
		if (may_track && !(pkt->proto == IPPROTO_TCP && (pkt->tcp_flags & TCPF_RST))) {
			ct_insert(key, pkt, &d, rt, src_is_lo, dir, now, &failed);
			if (failed) {
				v.reason = SEGFW_DROP_CT_FULL;
				return finish(skb, explain, v);
			}
		}
	}
	/* counted apart: its datagram already lost fragments (last-first) */
	if (pkt->frag == FRAG_FIRST && frag_first_passed(pkt, now, explain) && !d.audited)
		v.reason = SEGFW_PASS_FRAG_LATE_FIRST;
	return finish(skb, explain, v);
}

/* ICMP errors pass only for a flow conntrack knows. */
static __always_inline int related(struct __sk_buff *skb, const struct packet *pkt,
				   const struct segfw_runtime *rt, __u64 now, int explain)
{
	struct segfw_ct_key key;
	struct segfw_ct_value *ct;
	struct verdict v = { .now = now, .reason = SEGFW_DROP_ICMP_NO_FLOW };

	ct_key_of(pkt, &key);
	ct = bpf_map_lookup_elem(&conntrack, &key);
	if (ct && !ct_expired(ct, pkt->proto, rt, now)) {
		v.reason = SEGFW_PASS_RELATED;
		v.rule_id = ct->rule_id;
		v.has_rule = 1;
		v.ct_hit = 1;
	}
	return finish(skb, explain, v);
}

/* A packet of a flow conntrack knows: re-decided if the policy changed
 * since, then its state advanced and the flow cache (fc, NULL if the packet
 * may not use it) primed. */
static __always_inline int tracked(struct __sk_buff *skb, const struct packet *pkt,
				   struct segfw_ct_value *ct, const struct segfw_ct_key *key,
				   struct segfw_flow_cache *fc, int src_is_lo, int from_orig,
				   const struct segfw_runtime *rt, __u64 now, __u8 dir,
				   int explain)
{
	struct verdict v = { .now = now, .ct_hit = 1, .reason = SEGFW_PASS_ESTABLISHED };

	if (ct->generation != rt->generation &&
	    !ct_recheck(skb, pkt, ct, key, from_orig, rt, now, dir, explain, &v))
		return finish(skb, explain, v);
	if (!explain) {
		if (pkt->proto == IPPROTO_TCP)
			ct_track_tcp(ct, pkt, from_orig, src_is_lo);
		ct->last_seen_ns = now;
		if (fc && (ct->state == SEGFW_CT_ESTABLISHED || ct->state == SEGFW_CT_OPEN))
			flow_cache_store(fc, key, ct);
	}
	v.rule_id = ct->rule_id;
	v.has_rule = 1;
	if (pkt->frag == FRAG_FIRST && frag_first_passed(pkt, now, explain))
		v.reason = SEGFW_PASS_FRAG_LATE_FIRST;
	return finish(skb, explain, v);
}

/* Neighbour discovery: solicitations and neighbour advertisements pass;
 * router advertisements and redirects as router_msg_reason decides, their
 * refusals reported like a deny. Rare, so kept out of process's hot code by
 * the two wrappers below, one per value of explain. */
static __always_inline int nd_verdict(struct __sk_buff *skb, const struct packet *pkt, __u8 dir,
				      const int explain)
{
	struct segfw_runtime *rt;
	__u32 zero = 0;
	int reason;

	if (pkt->is_nd != ND_ROUTER)
		return verdict_only(skb, explain, SEGFW_PASS_ND);
	reason = router_msg_reason(pkt);
	rt = bpf_map_lookup_elem(&runtime, &zero);
	if (!explain && rt && (reason == SEGFW_DROP_ROUTER_MSG || reason == SEGFW_PASS_AUDIT))
		emit_event(skb, pkt, rt, coarse_now(),
			   reason == SEGFW_PASS_AUDIT ? SEGFW_EVENT_AUDIT : SEGFW_EVENT_DENY, dir,
			   SEGFW_RULE_DEFAULT, SEGFW_DROP_ROUTER_MSG,
			   reason == SEGFW_PASS_AUDIT ? SEGFW_ACTION_ALLOW : SEGFW_ACTION_DENY);
	return verdict_only(skb, explain, reason);
}

static __noinline int nd_enforce(struct __sk_buff *skb, const struct packet *pkt, __u8 dir)
{
	return nd_verdict(skb, pkt, dir, 0);
}

static __noinline int nd_explain(struct __sk_buff *skb, const struct packet *pkt, __u8 dir)
{
	return nd_verdict(skb, pkt, dir, 1);
}

/* L2, L3 and (but for a later fragment) L4 headers into pkt, reading only
 * the linear area. A reason: a drop, or SEGFW_PASS_NON_IP.
 *
 * A global function, so the verifier checks it once, on its own, and the
 * caller sees its result as unknown values: inlined, every path through the
 * parser (VLAN depth, each IPv6 extension header, each protocol) went on as
 * a state of its own through the whole pipeline, and loading the two
 * programs took 870k verified instructions and 3.4 s instead of 73k and
 * 0.4 s. */
__noinline int parse_packet(struct __sk_buff *skb, struct packet *pkt)
{
	__u16 eth_proto = 0;
	int reason;

	if (!pkt)
		return SEGFW_DROP_TRUNCATED;
	reason = parse_l2(skb, pkt, &eth_proto);
	if (reason)
		return reason;
	if (eth_proto == ETH_P_IP)
		reason = parse_ipv4(skb, pkt);
	else if (eth_proto == ETH_P_IPV6)
		reason = parse_ipv6(skb, pkt);
	else
		return SEGFW_PASS_NON_IP;
	if (reason || pkt->frag == FRAG_LATER)
		return reason;
	return parse_l4(skb, pkt);
}

/* Headers may reach into paged data: makes them linear and reads them
 * again. */
static __always_inline int parse_pulled(struct __sk_buff *skb, struct packet *pkt)
{
	pull_headers(skb);
	__builtin_memset(pkt, 0, sizeof(*pkt));
	return parse_packet(skb, pkt);
}

/* The whole pipeline. `explain` is a constant of each entry point. */
static __always_inline int process(struct __sk_buff *skb, __u8 dir, const int explain)
{
	struct packet pkt = {};
	struct segfw_runtime *rt;
	struct segfw_ct_key key;
	struct segfw_ct_value *ct;
	struct segfw_flow_cache *fc;
	__u32 zero = 0;
	int reason, src_is_lo, from_orig, may_track;
	__u64 now;

	reason = parse_packet(skb, &pkt);
	if (reason >= SEGFW_REASON_FIRST_DROP && headers_maybe_nonlinear(skb))
		reason = parse_pulled(skb, &pkt);
	if (reason)
		return verdict_only(skb, explain, reason);

	if (pkt.frag == FRAG_LATER) {
		reason = frag_recall(&pkt, explain);
		if (reason)
			return verdict_only(skb, explain, reason);
	}
	if (pkt.is_nd)
		return explain ? nd_explain(skb, &pkt, dir) : nd_enforce(skb, &pkt, dir);

	rt = bpf_map_lookup_elem(&runtime, &zero);
	if (!rt)
		return verdict_only(skb, explain, SEGFW_PASS_NO_POLICY);

	fc = flow_cache_for(&pkt);
	if (fc && flow_cache_holds(fc, &pkt, rt)) {
		/* no clock: this path stamps nothing (the flow's full path, at
		 * least once per SEGFW_FLOW_CACHE_JIFFIES, keeps times current) */
		struct verdict fast = { .rule_id = fc->rule_id, .has_rule = 1,
					.ct_hit = 1, .reason = SEGFW_PASS_ESTABLISHED };

		return finish(skb, explain, fast);
	}

	src_is_lo = ct_key_of(&pkt, &key);
	/* one clock read per packet: see struct segfw_ct_value */
	now = coarse_now();
	if (pkt.is_icmp_error)
		return related(skb, &pkt, rt, now, explain);

	may_track = pkt.frag != FRAG_LATER && icmp_opens_flow(&pkt);
	ct = bpf_map_lookup_elem(&conntrack, &key);
	if (ct && !ct_expired(ct, pkt.proto, rt, now)) {
		from_orig = src_is_lo == !!(ct->flags & SEGFW_CT_ORIG_IS_LO);
		if (icmp_rides_entry(&pkt, from_orig))
			return tracked(skb, &pkt, ct, &key, fc, src_is_lo, from_orig, rt, now,
				       dir, explain);
		/* decided on its own, riding nothing: only the originator's echo
		 * request renews the entry */
		may_track = may_track && from_orig;
	}
	/* one call site: new_flow is the largest inlined part of the program */
	return new_flow(skb, &pkt, &key, src_is_lo, may_track, rt, now, dir, explain);
}

SEC("tcx/ingress")
int segfw_ingress(struct __sk_buff *skb)
{
	return process(skb, SEGFW_DIR_INGRESS, 0);
}

SEC("tcx/egress")
int segfw_egress(struct __sk_buff *skb)
{
	return process(skb, SEGFW_DIR_EGRESS, 0);
}

/* progs/explain: never attached, only run by BPF_PROG_TEST_RUN (`segfw
 * explain`, the tests). It decides like the attached programs, from the
 * same maps, but changes nothing: no conntrack entry, flow cache, fragment
 * memory, counter or event. The direction to decide for comes in cb (only
 * this program reads cb; the attached ones never do, so nothing ahead of
 * segfw on a hook can change what they do), the answer goes back there. A
 * direction other than ingress or egress gets no answer. */
SEC("tc")
int segfw_explain(struct __sk_buff *skb)
{
	__u32 dir = skb->cb[SEGFW_EXPLAIN_CB_DIR];

	/* one copy of the pipeline for both directions: here dir is data */
	if (dir != SEGFW_DIR_INGRESS && dir != SEGFW_DIR_EGRESS)
		return SEGFW_RET_DROP;
	return process(skb, dir, 1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
