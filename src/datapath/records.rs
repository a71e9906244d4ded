//! Records an instance keeps about itself in its pin dir (bpffs holds only
//! BPF objects, so they are maps the datapath never reads): where each
//! attachment lives (`maps/link_records`) and which `segfw run` owns the
//! instance (`maps/daemon_record`). Layouts are in bpf/segfw_shared.h.
use std::mem::size_of;

use libbpf_rs::{MapCore, MapHandle, MapType};

use super::maps::PinnedMap;
use super::pins::PinDir;
use super::{DatapathError, Direction, Result};
use crate::skel::types::{segfw_daemon_record, segfw_link_key, segfw_link_record};

pub const LINK_RECORDS: &str = "link_records";
pub const DAEMON_RECORD: &str = "daemon_record";

/// The key of links/IFACE/DIR's record.
pub fn link_key(iface: &str, dir: Direction) -> segfw_link_key {
    let mut key = segfw_link_key {
        direction: dir as u32,
        ..Default::default()
    };
    copy_name(&mut key.iface, iface);
    key
}

/// The interface name a record key holds.
pub fn key_iface(key: &segfw_link_key) -> String {
    name_of(&key.iface)
}

/// Copies `name` into a NUL-padded C char field (the skeleton types C's
/// char as i8), truncated so that a NUL always ends it.
pub fn copy_name(field: &mut [i8], name: &str) {
    field.fill(0);
    let room = field.len().saturating_sub(1);
    for (slot, byte) in field.iter_mut().zip(name.bytes().take(room)) {
        *slot = byte as i8;
    }
}

/// The text of a NUL-padded C char field.
pub fn name_of(field: &[i8]) -> String {
    let bytes: Vec<u8> = field
        .iter()
        .map(|c| *c as u8)
        .take_while(|b| *b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// maps/link_records.
pub fn open_link_records(pins: &PinDir) -> Result<PinnedMap> {
    pins.require_installed()?;
    PinnedMap::open::<segfw_link_key, segfw_link_record>(pins, LINK_RECORDS)
}

/// maps/daemon_record.
pub fn open_daemon_record(pins: &PinDir) -> Result<PinnedMap> {
    pins.require_installed()?;
    PinnedMap::open::<u32, segfw_daemon_record>(pins, DAEMON_RECORD)
}

/// The record of links/IFACE/DIR, if the instance has one (None also
/// when maps/link_records itself is missing: an instance pinned by a segfw
/// without records, or a pin removed by hand).
pub fn link_record(
    pins: &PinDir,
    iface: &str,
    dir: Direction,
) -> Result<Option<segfw_link_record>> {
    if !pins.map(LINK_RECORDS).exists() {
        return Ok(None);
    }
    open_link_records(pins)?.get(&link_key(iface, dir))
}

/// Writes the record of links/IFACE/DIR (the caller keeps its flags).
pub fn put_link_record(
    pins: &PinDir,
    iface: &str,
    dir: Direction,
    record: &segfw_link_record,
) -> Result<()> {
    open_link_records(pins)?.put(&link_key(iface, dir), record)
}

/// Deletes the record of links/IFACE/DIR; one that is missing is fine.
pub fn delete_link_record(pins: &PinDir, iface: &str, dir: Direction) -> Result<()> {
    let path = pins.map(LINK_RECORDS);
    if !path.exists() {
        return Ok(());
    }
    // Opened for its layout check first: never delete from a foreign map.
    open_link_records(pins)?;
    let map = super::maps::open_pinned_map(&path).map_err(|source| DatapathError::OpenPinned {
        path: path.clone(),
        source,
    })?;
    match map.delete(crate::skel::bytes_of(&link_key(iface, dir))) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DatapathError::MapIo {
            map: LINK_RECORDS.to_string(),
            op: "delete from",
            source,
        }),
    }
}

/// A new, empty, unpinned record map `name` (for a pin removed by hand).
/// It has no BTF, so bpftool dumps it as hex until the next fresh load.
pub fn create_empty(name: &str) -> Result<MapHandle> {
    let (map_type, key, value, entries) = match name {
        LINK_RECORDS => (
            MapType::Hash,
            size_of::<segfw_link_key>(),
            size_of::<segfw_link_record>(),
            crate::skel::types::segfw_record_limits::SEGFW_MAX_LINK_RECORDS.0,
        ),
        DAEMON_RECORD => (
            MapType::Array,
            size_of::<u32>(),
            size_of::<segfw_daemon_record>(),
            1,
        ),
        other => {
            return Err(DatapathError::MapContent {
                map: other.to_string(),
                what: "is not a record map".to_string(),
            })
        }
    };
    let flags = libbpf_sys::BPF_F_RDONLY_PROG
        | if map_type == MapType::Hash {
            libbpf_sys::BPF_F_NO_PREALLOC
        } else {
            0
        };
    let opts = libbpf_sys::bpf_map_create_opts {
        sz: size_of::<libbpf_sys::bpf_map_create_opts>() as _,
        map_flags: flags,
        ..Default::default()
    };
    MapHandle::create(
        map_type,
        Some(name),
        key as u32,
        value as u32,
        entries,
        &opts,
    )
    .map_err(|source| DatapathError::PrepareMap {
        map: name.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_truncate_with_a_nul() {
        let key = link_key("eth0.100", Direction::Egress);
        assert_eq!(key_iface(&key), "eth0.100");
        assert_eq!(key.direction, Direction::Egress as u32);
        let long = link_key("a-very-long-interface-name", Direction::Ingress);
        assert_eq!(key_iface(&long), "a-very-long-int", "15 bytes and a NUL");
    }
}
