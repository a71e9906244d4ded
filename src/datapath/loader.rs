//! Loads the skeleton once per pin dir and pins its maps and programs; later
//! commands reuse the pinned programs, so their ids never change.
use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapHandle, ProgramHandle};

use super::pins::{remove_pin, restrict_pin, PinDir, MAP_NAMES, RECORD_MAPS};
use super::{DatapathError, Direction, Result};
use crate::skel::SegfwSkelBuilder;

/// The two pinned programs of an instance.
#[derive(Debug)]
pub struct Programs {
    pub ingress: ProgramHandle,
    pub egress: ProgramHandle,
}

impl Programs {
    /// Opens the pinned programs (progs/ingress, progs/egress).
    pub fn open(pins: &PinDir) -> Result<Self> {
        super::abi::require_compatible(pins)?;
        Ok(Programs {
            ingress: open_pinned_program(pins, Direction::Ingress)?,
            egress: open_pinned_program(pins, Direction::Egress)?,
        })
    }

    pub fn get(&self, dir: Direction) -> &ProgramHandle {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// What `load_or_reuse` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// True if this call loaded the programs; false if it reused pinned ones.
    pub loaded: bool,
    /// Size of the conntrack map in use.
    pub conntrack_max_entries: u32,
    /// The size asked for when it differs from the pinned map's size (which
    /// only changes after `segfw uninstall` and a new attach).
    pub conntrack_size_ignored: Option<u32>,
    /// Map pins that were missing and what was done about each.
    pub repaired: Vec<String>,
}

/// Loads the datapath into `pins` unless it is pinned there already, then
/// opens the pinned programs. `conntrack_max_entries` sizes the conntrack
/// map when it is created (None: the compiled-in default).
pub fn load_or_reuse(
    pins: &PinDir,
    conntrack_max_entries: Option<u32>,
) -> Result<(Programs, LoadReport)> {
    let loaded = !pins.is_installed()?;
    if loaded {
        load(pins, conntrack_max_entries)?;
    }
    let programs = Programs::open(pins)?;
    let repaired = repin_missing_maps(pins, &programs)?;
    let in_use = pinned_conntrack_size(pins)?;
    let report = LoadReport {
        loaded,
        conntrack_max_entries: in_use,
        conntrack_size_ignored: conntrack_max_entries.filter(|wanted| *wanted != in_use),
        repaired,
    };
    Ok((programs, report))
}

/// Opens the skeleton, pins every map (libbpf reuses maps already pinned),
/// loads (one object: the attached programs and the explain program share
/// every map), and pins the three programs. The skeleton is dropped
/// afterwards: the pins keep maps and programs alive.
fn load(pins: &PinDir, conntrack_max_entries: Option<u32>) -> Result<()> {
    let mut storage = MaybeUninit::uninit();
    let mut open = SegfwSkelBuilder::default()
        .open(&mut storage)
        .map_err(DatapathError::OpenSkeleton)?;
    // A map pinned by an earlier, interrupted load keeps its size: libbpf
    // only reuses a pinned map whose definition matches.
    let ct_size = match pinned_conntrack_size(pins) {
        Ok(size) => Some(size),
        Err(_) => conntrack_max_entries,
    };
    if let Some(size) = ct_size {
        open.maps
            .conntrack
            .set_max_entries(size)
            .map_err(|source| prepare_err("conntrack", source))?;
    }
    if let (Some(version), Some(rodata)) = (
        super::faults::abi_version_override(),
        open.maps.rodata_data.as_deref_mut(),
    ) {
        rodata.segfw_abi_version = version;
    }
    set_pin_paths(&mut open, pins)?;
    let skel = open.load().map_err(|source| DatapathError::Load {
        pin_dir: pins.root().to_path_buf(),
        source,
    })?;
    for name in MAP_NAMES {
        restrict_pin(&pins.map(name))?;
    }
    // explain first: the attached programs' pins mark the instance as
    // installed (PinDir::is_installed), so an interrupted load is redone.
    pin_program(&pins.explain_prog(), &skel.progs.segfw_explain)?;
    pin_program(&pins.prog(Direction::Ingress), &skel.progs.segfw_ingress)?;
    pin_program(&pins.prog(Direction::Egress), &skel.progs.segfw_egress)?;
    Ok(())
}

/// Gives every map of maps.h its pin path; the internal .rodata map (build
/// constants, frozen by libbpf at load) is not pinned.
fn set_pin_paths(open: &mut crate::skel::OpenSegfwSkel<'_>, pins: &PinDir) -> Result<()> {
    let maps = &mut open.maps;
    // Sized by MAP_NAMES so that a map added to one list but not the other
    // does not compile.
    let named: [(&str, &mut libbpf_rs::OpenMapMut<'_>); MAP_NAMES.len()] = [
        ("policy_a", &mut maps.policy_a),
        ("policy_b", &mut maps.policy_b),
        ("policy_outer", &mut maps.policy_outer),
        ("meta_a", &mut maps.meta_a),
        ("meta_b", &mut maps.meta_b),
        ("runtime", &mut maps.runtime),
        ("conntrack", &mut maps.conntrack),
        ("flow_cache", &mut maps.flow_cache),
        ("frags", &mut maps.frags),
        ("rule_stats", &mut maps.rule_stats),
        ("reason_stats", &mut maps.reason_stats),
        ("events", &mut maps.events),
        ("ratelimit", &mut maps.ratelimit),
        ("link_records", &mut maps.link_records),
        ("daemon_record", &mut maps.daemon_record),
        ("set_records", &mut maps.set_records),
    ];
    for (name, map) in named {
        debug_assert!(MAP_NAMES.contains(&name));
        map.set_pin_path(pins.map(name))
            .map_err(|source| prepare_err(name, source))?;
    }
    Ok(())
}

fn prepare_err(map: &str, source: libbpf_rs::Error) -> DatapathError {
    DatapathError::PrepareMap {
        map: map.to_string(),
        source,
    }
}

/// Pins a freshly loaded program at `path` (progs/<name>), replacing a
/// stale pin left by an interrupted load.
fn pin_program(path: &std::path::Path, prog: &libbpf_rs::ProgramMut<'_>) -> Result<()> {
    let path = path.to_path_buf();
    remove_pin(&path)?;
    let handle = ProgramHandle::try_from(prog).map_err(|source| DatapathError::OpenPinned {
        path: path.clone(),
        source,
    })?;
    handle.pin(&path).map_err(|source| DatapathError::Pin {
        path: path.clone(),
        source: std::io::Error::other(source),
    })?;
    restrict_pin(&path)
}

fn open_pinned_program(pins: &PinDir, dir: Direction) -> Result<ProgramHandle> {
    let path = pins.prog(dir);
    ProgramHandle::from_pinned_path(&path)
        .map_err(|source| DatapathError::OpenPinned { path, source })
}

/// Map pins of the datapath that are missing (removed by hand).
pub fn missing_map_pins(pins: &PinDir) -> Vec<&'static str> {
    MAP_NAMES
        .into_iter()
        .filter(|name| !pins.map(name).exists())
        .collect()
}

/// Re-pins maps removed by hand while the programs still hold them: found
/// by name among the maps the pinned programs use, plus the live policy
/// set in policy_outer[0]. The idle set's maps (policy_a/b, meta_a/b that
/// are not live) hold nothing the datapath reads: a missing one is created
/// again, empty, with its twin's layout. Returns what it did, one line each.
pub fn repin_missing_maps(pins: &PinDir, programs: &Programs) -> Result<Vec<String>> {
    let missing = missing_map_pins(pins);
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<u32> = Vec::new();
    let wanted = [programs.ingress.id(), programs.egress.id()];
    let query = libbpf_rs::query::ProgInfoQueryOptions::default().include_map_ids(true);
    for info in libbpf_rs::query::ProgInfoIter::with_query_opts(query) {
        if wanted.contains(&info.id) {
            ids.extend(&info.map_ids);
        }
    }
    // policy_outer through the programs, in case its pin is gone too.
    let outer = ids
        .iter()
        .filter_map(|id| MapHandle::from_map_id(*id).ok())
        .find(|map| map.name().to_str() == Some("policy_outer"));
    if let Some(outer) = outer {
        if let Ok(Some(inner)) = outer.lookup(&0u32.to_ne_bytes(), libbpf_rs::MapFlags::ANY) {
            if let Ok(bytes) = <[u8; 4]>::try_from(inner.as_slice()) {
                ids.push(u32::from_ne_bytes(bytes));
            }
        }
    }
    let from_kernel = |name: &str| {
        ids.iter()
            .filter_map(|id| MapHandle::from_map_id(*id).ok())
            .find(|map| map.name().to_str() == Some(name))
    };
    // Maps still held by the programs go back first: an idle set's map is
    // created again like its live twin, which must be pinned by then.
    let (held, lost): (Vec<&str>, Vec<&str>) = missing
        .into_iter()
        .partition(|name| from_kernel(name).is_some());
    let mut done = Vec::new();
    for name in held {
        if let Some(map) = from_kernel(name) {
            pin_repaired(pins, name, map)?;
            done.push(format!("maps/{name}: re-pinned from the loaded datapath"));
        }
    }
    for name in lost {
        let (map, how) = match recreate_idle(pins, name)? {
            Some(map) => (
                map,
                "created again, empty (the idle policy set)".to_string(),
            ),
            None if RECORD_MAPS.contains(&name) => (
                super::records::create_empty(name)?,
                "created again, empty (records of userspace only)".to_string(),
            ),
            None if name.starts_with("meta_") => (
                create_empty_meta(name)?,
                "created again, empty: it held the names of the live policy's rules and \
                 segments, which the kernel does not keep; the live policy \
                 keeps enforcing, and the next `segfw policy apply FILE` names it again"
                    .to_string(),
            ),
            None => {
                return Err(DatapathError::MapContent {
                    map: name.to_string(),
                    what: format!(
                        "{} was removed and no loaded program holds it, so it cannot be \
                         repaired; start clean: segfw --pin-dir {} uninstall, then segfw \
                         --pin-dir {} attach IFACE --policy FILE (the interfaces are \
                         unfiltered in between)",
                        pins.map(name).display(),
                        pins.root().display(),
                        pins.root().display()
                    ),
                })
            }
        };
        pin_repaired(pins, name, map)?;
        done.push(format!("maps/{name}: {how}"));
    }
    Ok(done)
}

fn pin_repaired(pins: &PinDir, name: &str, mut map: MapHandle) -> Result<()> {
    let path = pins.map(name);
    map.pin(&path).map_err(|source| DatapathError::Pin {
        path: path.clone(),
        source: std::io::Error::other(source),
    })?;
    restrict_pin(&path)
}

/// A new empty meta map (names of one policy set) with the layout of
/// maps.h, for when neither set's meta is left to copy (no BTF: bpftool
/// dumps it as hex until the next fresh load).
fn create_empty_meta(name: &str) -> Result<MapHandle> {
    use crate::skel::types::{segfw_limits, segfw_meta_key, segfw_meta_value};
    let opts = libbpf_sys::bpf_map_create_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as _,
        map_flags: libbpf_sys::BPF_F_NO_PREALLOC,
        ..Default::default()
    };
    MapHandle::create(
        libbpf_rs::MapType::Hash,
        Some(name),
        std::mem::size_of::<segfw_meta_key>() as u32,
        std::mem::size_of::<segfw_meta_value>() as u32,
        segfw_limits::SEGFW_META_MAX_ENTRIES.0,
        &opts,
    )
    .map_err(|source| prepare_err(name, source))
}

