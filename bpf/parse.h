/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* parse.h: the first step of every packet. It reads the headers
 * (Ethernet and up to two VLAN tags, IPv4 with options and fragments, IPv6
 * with its extension headers, then TCP, UDP, SCTP, ICMP or ICMPv6) into a
 * struct packet, which every later step (conntrack.h, policy.h, frag.h)
 * works from; it never looks at the packet again. A malformed packet gets a
 * drop reason here. Every read is preceded by a `(ptr + 1) > data_end`
 * check, which the verifier demands, and reads only the skb's linear area:
 * see "The verifier" and "The skb, its linear area" in docs/CONCEPTS.md.
 * segfw.bpf.c calls it through parse_packet, a global function. */
#ifndef SEGFW_PARSE_H
#define SEGFW_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "segfw_shared.h"

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_NONE_ 59
#define IPPROTO_DSTOPTS_ 60
#define IPPROTO_SCTP_ 132
#define IP_MF_ 0x2000
#define IP_OFFSET_ 0x1fff
/* Linear bytes wanted before parsing: every header we read lives in here. */
#define SEGFW_PULL_LEN 256

/* ICMP and ICMPv6 share this layout; linux/icmp.h drags in libc. */
struct icmp_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 echo_id;
	__be16 echo_seq;
};

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_REDIRECT 5
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PARAMPROB 4
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129
#define ICMPV6_ROUTER_ADVERT 134
#define ICMPV6_REDIRECT 137

struct vlan_tag {
	__be16 tci;
	__be16 encap_proto;
};

struct ipv6_ext {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset << 3 | M */
	__be32 id;
};

struct sctp_common {
	__be16 sport;
	__be16 dport;
	__be32 vtag;
	__be32 checksum;
};

enum frag_kind {
	FRAG_NONE = 0,
	FRAG_FIRST = 1, /* offset 0 with more fragments: carries the L4 header */
	FRAG_LATER = 2, /* offset > 0: no L4 header */
};

/* What neighbour discovery a packet is (struct packet's is_nd). */
enum nd_kind {
	ND_NONE = 0,
	ND_PASS = 1,   /* router/neighbour solicitation, neighbour advertisement: always passed */
	ND_ROUTER = 2, /* router advertisement or redirect: [defaults] router_advertisements */
};

/* One parsed packet. Addresses are IPv6, IPv4 as IPv4-mapped (RFC 4291). */
struct packet {
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;       /* ICMP echo: the echo id, as is dport */
	__be16 dport;
	__be16 policy_port; /* what rules match: dport, or bpf_htons(ICMP type) */
	__u8 proto;
	__u8 tcp_flags;     /* FIN..CWR byte of the TCP header */
	__u8 icmp_type;
	__u8 frag;          /* enum frag_kind */
	__u8 is_icmp_error; /* inner tuple (swapped) is in src/dst/ports */
	__u8 is_nd;         /* enum nd_kind */
	__u8 is_v6;         /* the packet is IPv6: ICMP is ICMPv6's job and back */
	__u8 hop_limit;     /* IPv6 only: RFC 4861 checks it on router messages */
	__u32 frag_id;
	__u32 l3_off;
	__u32 l4_off;
	__u32 l3_len;       /* IP header + payload, from the IP header */
} __attribute__((aligned(8))); /* addresses compared as u64 (ct_key_holds) */

static __always_inline void map_v4(__u8 *out, __be32 addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr, 4);
}

static __always_inline int icmp_is_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH ||
	       type == ICMP_REDIRECT || type == ICMP_TIME_EXCEEDED ||
	       type == ICMP_PARAMETERPROB;
}

static __always_inline int icmp6_is_error(__u8 type)
{
	return type >= ICMPV6_DEST_UNREACH && type <= ICMPV6_PARAMPROB;
}

