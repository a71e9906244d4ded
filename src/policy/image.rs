//! Map images: what the compiler produces and `policy apply` writes, with the
//! key encodings that the datapath (bpf/policy.h) looks up.
//!
//! One policy is one LPM trie (`policy_a` or `policy_b`) holding five kinds
//! of entries (see bpf/segfw_shared.h), plus names in `meta_a`/`meta_b`.
use std::net::{IpAddr, Ipv6Addr};

use crate::skel::types::{
    segfw_key_data, segfw_key_kind, segfw_limits, segfw_meta_key, segfw_meta_value,
    segfw_policy_key, segfw_policy_value, segfw_rule_key,
};

/// Bits of the `kind` field, always matched.
/// One policy trie entry, and one meta (names and records) entry.
pub type TrieEntry = (segfw_policy_key, segfw_policy_value);
pub type MetaEntry = (segfw_meta_key, segfw_meta_value);

pub const KIND_BITS: u32 = segfw_limits::SEGFW_KEY_KIND_BITS.0;
/// Bits of a rule key before the port: src_seg, dst_seg, proto.
pub const RULE_FIXED_BITS: u32 = segfw_limits::SEGFW_KEY_RULE_FIXED_BITS.0;
/// Bits of a rule key's port (matched by prefix).
pub const PORT_BITS: u8 = segfw_limits::SEGFW_KEY_PORT_BITS.0 as u8;
/// Full length of a key's data.
pub const DATA_BITS: u32 = segfw_limits::SEGFW_KEY_DATA_BITS.0;
/// "*" in a rule's from/to.
pub const SEG_ANY: u32 = segfw_limits::SEGFW_SEG_ANY.0;
/// The implicit segment of addresses in no segment.
pub const SEG_WORLD: u32 = segfw_limits::SEGFW_SEG_WORLD.0;
/// proto = "any".
pub const PROTO_ANY: u16 = segfw_limits::SEGFW_PROTO_ANY.0 as u16;

