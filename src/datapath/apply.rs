//! Atomic policy apply: fill the idle policy set (trie + names), then swap
//! it in with one update of policy_outer[0]. Programs are never reloaded.
//!
//! Confirmed apply (`policy apply --confirm SECS`): the set that was live
//! before stays intact as the idle set, so rolling back is one more swap.
//! The pending confirmation is recorded in the names of the set it guards
//! (meta CONFIG id 2, [`Pending`]); it is live exactly while that set is.
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libbpf_rs::{MapCore, MapHandle};

use super::maps::{Maps, PinnedMap, BATCH};
use super::pins::{PinDir, PinLock, ACTIVE_META_PIN, ACTIVE_POLICY_PIN, REPIN_SUFFIX, SET_PINS};
use super::{DatapathError, Result};
use crate::policy::decode::meta_text;
use crate::policy::image::{config_key, meta_entry, PolicyImage, RuntimeSettings};
use crate::policy::CheckedPolicy;
use crate::skel::bytes_of;
use crate::skel::types::{
    segfw_key_kind, segfw_meta_key, segfw_meta_value, segfw_policy_key, segfw_policy_value,
    segfw_runtime,
};

/// meta CONFIG ids (bpf/segfw_shared.h, struct segfw_meta_key).
pub const META_CONFIG_SHA256: u32 = 0;
pub const META_CONFIG_PATH: u32 = 1;
/// The confirmation this set awaits ([`Pending::to_text`]); userspace only.
pub const META_CONFIG_PENDING: u32 = 2;
/// The runtime settings (timeouts, event budget) this set was applied
/// with, so that a rollback restores them with the set.
pub const META_CONFIG_RUNTIME: u32 = 3;

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

/// A confirmation that a live policy awaits: unless `segfw policy confirm`
/// removes it before `deadline_ms`, set `previous_set` becomes live again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pending {
    /// The generation that awaits confirmation.
    pub generation: u32,
    /// Wall-clock deadline, unix milliseconds.
    pub deadline_ms: u64,
    /// The set a rollback makes live (0 = A, 1 = B).
    pub previous_set: usize,
    /// The generation that set holds; 0: no policy was live before, so a
    /// rollback means "no policy" (all traffic passes).
    pub previous_generation: u32,
}

impl Pending {
    /// `generation=G deadline_ms=T previous_set=S previous_generation=P`
    /// (fits the 128 bytes of a meta value).
    pub fn to_text(&self) -> String {
        format!(
            "generation={} deadline_ms={} previous_set={} previous_generation={}",
            self.generation, self.deadline_ms, self.previous_set, self.previous_generation
        )
    }

    /// Parses [`Pending::to_text`]; None for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let mut pending = Pending {
            generation: 0,
            deadline_ms: 0,
            previous_set: 0,
            previous_generation: 0,
        };
        let mut seen = 0;
        for field in text.split_whitespace() {
            let (key, value) = field.split_once('=')?;
            match key {
                "generation" => pending.generation = value.parse().ok()?,
                "deadline_ms" => pending.deadline_ms = value.parse().ok()?,
                "previous_set" => pending.previous_set = value.parse().ok().filter(|s| *s < 2)?,
                "previous_generation" => pending.previous_generation = value.parse().ok()?,
                _ => continue,
            }
            seen += 1;
        }
        (seen == 4 && pending.generation != 0).then_some(pending)
    }

    /// Milliseconds until the deadline (0 once it passed).
    pub fn remaining_ms(&self, now_ms: u64) -> u64 {
        self.deadline_ms.saturating_sub(now_ms)
    }

    /// "rollback in 12s" or "rollback overdue by 3s".
    pub fn describe_deadline(&self) -> String {
        let now = unix_ms();
        if now < self.deadline_ms {
            format!("rollback in {}s", self.remaining_ms(now).div_ceil(1000))
        } else {
            format!("rollback overdue by {}s", (now - self.deadline_ms) / 1000)
        }
    }
}

/// What a rollback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollbackReport {
    /// The generation that was not confirmed.
    pub rolled_back: u32,
    /// The generation now live (a new number, so conntrack re-checks).
    pub generation: u32,
    /// The restored policy's generation before; 0: no policy is live now.
    pub restored: u32,
    pub active_set: usize,
}

