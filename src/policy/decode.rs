//! Decoding trie entries and meta names back into policy terms, for
//! `policy show` / `policy diff` (which read them from the live maps).
use std::net::{IpAddr, Ipv6Addr};

use crate::skel::types::{
    segfw_key_kind, segfw_meta_value, segfw_policy_key, segfw_policy_value, segfw_ra_mode,
    segfw_rule_key, segfw_value_flags,
};
use crate::skel::{bytes_of, from_bytes};

use super::image::{KIND_BITS, RULE_FIXED_BITS};
use super::model::{Action, PortRange, Prefix};

/// One trie entry in policy terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Config {
        generation: u32,
        default_action: Action,
        audit: bool,
        /// Wildcard combinations with rule entries (see segfw_combo_bits).
        combos: u8,
        /// [defaults] router_advertisements.
        ra_mode: segfw_ra_mode,
    },
    /// A prefix and its class id.
    Segment {
        prefix: Prefix,
        class: u32,
    },
    Rule(RuleEntry),
    /// Inbound TCP port that always passes.
    Failsafe {
        port: u16,
    },
    /// A prefix router advertisements and redirects may come from.
    RaSource {
        prefix: Prefix,
    },
    /// An entry of a kind this binary does not know.
    Unknown {
        kind: u32,
    },
}

/// A RULE entry: src/dst are class ids or SEG_ANY; proto is a number or
/// PROTO_ANY; ports are destination ports or ICMP types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleEntry {
    pub src: u32,
    pub dst: u32,
    pub proto: u16,
    pub ports: PortRange,
    pub rule_id: u32,
    pub action: Action,
    pub log: bool,
    pub audit: bool,
}

/// Decodes one (key, value) of a policy trie.
pub fn decode_entry(key: &segfw_policy_key, value: &segfw_policy_value) -> Entry {
    let prefixlen = key.prefixlen;
    // The key's data is a union: an address, or a rule key (segfw_shared.h).
    let data: [u8; 16] = bytes_of(&key.data).try_into().expect("16 data bytes");
    let rule: segfw_rule_key = from_bytes(&data).expect("a rule key is 16 bytes");
    let audit_flag = segfw_value_flags::SEGFW_FLAG_AUDIT.0 as u8;
    let log_flag = segfw_value_flags::SEGFW_FLAG_LOG.0 as u8;
    match key.kind {
        segfw_key_kind::SEGFW_KIND_CONFIG => Entry::Config {
            generation: value.id,
            default_action: Action::from_raw(value.action),
            audit: value.flags & audit_flag != 0,
            combos: value.combos,
            ra_mode: value.ra_mode,
        },
        segfw_key_kind::SEGFW_KIND_SEGMENT => Entry::Segment {
            prefix: addr_prefix(&data, prefixlen),
            class: value.id,
        },
        segfw_key_kind::SEGFW_KIND_RA_SOURCE => Entry::RaSource {
            prefix: addr_prefix(&data, prefixlen),
        },
        segfw_key_kind::SEGFW_KIND_RULE => Entry::Rule(RuleEntry {
            src: rule.src_seg,
            dst: rule.dst_seg,
            proto: rule.proto,
            ports: port_range(u16::from_be(rule.port), prefixlen),
            rule_id: value.id,
            action: Action::from_raw(value.action),
            log: value.flags & log_flag != 0,
            audit: value.flags & audit_flag != 0,
        }),
        segfw_key_kind::SEGFW_KIND_FAILSAFE => Entry::Failsafe {
            port: u16::from_be(rule.port),
        },
        other => Entry::Unknown { kind: other.0 },
    }
}

/// The text of a meta value (up to its first NUL).
pub fn meta_text(value: &segfw_meta_value) -> String {
    let bytes: Vec<u8> = value
        .text
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The prefix of an address key (SEGMENT, RA_SOURCE).
fn addr_prefix(data: &[u8; 16], prefixlen: u32) -> Prefix {
    let len = prefixlen.saturating_sub(KIND_BITS).min(128) as u8;
    let addr = IpAddr::V6(Ipv6Addr::from(*data));
    Prefix::new(addr, len).expect("length is at most 128")
}

/// The ports a rule key's port prefix covers.
fn port_range(port: u16, prefixlen: u32) -> PortRange {
    let bits = prefixlen
        .saturating_sub(KIND_BITS + RULE_FIXED_BITS)
        .min(16);
    // An exact port (16 bits) has no host bits; u16 >> 16 would overflow.
    let host_mask = u16::MAX.checked_shr(bits).unwrap_or(0);
    PortRange {
        lo: port & !host_mask,
        hi: port | host_mask,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::image;

    #[test]
    fn rule_keys_decode_to_their_port_ranges() {
        let key = image::rule_key(3, image::SEG_ANY, 6, 1024, 6);
        let value = segfw_policy_value {
            id: 7,
            action: Action::Allow.raw(),
            flags: 1,
            ..Default::default()
        };
        assert_eq!(
            decode_entry(&key, &value),
            Entry::Rule(RuleEntry {
                src: 3,
                dst: image::SEG_ANY,
                proto: 6,
                ports: PortRange { lo: 1024, hi: 2047 },
                rule_id: 7,
                action: Action::Allow,
                log: true,
                audit: false,
            })
        );
        let exact = decode_entry(&image::rule_key(1, 2, 6, 443, 16), &value);
        assert!(matches!(
            exact,
            Entry::Rule(RuleEntry {
                ports: PortRange { lo: 443, hi: 443 },
                ..
            })
        ));
        let all = decode_entry(&image::rule_key(1, 2, 6, 0, 0), &value);
        assert!(matches!(
            all,
            Entry::Rule(RuleEntry {
                ports: PortRange::ALL,
                ..
            })
        ));
    }

    #[test]
    fn segment_keys_decode_to_prefixes() {
        let key = image::segment_key("10.1.0.0".parse().unwrap(), 16);
        let Entry::Segment { prefix, class } = decode_entry(
            &key,
            &segfw_policy_value {
                id: 4,
                ..Default::default()
            },
        ) else {
            panic!("expected a segment entry");
        };
        assert_eq!((prefix.to_string(), class), ("10.1.0.0/16".to_string(), 4));
    }

    #[test]
    fn meta_text_stops_at_nul() {
        let (_, value) = image::meta_entry(segfw_key_kind::SEGFW_KIND_RULE, 1, "web-to-db");
        assert_eq!(meta_text(&value), "web-to-db");
    }
}