/// A new empty map for policy_a/b or meta_a/b when that set is not live,
/// with its twin's layout (so policy_outer accepts a trie of it later).
fn recreate_idle(pins: &PinDir, name: &str) -> Result<Option<MapHandle>> {
    let twin = match name {
        "policy_a" => "policy_b",
        "policy_b" => "policy_a",
        "meta_a" => "meta_b",
        "meta_b" => "meta_a",
        _ => return Ok(None),
    };
    let set = u32::from(name.ends_with("_b"));
    let runtime = MapHandle::from_pinned_path(pins.map("runtime")).ok();
    let live = runtime
        .and_then(|r| r.lookup(&0u32.to_ne_bytes(), libbpf_rs::MapFlags::ANY).ok())
        .flatten()
        .and_then(|v| crate::skel::from_bytes::<crate::skel::types::segfw_runtime>(&v))
        .filter(|rt| rt.generation != 0)
        .map(|rt| rt.active_set & 1);
    if live == Some(set) {
        return Ok(None);
    }
    let path = pins.map(twin);
    if !path.exists() {
        // Both sets' pins are gone (meta: nothing holds them); the caller
        // creates it from the layout instead.
        return Ok(None);
    }
    let twin = MapHandle::from_pinned_path(&path)
        .map_err(|source| DatapathError::OpenPinned { path, source })?;
    let map = super::maps::create_like(&twin, name).map_err(|source| prepare_err(name, source))?;
    Ok(Some(map))
}