/// Now, as unix milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Applies a checked policy file. The caller holds the instance lock.
/// Refuses while a confirmation is pending (see [`apply_with`]).
pub fn apply(
    pins: &PinDir,
    lock: &PinLock,
    policy: &CheckedPolicy,
) -> Result<ApplyReport, ApplyError> {
    apply_with(pins, lock, policy, ApplyOptions::default())
}

/// Applies a checked policy file with options.
pub fn apply_with(
    pins: &PinDir,
    lock: &PinLock,
    policy: &CheckedPolicy,
    options: ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let source = policy.path.display().to_string();
    apply_image_with(
        pins,
        lock,
        policy.image.clone(),
        &source,
        &policy.sha256,
        options,
    )
}

/// Applies a compiled image; `source` and `sha256` name it in meta for
/// `status`. Until the swap nothing the datapath reads changes, so a
/// failure before it leaves the old policy enforcing.
pub fn apply_image(
    pins: &PinDir,
    lock: &PinLock,
    image: PolicyImage,
    source: &str,
    sha256: &str,
) -> Result<ApplyReport, ApplyError> {
    apply_image_with(pins, lock, image, source, sha256, ApplyOptions::default())
}

/// [`apply_image`] with options. While the live policy awaits confirmation
/// this refuses (ConfirmPending) unless `options.force`: the idle set holds
/// the policy a rollback would restore, and this apply would overwrite it.
pub fn apply_image_with(
    pins: &PinDir,
    _lock: &PinLock,
    image: PolicyImage,
    source: &str,
    sha256: &str,
    options: ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let start = Instant::now();
    let mut maps = Maps::open(pins)?;
    repair_maps(&mut maps, pins)?;
    let runtime = maps.runtime()?;
    let live = maps.active_set()?;
    let awaiting = live
        .map(|set| read_pending(&maps, set))
        .transpose()?
        .flatten();
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
                Some(set) => live_generation(&maps, set)?,
                None => 0,
            },
        }),
        None => None,
    };

    let config = segfw_key_kind::SEGFW_KIND_CONFIG;
    let mut extra = vec![meta_entry(
        config,
        META_CONFIG_RUNTIME,
        &runtime_text(&image.runtime),
    )];
    if let Some(pending) = &pending {
        extra.push(meta_entry(config, META_CONFIG_PENDING, &pending.to_text()));
    }
    replace_set(&mut maps, pins, idle, &image, source, sha256, &extra)?;
    fault_point("filled");
    // The swap: the kernel waits for running programs before returning, so
    // once it returns no packet still uses the old set.
    maps.policy_outer.set_inner(0, &maps.policy[idle])?;
    fault_point("swapped");
    maps.runtime
        .put(&0u32, &next_runtime(&image.runtime, generation, idle))?;
    fault_point("runtime");
    repin_active(&mut maps, pins, idle)?;
    fault_point("repinned");
    if awaiting.is_some() {
        // Confirmed implicitly: the old record must not come back with its set.
        delete_pending(pins, 1 - idle)?;
    }
    // Per-rule counters count from this apply on (`stats --unused`).
    super::stats::reset_rule_counters(pins, &image)?;

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

/// The generation the next apply will get. The caller holds the lock, so
/// it stays true until that apply (used to start the rollback watchdog
/// before the swap).
pub fn next_generation_of(pins: &PinDir, _lock: &PinLock) -> Result<u32> {
    let mut maps = Maps::open(pins)?;
    repair_maps(&mut maps, pins)?;
    Ok(next_generation(maps.runtime()?.generation))
}

/// The confirmation the live policy awaits, if any.
pub fn pending(pins: &PinDir) -> Result<Option<Pending>> {
    Ok(live_pending(pins)?.1)
}

/// The runtime generation and the confirmation the live policy awaits.
pub fn live_pending(pins: &PinDir) -> Result<(u32, Option<Pending>)> {
    let maps = Maps::open(pins)?;
    let generation = maps.runtime()?.generation;
    let pending = match maps.active_set()? {
        Some(set) => read_pending(&maps, set)?,
        None => None,
    };
    Ok((generation, pending))
}

