/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* conntrack.h: the connection tracker, the step after parsing. A flow has
 * one key for both directions (the two endpoints in a fixed order), so a
 * reply finds the entry its first packet made; a found, unexpired entry
 * passes the packet without a policy lookup. Also here: the TCP state
 * machine that moves an entry through SYN, established and closing, the
 * per-state timeouts, and the per-CPU flow cache that lets the next packet
 * of an established flow skip the conntrack lookup. The map itself is in
 * maps.h; docs/ARCHITECTURE.md follows a SYN and its SYN-ACK through it. */
#ifndef SEGFW_CONNTRACK_H
#define SEGFW_CONNTRACK_H

#include "maps.h"
#include "parse.h"

#define NS_PER_SEC 1000000000ULL
/* Short-lived TCP states, capped by the configured TCP timeout. */
#define CT_SYN_TIMEOUT_S 60
#define CT_FIN_TIMEOUT_S 120
#define CT_CLOSED_TIMEOUT_S 10

/* -1, 0, 1 as (a, ap) sorts before, equal to, after (b, bp). Any total
 * order works: userspace reads the originator from SEGFW_CT_ORIG_IS_LO. */
static __always_inline int endpoint_cmp(const __u8 *a, __be16 ap, const __u8 *b, __be16 bp)
{
	const __u32 *x = (const __u32 *)a;
	const __u32 *y = (const __u32 *)b;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	}
	if (ap != bp)
		return ap < bp ? -1 : 1;
	return 0;
}

/* Builds the direction-free key; returns 1 if the packet's source is lo. */
static __always_inline int ct_key_of(const struct packet *pkt, struct segfw_ct_key *key)
{
	int src_is_lo = endpoint_cmp(pkt->src, pkt->sport, pkt->dst, pkt->dport) <= 0;

	if (src_is_lo) {
		__builtin_memcpy(key->lo_addr, pkt->src, 16);
		__builtin_memcpy(key->hi_addr, pkt->dst, 16);
		key->lo_port = pkt->sport;
		key->hi_port = pkt->dport;
	} else {
		__builtin_memcpy(key->lo_addr, pkt->dst, 16);
		__builtin_memcpy(key->hi_addr, pkt->src, 16);
		key->lo_port = pkt->dport;
		key->hi_port = pkt->sport;
	}
	key->proto = pkt->proto;
	key->reserved[0] = key->reserved[1] = key->reserved[2] = 0;
	return src_is_lo;
}

static __always_inline __u64 ct_timeout_ns(const struct segfw_ct_value *ct, __u8 proto,
					   const struct segfw_runtime *rt)
{
	__u32 s;

	switch (proto) {
	case IPPROTO_TCP:
		s = rt->tcp_timeout_s;
		if (ct->state == SEGFW_CT_SYN_SENT || ct->state == SEGFW_CT_SYN_RECV)
			s = s < CT_SYN_TIMEOUT_S ? s : CT_SYN_TIMEOUT_S;
		else if (ct->state == SEGFW_CT_FIN_WAIT || ct->state == SEGFW_CT_CLOSING)
			s = s < CT_FIN_TIMEOUT_S ? s : CT_FIN_TIMEOUT_S;
		else if (ct->state == SEGFW_CT_CLOSED)
			s = s < CT_CLOSED_TIMEOUT_S ? s : CT_CLOSED_TIMEOUT_S;
		break;
	case IPPROTO_UDP:
		s = rt->udp_timeout_s;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		s = rt->icmp_timeout_s;
		break;
	default:
		s = rt->other_timeout_s;
	}
	return (__u64)s * NS_PER_SEC;
}

/* A `now` older than last_seen (another CPU's clock copy ran a tick
 * ahead, see clock.h) is not expiry. */
static __always_inline int ct_expired(const struct segfw_ct_value *ct, __u8 proto,
				      const struct segfw_runtime *rt, __u64 now)
{
	return now > ct->last_seen_ns && now - ct->last_seen_ns > ct_timeout_ns(ct, proto, rt);
}

/* The state a new TCP flow starts in: a SYN opens; anything else that
 * policy allows is picked up mid-stream (after eviction or a restart). */
