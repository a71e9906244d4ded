//! Verdict events from the pinned ring buffer maps/events (denies, matches
//! of `log = true` rules, audit would-drops), decoded for `segfw events`.
//!
//! A BPF ring buffer has one consumer position, which two readers at once
//! would race on (each gets some events, some get lost or repeated), so a
//! reader holds an exclusive flock(2) on the instance's maps/ directory.
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libbpf_rs::{MapCore, MapHandle, MapType, RingBufferBuilder};
use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;

use super::clock::{datapath_clock_ns, rfc3339_utc, wall_clock_ns};
use super::maps::Maps;
use super::names::{live_rule_names, reason_name};
use super::pins::PinDir;
use super::{DatapathError, Direction};
use crate::policy::image::unmapped;
use crate::policy::view::{proto_name, rule_label};
use crate::skel::from_bytes;
use crate::skel::types::{segfw_action, segfw_direction, segfw_event, segfw_event_kind};

/// How long one poll waits before the stop flag is looked at again.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    #[error("read map {}: it is a {found:?} map, not a ring buffer; run `segfw uninstall` and attach again", .path.display())]
    NotRingBuf { path: PathBuf, found: MapType },
    #[error(
        "read {}: another reader (`segfw events` or `segfw run`) is consuming it; stop that one first",
        .path.display()
    )]
    Busy { path: PathBuf },
    #[error("lock {} for reading", .path.display())]
    Lock { path: PathBuf, source: nix::Error },
    #[error("set up a ring buffer reader on {}", .path.display())]
    Reader {
        path: PathBuf,
        source: libbpf_rs::Error,
    },
    #[error("poll ring buffer {}", .path.display())]
    Poll {
        path: PathBuf,
        source: libbpf_rs::Error,
    },
}

/// One event, decoded. Field names are stable (`events --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Wall-clock time, RFC 3339 UTC (from the datapath's monotonic clock).
    pub time: String,
    /// The datapath's timestamp: CLOCK_MONOTONIC ns, tick resolution.
    pub ts_ns: u64,
    /// "deny", "log" or "audit".
    pub kind: String,
    /// "pass" or "drop": what happened to the packet.
    pub verdict: String,
    pub direction: Direction,
    /// Interface name in segfw's network namespace; None if not found there.
    pub interface: Option<String>,
    pub ifindex: u32,
    pub proto: String,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// 0: the default action decided.
    pub rule_id: u32,
    pub rule: String,
    /// Name from enum segfw_reason; for audit events, the would-be drop reason.
    pub reason: String,
}

/// One line: time, kind, verdict, where, the flow, the rule and the reason
/// (what `segfw events` and `segfw run` print).
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let iface = self
            .interface
            .clone()
            .unwrap_or_else(|| format!("ifindex {}", self.ifindex));
        let flow = if matches!(self.proto.as_str(), "tcp" | "udp" | "sctp") {
            format!(
                "{} -> {}",
                endpoint(self.src, self.sport),
                endpoint(self.dst, self.dport)
            )
        } else {
            format!("{} -> {}", self.src, self.dst)
        };
        write!(
            f,
            "{} {:<5} {:<4} {} {:<7} {:<6} {flow}  rule #{} {} ({})",
            self.time,
            self.kind,
            self.verdict,
            iface,
            self.direction,
            self.proto,
            self.rule_id,
            self.rule,
            self.reason
        )
    }
}

/// addr:port, with IPv6 in brackets.
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// A reader of an instance's events. Events already waiting in the buffer
/// when it opens (left from before) are skipped: it shows what happens from
/// now on.
pub struct EventStream {
    path: PathBuf,
    ring: MapHandle,
    maps: Maps,
    start_ns: u64,
    _reader_lock: Flock<File>,
}

impl EventStream {
    pub fn open(pins: &PinDir) -> Result<Self, EventsError> {
        pins.require_installed()?;
        let path = pins.map("events");
        let ring =
            MapHandle::from_pinned_path(&path).map_err(|source| DatapathError::OpenPinned {
                path: path.clone(),
                source,
            })?;
        if ring.map_type() != MapType::RingBuf {
            return Err(EventsError::NotRingBuf {
                path,
                found: ring.map_type(),
            });
        }
        let reader_lock = lock_reader(pins, &path)?;
        Ok(EventStream {
            path,
            ring,
            maps: Maps::open(pins)?,
            start_ns: datapath_clock_ns(),
            _reader_lock: reader_lock,
        })
    }