/// `segfw policy confirm`: the live policy stays; its pending
/// confirmation is removed, so the watchdog leaves it alone.
pub fn confirm(pins: &PinDir, _lock: &PinLock) -> Result<Pending, ApplyError> {
    let nothing = || ApplyError::NothingPending {
        pin_dir: pins.root().display().to_string(),
    };
    let maps = Maps::open(pins)?;
    let set = maps.active_set()?.ok_or_else(nothing)?;
    let pending = read_pending(&maps, set)?.ok_or_else(nothing)?;
    delete_pending(pins, set)?;
    Ok(pending)
}

/// The watchdog's rollback: if the live policy still awaits the
/// confirmation (`generation`, `deadline_ms`), makes the previous set live
/// again under a new generation (so every tracked flow is re-checked
/// against it) with its runtime settings. Returns None when there is
/// nothing to roll back (confirmed, rolled back, or replaced since).
pub fn rollback_if_pending(
    pins: &PinDir,
    _lock: &PinLock,
    generation: u32,
    deadline_ms: u64,
) -> Result<Option<RollbackReport>, ApplyError> {
    let mut maps = Maps::open(pins)?;
    repair_maps(&mut maps, pins)?;
    let runtime = maps.runtime()?;
    let Some(live) = maps.active_set()? else {
        return Ok(None);
    };
    let pending = match read_pending(&maps, live)? {
        Some(p) if p.generation == generation && p.deadline_ms == deadline_ms => p,
        _ => return Ok(None),
    };
    if runtime.generation != generation {
        return Ok(None);
    }
    let set = pending.previous_set;
    let new_generation = next_generation(runtime.generation);
    let (trie, meta) = (&maps.policy[set], &maps.meta[set]);
    if pending.previous_generation == 0 {
        // No policy before: an empty trie has no CONFIG entry, and the
        // datapath passes everything without one.
        trie.clear()?;
        meta.clear()?;
    } else {
        let key = config_key();
        let mut config = match trie.get::<_, segfw_policy_value>(&key)? {
            Some(c) if c.id == pending.previous_generation => c,
            _ => {
                return Err(ApplyError::PreviousGone {
                    generation,
                    previous: pending.previous_generation,
                    set,
                })
            }
        };
        config.id = new_generation;
        trie.put(&key, &config)?;
        delete_pending(pins, set)?;
    }
    let settings = read_runtime_settings(meta)?.unwrap_or(settings_of(&runtime));
    maps.policy_outer.set_inner(0, &maps.policy[set])?;
    maps.runtime
        .put(&0u32, &next_runtime(&settings, new_generation, set))?;
    repin_active(&mut maps, pins, set)?;
    delete_pending(pins, live)?;
    Ok(Some(RollbackReport {
        rolled_back: generation,
        generation: new_generation,
        restored: pending.previous_generation,
        active_set: set,
    }))
}

/// The set to fill: A before the first apply, else the one not live.
fn idle_set(live: Option<usize>) -> usize {
    live.map_or(0, |set| 1 - set)
}

/// Test-only fault injection, compiled into debug builds only:
/// `SEGFW_TEST_KILL_AT=<step>` makes this process SIGKILL itself at that
/// step of an apply (cleared, mid-fill, filled, swapped, runtime,
/// repin-tmp, repinned), so tests can check that every interruption
/// leaves a consistent datapath that the next command repairs.
pub fn fault_point(step: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("SEGFW_TEST_KILL_AT").is_ok_and(|s| s == step) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    #[cfg(not(debug_assertions))]
    let _ = step;
}

