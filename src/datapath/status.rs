//! Everything `status` shows about one instance, gathered in one report.
use serde::Serialize;

use super::attach::{attachments, Attachment};
use super::clock::rfc3339_utc;
use super::clock::unix_ms;
use super::loader::Programs;
use super::maps::{open_conntrack, Maps};
use super::netns::Netns;
use super::pins::PinDir;
use super::records::{read_daemon_record, DaemonRecord};
use super::set_records::Pending;
use super::sets::{awaiting_confirmation, live_view};
use super::Result;
use crate::policy::view::{Action, Mode, RouterAdvertisements};

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
    /// What an interrupted command or a hand-edited pin dir left behind
    /// (empty: consistent). The next `policy apply` or `attach` repairs it.
    pub damaged: Vec<String>,
    /// The `segfw run` that the instance's record names, if any.
    pub daemon: Option<DaemonStatus>,
    /// The network namespace this status was taken in, "net:[INODE] (NAME)".
    pub netns: Option<String>,
    /// Set when no attachment is in this namespace but some are in
    /// another: this status cannot see their interfaces.
    pub netns_warning: Option<String>,
    /// Set when the live policy cannot be read (maps missing): what the
    /// datapath enforces is then unknown, not "nothing".
    pub policy_unknown: Option<String>,
    /// Set when this pin dir is inside or around another instance's.
    pub nesting: Option<String>,
}

/// The daemon record as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaemonStatus {
    pub pid: u32,
    /// False: the process is gone (killed without cleaning up); the record
    /// is stale and manages nothing.
    pub alive: bool,
    pub policy: String,
    pub interfaces: Vec<String>,
    /// When it started, RFC 3339 UTC, and as unix milliseconds.
    pub started: String,
    pub started_unix_ms: u64,
}