/// An address as the datapath sees it: IPv6, with IPv4 as IPv4-mapped IPv6.
pub fn mapped_v6(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// An address as the datapath stores it, read back: IPv4-mapped IPv6 is
/// IPv4 (the inverse of [`mapped_v6`]).
pub fn unmapped(bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

/// Prefix length in the IPv6 space: IPv4 /n is ::ffff:0:0/96+n.
pub fn mapped_prefix_len(addr: IpAddr, prefix: u8) -> u32 {
    match addr {
        IpAddr::V4(_) => 96 + u32::from(prefix),
        IpAddr::V6(_) => u32::from(prefix),
    }
}

/// The CONFIG key: exact, data all zero.
pub fn config_key() -> segfw_policy_key {
    segfw_policy_key {
        prefixlen: KIND_BITS + DATA_BITS,
        kind: segfw_key_kind::SEGFW_KIND_CONFIG,
        data: segfw_key_data { addr: [0; 16] },
    }
}

/// A SEGMENT key for `addr/prefix` (host bits must already be clear).
pub fn segment_key(addr: IpAddr, prefix: u8) -> segfw_policy_key {
    segfw_policy_key {
        prefixlen: KIND_BITS + mapped_prefix_len(addr, prefix),
        kind: segfw_key_kind::SEGFW_KIND_SEGMENT,
        data: segfw_key_data {
            addr: mapped_v6(addr),
        },
    }
}

/// A SEGMENT lookup key for one address (full length).
pub fn segment_lookup_key(addr: IpAddr) -> segfw_policy_key {
    segfw_policy_key {
        prefixlen: KIND_BITS + DATA_BITS,
        ..segment_key(addr, 0)
    }
}

/// A RULE key: exact (src, dst, proto) and the first `port_bits` bits of
/// `port` (host order here, stored big-endian so prefixes are port ranges).
pub fn rule_key(
    src_seg: u32,
    dst_seg: u32,
    proto: u16,
    port: u16,
    port_bits: u8,
) -> segfw_policy_key {
    segfw_policy_key {
        prefixlen: KIND_BITS + RULE_FIXED_BITS + u32::from(port_bits),
        kind: segfw_key_kind::SEGFW_KIND_RULE,
        data: segfw_key_data {
            rule: segfw_rule_key {
                src_seg,
                dst_seg,
                proto,
                port: port.to_be(),
                reserved: 0,
            },
        },
    }
}

/// A FAILSAFE key: ingress TCP to this local port always passes.
pub fn failsafe_key(port: u16) -> segfw_policy_key {
    segfw_policy_key {
        kind: segfw_key_kind::SEGFW_KIND_FAILSAFE,
        ..rule_key(SEG_ANY, SEG_ANY, 6, port, PORT_BITS)
    }
}

/// An RA_SOURCE key: router advertisements and redirects may come from
/// `addr/prefix` (IPv6; host bits clear).
pub fn ra_source_key(addr: IpAddr, prefix: u8) -> segfw_policy_key {
    segfw_policy_key {
        kind: segfw_key_kind::SEGFW_KIND_RA_SOURCE,
        ..segment_key(addr, prefix)
    }
}

/// A name for meta_a/meta_b, truncated to fit (names are validated to fit).
pub fn meta_entry(kind: segfw_key_kind, id: u32, text: &str) -> (segfw_meta_key, segfw_meta_value) {
    let mut value = segfw_meta_value::default();
    let bytes = text.as_bytes();
    let n = bytes.len().min(value.text.len() - 1);
    for (dst, src) in value.text.iter_mut().zip(&bytes[..n]) {
        *dst = *src as _;
    }
    (segfw_meta_key { kind, id }, value)
}

/// Conntrack settings, fixed at load time (max_entries) or written to the
/// `runtime` map at apply (timeouts, event budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeSettings {
    pub conntrack_max_entries: u32,
    pub tcp_timeout_s: u32,
    pub udp_timeout_s: u32,
    pub icmp_timeout_s: u32,
    pub other_timeout_s: u32,
    pub events_per_sec: u32,
}

/// Counts for `policy check` and `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub segments: usize,
    /// Distinct prefixes (segment CIDRs and inline CIDRs): the prefix classes.
    pub prefixes: usize,
    pub rules: usize,
    /// RULE entries after merging overlaps and splitting port ranges.
    pub rule_entries: usize,
    /// All trie entries: CONFIG + SEGMENT + RULE + FAILSAFE + RA_SOURCE.
    pub trie_entries: usize,
}

/// A compiled policy: everything `policy apply` writes, nothing it computes.
#[derive(Debug, Clone)]
pub struct PolicyImage {
    /// Trie entries, CONFIG first (generation 0 until apply sets it), then
    /// the rest sorted by key bytes: the same policy gives the same bytes.
    pub trie: Vec<(segfw_policy_key, segfw_policy_value)>,
    /// Segment and rule names for meta_a/meta_b, sorted by key.
    pub meta: Vec<(segfw_meta_key, segfw_meta_value)>,
    pub runtime: RuntimeSettings,
    pub summary: Summary,
}

impl PolicyImage {
    /// The CONFIG entry's value.
    pub fn config(&self) -> segfw_policy_value {
        self.trie[0].1
    }

    /// The image with its CONFIG entry stamped with `generation`.
    pub fn with_generation(mut self, generation: u32) -> Self {
        self.trie[0].1.id = generation;
        self
    }

    /// All trie and meta bytes in order: equal images give equal bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        use crate::skel::bytes_of;
        let mut out = Vec::new();
        for (k, v) in &self.trie {
            out.extend_from_slice(bytes_of(k));
            out.extend_from_slice(bytes_of(v));
        }
        for (k, v) in &self.meta {
            out.extend_from_slice(bytes_of(k));
            out.extend_from_slice(bytes_of(v));
        }
        out
    }
}