/// What an interrupted apply (or a hand-edited pin dir) left behind:
/// empty when the instance is consistent. `status` reports it; every
/// mutating command repairs it first ([`repair`]).
pub fn damage(pins: &PinDir) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for iface in pins.empty_link_dirs()? {
        found.push(format!(
            "links/{iface} holds no pin: its attachments were removed by hand and {iface} is \
             not filtered; run `segfw attach {iface}` (or `segfw detach {iface}`)"
        ));
    }
    let missing = super::loader::missing_map_pins(pins);
    for name in &missing {
        found.push(format!(
            "maps/{name} is missing (removed by hand?); `segfw attach IFACE` re-pins it"
        ));
    }
    if !missing.is_empty() {
        return Ok(found);
    }
    let maps = Maps::open(pins)?;
    if let Some((set, generation)) = maps.torn()? {
        found.push(format!(
            "interrupted apply: set {} (generation {generation}) is swapped in but the runtime \
             map still names generation {}; tracked flows are not re-checked until the next \
             `segfw policy apply` or `segfw attach` repairs it",
            set_name(set),
            maps.runtime()?.generation
        ));
    }
    if let Some(set) = maps.active_set()? {
        for (pin, map) in [
            (ACTIVE_POLICY_PIN, &maps.policy[set]),
            (ACTIVE_META_PIN, &maps.meta[set]),
        ] {
            if pinned_map_id(&pins.map(pin)) != map.id() {
                found.push(format!(
                    "maps/{pin} does not show the live set {} (interrupted apply or removed \
                     by hand); the next apply or attach re-pins it",
                    set_name(set)
                ));
            }
        }
    }
    for pin in REPINNED {
        let tmp = pins.map(&format!("{pin}{REPIN_SUFFIX}"));
        if tmp.exists() {
            found.push(format!(
                "{} is left from an interrupted re-pin; the next apply or attach removes it",
                tmp.display()
            ));
        }
    }
    Ok(found)
}

/// The pins that `repin` replaces (and may leave a temporary of if killed).
const REPINNED: [&str; 6] = [
    ACTIVE_POLICY_PIN,
    ACTIVE_META_PIN,
    SET_PINS[0].0,
    SET_PINS[0].1,
    SET_PINS[1].0,
    SET_PINS[1].1,
];

/// Repairs what [`damage`] reports. The caller holds the instance lock.
pub fn repair(pins: &PinDir, _lock: &PinLock) -> Result<()> {
    let mut maps = Maps::open(pins)?;
    repair_maps(&mut maps, pins)
}

/// Runtime follows the set policy_outer[0] points at (the datapath's
/// truth), the second pins show it, and re-pin leftovers go.
fn repair_maps(maps: &mut Maps, pins: &PinDir) -> Result<()> {
    if let Some((set, generation)) = maps.torn()? {
        let runtime = maps.runtime()?;
        let settings = read_runtime_settings(&maps.meta[set])?.unwrap_or(settings_of(&runtime));
        let generation = if generation == 0 {
            runtime.generation
        } else {
            generation
        };
        maps.runtime
            .put(&0u32, &next_runtime(&settings, generation, set))?;
    }
    if let Some(set) = maps.active_set()? {
        let stale = pinned_map_id(&pins.map(ACTIVE_POLICY_PIN)) != maps.policy[set].id()
            || pinned_map_id(&pins.map(ACTIVE_META_PIN)) != maps.meta[set].id();
        if stale {
            repin_active(maps, pins, set)?;
        }
    }
    for pin in REPINNED {
        super::pins::remove_pin(&pins.map(&format!("{pin}{REPIN_SUFFIX}")))?;
    }
    Ok(())
}

/// The id of the map pinned at `path`, None if nothing is.
fn pinned_map_id(path: &std::path::Path) -> Option<u32> {
    let map = MapHandle::from_pinned_path_with_file_flags(path, libbpf_sys::BPF_F_RDONLY).ok()?;
    map.info().ok().map(|info| info.info.id)
}

/// Generations count from 1; 0 means "no policy" and is skipped on wrap.
pub fn next_generation(current: u32) -> u32 {
    current.checked_add(1).unwrap_or(1)
}

/// The generation in set `set`'s CONFIG entry; 0 if it holds no policy.
fn live_generation(maps: &Maps, set: usize) -> Result<u32> {
    let config: Option<segfw_policy_value> = maps.policy[set].get(&config_key())?;
    Ok(config.map_or(0, |c| c.id))
}

fn pending_key() -> segfw_meta_key {
    segfw_meta_key {
        kind: segfw_key_kind::SEGFW_KIND_CONFIG.0,
        id: META_CONFIG_PENDING,
    }
}

fn read_pending(maps: &Maps, set: usize) -> Result<Option<Pending>> {
    let value = maps.meta[set].get(&pending_key())?;
    Ok(value.and_then(|v| Pending::parse(&meta_text(&v))))
}

