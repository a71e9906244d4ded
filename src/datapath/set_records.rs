//! The record each policy set keeps about itself, entry S of
//! `maps/set_records` (`struct segfw_set_record`): the file it was filled
//! from (sha256 and path), the runtime settings it was applied with, and the
//! confirmation it awaits, if any. The set code (`sets.rs`) reads and writes
//! it; this module converts between the record and Rust terms.
use super::clock::unix_ms;
use crate::policy::image::RuntimeSettings;
use crate::skel::types::{
    segfw_set_pending, segfw_set_record, segfw_set_runtime, segfw_set_source,
};

/// A confirmation that a live policy awaits: unless `segfw policy confirm`
/// removes it before `deadline_ms`, set `previous_set` becomes live again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pending {
    /// The generation that awaits confirmation.
    pub generation: u32,
    /// Wall-clock deadline, unix milliseconds.
    pub deadline_ms: u64,
    /// The set a rollback makes live (0 = A, 1 = B).
    pub previous_set: usize,
    /// The generation that set holds; 0: no policy was live before, so a
    /// rollback means "no policy" (all traffic passes).
    pub previous_generation: u32,
}

impl Pending {
    /// The record's `pending` field.
    pub fn to_record(&self) -> segfw_set_pending {
        segfw_set_pending {
            generation: self.generation,
            previous_set: self.previous_set as u32,
            previous_generation: self.previous_generation,
            deadline_ms: self.deadline_ms,
            ..Default::default()
        }
    }

    /// None when nothing is pending (generation 0) or the record names no
    /// set (previous_set other than 0 or 1).
    pub fn from_record(r: &segfw_set_pending) -> Option<Self> {
        (r.generation != 0 && r.previous_set < 2).then_some(Pending {
            generation: r.generation,
            deadline_ms: r.deadline_ms,
            previous_set: r.previous_set as usize,
            previous_generation: r.previous_generation,
        })
    }

    /// Milliseconds until the deadline (0 once it passed).
    pub fn remaining_ms(&self, now_ms: u64) -> u64 {
        self.deadline_ms.saturating_sub(now_ms)
    }

    /// "rollback in 12s" or "rollback overdue by 3s".
    pub fn describe_deadline(&self) -> String {
        let now = unix_ms();
        if now < self.deadline_ms {
            format!("rollback in {}s", self.remaining_ms(now).div_ceil(1000))
        } else {
            format!("rollback overdue by {}s", (now - self.deadline_ms) / 1000)
        }
    }
}

/// The whole record of a set about to be filled.
pub fn set_record(
    source: &str,
    sha256: &str,
    runtime: &RuntimeSettings,
    pending: Option<&Pending>,
) -> segfw_set_record {
    segfw_set_record {
        source: source_record(source, sha256),
        runtime: runtime_record(runtime),
        pending: pending.map(Pending::to_record).unwrap_or_default(),
    }
}

/// sha256 as bytes (a string that is not 64 hex digits stays all zero:
/// "no hash"); the path NUL-padded, cut at a character boundary to fit.
fn source_record(path: &str, sha256: &str) -> segfw_set_source {
    let mut record = segfw_set_source::default();
    if sha256.len() == 2 * record.sha256.len() {
        let parsed: Option<Vec<u8>> = (0..record.sha256.len())
            .map(|i| u8::from_str_radix(sha256.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        if let Some(bytes) = parsed {
            record.sha256.copy_from_slice(&bytes);
        }
    }
    let mut n = path.len().min(record.path.len() - 1);
    while !path.is_char_boundary(n) {
        n -= 1;
    }
    for (dst, src) in record.path.iter_mut().zip(&path.as_bytes()[..n]) {
        *dst = *src as _;
    }
    record
}

/// (sha256 hex, path) of a record; None for a set never filled.
pub fn source_of(record: &segfw_set_record) -> (Option<String>, Option<String>) {
    let s = &record.source;
    let sha256 = s
        .sha256
        .iter()
        .any(|b| *b != 0)
        .then(|| s.sha256.iter().map(|b| format!("{b:02x}")).collect());
    let bytes: Vec<u8> = s
        .path
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    let path = (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned());
    (sha256, path)
}

fn runtime_record(s: &RuntimeSettings) -> segfw_set_runtime {
    segfw_set_runtime {
        tcp_timeout_s: s.tcp_timeout_s,
        udp_timeout_s: s.udp_timeout_s,
        icmp_timeout_s: s.icmp_timeout_s,
        other_timeout_s: s.other_timeout_s,
        events_per_sec: s.events_per_sec,
        recorded: 1,
    }
}

/// The settings a set was applied with; None for a set never filled.
pub fn runtime_of(record: &segfw_set_record) -> Option<RuntimeSettings> {
    let r = &record.runtime;
    (r.recorded == 1).then_some(RuntimeSettings {
        conntrack_max_entries: 0,
        tcp_timeout_s: r.tcp_timeout_s,
        udp_timeout_s: r.udp_timeout_s,
        icmp_timeout_s: r.icmp_timeout_s,
        other_timeout_s: r.other_timeout_s,
        events_per_sec: r.events_per_sec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_record_round_trips() {
        let pending = Pending {
            generation: u32::MAX,
            deadline_ms: u64::MAX,
            previous_set: 1,
            previous_generation: u32::MAX - 1,
        };
        assert_eq!(Pending::from_record(&pending.to_record()), Some(pending));
        assert_eq!(Pending::from_record(&segfw_set_pending::default()), None);
        let bad_set = segfw_set_pending {
            previous_set: 2,
            ..pending.to_record()
        };
        assert_eq!(
            Pending::from_record(&bad_set),
            None,
            "a set index other than 0 or 1 is not a record"
        );
    }

    #[test]
    fn a_set_record_round_trips_source_and_runtime() {
        let settings = RuntimeSettings {
            conntrack_max_entries: 0,
            tcp_timeout_s: 3600,
            udp_timeout_s: 61,
            icmp_timeout_s: 30,
            other_timeout_s: 59,
            events_per_sec: 1000,
        };
        let sha = crate::policy::sha256_hex(b"version = 1\n");
        let record = set_record("/etc/segfw/policy.toml", &sha, &settings, None);
        assert_eq!(runtime_of(&record), Some(settings));
        assert_eq!(
            source_of(&record),
            (Some(sha), Some("/etc/segfw/policy.toml".to_string()))
        );
        assert_eq!(Pending::from_record(&record.pending), None);
        let empty = segfw_set_record::default();
        assert_eq!(source_of(&empty), (None, None), "a set never filled");
        assert_eq!(runtime_of(&empty), None);
        let long = "d/".repeat(600) + "é.toml";
        let (_, path) = source_of(&set_record(&long, "", &settings, None));
        assert!(
            long.starts_with(path.as_deref().unwrap()),
            "cut, not garbled"
        );
    }
}
