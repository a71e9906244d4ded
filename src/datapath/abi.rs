//! The ABI version of a pinned instance: the `segfw_abi_version` constant
//! its programs were built with, read from their `.rodata` (frozen by libbpf
//! at load, so it cannot change while the programs live). A pin dir loaded
//! by a build with another ABI is refused by name before any of its maps is
//! read, instead of being misread through layouts that only look alike.
use std::mem::offset_of;

use libbpf_rs::{MapCore, MapFlags, MapHandle, ProgramHandle};

use super::pins::PinDir;
use super::{DatapathError, Direction, Result};
use crate::skel::types::{rodata, segfw_limits};

/// This build's ABI version (bpf/segfw_shared.h).
pub const ABI_VERSION: u32 = segfw_limits::SEGFW_ABI_VERSION.0;

/// The ABI version this process builds and expects: this build's, unless a
/// debug-build test stands in for another build (SEGFW_TEST_ABI_VERSION).
pub fn this_build() -> u32 {
    super::faults::abi_version_override().unwrap_or(ABI_VERSION)
}

/// The ABI version of the pinned programs; 0 for programs built before the
/// version was recorded (no `.rodata`).
pub fn pinned_abi_version(pins: &PinDir) -> Result<u32> {
    let path = pins.prog(Direction::Ingress);
    let prog = ProgramHandle::from_pinned_path(&path)
        .map_err(|source| DatapathError::open_pinned(path.clone(), source))?;
    let query = libbpf_rs::query::ProgInfoQueryOptions::default().include_map_ids(true);
    let info =
        libbpf_rs::query::ProgInfoIter::with_query_opts(query).find(|info| info.id == prog.id());
    let Some(info) = info else {
        return Ok(0);
    };
    for id in info.map_ids {
        let Ok(map) = MapHandle::from_map_id(id) else {
            continue;
        };
        if map.name().to_string_lossy().ends_with(".rodata") {
            return read_version(&map);
        }
    }
    Ok(0)
}

fn read_version(map: &MapHandle) -> Result<u32> {
    let io = |source| DatapathError::MapIo {
        map: ".rodata".to_string(),
        op: "read",
        source,
    };
    let bytes = map.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).map_err(io)?;
    let at = offset_of!(rodata, segfw_abi_version);
    Ok(bytes
        .and_then(|b| {
            b.get(at..at + 4)
                .map(|v| u32::from_ne_bytes(v.try_into().unwrap()))
        })
        .unwrap_or(0))
}

/// Fails with NotInstalled unless the instance is loaded, and with
/// AbiMismatch unless its programs have this build's ABI.
pub fn require_compatible(pins: &PinDir) -> Result<()> {
    pins.require_installed()?;
    let (pinned, ours) = (pinned_abi_version(pins)?, this_build());
    if pinned == ours {
        return Ok(());
    }
    Err(DatapathError::AbiMismatch {
        pin_dir: pins.root().to_path_buf(),
        pinned,
        ours,
    })
}