/// Removes set `set`'s pending record, if it has one.
fn delete_pending(pins: &PinDir, set: usize) -> Result<()> {
    let name = SET_PINS[set].1;
    let path = pins.map(name);
    let map = MapHandle::from_pinned_path(&path)
        .map_err(|source| DatapathError::OpenPinned { path, source })?;
    match map.delete(bytes_of(&pending_key())) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DatapathError::MapIo {
            map: name.to_string(),
            op: "delete from",
            source,
        }),
    }
}

fn set_name(set: usize) -> &'static str {
    if set == 0 {
        "a"
    } else {
        "b"
    }
}

/// `tcp=3600 udp=60 icmp=30 other=60 events=1000`
fn runtime_text(s: &RuntimeSettings) -> String {
    format!(
        "tcp={} udp={} icmp={} other={} events={}",
        s.tcp_timeout_s, s.udp_timeout_s, s.icmp_timeout_s, s.other_timeout_s, s.events_per_sec
    )
}

fn parse_runtime_text(text: &str, base: RuntimeSettings) -> Option<RuntimeSettings> {
    let mut s = base;
    for field in text.split_whitespace() {
        let (key, value) = field.split_once('=')?;
        let value: u32 = value.parse().ok()?;
        match key {
            "tcp" => s.tcp_timeout_s = value,
            "udp" => s.udp_timeout_s = value,
            "icmp" => s.icmp_timeout_s = value,
            "other" => s.other_timeout_s = value,
            "events" => s.events_per_sec = value,
            _ => {}
        }
    }
    Some(s)
}

/// The runtime settings recorded with a set (sets filled by an older
/// segfw have none).
fn read_runtime_settings(meta: &PinnedMap) -> Result<Option<RuntimeSettings>> {
    let key = segfw_meta_key {
        kind: segfw_key_kind::SEGFW_KIND_CONFIG.0,
        id: META_CONFIG_RUNTIME,
    };
    let value = meta.get(&key)?;
    let base = settings_of(&segfw_runtime::default());
    Ok(value.and_then(|v| parse_runtime_text(&meta_text(&v), base)))
}

fn settings_of(runtime: &segfw_runtime) -> RuntimeSettings {
    RuntimeSettings {
        conntrack_max_entries: 0,
        tcp_timeout_s: runtime.tcp_timeout_s,
        udp_timeout_s: runtime.udp_timeout_s,
        icmp_timeout_s: runtime.icmp_timeout_s,
        other_timeout_s: runtime.other_timeout_s,
        events_per_sec: runtime.events_per_sec,
    }
}

/// Builds set `set` anew: fresh trie and meta maps, shaped like the old
/// ones, are filled and then pinned over the set's pins. The datapath does
/// not read the idle set, so nothing it sees changes until the swap. (A new
/// map costs nothing to empty; deleting the old set's entries cost as much
/// as writing the new ones. The kernel frees the old maps once unpinned.)
fn replace_set(
    maps: &mut Maps,
    pins: &PinDir,
    set: usize,
    image: &PolicyImage,
    source: &str,
    sha256: &str,
    extra: &[(segfw_meta_key, segfw_meta_value)],
) -> Result<()> {
    let mut trie = maps.policy[set].empty_twin()?;
    let mut meta = maps.meta[set].empty_twin()?;
    fault_point("created");
    let config = segfw_key_kind::SEGFW_KIND_CONFIG;
    let mut names = image.meta.clone();
    names.push(meta_entry(config, META_CONFIG_SHA256, sha256));
    names.push(meta_entry(config, META_CONFIG_PATH, source));
    names.extend_from_slice(extra);
    fill_in_parallel(&trie, &image.trie, &meta, &names)?;
    let (trie_pin, meta_pin) = SET_PINS[set];
    trie.repin(&pins.map(trie_pin))?;
    meta.repin(&pins.map(meta_pin))?;
    maps.policy[set] = trie;
    maps.meta[set] = meta;
    Ok(())
}