static __always_inline __u8 ct_initial_state(const struct packet *pkt)
{
	if (pkt->proto != IPPROTO_TCP)
		return SEGFW_CT_OPEN;
	if ((pkt->tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN)
		return SEGFW_CT_SYN_SENT;
	return SEGFW_CT_ESTABLISHED;
}

/* Advances the TCP state for a packet of a tracked flow, in place. */
static __always_inline void ct_track_tcp(struct segfw_ct_value *ct, const struct packet *pkt,
					 int from_orig, int src_is_lo)
{
	__u8 f = pkt->tcp_flags;

	if (f & TCPF_RST) {
		ct->state = SEGFW_CT_CLOSED;
		return;
	}
	if ((f & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN && from_orig &&
	    (ct->state == SEGFW_CT_CLOSED || ct->state == SEGFW_CT_CLOSING)) {
		/* port reuse after close: a fresh handshake */
		ct->state = SEGFW_CT_SYN_SENT;
		ct->flags &= ~(SEGFW_CT_FIN_LO | SEGFW_CT_FIN_HI);
		return;
	}
	if (f & TCPF_FIN) {
		ct->flags |= src_is_lo ? SEGFW_CT_FIN_LO : SEGFW_CT_FIN_HI;
		if ((ct->flags & (SEGFW_CT_FIN_LO | SEGFW_CT_FIN_HI)) ==
		    (SEGFW_CT_FIN_LO | SEGFW_CT_FIN_HI))
			ct->state = SEGFW_CT_CLOSING;
		else
			ct->state = SEGFW_CT_FIN_WAIT;
		return;
	}
	if (ct->state == SEGFW_CT_SYN_SENT && !from_orig &&
	    (f & (TCPF_SYN | TCPF_ACK)) == (TCPF_SYN | TCPF_ACK))
		ct->state = SEGFW_CT_SYN_RECV;
	else if (ct->state == SEGFW_CT_SYN_RECV && from_orig && (f & TCPF_ACK))
		ct->state = SEGFW_CT_ESTABLISHED;
}

/* ICMP's flow key carries no type: an echo's ports are its id, every
 * other type's ports are 0, so a key alone would let any type ride a ping
 * (echo id 0). Only an echo reply, from the responder's side, uses an ICMP
 * entry; every other type is decided by policy (errors, as related,
 * before this). ICMP across families is a plain protocol number. */
static __always_inline int icmp_rides_entry(const struct packet *pkt, int from_orig)
{
	if (pkt->proto == IPPROTO_ICMP && !pkt->is_v6)
		return !from_orig && pkt->icmp_type == ICMP_ECHOREPLY;
	if (pkt->proto == IPPROTO_ICMPV6 && pkt->is_v6)
		return !from_orig && pkt->icmp_type == ICMPV6_ECHO_REPLY;
	return 1;
}

/* Whether an allowed packet opens (or renews) a tracked flow: of ICMP only
 * an echo request, whose reply then rides the entry. */
static __always_inline int icmp_opens_flow(const struct packet *pkt)
{
	if (pkt->proto == IPPROTO_ICMP && !pkt->is_v6)
		return pkt->icmp_type == ICMP_ECHO;
	if (pkt->proto == IPPROTO_ICMPV6 && pkt->is_v6)
		return pkt->icmp_type == ICMPV6_ECHO_REQUEST;
	return 1;
}

/* Packets that cannot change a flow's state may use the flow cache; ICMP
 * never does, since the key does not tell an echo request's direction, nor
 * a first fragment, which must leave its ports for the fragments after it. */
static __always_inline int flow_cache_eligible(const struct packet *pkt)
{
	if (pkt->frag == FRAG_FIRST)
		return 0;
	if (pkt->proto == IPPROTO_TCP)
		return !(pkt->tcp_flags & (TCPF_SYN | TCPF_FIN | TCPF_RST));
	return pkt->proto != IPPROTO_ICMP && pkt->proto != IPPROTO_ICMPV6 && !pkt->is_icmp_error;
}

/* Whether key is the packet's flow, seen from either end: what ct_key_of
 * would build, tested without building it (the flow cache's hit path). */
static __always_inline int ct_key_holds(const struct segfw_ct_key *key, const struct packet *pkt)
{
	const __u64 *lo = (const __u64 *)key->lo_addr;
	const __u64 *hi = (const __u64 *)key->hi_addr;
	const __u64 *src = (const __u64 *)pkt->src;
	const __u64 *dst = (const __u64 *)pkt->dst;

	if (key->proto != pkt->proto)
		return 0;
	if (src[0] == lo[0] && src[1] == lo[1] && pkt->sport == key->lo_port)
		return dst[0] == hi[0] && dst[1] == hi[1] && pkt->dport == key->hi_port;
	return src[0] == hi[0] && src[1] == hi[1] && pkt->sport == key->hi_port &&
	       dst[0] == lo[0] && dst[1] == lo[1] && pkt->dport == key->lo_port;
}

/* This CPU's flow cache entry if the packet may use it (see
 * flow_cache_eligible), else NULL: looked up once per packet, for both the
 * hit test and the store. */
static __always_inline struct segfw_flow_cache *flow_cache_for(const struct packet *pkt)
{
	__u32 zero = 0;

	if (!flow_cache_eligible(pkt))
		return NULL;
	return bpf_map_lookup_elem(&flow_cache, &zero);
}

/* Whether the entry holds the packet's flow, fresh and of the live
 * generation. Freshness is counted in jiffies, which the verifier inlines
 * to a load. */
static __always_inline int flow_cache_holds(const struct segfw_flow_cache *fc,
					    const struct packet *pkt,
					    const struct segfw_runtime *rt)
{
	return fc->generation == rt->generation &&
	       bpf_jiffies64() - fc->refreshed_jiffies < SEGFW_FLOW_CACHE_JIFFIES &&
	       ct_key_holds(&fc->key, pkt);
}

static __always_inline void flow_cache_store(struct segfw_flow_cache *fc,
					     const struct segfw_ct_key *key,
					     const struct segfw_ct_value *ct)
{
	fc->key = *key;
	fc->refreshed_jiffies = bpf_jiffies64();
	fc->generation = ct->generation;
	fc->rule_id = ct->rule_id;
}

#endif /* SEGFW_CONNTRACK_H */
