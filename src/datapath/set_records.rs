//! The records a policy set keeps about itself in its meta map's CONFIG
//! ids, encoded as text in a `segfw_meta_value`: the pending confirmation
//! (id 2, [`Pending`]) and the runtime settings it was applied with (id 3).
//! The set code (`sets.rs`) reads and writes them; this module only encodes.
use super::clock::unix_ms;
use crate::policy::image::RuntimeSettings;

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
    /// `generation=G deadline_ms=T previous_set=S previous_generation=P`
    /// (fits the 128 bytes of a meta value).
    pub fn to_text(&self) -> String {
        format!(
            "generation={} deadline_ms={} previous_set={} previous_generation={}",
            self.generation, self.deadline_ms, self.previous_set, self.previous_generation
        )
    }

    /// Parses [`Pending::to_text`]; None for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let mut pending = Pending {
            generation: 0,
            deadline_ms: 0,
            previous_set: 0,
            previous_generation: 0,
        };
        let mut seen = 0;
        for field in text.split_whitespace() {
            let (key, value) = field.split_once('=')?;
            match key {
                "generation" => pending.generation = value.parse().ok()?,
                "deadline_ms" => pending.deadline_ms = value.parse().ok()?,
                "previous_set" => pending.previous_set = value.parse().ok().filter(|s| *s < 2)?,
                "previous_generation" => pending.previous_generation = value.parse().ok()?,
                _ => continue,
            }
            seen += 1;
        }
        (seen == 4 && pending.generation != 0).then_some(pending)
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

/// `tcp=3600 udp=60 icmp=30 other=60 events=1000`
pub(crate) fn runtime_text(s: &RuntimeSettings) -> String {
    format!(
        "tcp={} udp={} icmp={} other={} events={}",
        s.tcp_timeout_s, s.udp_timeout_s, s.icmp_timeout_s, s.other_timeout_s, s.events_per_sec
    )
}

pub(crate) fn parse_runtime_text(text: &str, base: RuntimeSettings) -> Option<RuntimeSettings> {
    let mut s = base;
    for field in text.split_whitespace() {
        let (key, value) = field.split_once('=')?;
        let value: u32 = value.parse().ok()?;
        match key {
            "tcp" => s.tcp_timeout_s = value,
            "udp" => s.udp_timeout_s = value,
            "icmp" => s.icmp_timeout_s = value,
            "other" => s.other_timeout_s = value,
            "events" => s.events_per_sec = value,
            _ => {}
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_record_round_trips_and_fits_a_meta_value() {
        let pending = Pending {
            generation: u32::MAX,
            deadline_ms: u64::MAX,
            previous_set: 1,
            previous_generation: u32::MAX - 1,
        };
        let text = pending.to_text();
        assert!(text.len() < 128, "{text:?} does not fit segfw_meta_value");
        assert_eq!(Pending::parse(&text), Some(pending));
        assert_eq!(Pending::parse("generation=3 deadline_ms=9"), None);
        assert_eq!(
            Pending::parse("generation=3 deadline_ms=9 previous_set=2 previous_generation=2"),
            None,
            "a set index other than 0 or 1 is not a record"
        );
    }

    #[test]
    fn runtime_settings_round_trip() {
        let settings = RuntimeSettings {
            conntrack_max_entries: 0,
            tcp_timeout_s: 3600,
            udp_timeout_s: 61,
            icmp_timeout_s: 30,
            other_timeout_s: 59,
            events_per_sec: 1000,
        };
        let base = RuntimeSettings {
            conntrack_max_entries: 0,
            tcp_timeout_s: 0,
            udp_timeout_s: 0,
            icmp_timeout_s: 0,
            other_timeout_s: 0,
            events_per_sec: 0,
        };
        assert_eq!(
            parse_runtime_text(&runtime_text(&settings), base),
            Some(settings)
        );
    }
}
