//! Reference evaluation of a new flow, two ways:
//! - [`evaluate_image`]: over a compiled [`PolicyImage`], by LPM lookups on
//!   its trie bytes exactly as the datapath does (bpf/policy.h). Use it as
//!   the model when fuzzing the datapath.
//! - [`evaluate_naive`]: straight over the validated rules, in rule order,
//!   from the language's definition (DESIGN.md section 3).
//!
//! The compiler is correct when both agree on every flow. Neither covers
//! what the datapath decides before policy: conntrack, failsafe ports,
//! non-IP frames and neighbor discovery.
use std::collections::HashMap;
use std::net::IpAddr;

use crate::skel::bytes_of;
use crate::skel::types::{segfw_combo_bits, segfw_policy_key, segfw_policy_value};

use super::image::{self, PolicyImage, PROTO_ANY, SEG_ANY, SEG_WORLD};
use super::model::{self, Action, Policy};

/// A flow's first packet, as far as policy is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Destination port (tcp/udp/sctp) or ICMP type (icmp/icmpv6); ignored
    /// for other protocols.
    pub port: u16,
}

/// What policy decides for a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The deciding rule's id; 0 when the default action decided.
    pub rule_id: u32,
}

/// The rule key's port for a packet: dport for tcp/udp/sctp, ICMP type
/// for icmp/icmpv6, 0 for other protocols.
pub fn policy_port(proto: u8, port: u16) -> u16 {
    if model::has_ports(proto) || model::is_icmp(proto) {
        port
    } else {
        0
    }
}

/// Bytes of a trie key after `prefixlen`: kind (4) + data (16).
type KeyData = [u8; 20];

/// A compiled image's trie as the kernel's LPM trie sees it: entries by
/// prefix length, longest first, each keyed by its masked key bytes.
#[derive(Debug, Clone, Default)]
pub struct ImageIndex {
    by_len: Vec<(u32, HashMap<KeyData, segfw_policy_value>)>,
}

impl ImageIndex {
    pub fn new(image: &PolicyImage) -> Self {
        let mut by_len: HashMap<u32, HashMap<KeyData, segfw_policy_value>> = HashMap::new();
        for (key, value) in &image.trie {
            let (len, data) = split_key(key);
            // Like a kernel update: bits past prefixlen are not part of the key.
            by_len
                .entry(len)
                .or_default()
                .insert(masked(&data, len), *value);
        }
        let mut by_len: Vec<_> = by_len.into_iter().collect();
        by_len.sort_unstable_by_key(|&(len, _)| std::cmp::Reverse(len));
        Self { by_len }
    }

    /// Longest-prefix match of `key` (whose prefixlen bounds the match, as
    /// in BPF_MAP_TYPE_LPM_TRIE).
    pub fn lookup(&self, key: &segfw_policy_key) -> Option<segfw_policy_value> {
        let (max_len, data) = split_key(key);
        self.by_len
            .iter()
            .filter(|(len, _)| *len <= max_len)
            .find_map(|(len, entries)| entries.get(&masked(&data, *len)).copied())
    }

    /// The datapath's policy decision for a new flow.
    pub fn evaluate(&self, flow: &Flow) -> Decision {
        let Some(config) = self.lookup(&image::config_key()) else {
            // No policy applied: the datapath passes (SEGFW_PASS_NO_POLICY).
            return Decision {
                action: Action::Allow,
                rule_id: 0,
            };
        };
        let src_class = self.class_of(flow.src);
        let dst_class = self.class_of(flow.dst);
        let port = policy_port(flow.proto, flow.port);
        let (mut deny, mut allow): (Option<u32>, Option<u32>) = (None, None);
        let count = segfw_combo_bits::SEGFW_COMBO_COUNT.0 as u8;
        for combo in (0..count).filter(|bit| config.combos & (1 << bit) != 0) {
            let wild = |bit: segfw_combo_bits| u32::from(combo) & bit.0 != 0;
            let src = if wild(segfw_combo_bits::SEGFW_COMBO_SRC_ANY) {
                SEG_ANY
            } else {
                src_class
            };
            let dst = if wild(segfw_combo_bits::SEGFW_COMBO_DST_ANY) {
                SEG_ANY
            } else {
                dst_class
            };
            let proto = if wild(segfw_combo_bits::SEGFW_COMBO_PROTO_ANY) {
                PROTO_ANY
            } else {
                u16::from(flow.proto)
            };
            let Some(hit) = self.lookup(&image::rule_key(src, dst, proto, port, image::PORT_BITS))
            else {
                continue;
            };
            let best = match Action::from_raw(hit.action) {
                Action::Deny => &mut deny,
                Action::Allow => &mut allow,
            };
            *best = Some(best.map_or(hit.id, |id| id.min(hit.id)));
        }
        match (deny, allow) {
            (Some(rule_id), _) => Decision {
                action: Action::Deny,
                rule_id,
            },
            (None, Some(rule_id)) => Decision {
                action: Action::Allow,
                rule_id,
            },
            (None, None) => Decision {
                action: Action::from_raw(config.action),
                rule_id: 0,
            },
        }
    }

