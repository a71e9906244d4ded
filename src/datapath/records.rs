//! Records an instance keeps about itself in its pin dir (bpffs holds only
//! BPF objects, so they are maps the datapath never reads): where each
//! attachment lives (`maps/link_records`) and which `segfw run` owns the
//! instance (`maps/daemon_record`). Layouts are in bpf/segfw_shared.h.
use std::mem::size_of;
use std::path::Path;

use libbpf_rs::{MapHandle, MapType};

use super::maps::TypedMap;
use super::pins::PinDir;
use super::{DatapathError, Direction, Result};
use crate::skel::types::{
    segfw_daemon_record, segfw_link_key, segfw_link_record, segfw_record_limits,
};

pub const LINK_RECORDS: &str = "link_records";
pub const DAEMON_RECORD: &str = "daemon_record";
pub const SET_RECORDS: &str = "set_records";

/// The key of links/IFACE/DIR's record.
pub fn link_key(iface: &str, dir: Direction) -> segfw_link_key {
    let mut key = segfw_link_key {
        direction: dir.raw(),
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
pub fn open_link_records(pins: &PinDir) -> Result<TypedMap> {
    pins.require_installed()?;
    TypedMap::open::<segfw_link_key, segfw_link_record>(pins, LINK_RECORDS)
}

/// maps/daemon_record.
pub fn open_daemon_record(pins: &PinDir) -> Result<TypedMap> {
    pins.require_installed()?;
    TypedMap::open::<u32, segfw_daemon_record>(pins, DAEMON_RECORD)
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
    // Opened with its layout check: never delete from a foreign map.
    open_link_records(pins)?.delete(&link_key(iface, dir))
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
        SET_RECORDS => (
            MapType::Array,
            size_of::<u32>(),
            size_of::<crate::skel::types::segfw_set_record>(),
            crate::skel::types::segfw_record_limits::SEGFW_POLICY_SETS.0,
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

// ---------------------------------------------------------------------------
// The daemon record (maps/daemon_record[0]): which `segfw run` manages the
// instance now. Written when the daemon starts, cleared when it exits
// (also with --keep); a record whose process is gone is stale.

/// The `segfw run` that a record names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DaemonRecord {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat (starttime) of that process when it
    /// wrote the record: a reused pid has another.
    #[serde(skip)]
    pub start_ticks: u64,
    pub started_unix_ms: u64,
    /// Its policy file (absolute).
    pub policy: String,
    /// The interfaces it was started on.
    pub interfaces: Vec<String>,
}

impl DaemonRecord {
    /// The record of this process, about to manage an instance.
    pub fn of_this_process(policy: &Path, interfaces: &[String], started_unix_ms: u64) -> Self {
        let pid = std::process::id();
        DaemonRecord {
            pid,
            start_ticks: process_start_ticks(pid).unwrap_or(0),
            started_unix_ms,
            policy: policy.display().to_string(),
            interfaces: interfaces.to_vec(),
        }
    }

    /// Whether the recorded process still runs (and is the same process:
    /// same pid and same start time).
    pub fn is_alive(&self) -> bool {
        self.start_ticks != 0 && process_start_ticks(self.pid) == Some(self.start_ticks)
    }

    fn to_raw(&self) -> segfw_daemon_record {
        let max = segfw_record_limits::SEGFW_DAEMON_MAX_IFACES.0 as usize;
        let mut raw = segfw_daemon_record {
            pid: self.pid,
            n_ifaces: self.interfaces.len().min(max) as u32,
            start_ticks: self.start_ticks,
            started_unix_ms: self.started_unix_ms,
            ..Default::default()
        };
        copy_name(&mut raw.policy_path, &self.policy);
        for (slot, name) in raw.ifaces.iter_mut().zip(&self.interfaces) {
            copy_name(slot, name);
        }
        raw
    }

    fn from_raw(raw: &segfw_daemon_record) -> Option<Self> {
        if raw.pid == 0 {
            return None;
        }
        let n = (raw.n_ifaces as usize).min(raw.ifaces.len());
        Some(DaemonRecord {
            pid: raw.pid,
            start_ticks: raw.start_ticks,
            started_unix_ms: raw.started_unix_ms,
            policy: name_of(&raw.policy_path),
            interfaces: raw.ifaces[..n].iter().map(|f| name_of(f)).collect(),
        })
    }
}

/// Records `record` as the daemon that manages the instance.
pub fn write_daemon_record(pins: &PinDir, record: &DaemonRecord) -> Result<()> {
    open_daemon_record(pins)?.put(&0u32, &record.to_raw())
}

/// Clears the record: no daemon manages the instance.
pub fn clear_daemon_record(pins: &PinDir) -> Result<()> {
    open_daemon_record(pins)?.put(&0u32, &segfw_daemon_record::default())
}

/// The recorded daemon, alive or not; None when there is none, nothing is
/// installed, or the record's pin is missing (`attach` creates it again).
pub fn read_daemon_record(pins: &PinDir) -> Result<Option<DaemonRecord>> {
    if !pins.is_installed()? {
        return Ok(None);
    }
    let path = pins.map(DAEMON_RECORD);
    if let Err(e) = std::fs::symlink_metadata(&path) {
        if e.kind() == std::io::ErrorKind::NotFound {
            return Ok(None);
        }
    }
    let raw: Option<segfw_daemon_record> = open_daemon_record(pins)?.get(&0u32)?;
    Ok(raw.as_ref().and_then(DaemonRecord::from_raw))
}

/// The daemon that manages the instance now, if one runs.
pub fn live_daemon(pins: &PinDir) -> Result<Option<DaemonRecord>> {
    Ok(read_daemon_record(pins)?.filter(DaemonRecord::is_alive))
}

/// starttime (field 22 of /proc/PID/stat, in clock ticks since boot).
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    parse_start_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 22 of a /proc/PID/stat line. Field 2 (comm) is in parentheses and
/// may hold spaces and parentheses itself, so fields are counted from the
/// last ')' on: the first after it is field 3.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skel::types::segfw_direction;

    #[test]
    fn names_round_trip_and_truncate_with_a_nul() {
        let key = link_key("eth0.100", Direction::Egress);
        assert_eq!(key_iface(&key), "eth0.100");
        assert_eq!(key.direction, segfw_direction::SEGFW_DIR_EGRESS);
        let long = link_key("a-very-long-interface-name", Direction::Ingress);
        assert_eq!(key_iface(&long), "a-very-long-int", "15 bytes and a NUL");
    }

    #[test]
    fn start_ticks_are_field_22_even_with_spaces_and_parens_in_comm() {
        let stat = "4242 (segfw (run) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    5 3 0 0 20 0 3 0 987654 12345678 900";
        assert_eq!(parse_start_ticks(stat), Some(987654));
        assert_eq!(parse_start_ticks("4242 (segfw) S 1"), None);
        let me = std::process::id();
        assert!(process_start_ticks(me).is_some(), "this process has a stat");
    }

    #[test]
    fn daemon_record_round_trips_and_pid_zero_is_none() {
        let record = DaemonRecord {
            pid: 77,
            start_ticks: 5,
            started_unix_ms: 1_000,
            policy: "/etc/segfw/policy.toml".to_string(),
            interfaces: vec!["eth0".to_string(), "veth1.100".to_string()],
        };
        assert_eq!(DaemonRecord::from_raw(&record.to_raw()), Some(record));
        assert_eq!(
            DaemonRecord::from_raw(&segfw_daemon_record::default()),
            None
        );
    }

    #[test]
    fn a_record_of_this_process_is_alive_and_one_of_a_reused_pid_is_not() {
        let me = DaemonRecord::of_this_process(Path::new("/p.toml"), &[], 0);
        assert!(me.is_alive());
        let reused = DaemonRecord {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!reused.is_alive(), "another start time is another process");
    }
}
