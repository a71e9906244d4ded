/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* segfw_shared.h: every type and constant that crosses the kernel/user
 * boundary, and the only place they are defined: map keys and values,
 * reasons, actions, conntrack states, event records, the explain program's
 * cb words. The C side includes it; the Rust side gets the same types from
 * the libbpf-cargo skeleton (`segfw::skel::types`) through BTF, which is
 * why constants are enum values ("BTF, CO-RE, and the libbpf-cargo
 * skeleton" in docs/CONCEPTS.md).
 *
 * Pinned maps are an ABI: never reorder fields, keep explicit padding, retire
 * fields as reservedN, and bump SEGFW_ABI_VERSION when a layout changes or a
 * map is added. The programs carry it in their frozen .rodata, and segfw
 * refuses a pin dir loaded with another version (src/datapath/abi.rs).
 * Rust gets these types from the skeleton.
 */
#ifndef SEGFW_SHARED_H
#define SEGFW_SHARED_H

#include <linux/types.h>

/* Constants are enum values so that they reach BTF and the Rust skeleton.
 * An enum that a map field holds has a fixed underlying type (`: __u8`):
 * the field keeps its size, and BTF types it as the enum, so `bpftool map
 * dump` prints the enumerator's name ("SEGFW_CT_ESTABLISHED") and the
 * skeleton gives the field the enum's newtype. Bit-flag fields stay plain
 * integers (their values are ORs, not enumerators). */
enum segfw_limits {
	SEGFW_ABI_VERSION = 4, /* 2: link_records, daemon_record; 3: progs/explain;
				* 4: enum-typed fields, maps/set_records */
	/* Rule ids: 0 = no rule matched (default action), 1..SEGFW_MAX_RULES-2
	 * are user rules, SEGFW_RULE_FAILSAFE is the implicit failsafe rule. */
	SEGFW_MAX_RULES = 131072,
	SEGFW_RULE_DEFAULT = 0,
	SEGFW_RULE_FAILSAFE = 131071,
	/* Segment ids are prefix-class ids: one per distinct prefix in the policy;
	 * 0 is the implicit segment "world"; SEGFW_SEG_ANY stands for "*". */
	SEGFW_MAX_SEGMENTS = 131056, /* distinct prefixes (segment CIDRs + inline CIDRs) */
	/* Names of one set: every rule and prefix class; a power of two, as
	 * the hash's bucket array is allocated up front at that size. */
	SEGFW_META_MAX_ENTRIES = 262144,
	SEGFW_SEG_WORLD = 0,
	SEGFW_SEG_ANY = 0x7fffffff,
	/* proto value that matches every protocol ("any"). */
	SEGFW_PROTO_ANY = 256,
	/* Capacity of one policy set (segments + rule prefixes + config). */
	SEGFW_POLICY_MAX_ENTRIES = 2097152,
	SEGFW_CT_DEFAULT_ENTRIES = 262144,
	SEGFW_FRAG_MAX_ENTRIES = 16384,
	/* How long a first fragment's memory lives: Linux's ipfrag_time. */
	SEGFW_FRAG_TIMEOUT_S = 30,
	/* RFC 4861: router advertisements and redirects come with hop limit 255
	 * (so from on-link), or are not to be believed. */
	SEGFW_ND_HOP_LIMIT = 255,
	SEGFW_MAX_FAILSAFE = 64,
	/* IPv6 extension headers walked before giving up (drop, EXT_HDR_LIMIT). */
	SEGFW_MAX_EXT_HDRS = 8,
	SEGFW_EVENTS_BYTES = 1048576,
	/* How long a CPU's flow cache may pass a flow without the full
	 * conntrack path (which refreshes last_seen and the TCP state):
	 * 100 jiffies, between 0.1 s (HZ=1000) and 1 s (HZ=100). */
	SEGFW_FLOW_CACHE_JIFFIES = 100,
	/* Bits of policy-key data: kind is always matched, then 128 data bits.
	 * A rule key's data is src_seg, dst_seg and proto (matched exactly),
	 * then the port (matched by prefix); its reserved word is never matched. */
	SEGFW_KEY_KIND_BITS = 32,
	SEGFW_KEY_DATA_BITS = 128,
	SEGFW_KEY_RULE_FIXED_BITS = 80, /* src_seg 32 + dst_seg 32 + proto 16 */
	SEGFW_KEY_PORT_BITS = 16,
};

/* Kinds of entries in the policy trie; one trie holds a whole policy so
 * that swapping it is one update. */
enum segfw_key_kind : __u32 {
	SEGFW_KIND_CONFIG = 1,   /* exact, data all zero: the policy header */
	SEGFW_KIND_SEGMENT = 2,  /* data.addr: IPv6 or IPv4-mapped prefix -> segment id */
	SEGFW_KIND_RULE = 3,     /* data.rule: (src, dst, proto, port prefix) -> rule */
	SEGFW_KIND_FAILSAFE = 4, /* data.rule with src=dst=ANY, proto=tcp, exact port */
	SEGFW_KIND_RA_SOURCE = 5, /* data.addr: IPv6 prefix router advertisements and
				   * redirects may come from ([defaults] router_advertisements) */
};

/* Which [defaults] router_advertisements the policy has, in the CONFIG
 * value's ra_mode (for status and show; the datapath looks only at the
 * RA_SOURCE entries, which the compiler writes for every mode). */
enum segfw_ra_mode : __u8 {
	SEGFW_RA_LINK_LOCAL = 0, /* key absent: any fe80::/10 source (one RA_SOURCE entry) */
	SEGFW_RA_NONE = 1,       /* []: no RA_SOURCE entry, all refused */
	SEGFW_RA_LISTED = 2,     /* the listed addresses and segments' CIDRs */
};

enum segfw_action : __u8 {
	SEGFW_ACTION_DENY = 0,
	SEGFW_ACTION_ALLOW = 1,
};

/* segfw_policy_value.flags */
enum segfw_value_flags {
	SEGFW_FLAG_LOG = 1,   /* rule: emit an event for every flow it decides */
	SEGFW_FLAG_AUDIT = 2, /* rule: would-drops pass and are logged; config: global audit mode */
};

/* Wildcard combinations of (src, dst, proto) that have rule entries; the
 * config entry's `combos` bitmask lets the datapath skip empty ones.
 * Bit = (src is ANY) << 2 | (dst is ANY) << 1 | (proto is ANY). */
enum segfw_combo_bits {
	SEGFW_COMBO_SRC_ANY = 4,
	SEGFW_COMBO_DST_ANY = 2,
	SEGFW_COMBO_PROTO_ANY = 1,
	SEGFW_COMBO_COUNT = 8,
};

/* Rule part of a policy key. Fields are matched in this order; only `port`
 * (network byte order, so prefixes are port ranges) is matched by prefix.
 * For icmp/icmpv6, port holds the ICMP type in its low byte (bpf_htons(type)). */
struct segfw_rule_key {
	__u32 src_seg;
	__u32 dst_seg;
	__u16 proto;
	__be16 port;
	__u32 reserved;
};

union segfw_key_data {
	__u8 addr[16];
	struct segfw_rule_key rule;
};

/* Key of the policy LPM trie. prefixlen counts bits of kind + data. */
struct segfw_policy_key {
	__u32 prefixlen;
	enum segfw_key_kind kind;
	union segfw_key_data data;
};

/* Value of the policy trie, by kind:
 *  CONFIG:    id = policy generation, action = default action,
 *             flags = SEGFW_FLAG_AUDIT for global audit mode, combos = wildcard mask,
 *             ra_mode = enum segfw_ra_mode
 *  SEGMENT:   id = segment id
 *  RULE:      id = rule id, action, flags = LOG | AUDIT
 *  FAILSAFE:  id = SEGFW_RULE_FAILSAFE, action = allow
 *  RA_SOURCE: action = allow */
struct segfw_policy_value {
	__u32 id;
	enum segfw_action action;
	__u8 flags;           /* enum segfw_value_flags bits */
	__u8 combos;          /* enum segfw_combo_bits bits */
	enum segfw_ra_mode ra_mode; /* CONFIG only (was reserved, always 0 = SEGFW_RA_LINK_LOCAL) */
};

/* Single entry of the `runtime` array: values the fast path needs on every
 * packet, written by userspace after the policy swap. */
struct segfw_runtime {
	__u32 generation;     /* generation of the live policy (0: none applied) */
	__u32 tcp_timeout_s;
	__u32 udp_timeout_s;
	__u32 icmp_timeout_s;
	__u32 other_timeout_s;
	__u32 events_per_sec; /* per-CPU event budget; 0 = unlimited */
	__u32 active_set;     /* 0: policy_a/meta_a live, 1: policy_b/meta_b */
	__u32 reserved;
};

/* Userspace-only names of a policy set (meta_a/meta_b), keyed by kind:
 * SEGMENT id = segment name; RULE id = rule name. (CONFIG ids 0-3 held the
 * set's records as text before ABI 4; they are in maps/set_records now.) */
struct segfw_meta_key {
	enum segfw_key_kind kind;
	__u32 id;
};

struct segfw_meta_value {
	char text[128];
};

/* Conntrack: one key for both directions; the (addr, port) pair that
 * sorts lower is `lo`. For ICMP echo both ports hold the echo id. */
struct segfw_ct_key {
	__u8 lo_addr[16];
	__u8 hi_addr[16];
	__be16 lo_port;
	__be16 hi_port;
	__u8 proto;
	__u8 reserved[3];
};

enum segfw_ct_state : __u8 {
	SEGFW_CT_NONE = 0,
	SEGFW_CT_SYN_SENT = 1,
	SEGFW_CT_SYN_RECV = 2,
	SEGFW_CT_ESTABLISHED = 3,
	SEGFW_CT_FIN_WAIT = 4, /* one side sent FIN */
	SEGFW_CT_CLOSING = 5,  /* both sides sent FIN */
	SEGFW_CT_CLOSED = 6,   /* RST seen */
	SEGFW_CT_OPEN = 7,     /* non-TCP flow */
};

/* segfw_ct_value.flags */
enum segfw_ct_flags {
	SEGFW_CT_ORIG_IS_LO = 1,  /* the flow's originator is the key's lo side */
	SEGFW_CT_ORIG_INGRESS = 2, /* first packet was seen on ingress */
	SEGFW_CT_FIN_LO = 4,      /* lo side sent FIN */
	SEGFW_CT_FIN_HI = 8,      /* hi side sent FIN */
	SEGFW_CT_AUDITED = 16,    /* passed only because of audit */
};

/* Timestamps are bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC, tick
 * resolution): the precise clock costs more than the rest of the
 * established-flow path. */
struct segfw_ct_value {
	__u64 created_ns;
	__u64 last_seen_ns;
	__u32 rule_id;
	__u32 generation;  /* policy generation that allowed it; re-checked on change */
	__be16 policy_port; /* dport, or ICMP type, the flow was decided on */
	enum segfw_ct_state state;
	__u8 flags; /* enum segfw_ct_flags bits */
	__u32 reserved;
};

/* Per-CPU memo of the last established flow a CPU passed: a burst of one
 * flow skips the conntrack hash. Only packets that cannot change the flow's
 * state use it (no SYN/FIN/RST, no ICMP), it is dropped on a generation
 * change, and `conntrack flush` clears it. */
struct segfw_flow_cache {
	struct segfw_ct_key key;
	__u64 refreshed_jiffies;
	__u32 generation;
	__u32 rule_id;
};

/* IP fragments: the ports of an allowed first fragment, keyed by (src, dst,
 * proto, id), for SEGFW_FRAG_TIMEOUT_S; or, flagged SEGFW_FRAG_ORPHANS, the
 * note that later fragments of a datagram were dropped before its first
 * fragment came (fragments arriving last-first). */
struct segfw_frag_key {
	__u8 src[16];
	__u8 dst[16];
	__u32 id;
	__u8 proto;
	__u8 reserved[3];
};

struct segfw_frag_value {
	__be16 sport;
	__be16 dport;
	__be16 policy_port; /* dport, or bpf_htons(ICMP type) */
	__u8 icmp_type;
	__u8 flags; /* enum segfw_frag_flags (was reserved) */
	__u64 seen_ns; /* coarse clock: when the first fragment (or orphan) came */
};

enum segfw_frag_flags {
	SEGFW_FRAG_ORPHANS = 1, /* no first fragment yet: later ones were dropped */
};

/* Why a packet got its verdict. Each packet ends in exactly one reason;
 * reason_stats counts them. Pass reasons first, drop reasons from 32. */
enum segfw_reason : __u8 {
	SEGFW_REASON_NONE = 0,
	SEGFW_PASS_ALLOWED = 1,     /* new flow allowed by a rule or default */
	SEGFW_PASS_ESTABLISHED = 2, /* conntrack hit */
	SEGFW_PASS_RELATED = 3,     /* ICMP error for a tracked flow */
	SEGFW_PASS_NON_IP = 4,      /* ARP and other non-IP frames */
	SEGFW_PASS_ND = 5,          /* IPv6 neighbor discovery */
	SEGFW_PASS_FAILSAFE = 6,    /* ingress TCP to a failsafe port */
	SEGFW_PASS_AUDIT = 7,       /* would be dropped, passed by audit */
	SEGFW_PASS_NO_POLICY = 8,   /* no policy applied yet */
	SEGFW_PASS_PICKUP = 9,      /* TCP past its SYN with no entry (evicted, expired, or older
				     * than segfw): allowed by a fresh check, tracked again */
	SEGFW_PASS_FRAG_LATE_FIRST = 10, /* an allowed first fragment after later fragments of
					  * its datagram were dropped as orphans (last-first
					  * order): counted apart, the datagram cannot reassemble */
	SEGFW_REASON_FIRST_DROP = 32,
	SEGFW_DROP_POLICY = 32,        /* a deny rule matched */
	SEGFW_DROP_DEFAULT = 33,       /* no rule matched, default deny */
	SEGFW_DROP_REVOKED = 34,       /* tracked flow no longer allowed */
	SEGFW_DROP_TRUNCATED = 35,     /* L2/L3 header past the end */
	SEGFW_DROP_BAD_IPV4 = 36,      /* version, IHL or total length invalid */
	SEGFW_DROP_BAD_IPV6 = 37,      /* version or payload length invalid */
	SEGFW_DROP_EXT_HDR_LIMIT = 38, /* more IPv6 extension headers than SEGFW_MAX_EXT_HDRS */
	SEGFW_DROP_NO_NEXT_HDR = 39,   /* IPv6 "no next header" (59) */
	SEGFW_DROP_VLAN_DEPTH = 40,    /* more than two VLAN tags */
	SEGFW_DROP_L4_TRUNCATED = 41,  /* TCP/UDP/SCTP/ICMP header past the end */
	SEGFW_DROP_TCP_FLAGS = 42,     /* flag combination the kernel's table rejects */
	SEGFW_DROP_TCP_DOFF = 43,      /* TCP data offset < 5 or past the end */
	SEGFW_DROP_FRAG_ORPHAN = 44,   /* non-first fragment with no known first */
	SEGFW_DROP_FRAG_TINY = 45,     /* first fragment without a full L4 header, or TCP at offset 1 */
	SEGFW_DROP_ICMP_NO_FLOW = 46,  /* ICMP error for no tracked flow */
	SEGFW_DROP_ICMP_INNER = 47,    /* ICMP error with a truncated inner header */
	SEGFW_DROP_CT_FULL = 48,       /* conntrack insert failed */
	SEGFW_DROP_ROUTER_MSG = 49,    /* router advertisement or redirect from a source that
					* [defaults] router_advertisements does not allow, or
					* with a hop limit other than 255 */
	SEGFW_REASON_MAX = 64,
};

enum segfw_direction : __u8 {
	SEGFW_DIR_INGRESS = 0,
	SEGFW_DIR_EGRESS = 1,
};

/* Per-CPU per-rule counters, indexed by rule id. */
struct segfw_rule_stats {
	__u64 packets;
	__u64 bytes;
	__u64 last_hit_ns; /* bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC, coarse */
};

/* Events: denies, matches of log rules, audit would-drops. */
enum segfw_event_kind : __u8 {
	SEGFW_EVENT_DENY = 1,
	SEGFW_EVENT_LOG = 2,
	SEGFW_EVENT_AUDIT = 3,
};

struct segfw_event {
	__u64 ts_ns; /* bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC, coarse */
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__u32 ifindex;
	__u32 rule_id;
	__u8 proto;
	enum segfw_event_kind kind;
	enum segfw_direction direction;
	enum segfw_reason reason;
	enum segfw_action verdict;
	__u8 reserved[7];
};

/* Per-CPU event rate limiter state. */
struct segfw_ratelimit {
	__u64 window_start_ns;
	__u64 sent;
	__u64 suppressed;
};

/* Records of an instance that only userspace reads and writes: bpffs holds
 * only BPF objects, so what segfw must remember about its pin dir lives in
 * maps. The datapath never reads them (the maps are read-only to programs). */

enum segfw_record_limits {
	SEGFW_IFNAMSIZ = 16,
	SEGFW_MAX_LINK_RECORDS = 16384, /* pinned attachments of one instance */
	SEGFW_DAEMON_PATH_LEN = 1024,
	SEGFW_DAEMON_MAX_IFACES = 64,   /* IFACEs named on `segfw run`'s command line */
	SEGFW_SOURCE_PATH_LEN = 1024,   /* segfw_set_source.path, NUL included */
	SEGFW_POLICY_SETS = 2,          /* A and B: maps/set_records' entries */
};

/* maps/set_records[S]: what policy set S (0 = A, 1 = B) was filled from
 * and with, written once by the apply that fills the set, before its swap
 * (a confirm or rollback later clears `pending`). */
struct segfw_set_source {
	__u8 sha256[32];                    /* of the applied file (all zero: none) */
	char path[SEGFW_SOURCE_PATH_LEN];   /* its path as `policy apply` was given it, NUL-padded */
};

/* The runtime settings the set was applied with (restored by a rollback). */
struct segfw_set_runtime {
	__u32 tcp_timeout_s;
	__u32 udp_timeout_s;
	__u32 icmp_timeout_s;
	__u32 other_timeout_s;
	__u32 events_per_sec;
	__u32 recorded; /* 1: the fields above hold settings (0: never written) */
};

/* A pending `apply --confirm`: unless confirmed before deadline_ms, set
 * previous_set becomes live again. generation 0: nothing pending. */
struct segfw_set_pending {
	__u32 generation;
	__u32 previous_set;        /* 0 = A, 1 = B */
	__u32 previous_generation; /* 0: no policy was live before */
	__u32 reserved;
	__u64 deadline_ms;         /* wall clock, unix milliseconds */
};

struct segfw_set_record {
	struct segfw_set_source source;
	struct segfw_set_runtime runtime;
	struct segfw_set_pending pending;
};

/* maps/link_records key: one pinned attachment, links/IFACE/DIR. */
struct segfw_link_key {
	char iface[SEGFW_IFNAMSIZ]; /* NUL-padded interface name */
	enum segfw_direction direction;
	__u8 reserved[3];           /* zero (direction was a __u32 before ABI 4) */
};

/* segfw_link_record.flags */
enum segfw_link_flags {
	SEGFW_LINK_DAEMON = 1, /* attached by, and managed by, `segfw run` */
};

/* Where an attachment lives: interface names and indexes are only unique
 * within one network namespace, so the namespace is recorded with it. */
struct segfw_link_record {
	__u64 netns_cookie; /* SO_NETNS_COOKIE of the namespace it was attached in */
	__u64 netns_dev;    /* st_dev and st_ino of /proc/self/ns/net there, */
	__u64 netns_ino;    /* as `ls -L -i /proc/PID/ns/net` and lsns show it */
	__u32 ifindex;
	__u32 flags;        /* enum segfw_link_flags */
};

/* maps/daemon_record[0]: the `segfw run` that owns this instance (pid 0: none). */
struct segfw_daemon_record {
	__u32 pid;
	__u32 n_ifaces;
	__u64 start_ticks;     /* field 22 of /proc/PID/stat: tells a reused pid apart */
	__u64 started_unix_ms;
	char policy_path[SEGFW_DAEMON_PATH_LEN];
	char ifaces[SEGFW_DAEMON_MAX_IFACES][SEGFW_IFNAMSIZ];
};

/* explain: progs/explain, run only by BPF_PROG_TEST_RUN, reads and writes
 * these words of the __sk_buff cb. In: the direction to decide for (enum
 * segfw_direction). Out: pass | reason << 8, the rule id
 * (SEGFW_EXPLAIN_NO_RULE: none) and 1 if conntrack held the flow. A
 * direction out of range gets no answer: the words stay as they were. The
 * attached programs never read cb. */
enum segfw_explain_cb {
	SEGFW_EXPLAIN_CB_DIR = 0,
	SEGFW_EXPLAIN_CB_VERDICT = 1,
	SEGFW_EXPLAIN_CB_RULE = 2,
	SEGFW_EXPLAIN_CB_CT_HIT = 3,
	SEGFW_EXPLAIN_NO_RULE = 0xffffffff,
};

/* Every enum above, so that each reaches BTF (and the Rust skeleton) even
 * where the datapath only uses its values. */
struct segfw_btf_anchor {
	enum segfw_limits limits;
	enum segfw_key_kind key_kind;
	enum segfw_ra_mode ra_mode;
	enum segfw_frag_flags frag_flags;
	enum segfw_action action;
	enum segfw_value_flags value_flags;
	enum segfw_combo_bits combo_bits;
	enum segfw_ct_state ct_state;
	enum segfw_ct_flags ct_flags;
	enum segfw_reason reason;
	enum segfw_direction direction;
	enum segfw_event_kind event_kind;
	enum segfw_explain_cb explain_cb;
	enum segfw_record_limits record_limits;
	enum segfw_link_flags link_flags;
	struct segfw_event event;
};

#endif /* SEGFW_SHARED_H */
