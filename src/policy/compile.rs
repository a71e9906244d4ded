//! The compiler: a validated policy -> the map image the datapath looks up.
//! Pure (no I/O) and deterministic (same policy, same bytes).
//!
//! Rules are expanded over prefix classes (see `classes`) into RULE entries
//! keyed by (src class or ANY, dst class or ANY, proto or ANY, port prefix).
//! Within one key, overlapping rules are resolved here (deny overrides allow,
//! lower id first); across the 8 wildcard combinations the datapath takes
//! the lowest-id deny, else the lowest-id allow, of its lookups.
use std::collections::BTreeSet;

use crate::skel::bytes_of;
use crate::skel::types::{
    segfw_action, segfw_combo_bits, segfw_key_kind, segfw_limits, segfw_meta_key, segfw_meta_value,
    segfw_policy_key, segfw_policy_value, segfw_ra_mode, segfw_value_flags,
};

use super::classes::Classes;
use super::errors::{PolicyError, PolicyErrorKind};
use super::image::{self, PolicyImage, Summary, PROTO_ANY, SEG_ANY};
use super::model::{merge_ranges, Action, Mode, Policy, PortRange};

/// Map capacities a policy must fit; `Default` is the datapath's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// User rules (ids 1..=max_rules).
    pub max_rules: usize,
    /// Prefix classes (distinct prefixes), world not counted.
    pub max_classes: usize,
    /// Trie entries of all kinds.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // Rule ids 0 (default) and SEGFW_RULE_FAILSAFE are reserved.
            max_rules: segfw_limits::SEGFW_MAX_RULES.0 as usize - 2,
            max_classes: segfw_limits::SEGFW_MAX_SEGMENTS.0 as usize,
            max_entries: segfw_limits::SEGFW_POLICY_MAX_ENTRIES.0 as usize,
        }
    }
}

/// Above this many (rule, src class, dst class) expansions (16 bytes each)
/// the compiler gives up before allocating them: such a policy cannot fit
/// the trie in practice.
const MAX_EXPANSIONS: u64 = 1 << 23;

type TrieEntry = (segfw_policy_key, segfw_policy_value);

/// (src class or SEG_ANY, dst class or SEG_ANY, proto or PROTO_ANY).
type RuleKey = (u32, u32, u16);

/// Where the class ids of one side of a rule are in the ids arena; None for "*".
type Side = Option<std::ops::Range<usize>>;

/// Compiles against the datapath's capacities.
pub fn compile(policy: &Policy) -> Result<PolicyImage, PolicyError> {
    compile_with_limits(policy, &Limits::default())
}

/// Compiles; Err if the policy does not fit `limits` (checked before
/// anything is returned, so an image that comes out always fits).
pub fn compile_with_limits(policy: &Policy, limits: &Limits) -> Result<PolicyImage, PolicyError> {
    check_rule_count(policy, limits)?;
    let classes = Classes::build(policy);
    if classes.prefix_count() > limits.max_classes {
        return Err(capacity(format!(
            "the policy has {} distinct prefixes (segment and inline CIDRs); the datapath holds at most {} (SEGFW_MAX_SEGMENTS)",
            classes.prefix_count(),
            limits.max_classes
        )));
    }
    let expansions = expand_rules(policy, &classes, limits)?;
    // CONFIG goes first; its combos are known once the rules are compiled.
    let mut trie = Vec::with_capacity(1 + classes.prefix_count() + expansions.len());
    // Segment values carry no action: theirs is the zero value, DENY.
    let none = segfw_action::SEGFW_ACTION_DENY;
    trie.push((image::config_key(), value(0, none, 0)));
    trie.extend(
        classes
            .prefixes()
            .map(|(prefix, id)| (prefix.segment_key(), value(id, none, 0))),
    );
    let before_rules = trie.len();
    let combos = push_rule_entries(policy, &expansions, limits, &mut trie)?;
    drop(expansions);
    let rule_entry_count = trie.len() - before_rules;
    trie.extend(failsafe_entries(policy));
    trie.extend(ra_source_entries(policy));
    if trie.len() > limits.max_entries {
        return Err(too_many_entries(trie.len(), limits));
    }
    trie[0].1 = config_value(policy, combos);
    trie[1..].sort_unstable_by_key(|(key, _)| key_order(key));
    let summary = Summary {
        segments: policy.segments.len(),
        prefixes: classes.prefix_count(),
        rules: policy.rules.len(),
        rule_entries: rule_entry_count,
        trie_entries: trie.len(),
    };
    Ok(PolicyImage {
        trie,
        meta: meta(policy, &classes),
        runtime: policy.runtime_settings(),
        summary,
    })
}