/// One piece of a set's fill (one batch syscall), small enough that threads
/// share the fill evenly.
enum Fill<'a> {
    Trie(&'a [(segfw_policy_key, segfw_policy_value)]),
    Meta(&'a [(segfw_meta_key, segfw_meta_value)]),
}

/// Writes both maps of a set on every CPU. The trie's lock serializes its
/// inserts only in part (each insert's syscall work, copying and allocation
/// run outside it), and the meta hash locks per bucket; pieces of the two
/// alternate so that one thread fills the trie while another fills meta.
fn fill_in_parallel(
    trie: &PinnedMap,
    trie_entries: &[(segfw_policy_key, segfw_policy_value)],
    meta: &PinnedMap,
    meta_entries: &[(segfw_meta_key, segfw_meta_value)],
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

/// Applies `image` to a freshly loaded, unpinned datapath (BPF_PROG_TEST_RUN
/// tests and benchmarks): set A is emptied and filled, swapped in, and the
/// runtime map written, in the order `apply` follows.
pub fn apply_to_skeleton(
    skel: &crate::skel::SegfwSkel<'_>,
    image: &PolicyImage,
    generation: u32,
) -> libbpf_rs::Result<()> {
    use std::os::fd::{AsFd, AsRawFd};

    let image = image.clone().with_generation(generation);
    let trie = &skel.maps.policy_a;
    let stale: Vec<Vec<u8>> = trie.keys().collect();
    for key in stale {
        trie.delete(&key)?;
    }
    for (k, v) in &image.trie {
        trie.update(bytes_of(k), bytes_of(v), libbpf_rs::MapFlags::ANY)?;
    }
    let fd = trie.as_fd().as_raw_fd() as u32;
    skel.maps.policy_outer.update(
        &0u32.to_ne_bytes(),
        &fd.to_ne_bytes(),
        libbpf_rs::MapFlags::ANY,
    )?;
    let runtime = next_runtime(&image.runtime, generation, 0);
    skel.maps.runtime.update(
        &0u32.to_ne_bytes(),
        bytes_of(&runtime),
        libbpf_rs::MapFlags::ANY,
    )
}

fn next_runtime(settings: &RuntimeSettings, generation: u32, set: usize) -> segfw_runtime {
    segfw_runtime {
        generation,
        tcp_timeout_s: settings.tcp_timeout_s,
        udp_timeout_s: settings.udp_timeout_s,
        icmp_timeout_s: settings.icmp_timeout_s,
        other_timeout_s: settings.other_timeout_s,
        events_per_sec: settings.events_per_sec,
        active_set: set as u32,
        reserved: 0,
    }
}

/// maps/policy and maps/meta: second pins of the live set, for bpftool.
fn repin_active(maps: &mut Maps, pins: &PinDir, set: usize) -> Result<()> {
    maps.policy[set].repin(&pins.map(ACTIVE_POLICY_PIN))?;
    maps.meta[set].repin(&pins.map(ACTIVE_META_PIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_apply_fills_a_then_sets_alternate() {
        assert_eq!(idle_set(None), 0);
        assert_eq!(idle_set(Some(0)), 1);
        assert_eq!(idle_set(Some(1)), 0);
    }

    #[test]
    fn generation_skips_zero_on_wrap() {
        assert_eq!(next_generation(0), 1);
        assert_eq!(next_generation(41), 42);
        assert_eq!(next_generation(u32::MAX), 1);
    }

    #[test]
    fn pending_record_round_trips_and_fits_a_meta_value() {
        let pending = Pending {
            generation: u32::MAX,
            deadline_ms: u64::MAX,
            previous_set: 1,
            previous_generation: u32::MAX - 1,
        };
        let text = pending.to_text();
        assert!(text.len() < 128, "{text:?} does not fit segfw_meta_value");
        assert_eq!(Pending::parse(&text), Some(pending));
        assert_eq!(Pending::parse("generation=3 deadline_ms=9"), None);
        assert_eq!(
            Pending::parse("generation=3 deadline_ms=9 previous_set=2 previous_generation=2"),
            None,
            "a set index other than 0 or 1 is not a record"
        );
    }

    #[test]
    fn runtime_settings_round_trip() {
        let settings = RuntimeSettings {
            conntrack_max_entries: 0,
            tcp_timeout_s: 3600,
            udp_timeout_s: 61,
            icmp_timeout_s: 30,
            other_timeout_s: 59,
            events_per_sec: 1000,
        };
        let base = settings_of(&segfw_runtime::default());
        assert_eq!(
            parse_runtime_text(&runtime_text(&settings), base),
            Some(settings)
        );
    }
}
