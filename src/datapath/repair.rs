//! Damage and repair: what an interrupted apply (or a hand-edited pin dir)
//! leaves behind, reported by `status` and mended by every mutating
//! command before it changes anything.
use libbpf_rs::{MapCore, MapHandle};

use super::maps::Maps;
use super::pins::{PinDir, ACTIVE_META_PIN, ACTIVE_POLICY_PIN, REPIN_SUFFIX, SET_PINS};
use super::sets::{next_runtime, read_runtime_settings, repin_active, set_name, settings_of};
use super::Result;

/// What an interrupted apply (or a hand-edited pin dir) left behind:
/// empty when the instance is consistent. `status` reports it; every
/// mutating command repairs it first (`Instance::repair`).
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

/// Repairs what [`damage`] reports: runtime follows the set policy_outer[0] points at (the datapath's
/// truth), the second pins show it, and re-pin leftovers go.
pub(crate) fn repair_maps(maps: &mut Maps, pins: &PinDir) -> Result<()> {
    if let Some((set, generation)) = maps.torn()? {
        let runtime = maps.runtime()?;
        let settings = read_runtime_settings(maps, set)?.unwrap_or(settings_of(&runtime));
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