fn capacity(message: String) -> PolicyError {
    PolicyError::whole_file(PolicyErrorKind::CapacityExceeded, message)
}

fn too_many_entries(count: usize, limits: &Limits) -> PolicyError {
    capacity(format!(
        "the policy compiles to {count} or more trie entries; the datapath holds at most {} (SEGFW_POLICY_MAX_ENTRIES): use fewer prefixes, wider port ranges or fewer segment pairs",
        limits.max_entries
    ))
}

fn check_rule_count(policy: &Policy, limits: &Limits) -> Result<(), PolicyError> {
    let Some(first_over) = policy.rules.get(limits.max_rules) else {
        return Ok(());
    };
    Err(PolicyError {
        kind: PolicyErrorKind::CapacityExceeded,
        line: first_over.at.line,
        column: first_over.at.column,
        message: format!(
            "the policy has {} rules; the datapath holds at most {} (SEGFW_MAX_RULES - 2); this is rule {}",
            policy.rules.len(),
            limits.max_rules,
            first_over.id
        ),
    })
}

/// Every (key, rule index) a rule expands to, sorted: the rules of one key
/// are a contiguous run, in rule order. (One flat sort is much cheaper than
/// a map of per-key lists, and deterministic.)
fn expand_rules(
    policy: &Policy,
    classes: &Classes,
    limits: &Limits,
) -> Result<Vec<(RuleKey, u32)>, PolicyError> {
    // Class ids of every rule's sides in one arena: few allocations.
    let mut ids = Vec::new();
    let sides: Vec<(Side, Side)> = policy
        .rules
        .iter()
        .map(|r| {
            (
                classes.expand_into(&r.from, &mut ids),
                classes.expand_into(&r.to, &mut ids),
            )
        })
        .collect();
    let count: u64 = sides.iter().map(|(s, d)| side_len(s) * side_len(d)).sum();
    if count > MAX_EXPANSIONS {
        return Err(capacity(format!(
            "the rules expand to {count} (rule, source class, destination class) combinations; at most {MAX_EXPANSIONS} can be compiled: name fewer or smaller segments per rule"
        )));
    }
    let mut expansions = Vec::with_capacity(count as usize);
    for (index, (rule, (srcs, dsts))) in policy.rules.iter().zip(&sides).enumerate() {
        let proto = rule.proto.key_value();
        for &src in side_ids(srcs, &ids) {
            for &dst in side_ids(dsts, &ids) {
                expansions.push(((src, dst, proto), index as u32));
            }
        }
    }
    expansions.sort_unstable();
    let keys = expansions.chunk_by(|a, b| a.0 == b.0).count();
    // Every key yields at least one entry (plus CONFIG).
    if keys >= limits.max_entries {
        return Err(too_many_entries(keys + 1, limits));
    }
    Ok(expansions)
}

fn side_len(side: &Side) -> u64 {
    side.as_ref().map_or(1, |range| range.len() as u64)
}

const ANY_SIDE: &[u32] = &[SEG_ANY];

fn side_ids<'a>(side: &Side, ids: &'a [u32]) -> &'a [u32] {
    side.clone().map_or(ANY_SIDE, |range| &ids[range])
}

/// The normalized port ranges of every rule, in one arena.
struct RulePorts {
    ranges: Vec<PortRange>,
    /// Per rule: its slice of `ranges`.
    spans: Vec<std::ops::Range<usize>>,
}

impl RulePorts {
    fn new(policy: &Policy) -> Self {
        let mut ranges = Vec::with_capacity(policy.rules.len());
        let spans = policy
            .rules
            .iter()
            .map(|rule| {
                let start = ranges.len();
                rule.extend_port_ranges(&mut ranges);
                let merged = merge_ranges(&mut ranges[start..]);
                ranges.truncate(start + merged);
                start..ranges.len()
            })
            .collect();
        Self { ranges, spans }
    }

    fn of(&self, rule_index: u32) -> &[PortRange] {
        &self.ranges[self.spans[rule_index as usize].clone()]
    }
}