impl DaemonStatus {
    pub fn new(record: &DaemonRecord) -> Self {
        DaemonStatus {
            pid: record.pid,
            alive: record.is_alive(),
            policy: record.policy.clone(),
            interfaces: record.interfaces.clone(),
            started: rfc3339_utc(record.started_unix_ms),
            started_unix_ms: record.started_unix_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProgramIds {
    pub ingress: u32,
    pub egress: u32,
    /// progs/explain; None if its pin was removed (only `explain` needs it).
    pub explain: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatus {
    pub generation: u32,
    pub sha256: Option<String>,
    pub source: Option<String>,
    pub mode: Mode,
    pub default_action: Action,
    /// Where router advertisements and redirects pass from.
    pub router_advertisements: RouterAdvertisements,
    /// "a" or "b": which policy set is live.
    pub active_set: String,
    /// Set while `policy apply --confirm` awaits `segfw policy confirm`.
    pub pending_confirmation: Option<PendingStatus>,
}

/// A pending confirmation as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingStatus {
    /// The generation that awaits confirmation (the live one).
    pub generation: u32,
    /// Rollback deadline, RFC 3339 UTC, and as unix milliseconds.
    pub deadline: String,
    pub deadline_unix_ms: u64,
    /// Seconds left (0 once overdue).
    pub remaining_s: u64,
    /// The deadline passed and nothing rolled back: the watchdog is gone
    /// (killed, or the machine slept); confirm or apply again.
    pub overdue: bool,
    /// The generation a rollback restores (under a new number); 0: no
    /// policy (all traffic passes).
    pub rollback_to_generation: u32,
}

impl PendingStatus {
    pub fn new(pending: &Pending, now_ms: u64) -> Self {
        PendingStatus {
            generation: pending.generation,
            deadline: rfc3339_utc(pending.deadline_ms),
            deadline_unix_ms: pending.deadline_ms,
            remaining_s: pending.remaining_ms(now_ms).div_ceil(1000),
            // A second of grace: the watchdog polls, then takes the lock.
            overdue: now_ms > pending.deadline_ms + 1000,
            rollback_to_generation: pending.previous_generation,
        }
    }
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
        installed: pins.is_installed()?,
        programs: None,
        attachments: Vec::new(),
        policy: None,
        maps: None,
        damaged: Vec::new(),
        daemon: None,
        netns: Netns::current().ok().map(|n| n.describe()),
        netns_warning: None,
        policy_unknown: None,
        nesting: pins.nesting().map(|(relation, other)| {
            format!(
                "this pin dir {relation} the segfw instance {}; instances must not nest",
                other.display()
            )
        }),
    };
    if !status.installed {
        return Ok(status);
    }
    status.daemon = read_daemon_record(pins)?.as_ref().map(DaemonStatus::new);
    let programs = Programs::open(pins)?;
    status.programs = Some(ProgramIds {
        ingress: programs.ingress.id(),
        egress: programs.egress.id(),
        explain: super::explain::pinned_explain_id(pins)?,
    });
    status.attachments = attachments(pins)?;
    status.netns_warning = netns_warning(&status.attachments);
    status.damaged = super::repair::damage(pins)?;
    let missing = super::loader::missing_map_pins(pins);
    if !missing.is_empty() {
        // Policy and fill levels need every map; `attach` repairs first.
        let what = if pins.maps_dir().exists() {
            format!("maps/{} missing", missing.join(", maps/"))
        } else {
            "maps/ is missing".to_string()
        };
        status.policy_unknown = Some(format!(
            "{what}, so the live policy cannot be read; the loaded programs keep enforcing \
             whatever was live; `segfw attach IFACE` repairs the pins"
        ));
        return Ok(status);
    }

    let maps = Maps::open(pins)?;
    let view = live_view(&maps)?;
    // A live set without a CONFIG entry (generation 0 in the trie) is the
    // "no policy" a rollback of a first apply restores.
    let active = maps.active_set()?.filter(|_| view.generation != 0);
    let awaiting = awaiting_confirmation(&maps)?.map(|p| PendingStatus::new(&p, unix_ms()));
    status.policy = active.map(|set| PolicyStatus {
        generation: view.generation,
        sha256: view.sha256.clone(),
        source: view.source.clone(),
        mode: view.defaults.mode,
        default_action: view.defaults.action,
        router_advertisements: view.defaults.router_advertisements.clone(),
        active_set: if set == 0 { "a" } else { "b" }.to_string(),
        pending_confirmation: awaiting,
    });
    let conntrack = open_conntrack(pins)?;
    status.maps = Some(MapFill {
        conntrack_entries: conntrack.count()?,
        conntrack_max: conntrack.max_entries(),
        trie_entries: view.trie_entries,
        trie_max: maps.policy[0].max_entries(),
        rules: view.rules.len(),
        segments: view.segments.len(),
        memlock_bytes: memlock_total(pins),
    });
    Ok(status)
}

/// The common slip of running segfw in the wrong namespace: every
/// attachment whose namespace is known is in another one.
fn netns_warning(attachments: &[Attachment]) -> Option<String> {
    let elsewhere: Vec<&Attachment> = attachments
        .iter()
        .filter(|a| a.in_this_netns == Some(false))
        .collect();
    if elsewhere.is_empty() || attachments.iter().any(|a| a.in_this_netns == Some(true)) {
        return None;
    }
    let mut places: Vec<String> = elsewhere
        .iter()
        .map(|a| {
            a.netns
                .clone()
                .unwrap_or_else(|| "a namespace segfw did not record".to_string())
        })
        .collect();
    places.dedup();
    Some(format!(
        "no attachment of this instance is in this network namespace; they are in {}; \
         interface names and indexes here mean other interfaces; run segfw there \
         (`nsenter --net=PATH segfw status`, PATH as shown)",
        places.join(", ")
    ))
}

/// Sum of memlock over maps/<name> for every map of the datapath.
fn memlock_total(pins: &PinDir) -> u64 {
    super::pins::MAP_NAMES
        .iter()
        .filter_map(|name| super::maps::open_pinned_map(&pins.map(name), pins.open_mode()).ok())
        .filter_map(|map| {
            use libbpf_rs::MapCore;
            map.query_fdinfo().ok()?.memlock
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_status_counts_down_and_goes_overdue() {
        let p = Pending {
            generation: 5,
            deadline_ms: 10_000,
            previous_set: 0,
            previous_generation: 4,
        };
        let s = PendingStatus::new(&p, 7_500);
        assert_eq!((s.remaining_s, s.overdue), (3, false));
        let s = PendingStatus::new(&p, 12_000);
        assert_eq!((s.remaining_s, s.overdue), (0, true));
        assert_eq!(s.rollback_to_generation, 4);
    }
}