    /// The prefix class of an address; 0 (world) if no SEGMENT entry matches.
    pub fn class_of(&self, addr: IpAddr) -> u32 {
        self.lookup(&image::segment_lookup_key(addr))
            .map_or(SEG_WORLD, |v| v.id)
    }
}

/// `evaluate` over an index built for this one call; build an
/// [`ImageIndex`] once to evaluate many flows.
pub fn evaluate_image(image: &PolicyImage, flow: &Flow) -> Decision {
    ImageIndex::new(image).evaluate(flow)
}

/// The language's definition: among the rules matching the flow, the first
/// deny in rule order, else the first allow, else the default action.
/// A rule matches when its `from` matches src (`*`, src's segment named, or
/// src inside an inline CIDR), its `to` matches dst likewise, its proto
/// matches, and its ports/ICMP types (if any) hold the flow's port.
pub fn evaluate_naive(policy: &Policy, flow: &Flow) -> Decision {
    let src_segment = policy.segment_of(flow.src);
    let dst_segment = policy.segment_of(flow.dst);
    let matching = policy.rules.iter().filter(|rule| {
        rule.proto.matches(flow.proto)
            && rule.matches_port(flow.port)
            && rule.from.matches(flow.src, src_segment)
            && rule.to.matches(flow.dst, dst_segment)
    });
    let mut first_allow = None;
    for rule in matching {
        match rule.action {
            Action::Deny => {
                return Decision {
                    action: Action::Deny,
                    rule_id: rule.id,
                }
            }
            Action::Allow => {
                first_allow.get_or_insert(rule.id);
            }
        }
    }
    match first_allow {
        Some(rule_id) => Decision {
            action: Action::Allow,
            rule_id,
        },
        None => Decision {
            action: policy.defaults.action,
            rule_id: 0,
        },
    }
}

/// (prefixlen, kind + data bytes) of a trie key.
fn split_key(key: &segfw_policy_key) -> (u32, KeyData) {
    // The trie compares kind and data as the bytes they are in memory.
    let mut bytes = [0u8; 20];
    bytes[..4].copy_from_slice(&key.kind.0.to_ne_bytes());
    bytes[4..].copy_from_slice(bytes_of(&key.data));
    (key.prefixlen, bytes)
}

/// `data` with every bit past the first `len` cleared.
fn masked(data: &KeyData, len: u32) -> KeyData {
    let mut out = [0u8; 20];
    for (i, (dst, src)) in out.iter_mut().zip(data).enumerate() {
        let bit = (i as u32) * 8;
        *dst = match len.saturating_sub(bit) {
            0 => 0,
            n if n >= 8 => *src,
            n => src & (0xffu8 << (8 - n)),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_the_prefix_bits() {
        let data = [0xff; 20];
        let m = masked(&data, 36);
        assert_eq!(&m[..4], &[0xff; 4]);
        assert_eq!(m[4], 0xf0);
        assert!(m[5..].iter().all(|&b| b == 0));
        assert_eq!(masked(&data, 160), data);
    }

    #[test]
    fn only_port_protocols_key_by_port() {
        assert_eq!(policy_port(6, 443), 443);
        assert_eq!(policy_port(58, 128), 128);
        assert_eq!(policy_port(47, 443), 0);
    }
}
