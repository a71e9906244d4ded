/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* frag.h: IP fragments, between parsing and the policy decision. Only a
 * first fragment carries the L4 header (ports, ICMP type), so an allowed
 * first fragment leaves its ports (keyed by src, dst, proto and IP id) for
 * the fragments after it, for SEGFW_FRAG_TIMEOUT_S (Linux's ipfrag_time). A denied first fragment leaves nothing, and a live memory is
 * never replaced by a later first fragment with the same key: a spoofed one
 * cannot take over a real datagram.
 *
 * Fragments that arrive before their first fragment (last-first order) have
 * no ports to be decided on. tc cannot hold a packet back, so they are
 * dropped as orphans; the note they leave makes the first fragment, when it
 * comes, count under SEGFW_PASS_FRAG_LATE_FIRST, so that the case shows. */
#ifndef SEGFW_FRAG_H
#define SEGFW_FRAG_H

#include "maps.h"
#include "parse.h"
#include "clock.h"

#define FRAG_TIMEOUT_NS ((__u64)SEGFW_FRAG_TIMEOUT_S * 1000000000ULL)

static __always_inline void frag_key_of(const struct packet *pkt, struct segfw_frag_key *key)
{
	__builtin_memcpy(key->src, pkt->src, 16);
	__builtin_memcpy(key->dst, pkt->dst, 16);
	key->id = pkt->frag_id;
	key->proto = pkt->proto;
	key->reserved[0] = key->reserved[1] = key->reserved[2] = 0;
}

/* A `now` older than seen_ns (another CPU's clock copy, see clock.h) is
 * not expiry. */
static __always_inline int frag_expired(const struct segfw_frag_value *val, __u64 now)
{
	return now > val->seen_ns && now - val->seen_ns > FRAG_TIMEOUT_NS;
}

/* A later fragment takes its L4 fields from its first fragment. With none
 * (never seen, denied, or expired) it is an orphan, and leaves a note that
 * its datagram lost a part before its first fragment came. */
static __always_inline int frag_recall(struct packet *pkt, int explain)
{
	struct segfw_frag_key key;
	struct segfw_frag_value *val;
	__u64 now = coarse_now();

	frag_key_of(pkt, &key);
	val = bpf_map_lookup_elem(&frags, &key);
	if (val && !(val->flags & SEGFW_FRAG_ORPHANS) && !frag_expired(val, now)) {
		pkt->sport = val->sport;
		pkt->dport = val->dport;
		pkt->policy_port = val->policy_port;
		pkt->icmp_type = val->icmp_type;
		return SEGFW_REASON_NONE;
	}
	if (explain)
		return SEGFW_DROP_FRAG_ORPHAN;
	if (!val) {
		struct segfw_frag_value note = { .flags = SEGFW_FRAG_ORPHANS, .seen_ns = now };

		/* NOEXIST: a first fragment stored meanwhile stays */
		bpf_map_update_elem(&frags, &key, &note, BPF_NOEXIST);
	} else if (frag_expired(val, now)) {
		/* in place: a concurrent first fragment's update replaces the
		 * element, so it is never overwritten by this */
		val->flags = SEGFW_FRAG_ORPHANS;
		val->seen_ns = now;
	}
	return SEGFW_DROP_FRAG_ORPHAN;
}

/* An allowed first fragment: stored, unless a live first fragment with the
 * same key is (which then stays). Returns 1 if later fragments of this
 * datagram were already dropped as orphans. explain only looks. */
static __always_inline int frag_first_passed(const struct packet *pkt, __u64 now, int explain)
{
	struct segfw_frag_key key;
	struct segfw_frag_value *old;
	struct segfw_frag_value val = {
		.sport = pkt->sport,
		.dport = pkt->dport,
		.policy_port = pkt->policy_port,
		.icmp_type = pkt->icmp_type,
		.seen_ns = now,
	};
	int late;

	frag_key_of(pkt, &key);
	old = bpf_map_lookup_elem(&frags, &key);
	if (!old) {
		if (!explain)
			bpf_map_update_elem(&frags, &key, &val, BPF_NOEXIST);
		return 0;
	}
	if (frag_expired(old, now)) {
		late = 0;
	} else if (old->flags & SEGFW_FRAG_ORPHANS) {
		late = 1;
	} else {
		return 0; /* the first fragment that came first keeps its datagram */
	}
	if (!explain)
		bpf_map_update_elem(&frags, &key, &val, BPF_EXIST);
	return late;
}

#endif /* SEGFW_FRAG_H */
