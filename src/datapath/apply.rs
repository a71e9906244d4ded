//! Atomic policy apply: fill the idle policy set (trie + names), then swap
//! it in with one update of policy_outer[0]. Programs are never reloaded.
use std::time::{Duration, Instant};

use super::maps::Maps;
use super::pins::{PinDir, PinLock, ACTIVE_META_PIN, ACTIVE_POLICY_PIN};
use super::Result;
use crate::policy::image::{meta_entry, PolicyImage};
use crate::policy::CheckedPolicy;
use crate::skel::types::{segfw_key_kind, segfw_runtime};

/// meta CONFIG ids (bpf/segfw_shared.h, struct segfw_meta_key).
pub const META_CONFIG_SHA256: u32 = 0;
pub const META_CONFIG_PATH: u32 = 1;

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
}

/// Applies a checked policy file. The caller holds the instance lock.
pub fn apply(pins: &PinDir, lock: &PinLock, policy: &CheckedPolicy) -> Result<ApplyReport> {
    let source = policy.path.display().to_string();
    apply_image(pins, lock, policy.image.clone(), &source, &policy.sha256)
}

/// Applies a compiled image; `source` and `sha256` name it in meta for
/// `status`. Until the swap nothing the datapath reads changes, so a
/// failure before it leaves the old policy enforcing.
pub fn apply_image(
    pins: &PinDir,
    _lock: &PinLock,
    image: PolicyImage,
    source: &str,
    sha256: &str,
) -> Result<ApplyReport> {
    let start = Instant::now();
    let mut maps = Maps::open(pins)?;
    let runtime = maps.runtime()?;
    let idle = idle_set(&runtime);
    let generation = next_generation(runtime.generation);
    let image = image.with_generation(generation);

    fill_set(&maps, idle, &image, source, sha256)?;
    // The swap: the kernel waits for running programs before returning, so
    // once it returns no packet still uses the old set.
    maps.policy_outer.set_inner(0, &maps.policy[idle])?;
    maps.runtime
        .put(&0u32, &next_runtime(&image, generation, idle))?;
    repin_active(&mut maps, pins, idle)?;
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
    })
}

/// The set to fill: A before the first apply, else the one not live.
fn idle_set(runtime: &segfw_runtime) -> usize {
    if runtime.generation == 0 {
        0
    } else {
        1 - (runtime.active_set as usize & 1)
    }
}

/// Generations count from 1; 0 means "no policy" and is skipped on wrap.
fn next_generation(current: u32) -> u32 {
    current.checked_add(1).unwrap_or(1)
}

/// Empties set `set` and writes the image's trie and names into it.
fn fill_set(
    maps: &Maps,
    set: usize,
    image: &PolicyImage,
    source: &str,
    sha256: &str,
) -> Result<()> {
    let (trie, meta) = (&maps.policy[set], &maps.meta[set]);
    trie.clear()?;
    meta.clear()?;
    trie.put_all(&image.trie)?;
    let config = segfw_key_kind::SEGFW_KIND_CONFIG;
    let mut names = image.meta.clone();
    names.push(meta_entry(config, META_CONFIG_SHA256, sha256));
    names.push(meta_entry(config, META_CONFIG_PATH, source));
    meta.put_all(&names)
}

fn next_runtime(image: &PolicyImage, generation: u32, set: usize) -> segfw_runtime {
    let settings = image.runtime;
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
        let mut runtime = segfw_runtime::default();
        assert_eq!(idle_set(&runtime), 0);
        runtime.generation = 1;
        runtime.active_set = 0;
        assert_eq!(idle_set(&runtime), 1);
        runtime.active_set = 1;
        assert_eq!(idle_set(&runtime), 0);
    }

    #[test]
    fn generation_skips_zero_on_wrap() {
        assert_eq!(next_generation(0), 1);
        assert_eq!(next_generation(41), 42);
        assert_eq!(next_generation(u32::MAX), 1);
    }
}
