//! Prefix classes. The datapath maps an address to the class of its longest
//! matching prefix (0 = world: none matches), and rules are compiled over
//! classes, so one LPM lookup per address answers both "which segment" and
//! "which inline CIDRs".
//!
//! Prefixes that no rule can tell apart share a class: those with the same
//! owning segment inside the same inline CIDRs (for example a segment's IPv4
//! and IPv6 prefix). A rule between two such segments is then one trie entry,
//! not one per pair of prefixes.
use std::collections::HashMap;
use std::ops::Range;

use super::model::{Endpoints, Policy, Prefix, SegmentRef};

#[derive(Debug)]
pub(crate) struct Classes {
    /// Every distinct prefix (segment CIDRs and inline CIDRs), sorted by
    /// (address, length), so a prefix's sub-prefixes follow it contiguously.
    prefixes: Vec<Prefix>,
    /// The class id of each prefix.
    class_of: Vec<u32>,
    /// Per class (id - 1): the segment listing its first prefix, which names
    /// it, and that prefix (which names it if no segment lists it).
    labels: Vec<(Option<usize>, usize)>,
    /// Class ids by owning segment.
    by_segment: Vec<Vec<u32>>,
    /// Class ids owned by world, class 0 first.
    world: Vec<u32>,
}

/// What a rule can see of a prefix: its owning segment and the innermost
/// inline CIDR containing it (which determines all the others).
type Signature = (SegmentRef, Option<usize>);

impl Classes {
    pub(crate) fn build(policy: &Policy) -> Self {
        let mut defined: HashMap<Prefix, usize> = HashMap::new();
        for (index, segment) in policy.segments.iter().enumerate() {
            for prefix in &segment.prefixes {
                defined.insert(*prefix, index);
            }
        }
        let mut inline: Vec<Prefix> = policy
            .rules
            .iter()
            .flat_map(|r| inline_cidrs(&r.from).chain(inline_cidrs(&r.to)))
            .collect();
        inline.sort_unstable();
        inline.dedup();
        let mut prefixes: Vec<Prefix> = defined
            .keys()
            .copied()
            .chain(inline.iter().copied())
            .collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        let defined_by: Vec<Option<usize>> =
            prefixes.iter().map(|p| defined.get(p).copied()).collect();
        let is_inline: Vec<bool> = prefixes
            .iter()
            .map(|p| inline.binary_search(p).is_ok())
            .collect();

        let mut ids: HashMap<Signature, u32> = HashMap::new();
        let mut labels = Vec::new();
        let mut by_segment = vec![Vec::new(); policy.segments.len()];
        let mut world = vec![0];
        let mut class_of = Vec::with_capacity(prefixes.len());
        for (index, signature) in signatures(&prefixes, &defined_by, &is_inline).enumerate() {
            let id = *ids.entry(signature).or_insert_with(|| {
                labels.push((defined_by[index], index));
                let id = class_id(labels.len() - 1);
                match signature.0 {
                    SegmentRef::World => world.push(id),
                    SegmentRef::Named(segment) => by_segment[segment].push(id),
                }
                id
            });
            class_of.push(id);
        }
        Self {
            prefixes,
            class_of,
            labels,
            by_segment,
            world,
        }
    }

    /// Number of distinct prefixes (what the datapath's capacity counts).
    pub(crate) fn prefix_count(&self) -> usize {
        self.prefixes.len()
    }

    /// (prefix, its class id) for every prefix: the trie's segment entries.
    pub(crate) fn prefixes(&self) -> impl Iterator<Item = (&Prefix, u32)> {
        self.prefixes.iter().zip(self.class_of.iter().copied())
    }

    /// (class id, segment naming it, first prefix) for every class but world.
    pub(crate) fn labels(&self) -> impl Iterator<Item = (u32, Option<usize>, &Prefix)> {
        (0..)
            .zip(&self.labels)
            .map(|(i, &(segment, first))| (class_id(i), segment, &self.prefixes[first]))
    }

    /// Classes whose addresses belong to `segment`.
    pub(crate) fn of_segment(&self, segment: SegmentRef) -> &[u32] {
        match segment {
            SegmentRef::World => &self.world,
            SegmentRef::Named(index) => &self.by_segment[index],
        }
    }

    /// Class ids of the prefixes inside `cidr` (a prefix of the policy):
    /// the classes of every address inside it. May repeat ids.
    pub(crate) fn inside(&self, cidr: &Prefix) -> &[u32] {
        let Ok(first) = self.prefixes.binary_search(cidr) else {
            return &[];
        };
        let last = cidr.last();
        let end = first + self.prefixes[first..].partition_point(|p| p.bits() <= last);
        &self.class_of[first..end]
    }

    /// Appends the class ids a rule's `from`/`to` covers to `ids` (sorted,
    /// unique); returns the range they occupy, or None for "*".
    pub(crate) fn expand_into(
        &self,
        endpoints: &Endpoints,
        ids: &mut Vec<u32>,
    ) -> Option<Range<usize>> {
        let Endpoints::Set { segments, cidrs } = endpoints else {
            return None;
        };
        let start = ids.len();
        for segment in segments {
            ids.extend_from_slice(self.of_segment(*segment));
        }
        for cidr in cidrs {
            ids.extend_from_slice(self.inside(cidr));
        }
        let added = &mut ids[start..];
        added.sort_unstable();
        let unique = dedup_sorted(added);
        ids.truncate(start + unique);
        Some(start..ids.len())
    }
}

/// Moves the distinct values of a sorted slice to its front; returns how many.
fn dedup_sorted(values: &mut [u32]) -> usize {
    let mut unique = 0;
    for i in 0..values.len() {
        if unique == 0 || values[i] != values[unique - 1] {
            values[unique] = values[i];
            unique += 1;
        }
    }
    unique
}

fn class_id(index: usize) -> u32 {
    u32::try_from(index + 1).expect("class count is checked against SEGFW_MAX_SEGMENTS")
}

fn inline_cidrs(endpoints: &Endpoints) -> impl Iterator<Item = Prefix> + '_ {
    let cidrs = match endpoints {
        Endpoints::Any => &[][..],
        Endpoints::Set { cidrs, .. } => cidrs.as_slice(),
    };
    cidrs.iter().copied()
}

/// The signature of each prefix (sorted). Its owner is the segment listing
/// it, else the owner of its closest enclosing prefix, else world; its inline
/// CIDR is itself if a rule names it, else its enclosing prefix's. One pass
/// with a stack of enclosing prefixes: sorted order visits parents first.
fn signatures<'a>(
    prefixes: &'a [Prefix],
    defined_by: &'a [Option<usize>],
    is_inline: &'a [bool],
) -> impl Iterator<Item = Signature> + 'a {
    let mut enclosing: Vec<(Prefix, Signature)> = Vec::new();
    (0..prefixes.len()).map(move |index| {
        let prefix = &prefixes[index];
        while enclosing.last().is_some_and(|(p, _)| !p.covers(prefix)) {
            enclosing.pop();
        }
        let (owner, cidr) = enclosing
            .last()
            .map_or((SegmentRef::World, None), |&(_, signature)| signature);
        let signature = (
            defined_by[index].map_or(owner, SegmentRef::Named),
            if is_inline[index] { Some(index) } else { cidr },
        );
        enclosing.push((*prefix, signature));
        signature
    })
}