/// Appends the RULE entries of every key to `trie`; returns the combos
/// mask (which wildcard combinations have entries).
fn push_rule_entries(
    policy: &Policy,
    expansions: &[(RuleKey, u32)],
    limits: &Limits,
    trie: &mut Vec<TrieEntry>,
) -> Result<u8, PolicyError> {
    let ranges = RulePorts::new(policy);
    let values: Vec<segfw_policy_value> = policy
        .rules
        .iter()
        .map(|r| value(r.id, r.action.raw(), r.flags()))
        .collect();
    let (mut combos, mut rule_indexes, mut winners) = (0u8, Vec::new(), Vec::new());
    for run in expansions.chunk_by(|a, b| a.0 == b.0) {
        let (src, dst, proto) = run[0].0;
        rule_indexes.clear();
        rule_indexes.extend(run.iter().map(|&(_, index)| index));
        winners.clear();
        resolve_key(&rule_indexes, policy, &ranges, &mut winners);
        for &(range, index) in &winners {
            for_each_port_prefix(range, |port, bits| {
                let key = image::rule_key(src, dst, proto, port, bits);
                trie.push((key, values[index as usize]));
            });
        }
        combos |= combo_bit(src, dst, proto);
        if trie.len() > limits.max_entries {
            return Err(too_many_entries(trie.len(), limits));
        }
    }
    Ok(combos)
}

/// The combos bit of a key: bit number SRC_ANY | DST_ANY | PROTO_ANY, of
/// those that are wildcards (enum segfw_combo_bits).
fn combo_bit(src: u32, dst: u32, proto: u16) -> u8 {
    let flag = |wild: bool, bit: segfw_combo_bits| if wild { bit.0 } else { 0 };
    let combo = flag(src == SEG_ANY, segfw_combo_bits::SEGFW_COMBO_SRC_ANY)
        | flag(dst == SEG_ANY, segfw_combo_bits::SEGFW_COMBO_DST_ANY)
        | flag(proto == PROTO_ANY, segfw_combo_bits::SEGFW_COMBO_PROTO_ANY);
    1 << combo
}

/// A key's bytes as integers whose order is the bytes' order, so sorting
/// by it sorts by key bytes without a memcmp per comparison.
fn key_order(key: &segfw_policy_key) -> (u128, u64) {
    let bytes = bytes_of(key);
    let head: [u8; 16] = bytes[..16].try_into().expect("24-byte key");
    let tail: [u8; 8] = bytes[16..24].try_into().expect("24-byte key");
    (u128::from_be_bytes(head), u64::from_be_bytes(tail))
}

/// The winning rule of each port range of one key: the lowest-id deny that
/// covers it, else the lowest-id allow. Adjacent ranges with the same winner
/// are merged; ranges no rule covers are left out.
fn resolve_key(
    rule_indexes: &[u32],
    policy: &Policy,
    ranges: &RulePorts,
    out: &mut Vec<(PortRange, u32)>,
) {
    if let [only] = rule_indexes {
        out.extend(ranges.of(*only).iter().map(|&r| (r, *only)));
        return;
    }
    // Sweep over range boundaries; `end` is exclusive (up to 65536).
    let mut events: Vec<(u32, bool, u32)> = Vec::new();
    for &index in rule_indexes {
        for range in ranges.of(index) {
            events.push((u32::from(range.lo), true, index));
            events.push((u32::from(range.hi) + 1, false, index));
        }
    }
    events.sort_unstable();
    let (mut denies, mut allows) = (BTreeSet::new(), BTreeSet::new());
    let mut i = 0;
    while i < events.len() {
        let point = events[i].0;
        while i < events.len() && events[i].0 == point {
            let (_, start, index) = events[i];
            let active = match policy.rules[index as usize].action {
                Action::Deny => &mut denies,
                Action::Allow => &mut allows,
            };
            if start {
                active.insert(index);
            } else {
                active.remove(&index);
            }
            i += 1;
        }
        let (Some(&(next, _, _)), Some(&winner)) =
            (events.get(i), denies.first().or(allows.first()))
        else {
            continue;
        };
        let range = PortRange {
            lo: point as u16,
            hi: (next - 1) as u16,
        };
        match out.last_mut() {
            Some((last, w)) if *w == winner && u32::from(last.hi) + 1 == point => {
                last.hi = range.hi
            }
            _ => out.push((range, winner)),
        }
    }
}