/* Router/neighbour solicitation/advertisement and redirect (133-137). */
static __always_inline __u8 icmp6_nd_kind(__u8 type)
{
	if (type == ICMPV6_ROUTER_ADVERT || type == ICMPV6_REDIRECT)
		return ND_ROUTER;
	return type >= 133 && type <= 137 ? ND_PASS : ND_NONE;
}

/* An echo request or reply of the packet's own ICMP family (ICMP across
 * families is a plain protocol number, which has no types). */
static __always_inline int icmp_is_echo(__u8 proto, __u8 is_v6, __u8 type)
{
	if (proto == IPPROTO_ICMP && !is_v6)
		return type == ICMP_ECHO || type == ICMP_ECHOREPLY;
	if (proto == IPPROTO_ICMPV6 && is_v6)
		return type == ICMPV6_ECHO_REQUEST || type == ICMPV6_ECHO_REPLY;
	return 1;
}

/* Bits of the TCP flag byte: FIN SYN RST PSH ACK URG ECE CWR. */
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10
#define TCPF_URG 0x20
#define TCPF_ECE 0x40
#define TCPF_CWR 0x80

/* The kernel's tcp_valid_flags table (nf_conntrack_proto_tcp.c): after
 * masking PSH, ECE and CWR, only these combinations are valid. */
static __always_inline int tcp_flags_valid(__u8 flags)
{
	__u8 f = flags & (TCPF_FIN | TCPF_SYN | TCPF_RST | TCPF_ACK | TCPF_URG);

	switch (f) {
	case TCPF_SYN:
	case TCPF_SYN | TCPF_URG:
	case TCPF_SYN | TCPF_ACK:
	case TCPF_RST:
	case TCPF_RST | TCPF_ACK:
	case TCPF_FIN | TCPF_ACK:
	case TCPF_FIN | TCPF_ACK | TCPF_URG:
	case TCPF_ACK:
	case TCPF_ACK | TCPF_URG:
		return 1;
	}
	return 0;
}

/* Ports of an ICMP error's inner header: the flow it is about, as the
 * peer that sent the original packet saw it. */
static __always_inline int parse_inner_ports(void *l4, void *data_end, __u8 proto,
					     struct packet *pkt)
{
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP_) {
		__be16 *ports = l4;

		if ((void *)(ports + 2) > data_end)
			return SEGFW_DROP_ICMP_INNER;
		/* the inner packet went the other way: swap to our direction */
		pkt->sport = ports[1];
		pkt->dport = ports[0];
	} else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		struct icmp_hdr *icmp = l4;

		if ((void *)(icmp + 1) > data_end)
			return SEGFW_DROP_ICMP_INNER;
		/* of ICMP only echoes are tracked: an error about any other type
		 * is about no flow (its key would be an echo's with id 0) */
		if (!icmp_is_echo(proto, pkt->is_v6, icmp->type))
			return SEGFW_DROP_ICMP_NO_FLOW;
		pkt->sport = icmp->echo_id;
		pkt->dport = icmp->echo_id;
	}
	pkt->proto = proto;
	return SEGFW_REASON_NONE;
}

/* ICMPv4 error: the tuple of the packet it quotes, swapped into this
 * packet's direction, so the conntrack lookup finds the flow. */
static __always_inline int parse_icmp4_inner(void *inner, void *data_end, struct packet *pkt)
{
	struct iphdr *iph = inner;

	if ((void *)(iph + 1) > data_end)
		return SEGFW_DROP_ICMP_INNER;
	if (iph->version != 4 || iph->ihl < 5)
		return SEGFW_DROP_ICMP_INNER;
	map_v4(pkt->src, iph->daddr);
	map_v4(pkt->dst, iph->saddr);
	pkt->is_icmp_error = 1;
	return parse_inner_ports(inner + iph->ihl * 4, data_end, iph->protocol, pkt);
}