    /// maps/events.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands each new event to `on_event` until it returns Break or `stop`
    /// is set (checked every POLL). After a Break the events behind it stay
    /// in the buffer.
    pub fn run(
        &self,
        stop: &AtomicBool,
        mut on_event: impl FnMut(Event) -> ControlFlow<()>,
    ) -> Result<(), EventsError> {
        let mut generation = self.maps.runtime()?.generation;
        let names = RefCell::new(live_rule_names(&self.maps)?);
        let mut interfaces = Interfaces::default();
        let done = Cell::new(false);
        let start_ns = self.start_ns;

        let mut builder = RingBufferBuilder::new();
        builder
            .add(&self.ring, |bytes: &[u8]| {
                let Some(raw) = from_bytes::<segfw_event>(bytes) else {
                    return 0;
                };
                if done.get() || raw.ts_ns < start_ns {
                    return 0;
                }
                let event = decode(&raw, &names.borrow(), &mut interfaces);
                if on_event(event).is_break() {
                    done.set(true);
                    // Stops consuming here: later events stay in the buffer.
                    return -1;
                }
                0
            })
            .map_err(|source| self.reader_err(source))?;
        let ring = builder.build().map_err(|source| self.reader_err(source))?;

        while !done.get() && !stop.load(Ordering::Relaxed) {
            match ring.poll(POLL) {
                Ok(()) => {}
                Err(_) if done.get() => break,
                Err(e) if e.kind() == libbpf_rs::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(EventsError::Poll {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
            // Rule names follow policy applies made while streaming.
            let now = self.maps.runtime()?.generation;
            if now != generation {
                generation = now;
                *names.borrow_mut() = live_rule_names(&self.maps)?;
            }
        }
        Ok(())
    }

    fn reader_err(&self, source: libbpf_rs::Error) -> EventsError {
        EventsError::Reader {
            path: self.path.clone(),
            source,
        }
    }
}

/// The one-reader lock: flock(2) on maps/ (the pin dir itself is the lock
/// of mutating commands, which a reader must not block).
fn lock_reader(pins: &PinDir, ring: &Path) -> Result<Flock<File>, EventsError> {
    let dir = pins.maps_dir();
    let file = File::open(&dir).map_err(|source| DatapathError::ReadDir {
        path: dir.clone(),
        source,
    })?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, nix::Error::EWOULDBLOCK)) => Err(EventsError::Busy {
            path: ring.to_path_buf(),
        }),
        Err((_, source)) => Err(EventsError::Lock { path: dir, source }),
    }
}

/// ifindex -> name, looked up once per index.
#[derive(Default)]
struct Interfaces(HashMap<u32, Option<String>>);

impl Interfaces {
    fn name(&mut self, ifindex: u32) -> Option<String> {
        self.0
            .entry(ifindex)
            .or_insert_with(|| {
                nix::net::if_::if_indextoname(ifindex)
                    .ok()
                    .map(|name| name.to_string_lossy().into_owned())
                    .filter(|name| !name.is_empty())
            })
            .clone()
    }
}

fn decode(raw: &segfw_event, names: &HashMap<u32, String>, ifaces: &mut Interfaces) -> Event {
    let kind = match raw.kind {
        segfw_event_kind::SEGFW_EVENT_DENY => "deny".to_string(),
        segfw_event_kind::SEGFW_EVENT_LOG => "log".to_string(),
        segfw_event_kind::SEGFW_EVENT_AUDIT => "audit".to_string(),
        _ => format!("kind_{}", raw.kind.0),
    };
    let verdict = if raw.verdict == segfw_action::SEGFW_ACTION_ALLOW {
        "pass"
    } else {
        "drop"
    };
    let direction = if raw.direction == segfw_direction::SEGFW_DIR_EGRESS {
        Direction::Egress
    } else {
        Direction::Ingress
    };
    Event {
        time: rfc3339_utc(wall_clock_ns(raw.ts_ns) / 1_000_000),
        ts_ns: raw.ts_ns,
        kind,
        verdict: verdict.to_string(),
        direction,
        interface: ifaces.name(raw.ifindex),
        ifindex: raw.ifindex,
        proto: proto_name(u16::from(raw.proto)),
        src: unmapped(raw.src),
        sport: u16::from_be(raw.sport),
        dst: unmapped(raw.dst),
        dport: u16::from_be(raw.dport),
        rule_id: raw.rule_id,
        rule: rule_label(raw.rule_id, names),
        reason: reason_name(raw.reason.0.into()),
    }
}

/// Decodes one ring buffer record (a `struct segfw_event`) with the given
/// rule names; None if `bytes` is too short. Interfaces are named from
/// this network namespace. Total over any bytes (fuzzed: `event_decode`).
pub fn decode_record(bytes: &[u8], names: &HashMap<u32, String>) -> Option<Event> {
    let raw = from_bytes::<segfw_event>(bytes)?;
    Some(decode(&raw, names, &mut Interfaces::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_decode_to_stable_fields() {
        let raw = segfw_event {
            ts_ns: 5,
            src: std::net::Ipv4Addr::new(10, 0, 0, 2)
                .to_ipv6_mapped()
                .octets(),
            dst: std::net::Ipv4Addr::new(10, 0, 0, 1)
                .to_ipv6_mapped()
                .octets(),
            sport: 40000u16.to_be(),
            dport: 8081u16.to_be(),
            ifindex: 0,
            rule_id: 3,
            proto: 6,
            kind: segfw_event_kind::SEGFW_EVENT_AUDIT,
            direction: segfw_direction::SEGFW_DIR_EGRESS,
            reason: crate::skel::types::segfw_reason::SEGFW_DROP_POLICY,
            verdict: segfw_action::SEGFW_ACTION_ALLOW,
            ..Default::default()
        };
        let names = HashMap::from([(3, "no-8081".to_string())]);
        let ev = decode(&raw, &names, &mut Interfaces::default());
        assert_eq!(ev.src, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!((ev.sport, ev.dport), (40000, 8081));
        assert_eq!(
            (ev.kind.as_str(), ev.verdict.as_str(), ev.reason.as_str()),
            ("audit", "pass", "drop_policy")
        );
        assert_eq!((ev.rule_id, ev.rule.as_str()), (3, "no-8081"));
        assert_eq!(
            (ev.direction, ev.interface.as_deref()),
            (Direction::Egress, None)
        );
        let json = serde_json::to_value(&ev).unwrap();
        for field in [
            "time",
            "ts_ns",
            "kind",
            "verdict",
            "direction",
            "interface",
            "ifindex",
            "proto",
            "src",
            "sport",
            "dst",
            "dport",
            "rule_id",
            "rule",
            "reason",
        ] {
            assert!(
                json.get(field).is_some(),
                "event JSON lacks {field}: {json}"
            );
        }
    }
}
