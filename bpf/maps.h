/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* maps.h: every map of the datapath, in one place. A map is the kernel's
 * key/value store shared by the programs and userspace: here the policy
 * (two LPM-trie sets, A and B, and the outer map that selects one), the
 * runtime settings, conntrack, fragment memory, the counters, the event
 * ring buffer and records only userspace reads. Their key and value types
 * are in segfw_shared.h. All three programs of segfw.bpf.c (ingress,
 * egress, explain) share them; userspace pins them under maps/<name>, so
 * they outlive the process. See "Maps", "LPM trie" and "Pinning" in
 * docs/CONCEPTS.md, and docs/maps.svg. */
#ifndef SEGFW_MAPS_H
#define SEGFW_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "segfw_shared.h"

/* Two policy sets, A and B. Userspace fills the idle one, then points
 * policy_outer[0] at it: one update swaps the whole policy, and the syscall
 * waits for running programs, so the old set is idle when it returns. */
#define SEGFW_POLICY_TRIE                                                   \
	struct {                                                            \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                        \
		__uint(map_flags, BPF_F_NO_PREALLOC);                       \
		__uint(max_entries, SEGFW_POLICY_MAX_ENTRIES);              \
		__type(key, struct segfw_policy_key);                       \
		__type(value, struct segfw_policy_value);                   \
	}

SEGFW_POLICY_TRIE policy_a SEC(".maps");
SEGFW_POLICY_TRIE policy_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, SEGFW_POLICY_TRIE);
} policy_outer SEC(".maps");

/* Names of segments and rules of each set, for userspace (show, stats). */
#define SEGFW_META_HASH                                                     \
	struct {                                                            \
		__uint(type, BPF_MAP_TYPE_HASH);                            \
		__uint(map_flags, BPF_F_NO_PREALLOC);                       \
		__uint(max_entries, SEGFW_META_MAX_ENTRIES);                   \
		__type(key, struct segfw_meta_key);                         \
		__type(value, struct segfw_meta_value);                     \
	}

SEGFW_META_HASH meta_a SEC(".maps");
SEGFW_META_HASH meta_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct segfw_runtime);
} runtime SEC(".maps");

/* Sized from the policy's [conntrack] max_entries at load time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SEGFW_CT_DEFAULT_ENTRIES);
	__type(key, struct segfw_ct_key);
	__type(value, struct segfw_ct_value);
} conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct segfw_flow_cache);
} flow_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SEGFW_FRAG_MAX_ENTRIES);
	__type(key, struct segfw_frag_key);
	__type(value, struct segfw_frag_value);
} frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SEGFW_MAX_RULES);
	__type(key, __u32);
	__type(value, struct segfw_rule_stats);
} rule_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SEGFW_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} reason_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SEGFW_EVENTS_BYTES);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct segfw_ratelimit);
} ratelimit SEC(".maps");

/* Userspace-only records (see segfw_shared.h); programs cannot write them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_RDONLY_PROG);
	__uint(max_entries, SEGFW_MAX_LINK_RECORDS);
	__type(key, struct segfw_link_key);
	__type(value, struct segfw_link_record);
} link_records SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_RDONLY_PROG);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct segfw_daemon_record);
} daemon_record SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_RDONLY_PROG);
	__uint(max_entries, SEGFW_POLICY_SETS);
	__type(key, __u32);
	__type(value, struct segfw_set_record);
} set_records SEC(".maps");

#endif /* SEGFW_MAPS_H */
