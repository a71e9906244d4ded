//! Confirm and rollback of `policy apply --confirm SECS`: the set that was
//! live before stays intact as the idle set, so rolling back is one more
//! swap. The pending confirmation is recorded in the record of the set it
//! guards (`maps/set_records`, field `pending`, [`Pending`]); it is live
//! exactly while that set is.
use super::apply::ApplyError;
use super::instance::Instance;
use super::maps::Maps;
use super::pins::PinDir;
use super::set_records::Pending;
use super::sets::{
    awaiting_confirmation, delete_pending, next_generation, next_runtime, read_pending,
    read_runtime_settings, repin_active, settings_of,
};
use super::Result;
use crate::policy::image::config_key;
use crate::skel::types::{segfw_policy_value, segfw_set_record};

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

/// The runtime generation and the confirmation the live policy awaits.
pub fn live_pending(pins: &PinDir) -> Result<(u32, Option<Pending>)> {
    let maps = Maps::open(pins)?;
    Ok((maps.runtime()?.generation, awaiting_confirmation(&maps)?))
}

/// `segfw policy confirm`: the live policy stays; its pending
/// confirmation is removed, so the watchdog leaves it alone.
pub fn confirm(instance: &mut Instance) -> Result<Pending, ApplyError> {
    let nothing = || ApplyError::NothingPending {
        pin_dir: instance.pins.root().display().to_string(),
    };
    let maps = &instance.maps;
    let set = maps.active_set()?.ok_or_else(nothing)?;
    let pending = read_pending(maps, set)?.ok_or_else(nothing)?;
    delete_pending(maps, set)?;
    Ok(pending)
}

/// The watchdog's rollback: if the live policy still awaits the
/// confirmation (`generation`, `deadline_ms`), makes the previous set live
/// again under a new generation (so every tracked flow is re-checked
/// against it) with its runtime settings. Returns None when there is
/// nothing to roll back (confirmed, rolled back, or replaced since).
pub fn rollback_if_pending(
    instance: &mut Instance,
    generation: u32,
    deadline_ms: u64,
) -> Result<Option<RollbackReport>, ApplyError> {
    instance.repair()?;
    let Instance { pins, maps, .. } = instance;
    let runtime = maps.runtime()?;
    let Some(live) = maps.active_set()? else {
        return Ok(None);
    };
    let pending = match read_pending(maps, live)? {
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
        maps.set_records
            .put(&(set as u32), &segfw_set_record::default())?;
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
        delete_pending(maps, set)?;
    }
    let settings = read_runtime_settings(maps, set)?.unwrap_or(settings_of(&runtime));
    maps.policy_outer.set_inner(0, &maps.policy[set])?;
    maps.runtime
        .put(&0u32, &next_runtime(&settings, new_generation, set))?;
    repin_active(maps, pins, set)?;
    delete_pending(maps, live)?;
    Ok(Some(RollbackReport {
        rolled_back: generation,
        generation: new_generation,
        restored: pending.previous_generation,
        active_set: set,
    }))
}