/// Calls `emit(first port, prefix bits)` for each of the maximal aligned
/// prefixes that together cover `range`.
fn for_each_port_prefix(range: PortRange, mut emit: impl FnMut(u16, u8)) {
    let (mut lo, hi) = (u32::from(range.lo), u32::from(range.hi));
    while lo <= hi {
        // The largest block aligned at `lo` that ends within the range.
        let mut size: u32 = if lo == 0 {
            1 << 16
        } else {
            lo & lo.wrapping_neg()
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        emit(lo as u16, (16 - size.trailing_zeros()) as u8);
        lo += size;
    }
}

fn value(id: u32, action: segfw_action, flags: u8) -> segfw_policy_value {
    segfw_policy_value {
        id,
        action,
        flags,
        combos: 0,
        ra_mode: segfw_ra_mode::SEGFW_RA_LINK_LOCAL,
    }
}

/// CONFIG: generation 0 (apply stamps it), default action, audit, combos,
/// router advertisement mode.
fn config_value(policy: &Policy, combos: u8) -> segfw_policy_value {
    let flags = match policy.defaults.mode {
        Mode::Audit => segfw_value_flags::SEGFW_FLAG_AUDIT.0 as u8,
        Mode::Enforce => 0,
    };
    segfw_policy_value {
        combos,
        ra_mode: policy.defaults.router_advertisements.mode(),
        ..value(0, policy.defaults.action.raw(), flags)
    }
}

/// RA_SOURCE: where router advertisements and redirects may come from.
fn ra_source_entries(policy: &Policy) -> impl Iterator<Item = TrieEntry> {
    let allow = Action::Allow.raw();
    policy
        .defaults
        .router_advertisements
        .sources()
        .into_iter()
        .map(move |prefix| {
            let (addr, len) = prefix.network();
            (image::ra_source_key(addr, len), value(0, allow, 0))
        })
}

fn failsafe_entries(policy: &Policy) -> impl Iterator<Item = TrieEntry> + '_ {
    let allow = Action::Allow.raw();
    let id = segfw_limits::SEGFW_RULE_FAILSAFE.0;
    policy
        .defaults
        .failsafe_tcp
        .iter()
        .map(move |&port| (image::failsafe_key(port), value(id, allow, 0)))
}

/// Names for meta_a/meta_b: each class (its segment, or its CIDR if inline)
/// and each rule, sorted by (kind, id).
fn meta(policy: &Policy, classes: &Classes) -> Vec<(segfw_meta_key, segfw_meta_value)> {
    let segment_kind = segfw_key_kind::SEGFW_KIND_SEGMENT;
    let mut meta: Vec<_> = classes
        .labels()
        .map(|(id, defined_by, prefix)| match defined_by {
            Some(segment) => image::meta_entry(segment_kind, id, &policy.segments[segment].name),
            None => image::meta_entry(segment_kind, id, &prefix.to_string()),
        })
        .collect();
    let rule_kind = segfw_key_kind::SEGFW_KIND_RULE;
    meta.extend(
        policy
            .rules
            .iter()
            .map(|r| image::meta_entry(rule_kind, r.id, &r.name)),
    );
    meta.sort_by_key(|(k, _)| (k.kind.0, k.id));
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(lo: u16, hi: u16) -> PortRange {
        PortRange { lo, hi }
    }

    fn port_prefixes(range: PortRange) -> Vec<(u16, u8)> {
        let mut out = Vec::new();
        for_each_port_prefix(range, |port, bits| out.push((port, bits)));
        out
    }

    #[test]
    fn port_ranges_split_into_maximal_aligned_prefixes() {
        assert_eq!(port_prefixes(PortRange::ALL), vec![(0, 0)]);
        assert_eq!(port_prefixes(r(80, 80)), vec![(80, 16)]);
        assert_eq!(port_prefixes(r(0, 1023)), vec![(0, 6)]);
        assert_eq!(port_prefixes(r(6000, 6100)).len(), 5);
        assert_eq!(port_prefixes(r(1, 65535)).len(), 16);
        let covered: u32 = port_prefixes(r(6000, 6100))
            .iter()
            .map(|&(_, b)| 1u32 << (16 - b))
            .sum();
        assert_eq!(covered, 101);
    }

    #[test]
    fn normalize_merges_overlaps_and_neighbours() {
        let normalized = |mut v: Vec<PortRange>| {
            let n = merge_ranges(&mut v);
            v.truncate(n);
            v
        };
        assert_eq!(
            normalized(vec![r(90, 100), r(80, 85), r(86, 89), r(95, 120)]),
            vec![r(80, 120)]
        );
        assert_eq!(normalized(vec![r(1, 2), r(4, 5)]), vec![r(1, 2), r(4, 5)]);
    }
}
