//! Atomic policy apply: fill the idle policy set (trie + names), then swap
//! it in with one update of policy_outer[0]. Programs are never reloaded.
//! A confirmed apply (`--confirm SECS`) leaves the set that was live as the
//! idle set, for confirm.rs to roll back to.
use std::time::{Duration, Instant};

use super::faults::fault_point;
use super::instance::Instance;
use super::maps::{Maps, TypedMap, BATCH};
use super::pins::{PinDir, SET_PINS};
pub use super::set_records::set_record;
use super::set_records::Pending;
use super::sets::{
    awaiting_confirmation, delete_pending, idle_set, live_generation, next_generation,
    next_runtime, repin_active, set_name,
};
use super::{DatapathError, Result};
use crate::policy::image::{MetaEntry, PolicyImage, TrieEntry};
use crate::policy::CheckedPolicy;
use crate::skel::types::segfw_set_record;

/// Failures of apply, confirm and rollback.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    #[error(
        "apply policy: the live generation {} awaits `segfw policy confirm` ({}); confirm it, \
         wait for the rollback, or confirm it implicitly with `segfw policy apply --force`",
        .pending.generation, .pending.describe_deadline()
    )]
    ConfirmPending { pending: Pending },
    #[error(
        "confirm policy in {pin_dir}: nothing to confirm (no `policy apply --confirm` is pending; \
         it was confirmed already, rolled back, or replaced)"
    )]
    NothingPending { pin_dir: String },
    #[error(
        "roll back generation {generation}: policy set {} no longer holds generation {previous} \
         (it was overwritten); generation {generation} stays live",
        set_name(*.set)
    )]
    PreviousGone {
        generation: u32,
        previous: u32,
        set: usize,
    },
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub generation: u32,
    /// The set now live: 0 = policy_a/meta_a, 1 = policy_b/meta_b.
    pub active_set: usize,
    pub sha256: String,
    pub rules: usize,
    pub segments: usize,
    pub trie_entries: usize,
    pub elapsed: Duration,
    /// Set when the apply awaits confirmation.
    pub pending: Option<Pending>,
    /// The pending confirmation that --force confirmed implicitly.
    pub forced: Option<Pending>,
}

/// How to apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Apply even while a confirmation is pending (confirming it implicitly:
    /// it becomes the policy a rollback of this apply restores).
    pub force: bool,
    /// Roll back at this time (unix ms) unless confirmed.
    pub confirm_deadline_ms: Option<u64>,
}

/// Applies a checked policy file to an instance opened under its lock.
/// Refuses while a confirmation is pending (see [`apply_image`]).
pub fn apply(instance: &mut Instance, policy: &CheckedPolicy) -> Result<ApplyReport, ApplyError> {
    apply_with(instance, policy, ApplyOptions::default())
}

/// Applies a checked policy file with options.
pub fn apply_with(
    instance: &mut Instance,
    policy: &CheckedPolicy,
    options: ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let source = policy.path.display().to_string();
    apply_image(
        instance,
        policy.image.clone(),
        &source,
        &policy.sha256,
        options,
    )
}

/// Applies a compiled image; `source` and `sha256` name it in meta for
/// `status`. Until the swap nothing the datapath reads changes, so a
/// failure before it leaves the old policy enforcing. While the live policy
/// awaits confirmation this refuses (ConfirmPending) unless `options.force`:
/// the idle set holds the policy a rollback would restore, and this apply
/// would overwrite it.
pub fn apply_image(
    instance: &mut Instance,
    image: PolicyImage,
    source: &str,
    sha256: &str,
    options: ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let start = Instant::now();
    instance.repair()?;
    let Instance {
        pins,
        maps,
        rule_stats,
        ..
    } = instance;
    let runtime = maps.runtime()?;
    let live = maps.active_set()?;
    let awaiting = awaiting_confirmation(maps)?;
    if let Some(pending) = awaiting.filter(|_| !options.force) {
        return Err(ApplyError::ConfirmPending { pending });
    }
    let idle = idle_set(live);
    let generation = next_generation(runtime.generation);
    let image = image.with_generation(generation);
    let pending = match options.confirm_deadline_ms {
        Some(deadline_ms) => Some(Pending {
            generation,
            deadline_ms,
            previous_set: 1 - idle,
            previous_generation: match live {
                Some(set) => live_generation(maps, set)?,
                None => 0,
            },
        }),
        None => None,
    };

    let record = set_record(source, sha256, &image.runtime, pending.as_ref());
    fill_and_swap(maps, Some(pins), idle, &image, &record)?;
    repin_active(maps, pins, idle)?;
    fault_point("repinned");
    if awaiting.is_some() {
        // Confirmed implicitly: the old record must not come back with its set.
        delete_pending(maps, 1 - idle)?;
    }
    // Per-rule counters count from this apply on (`stats --unused`).
    super::stats::reset_rule_counters(rule_stats, &image)?;

    Ok(ApplyReport {
        generation,
        active_set: idle,
        sha256: sha256.to_string(),
        rules: image.summary.rules,
        segments: image.summary.segments,
        trie_entries: image.trie.len(),
        elapsed: start.elapsed(),
        pending,
        forced: awaiting,
    })
}

