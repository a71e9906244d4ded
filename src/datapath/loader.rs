//! Loads the skeleton once per pin dir and pins its maps and programs; later
//! commands reuse the pinned programs, so their ids never change.
use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapHandle, ProgramHandle};

use super::pins::{remove_pin, restrict_pin, PinDir, MAP_NAMES};
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
        pins.require_installed()?;
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
}

/// Loads the datapath into `pins` unless it is pinned there already, then
/// opens the pinned programs. `conntrack_max_entries` sizes the conntrack
/// map when it is created (None: the compiled-in default).
pub fn load_or_reuse(
    pins: &PinDir,
    conntrack_max_entries: Option<u32>,
) -> Result<(Programs, LoadReport)> {
    let loaded = !pins.is_installed();
    if loaded {
        load(pins, conntrack_max_entries)?;
    }
    let in_use = pinned_conntrack_size(pins)?;
    let report = LoadReport {
        loaded,
        conntrack_max_entries: in_use,
        conntrack_size_ignored: conntrack_max_entries.filter(|wanted| *wanted != in_use),
    };
    Ok((Programs::open(pins)?, report))
}

/// Opens the skeleton, pins every map (libbpf reuses maps already pinned),
/// loads, and pins both programs. The skeleton is dropped afterwards: the
/// pins keep maps and programs alive.
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
    set_pin_paths(&mut open, pins)?;
    let skel = open.load().map_err(|source| DatapathError::Load {
        pin_dir: pins.root().to_path_buf(),
        source,
    })?;
    for name in MAP_NAMES {
        restrict_pin(&pins.map(name))?;
    }
    pin_program(pins, Direction::Ingress, &skel.progs.segfw_ingress)?;
    pin_program(pins, Direction::Egress, &skel.progs.segfw_egress)?;
    Ok(())
}

/// Gives every map of maps.h its pin path; the internal .bss map (it only
/// anchors BTF types) is not pinned.
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

/// Pins a freshly loaded program at progs/<dir>, replacing a stale pin
/// left by an interrupted load.
fn pin_program(pins: &PinDir, dir: Direction, prog: &libbpf_rs::ProgramMut<'_>) -> Result<()> {
    let path = pins.prog(dir);
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