static __always_inline int parse_icmp6_inner(void *inner, void *data_end, struct packet *pkt)
{
	struct ipv6hdr *ip6 = inner;

	if ((void *)(ip6 + 1) > data_end)
		return SEGFW_DROP_ICMP_INNER;
	if (ip6->version != 6)
		return SEGFW_DROP_ICMP_INNER;
	__builtin_memcpy(pkt->src, &ip6->daddr, 16);
	__builtin_memcpy(pkt->dst, &ip6->saddr, 16);
	pkt->is_icmp_error = 1;
	return parse_inner_ports(ip6 + 1, data_end, ip6->nexthdr, pkt);
}

/* TCP, UDP and SCTP all open with the source and destination port: the
 * ports of a header of hdr_len bytes (a constant, once inlined), which must
 * lie in the linear area and in the IP datagram. */
static __always_inline int l4_ports(struct packet *pkt, void *l4, __u32 hdr_len, void *data_end,
				    void *l3_end, int short_reason)
{
	__be16 *ports = l4;

	if (l4 + hdr_len > data_end || l4 + hdr_len > l3_end)
		return short_reason;
	pkt->sport = ports[0];
	pkt->dport = ports[1];
	pkt->policy_port = ports[1];
	return SEGFW_REASON_NONE;
}

/* L4 header at l4_off: ports, TCP flags, ICMP type. */
static __always_inline int parse_l4(struct __sk_buff *skb, struct packet *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	void *l4 = data + pkt->l4_off;
	void *l3_end = data + pkt->l3_off + pkt->l3_len;
	/* a first fragment must hold the whole L4 header (RFC 1858) */
	int short_reason = pkt->frag == FRAG_FIRST ? SEGFW_DROP_FRAG_TINY : SEGFW_DROP_L4_TRUNCATED;

	if (pkt->l4_off > 0xffff)
		return SEGFW_DROP_L4_TRUNCATED;

	switch (pkt->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *tcp = l4;
		int reason = l4_ports(pkt, l4, sizeof(struct tcphdr), data_end, l3_end, short_reason);
		__u32 doff;

		if (reason)
			return reason;
		doff = tcp->doff * 4;
		if (doff < sizeof(*tcp) || l4 + doff > l3_end)
			return SEGFW_DROP_TCP_DOFF;
		pkt->tcp_flags = ((__u8 *)tcp)[13];
		if (!tcp_flags_valid(pkt->tcp_flags))
			return SEGFW_DROP_TCP_FLAGS;
		return SEGFW_REASON_NONE;
	}
	case IPPROTO_UDP:
		return l4_ports(pkt, l4, sizeof(struct udphdr), data_end, l3_end, short_reason);
	case IPPROTO_SCTP_:
		return l4_ports(pkt, l4, sizeof(struct sctp_common), data_end, l3_end,
				short_reason);
	case IPPROTO_ICMP: {
		struct icmp_hdr *icmp = l4;

		/* ICMP inside IPv6 is no ICMP to us: matched by number, no more */
		if (pkt->is_v6)
			return SEGFW_REASON_NONE;

		if ((void *)(icmp + 1) > data_end || (void *)(icmp + 1) > l3_end)
			return short_reason;
		pkt->icmp_type = icmp->type;
		pkt->policy_port = bpf_htons(icmp->type);
		if (icmp_is_error(icmp->type) && pkt->frag == FRAG_NONE)
			return parse_icmp4_inner(icmp + 1, data_end, pkt);
		if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY) {
			pkt->sport = icmp->echo_id;
			pkt->dport = icmp->echo_id;
		}
		return SEGFW_REASON_NONE;
	}
	case IPPROTO_ICMPV6: {
		struct icmp_hdr *icmp6 = l4;

		/* likewise ICMPv6 inside IPv4: never neighbor discovery */
		if (!pkt->is_v6)
			return SEGFW_REASON_NONE;

		if ((void *)(icmp6 + 1) > data_end || (void *)(icmp6 + 1) > l3_end)
			return short_reason;
		pkt->icmp_type = icmp6->type;
		pkt->policy_port = bpf_htons(icmp6->type);
		pkt->is_nd = icmp6_nd_kind(icmp6->type);
		if (pkt->is_nd)
			return SEGFW_REASON_NONE;
		if (icmp6_is_error(icmp6->type) && pkt->frag == FRAG_NONE)
			return parse_icmp6_inner(icmp6 + 1, data_end, pkt);
		if (icmp6->type == ICMPV6_ECHO_REQUEST || icmp6->type == ICMPV6_ECHO_REPLY) {
			pkt->sport = icmp6->echo_id;
			pkt->dport = icmp6->echo_id;
		}
		return SEGFW_REASON_NONE;
	}
	}
	return SEGFW_REASON_NONE;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct packet *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *iph = data + pkt->l3_off;
	__u32 hlen, tot_len, frag_off;

	if (pkt->l3_off > 64 || (void *)(iph + 1) > data_end)
		return SEGFW_DROP_TRUNCATED;
	hlen = iph->ihl * 4;
	if (iph->version != 4 || hlen < sizeof(*iph))
		return SEGFW_DROP_BAD_IPV4;
	if (data + pkt->l3_off + hlen > data_end)
		return SEGFW_DROP_BAD_IPV4;
	tot_len = bpf_ntohs(iph->tot_len);
	/* GSO packets above 64k (BIG TCP) carry tot_len 0 */
	if (tot_len == 0 && skb->gso_segs > 1)
		tot_len = skb->len - pkt->l3_off;
	if (tot_len < hlen || tot_len > skb->len - pkt->l3_off)
		return SEGFW_DROP_BAD_IPV4;

	map_v4(pkt->src, iph->saddr);
	map_v4(pkt->dst, iph->daddr);
	pkt->proto = iph->protocol;
	pkt->l4_off = pkt->l3_off + hlen;
	pkt->l3_len = tot_len;

	frag_off = bpf_ntohs(iph->frag_off);
	if (frag_off & IP_OFFSET_) {
		pkt->frag = FRAG_LATER;
		/* RFC 1858: a TCP fragment at offset 1 overwrites the flags */
		if (pkt->proto == IPPROTO_TCP && (frag_off & IP_OFFSET_) == 1)
			return SEGFW_DROP_FRAG_TINY;
	} else if (frag_off & IP_MF_) {
		pkt->frag = FRAG_FIRST;
	}
	pkt->frag_id = bpf_ntohs(iph->id);
	return SEGFW_REASON_NONE;
}

