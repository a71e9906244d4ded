//! Prefix classes: one id per distinct prefix of the policy (segment CIDRs
//! and inline CIDRs of rules). The datapath maps an address to the class of
//! its longest matching prefix (0 = world: none matches), and rules are
//! compiled over classes, so one LPM lookup per address answers both "which
//! segment" and "which inline CIDRs".
use std::collections::HashMap;
use std::ops::Range;

use super::model::{Endpoints, Policy, Prefix, SegmentRef};

#[derive(Debug)]
pub(crate) struct Classes {
    /// Sorted by (address, length), so a prefix's sub-prefixes follow it
    /// contiguously. Class id = index + 1.
    prefixes: Vec<Prefix>,
    /// The segment that lists each prefix itself (None for inline-only CIDRs).
    defined_by: Vec<Option<usize>>,
    /// Class ids by owning segment: the segment of the longest segment
    /// prefix containing the class, which is the segment of every address
    /// whose class it is.
    by_segment: Vec<Vec<u32>>,
    /// Class ids owned by world, class 0 first.
    world: Vec<u32>,
}

impl Classes {
    pub(crate) fn build(policy: &Policy) -> Self {
        let mut defined: HashMap<Prefix, usize> = HashMap::new();
        for (index, segment) in policy.segments.iter().enumerate() {
            for prefix in &segment.prefixes {
                defined.insert(*prefix, index);
            }
        }
        let mut prefixes: Vec<Prefix> = defined.keys().copied().collect();
        prefixes.extend(
            policy
                .rules
                .iter()
                .flat_map(|r| inline_cidrs(&r.from).chain(inline_cidrs(&r.to))),
        );
        prefixes.sort_unstable();
        prefixes.dedup();
        let defined_by: Vec<Option<usize>> =
            prefixes.iter().map(|p| defined.get(p).copied()).collect();
        let owners = owners(&prefixes, &defined_by);
        let mut by_segment = vec![Vec::new(); policy.segments.len()];
        let mut world = vec![0];
        for (index, owner) in owners.into_iter().enumerate() {
            let id = class_id(index);
            match owner {
                SegmentRef::World => world.push(id),
                SegmentRef::Named(segment) => by_segment[segment].push(id),
            }
        }
        Self {
            prefixes,
            defined_by,
            by_segment,
            world,
        }
    }

    /// Number of classes, world not counted.
    pub(crate) fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// (class id, prefix, segment listing it) for every class but world.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Prefix, Option<usize>)> {
        let defined_by = self.defined_by.iter().copied();
        (0..)
            .zip(self.prefixes.iter())
            .zip(defined_by)
            .map(|((i, p), d)| (class_id(i), p, d))
    }

    /// Classes whose addresses belong to `segment`.
    pub(crate) fn of_segment(&self, segment: SegmentRef) -> &[u32] {
        match segment {
            SegmentRef::World => &self.world,
            SegmentRef::Named(index) => &self.by_segment[index],
        }
    }

    /// Classes whose addresses are inside `cidr` (a prefix of the policy).
    pub(crate) fn inside(&self, cidr: &Prefix) -> Range<u32> {
        let Ok(first) = self.prefixes.binary_search(cidr) else {
            return 0..0;
        };
        let last = cidr.last();
        let end = first + self.prefixes[first..].partition_point(|p| p.bits() <= last);
        class_id(first)..class_id(end)
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
            ids.extend(self.inside(cidr));
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

/// The owner of each prefix (sorted): the segment listing it, else the owner
/// of its closest enclosing prefix, else world. One pass with a stack of
/// enclosing prefixes, since sorted order visits parents before children.
fn owners(prefixes: &[Prefix], defined_by: &[Option<usize>]) -> Vec<SegmentRef> {
    let mut owners = Vec::with_capacity(prefixes.len());
    let mut enclosing: Vec<(Prefix, SegmentRef)> = Vec::new();
    for (prefix, defined) in prefixes.iter().zip(defined_by) {
        while enclosing.last().is_some_and(|(p, _)| !p.covers(prefix)) {
            enclosing.pop();
        }
        let inherited = enclosing
            .last()
            .map_or(SegmentRef::World, |&(_, owner)| owner);
        let owner = defined.map_or(inherited, SegmentRef::Named);
        enclosing.push((*prefix, owner));
        owners.push(owner);
    }
    owners
}