/// The generation the next apply will get. The instance is under its lock,
/// so it stays true until that apply (used to start the rollback watchdog
/// before the swap).
pub fn next_generation_of(instance: &mut Instance) -> Result<u32> {
    instance.repair()?;
    Ok(next_generation(instance.maps.runtime()?.generation))
}

/// The fill and the swap of every apply: set `set` is built anew from
/// `image` (stamped with its generation, [`PolicyImage::with_generation`]),
/// its record is written (`maps/set_records[set]`: what it was filled from
/// and with, [`set_record`]), then it is swapped in, and the runtime map
/// names its generation. Works on the maps it is given: an instance's
/// pinned maps (`pins`: the new set is pinned over the set's pins before the
/// swap) or a loaded, unpinned skeleton's ([`Maps::of_skeleton`], `pins`
/// None: BPF_PROG_TEST_RUN tests and benchmarks).
pub fn fill_and_swap(
    maps: &mut Maps,
    pins: Option<&PinDir>,
    set: usize,
    image: &PolicyImage,
    record: &segfw_set_record,
) -> Result<()> {
    replace_set(maps, pins, set, &image.trie, &image.meta)?;
    // The idle set's record: the datapath reads none of it, and a kill
    // before the swap leaves the live set and its record as they were.
    maps.set_records.put(&(set as u32), record)?;
    fault_point("filled");
    // The swap: the kernel waits for running programs before returning, so
    // once it returns no packet still uses the old set.
    maps.policy_outer.set_inner(0, &maps.policy[set])?;
    fault_point("swapped");
    let generation = image.config().id;
    maps.runtime
        .put(&0u32, &next_runtime(&image.runtime, generation, set))?;
    fault_point("runtime");
    Ok(())
}

/// Builds set `set` anew: fresh trie and meta maps, shaped like the old
/// ones, are filled and then pinned over the set's pins (if it has pins).
/// The datapath does not read the idle set, so nothing it sees changes
/// until the swap. (A new map costs nothing to empty; deleting the old
/// set's entries cost as much as writing the new ones. The kernel frees the
/// old maps once unpinned.)
fn replace_set(
    maps: &mut Maps,
    pins: Option<&PinDir>,
    set: usize,
    trie_entries: &[TrieEntry],
    meta_entries: &[MetaEntry],
) -> Result<()> {
    let mut trie = maps.policy[set].empty_twin()?;
    let mut meta = maps.meta[set].empty_twin()?;
    fault_point("created");
    fill_in_parallel(&trie, trie_entries, &meta, meta_entries)?;
    if let Some(pins) = pins {
        let (trie_pin, meta_pin) = SET_PINS[set];
        trie.repin(&pins.map(trie_pin))?;
        meta.repin(&pins.map(meta_pin))?;
    }
    maps.policy[set] = trie;
    maps.meta[set] = meta;
    Ok(())
}

/// One piece of a set's fill (one batch syscall), small enough that threads
/// share the fill evenly.
enum Fill<'a> {
    Trie(&'a [TrieEntry]),
    Meta(&'a [MetaEntry]),
}

/// Writes both maps of a set on every CPU. The trie's lock serializes its
/// inserts only in part (each insert's syscall work, copying and allocation
/// run outside it), and the meta hash locks per bucket; pieces of the two
/// alternate so that one thread fills the trie while another fills meta.
fn fill_in_parallel(
    trie: &TypedMap,
    trie_entries: &[TrieEntry],
    meta: &TypedMap,
    meta_entries: &[MetaEntry],
) -> Result<()> {
    let mut tries = trie_entries.chunks(BATCH).map(Fill::Trie);
    let mut metas = meta_entries.chunks(BATCH).map(Fill::Meta);
    let mut pieces = Vec::new();
    loop {
        let (t, m) = (tries.next(), metas.next());
        if t.is_none() && m.is_none() {
            break;
        }
        pieces.extend(t.into_iter().chain(m));
    }
    crate::parallel::map(&pieces, |piece| match piece {
        Fill::Trie(entries) => {
            let written = trie.put_all(entries);
            fault_point("mid-fill");
            written
        }
        Fill::Meta(entries) => meta.put_all(entries),
    })
    .into_iter()
    .collect()
}