/* Walks up to SEGFW_MAX_EXT_HDRS extension headers to the L4 protocol:
 * exactly those Linux's ipv6_ext_hdr() skips (hop-by-hop, routing,
 * fragment, AH, destination options; "no next header" ends the packet).
 * ESP and the Mobility Header (135) are not: Linux hands them to their
 * own handler or a raw socket, so they are decided as what they are. */
static __always_inline int parse_ipv6(struct __sk_buff *skb, struct packet *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + pkt->l3_off;
	__u32 off, payload;
	__u8 nexthdr;
	int i;

	if (pkt->l3_off > 64 || (void *)(ip6 + 1) > data_end)
		return SEGFW_DROP_TRUNCATED;
	if (ip6->version != 6)
		return SEGFW_DROP_BAD_IPV6;
	payload = bpf_ntohs(ip6->payload_len);
	if (payload == 0 && skb->gso_segs > 1)
		payload = skb->len - pkt->l3_off - sizeof(*ip6);
	if (payload + sizeof(*ip6) > skb->len - pkt->l3_off)
		return SEGFW_DROP_BAD_IPV6;

	__builtin_memcpy(pkt->src, &ip6->saddr, 16);
	__builtin_memcpy(pkt->dst, &ip6->daddr, 16);
	pkt->is_v6 = 1;
	pkt->hop_limit = ip6->hop_limit;
	pkt->l3_len = payload + sizeof(*ip6);
	nexthdr = ip6->nexthdr;
	off = pkt->l3_off + sizeof(*ip6);

#pragma unroll
	for (i = 0; i < SEGFW_MAX_EXT_HDRS; i++) {
		struct ipv6_ext *ext = data + off;

		switch (nexthdr) {
		case IPPROTO_NONE_:
			return SEGFW_DROP_NO_NEXT_HDR;
		case IPPROTO_HOPOPTS_:
		case IPPROTO_ROUTING_:
		case IPPROTO_DSTOPTS_:
			if ((void *)(ext + 1) > data_end)
				return SEGFW_DROP_TRUNCATED;
			nexthdr = ext->nexthdr;
			off += (ext->hdrlen + 1) * 8;
			break;
		case IPPROTO_AH_:
			if ((void *)(ext + 1) > data_end)
				return SEGFW_DROP_TRUNCATED;
			nexthdr = ext->nexthdr;
			off += (ext->hdrlen + 2) * 4;
			break;
		case IPPROTO_FRAGMENT_: {
			struct ipv6_frag *fh = data + off;
			__u16 fo;

			if ((void *)(fh + 1) > data_end)
				return SEGFW_DROP_TRUNCATED;
			fo = bpf_ntohs(fh->frag_off);
			pkt->frag_id = bpf_ntohl(fh->id);
			if (fo & 0xfff8)
				pkt->frag = FRAG_LATER;
			else if (fo & 1)
				pkt->frag = FRAG_FIRST;
			nexthdr = fh->nexthdr;
			off += sizeof(*fh);
			break;
		}
		default:
			goto done;
		}
		if (off > SEGFW_PULL_LEN)
			return SEGFW_DROP_TRUNCATED;
	}
	if (nexthdr == IPPROTO_NONE_)
		return SEGFW_DROP_NO_NEXT_HDR;
	if (nexthdr == IPPROTO_HOPOPTS_ || nexthdr == IPPROTO_ROUTING_ ||
	    nexthdr == IPPROTO_DSTOPTS_ || nexthdr == IPPROTO_AH_ || nexthdr == IPPROTO_FRAGMENT_)
		return SEGFW_DROP_EXT_HDR_LIMIT;
done:
	pkt->proto = nexthdr;
	pkt->l4_off = off;
	return SEGFW_REASON_NONE;
}