/// Where the kernel says whether users without CAP_BPF may use bpf(2).
pub const UNPRIVILEGED_BPF_SYSCTL: &str = "/proc/sys/kernel/unprivileged_bpf_disabled";

/// The warning segfw prints when unprivileged BPF is enabled, given the
/// sysctl's content (0: enabled; 1, 2: disabled). Pins are 0600 either
/// way, but an unprivileged user could then load programs of their own.
pub fn unprivileged_bpf_warning(sysctl: &str) -> Option<String> {
    (sysctl.trim() == "0").then(|| {
        "warning: unprivileged BPF is enabled (kernel.unprivileged_bpf_disabled = 0): any user \
         can load BPF programs on this host; segfw's pins stay root-only, but set \
         `sysctl kernel.unprivileged_bpf_disabled=2` (or 1) to close it"
            .to_string()
    })
}

/// The warning for this host, if any.
pub fn host_unprivileged_bpf_warning() -> Option<String> {
    std::fs::read_to_string(UNPRIVILEGED_BPF_SYSCTL)
        .ok()
        .and_then(|v| unprivileged_bpf_warning(&v))
}

/// max_entries of the pinned conntrack map.
fn pinned_conntrack_size(pins: &PinDir) -> Result<u32> {
    let path = pins.map("conntrack");
    let map = MapHandle::from_pinned_path(&path)
        .map_err(|source| DatapathError::OpenPinned { path, source })?;
    Ok(map.max_entries())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_only_when_unprivileged_bpf_is_enabled() {
        assert!(unprivileged_bpf_warning("0\n").is_some());
        assert!(unprivileged_bpf_warning("1\n").is_none());
        assert!(unprivileged_bpf_warning("2\n").is_none());
        assert!(unprivileged_bpf_warning("").is_none());
    }
}
