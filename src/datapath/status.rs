//! Everything `status` shows about one instance, gathered in one report.
use serde::Serialize;

use super::attach::{attachments, Attachment};
use super::decode::{decode, Action, Mode};
use super::loader::Programs;
use super::maps::{open_conntrack, Maps};
use super::pins::PinDir;
use super::Result;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub pin_dir: String,
    /// False: nothing is loaded in this pin dir (every other field empty).
    pub installed: bool,
    pub programs: Option<ProgramIds>,
    pub attachments: Vec<Attachment>,
    /// None until a policy was applied.
    pub policy: Option<PolicyStatus>,
    pub maps: Option<MapFill>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProgramIds {
    pub ingress: u32,
    pub egress: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatus {
    pub generation: u32,
    pub sha256: Option<String>,
    pub source: Option<String>,
    pub mode: Mode,
    pub default_action: Action,
    /// "a" or "b": which policy set is live.
    pub active_set: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MapFill {
    pub conntrack_entries: usize,
    pub conntrack_max: u32,
    pub trie_entries: usize,
    pub trie_max: u32,
    pub rules: usize,
    pub segments: usize,
    /// Memory the kernel charges for all pinned maps, in bytes.
    pub memlock_bytes: u64,
}

/// Gathers the status of the instance in `pins`.
pub fn status(pins: &PinDir) -> Result<Status> {
    let mut status = Status {
        pin_dir: pins.root().display().to_string(),
        installed: pins.is_installed(),
        programs: None,
        attachments: Vec::new(),
        policy: None,
        maps: None,
    };
    if !status.installed {
        return Ok(status);
    }
    let programs = Programs::open(pins)?;
    status.programs = Some(ProgramIds {
        ingress: programs.ingress.id(),
        egress: programs.egress.id(),
    });
    status.attachments = attachments(pins)?;

    let maps = Maps::open(pins)?;
    let (trie, meta) = maps.live_policy()?;
    let view = decode(&trie, &meta);
    let active = maps.active_set()?;
    status.policy = active.map(|set| PolicyStatus {
        generation: view.generation,
        sha256: view.sha256.clone(),
        source: view.source.clone(),
        mode: view.defaults.mode,
        default_action: view.defaults.action,
        active_set: if set == 0 { "a" } else { "b" }.to_string(),
    });
    let conntrack = open_conntrack(pins)?;
    status.maps = Some(MapFill {
        conntrack_entries: conntrack.count()?,
        conntrack_max: conntrack.max_entries(),
        trie_entries: trie.len(),
        trie_max: maps.policy[0].max_entries(),
        rules: view.rules.len(),
        segments: view.segments.len(),
        memlock_bytes: memlock_total(pins),
    });
    Ok(status)
}

/// Sum of memlock over maps/<name> for every map of the datapath.
fn memlock_total(pins: &PinDir) -> u64 {
    super::pins::MAP_NAMES
        .iter()
        .filter_map(|name| libbpf_rs::MapHandle::from_pinned_path(pins.map(name)).ok())
        .filter_map(|map| {
            use libbpf_rs::MapCore;
            map.query_fdinfo().ok()?.memlock
        })
        .sum()
}
