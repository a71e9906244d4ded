//! The two policy sets (A and B) of an instance: which one is live and
//! which idle, the generation counter, the records each set keeps (its
//! pending confirmation, its runtime settings), and the runtime map and
//! second pins that follow the live set.
use super::maps::Maps;
use super::pins::{PinDir, ACTIVE_META_PIN, ACTIVE_POLICY_PIN};
use super::set_records::{runtime_of, source_of, Pending};
use super::Result;
use crate::policy::image::{config_key, RuntimeSettings};
use crate::policy::view::{decode, PolicyView};
use crate::skel::types::{segfw_policy_value, segfw_runtime, segfw_set_record};

/// The set to fill: A before the first apply, else the one not live.
pub(crate) fn idle_set(live: Option<usize>) -> usize {
    live.map_or(0, |set| 1 - set)
}

/// Generations count from 1; 0 means "no policy" and is skipped on wrap.
pub fn next_generation(current: u32) -> u32 {
    current.checked_add(1).unwrap_or(1)
}

/// The generation in set `set`'s CONFIG entry; 0 if it holds no policy.
pub(crate) fn live_generation(maps: &Maps, set: usize) -> Result<u32> {
    let config: Option<segfw_policy_value> = maps.policy[set].get(&config_key())?;
    Ok(config.map_or(0, |c| c.id))
}

/// Set `set`'s record (all zero for a set never filled).
pub(crate) fn read_set_record(maps: &Maps, set: usize) -> Result<segfw_set_record> {
    Ok(maps.set_records.get(&(set as u32))?.unwrap_or_default())
}

pub(crate) fn read_pending(maps: &Maps, set: usize) -> Result<Option<Pending>> {
    Ok(Pending::from_record(&read_set_record(maps, set)?.pending))
}

/// The live policy, decoded, with the file it was applied from (its set's
/// record): what `status`, `policy show` and the daemon print.
pub fn live_view(maps: &Maps) -> Result<PolicyView> {
    let (trie, meta) = maps.live_policy()?;
    let mut view = decode(&trie, &meta);
    if let Some(set) = maps.active_set()? {
        (view.sha256, view.source) = source_of(&read_set_record(maps, set)?);
    }
    Ok(view)
}

/// The confirmation the live set awaits, if any.
pub fn awaiting_confirmation(maps: &Maps) -> Result<Option<Pending>> {
    match maps.active_set()? {
        Some(set) => read_pending(maps, set),
        None => Ok(None),
    }
}

/// Clears the pending confirmation in set `set`'s record (one update of
/// the record, whose other fields stay).
pub(crate) fn delete_pending(maps: &Maps, set: usize) -> Result<()> {
    let mut record = read_set_record(maps, set)?;
    if Pending::from_record(&record.pending).is_none() {
        return Ok(());
    }
    record.pending = Default::default();
    maps.set_records.put(&(set as u32), &record)
}

pub(crate) fn set_name(set: usize) -> &'static str {
    if set == 0 {
        "a"
    } else {
        "b"
    }
}

/// The runtime settings recorded with a set (none for a set never filled,
/// or whose record was lost with its pin).
pub(crate) fn read_runtime_settings(maps: &Maps, set: usize) -> Result<Option<RuntimeSettings>> {
    Ok(runtime_of(&read_set_record(maps, set)?))
}

pub(crate) fn settings_of(runtime: &segfw_runtime) -> RuntimeSettings {
    RuntimeSettings {
        conntrack_max_entries: 0,
        tcp_timeout_s: runtime.tcp_timeout_s,
        udp_timeout_s: runtime.udp_timeout_s,
        icmp_timeout_s: runtime.icmp_timeout_s,
        other_timeout_s: runtime.other_timeout_s,
        events_per_sec: runtime.events_per_sec,
    }
}

pub(crate) fn next_runtime(
    settings: &RuntimeSettings,
    generation: u32,
    set: usize,
) -> segfw_runtime {
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
pub(crate) fn repin_active(maps: &mut Maps, pins: &PinDir, set: usize) -> Result<()> {
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
}