/* Ethernet with up to two VLAN tags; *eth_proto gets the inner ethertype. */
static __always_inline int parse_l2(struct __sk_buff *skb, struct packet *pkt, __u16 *eth_proto)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__be16 proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return SEGFW_DROP_TRUNCATED;
	proto = eth->h_proto;

#pragma unroll
	for (i = 0; i < 3; i++) {
		struct vlan_tag *tag = data + off;

		if (proto != bpf_htons(ETH_P_8021Q_) && proto != bpf_htons(ETH_P_8021AD_))
			break;
		if (i == 2)
			return SEGFW_DROP_VLAN_DEPTH;
		if ((void *)(tag + 1) > data_end)
			return SEGFW_DROP_TRUNCATED;
		proto = tag->encap_proto;
		off += sizeof(*tag);
	}
	pkt->l3_off = off;
	*eth_proto = bpf_ntohs(proto);
	return SEGFW_REASON_NONE;
}

/* The bytes the parser may read: the first SEGFW_PULL_LEN, or the whole
 * packet if shorter. */
static __always_inline __u32 header_len(const struct __sk_buff *skb)
{
	return skb->len < SEGFW_PULL_LEN ? skb->len : SEGFW_PULL_LEN;
}

/* Whether those bytes are not all in the linear area, where the parser reads. */
static __always_inline int headers_maybe_nonlinear(struct __sk_buff *skb)
{
	return skb->data_end - skb->data < header_len(skb);
}

/* Makes those bytes linear. Only for a packet the parser could not read as
 * it is: on a clone (every TCP segment the stack sends) pulling copies the
 * head, which cost more than the rest of the datapath. */
static __always_inline void pull_headers(struct __sk_buff *skb)
{
	bpf_skb_pull_data(skb, header_len(skb));
}

#endif /* SEGFW_PARSE_H */
