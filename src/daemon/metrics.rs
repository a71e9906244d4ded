//! Prometheus metrics of `segfw run --metrics ADDR`: every scrape of
//! http://ADDR/metrics reads the pinned maps afresh (counters are the
//! kernel's, not copies) and encodes them with prometheus-client
//! (OpenMetrics text, which Prometheus negotiates and parses).
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use libbpf_rs::{MapCore, MapHandle};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::datapath::maps::{open_conntrack, open_reason_stats, open_rule_stats, Maps, TypedMap};
use crate::datapath::names::reason_name;
use crate::datapath::pins::PinDir;
use crate::datapath::sets::awaiting_confirmation;
use crate::datapath::{DatapathError, Result};
use crate::error::error_chain;
use crate::policy::view::{rule_label, rule_names, RULE_DEFAULT, RULE_FAILSAFE};
use crate::skel::types::{segfw_ratelimit, segfw_reason, segfw_rule_stats};

/// Content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the daemon knows about its own applies (the maps do not say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyState {
    /// When this daemon last applied the policy file successfully.
    pub last_success_unix_ms: Option<u64>,
    /// Whether its last attempt succeeded (None before the first).
    pub last_ok: Option<bool>,
    /// The first load of the datapath is under way: nothing to read yet.
    pub loading: bool,
    /// The instance is not what the daemon's file says: a `policy apply
    /// --force` replaced its policy, or a `detach --force` removed a hook.
    pub drift: bool,
}

pub type SharedApplyState = Arc<Mutex<ApplyState>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSample {
    pub id: u32,
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonSample {
    pub reason: String,
    pub drop: bool,
    pub packets: u64,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub rules: Vec<RuleSample>,
    pub reasons: Vec<ReasonSample>,
    pub conntrack_entries: u64,
    pub conntrack_capacity: u64,
    pub events_suppressed: u64,
    pub generation: u32,
    pub confirm_pending: bool,
    pub apply: ApplyState,
}

/// Reads snapshots; caches the live policy's rule names per generation
/// (reading the names costs a syscall per rule, the counters do anyway).
#[derive(Debug)]
pub struct Reader {
    pins: PinDir,
    names: Mutex<Option<(u32, HashMap<u32, String>)>>,
}

impl Reader {
    pub fn new(pins: PinDir) -> Self {
        Reader {
            pins,
            names: Mutex::new(None),
        }
    }

    pub fn read(&self, apply: ApplyState) -> Result<Snapshot> {
        let pins = &self.pins;
        let maps = Maps::open(pins)?;
        let runtime = maps.runtime()?;
        let names = self.rule_names(&maps, runtime.generation)?;

        let rule_stats = open_rule_stats(pins)?;
        let mut ids: Vec<u32> = names.keys().copied().collect();
        ids.extend([RULE_DEFAULT, RULE_FAILSAFE]);
        ids.sort_unstable();
        let mut rules = Vec::with_capacity(ids.len());
        for id in ids {
            let per_cpu: Vec<segfw_rule_stats> = rule_stats.get_percpu(id)?;
            rules.push(RuleSample {
                id,
                name: rule_label(id, &names),
                packets: per_cpu.iter().map(|s| s.packets).sum(),
                bytes: per_cpu.iter().map(|s| s.bytes).sum(),
            });
        }

        let reason_stats = open_reason_stats(pins)?;
        let mut reasons = Vec::new();
        for code in 1..u32::from(segfw_reason::SEGFW_REASON_MAX.0) {
            let packets: u64 = reason_stats.get_percpu::<u64>(code)?.iter().sum();
            let reason = reason_name(code);
            // Known reasons always (a zero is information); unknown codes
            // only once they count something.
            if packets == 0 && reason.starts_with("reason_") {
                continue;
            }
            reasons.push(ReasonSample {
                reason,
                drop: code >= u32::from(segfw_reason::SEGFW_REASON_FIRST_DROP.0),
                packets,
            });
        }

        let conntrack = open_conntrack(pins)?;
        let ratelimit = TypedMap::open::<u32, segfw_ratelimit>(pins, "ratelimit")?;
        Ok(Snapshot {
            rules,
            reasons,
            conntrack_entries: count_keys(pins, "conntrack")?,
            conntrack_capacity: u64::from(conntrack.max_entries()),
            events_suppressed: ratelimit
                .get_percpu::<segfw_ratelimit>(0)?
                .iter()
                .map(|r| r.suppressed)
                .sum(),
            generation: runtime.generation,
            confirm_pending: awaiting_confirmation(&maps)?.is_some(),
            apply,
        })
    }

    fn rule_names(&self, maps: &Maps, generation: u32) -> Result<HashMap<u32, String>> {
        let mut cache = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, names)) = cache.as_ref() {
            if *cached == generation {
                return Ok(names.clone());
            }
        }
        let names = match maps.active_set()? {
            Some(set) => rule_names(&maps.meta[set].entries()?),
            None => HashMap::new(),
        };
        *cache = Some((generation, names.clone()));
        Ok(names)
    }
}

/// Entries of a hash map: keys only, one syscall each (no values read).
fn count_keys(pins: &PinDir, name: &str) -> Result<u64> {
    let path = pins.map(name);
    let map = MapHandle::from_pinned_path(&path)
        .map_err(|source| DatapathError::open_pinned(path, source))?;
    Ok(map.keys().count() as u64)
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let counter = MetricType::Counter;
        let gauge = MetricType::Gauge;
        {
            let help = "Packets decided by each rule of the live policy (rule 0: default action)";
            let mut m = enc.encode_descriptor("segfw_rule_packets", help, None, counter)?;
            for r in &self.rules {
                let labels = [("rule_id", r.id.to_string()), ("rule", r.name.clone())];
                ConstCounter::new(r.packets).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let help = "Bytes of the packets decided by each rule";
            let mut m = enc.encode_descriptor("segfw_rule", help, Some(&Unit::Bytes), counter)?;
            for r in &self.rules {
                let labels = [("rule_id", r.id.to_string()), ("rule", r.name.clone())];
                ConstCounter::new(r.bytes).encode(m.encode_family(&labels)?)?;
            }
        }
        for (drop, name, help) in [
            (true, "segfw_drops", "Packets dropped, by reason"),
            (false, "segfw_passes", "Packets passed, by reason"),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, counter)?;
            for r in self.reasons.iter().filter(|r| r.drop == drop) {
                let labels = [("reason", r.reason.as_str())];
                ConstCounter::new(r.packets).encode(m.encode_family(&labels)?)?;
            }
        }
        let gauges: [(&str, &str, i64); 4] = [
            (
                "segfw_conntrack_entries",
                "Tracked sessions in the conntrack map",
                self.conntrack_entries as i64,
            ),
            (
                "segfw_conntrack_capacity",
                "Size of the conntrack map (max_entries)",
                self.conntrack_capacity as i64,
            ),
            (
                "segfw_policy_generation",
                "Generation of the live policy (0: none applied)",
                i64::from(self.generation),
            ),
            (
                "segfw_policy_confirm_pending",
                "1 while a `policy apply --confirm` awaits `segfw policy confirm`",
                i64::from(self.confirm_pending),
            ),
        ];
        for (name, help, value) in gauges {
            ConstGauge::new(value).encode(enc.encode_descriptor(name, help, None, gauge)?)?;
        }
        ConstCounter::new(self.events_suppressed).encode(enc.encode_descriptor(
            "segfw_events_suppressed",
            "Verdict events not sent by the per-CPU rate limit or a full ring buffer",
            None,
            counter,
        )?)?;
        if let Some(ms) = self.apply.last_success_unix_ms {
            ConstGauge::new(ms as f64 / 1000.0).encode(enc.encode_descriptor(
                "segfw_policy_last_apply_success_timestamp",
                "When this daemon last applied its policy file successfully",
                Some(&Unit::Seconds),
                gauge,
            )?)?;
        }
        ConstGauge::new(i64::from(self.apply.drift)).encode(enc.encode_descriptor(
            "segfw_policy_drift",
            "1 while the instance is not what the daemon's policy file says (a `policy apply --force` \
             replaced the policy, or a `detach --force` removed a hook); the daemon re-applies its \
             file when that file changes or on SIGHUP",
            None,
            gauge,
        )?)?;
        if let Some(ok) = self.apply.last_ok {
            ConstGauge::new(i64::from(ok)).encode(enc.encode_descriptor(
                "segfw_policy_last_apply_success",
                "1 if the daemon's last apply of its policy file succeeded, 0 if it failed",
                None,
                gauge,
            )?)?;
        }
        Ok(())
    }
}

/// The exposition of one snapshot.
pub fn render(snapshot: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("serve metrics on {addr}")]
    Bind {
        addr: SocketAddr,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The HTTP server of /metrics (tiny_http, one thread).
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub fn start(
        addr: SocketAddr,
        pins: PinDir,
        state: SharedApplyState,
    ) -> std::result::Result<Self, MetricsError> {
        let server = tiny_http::Server::http(addr)
            .map(Arc::new)
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let reader = Reader::new(pins);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("segfw-metrics".to_string())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    let apply = *state.lock().unwrap_or_else(PoisonError::into_inner);
                    // A client that went away is no concern of ours.
                    let _ = request_reply(&reader, apply, request);
                }
            })
            .map_err(|e| MetricsError::Bind {
                addr,
                source: Box::new(e),
            })?;
        Ok(MetricsServer {
            server,
            thread: Some(thread),
        })
    }
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.server.server_addr().to_ip())
            .finish()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn request_reply(
    reader: &Reader,
    apply: ApplyState,
    request: tiny_http::Request,
) -> std::io::Result<()> {
    use tiny_http::{Header, Method, Response};
    let path = request.url().split('?').next().unwrap_or("");
    let (status, content_type, body) = match (request.method(), path) {
        (Method::Get | Method::Head, "/metrics") if apply.loading => (
            503,
            "text/plain; charset=utf-8",
            "segfw run: loading the datapath (verifier); metrics follow once it is loaded\n"
                .to_string(),
        ),
        (Method::Get | Method::Head, "/metrics") => match reader.read(apply) {
            Ok(snapshot) => (200, CONTENT_TYPE, render(snapshot)),
            Err(e) => (
                503,
                "text/plain; charset=utf-8",
                format!("read segfw maps: {}\n", error_chain(&e)),
            ),
        },
        (Method::Get | Method::Head, _) => (
            404,
            "text/plain; charset=utf-8",
            "segfw: metrics are at /metrics\n".to_string(),
        ),
        _ => (405, "text/plain; charset=utf-8", "use GET\n".to_string()),
    };
    let header =
        Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes()).expect("a valid header");
    request.respond(
        Response::from_string(body)
            .with_status_code(status)
            .with_header(header),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family_with_labels() {
        let snapshot = Snapshot {
            rules: vec![RuleSample {
                id: 1,
                name: "allow-ping".to_string(),
                packets: 6,
                bytes: 588,
            }],
            reasons: vec![
                ReasonSample {
                    reason: "drop_policy".to_string(),
                    drop: true,
                    packets: 2,
                },
                ReasonSample {
                    reason: "pass_allowed".to_string(),
                    drop: false,
                    packets: 3,
                },
            ],
            conntrack_entries: 4,
            conntrack_capacity: 262144,
            events_suppressed: 7,
            generation: 3,
            confirm_pending: false,
            apply: ApplyState {
                last_success_unix_ms: Some(1_500),
                last_ok: Some(false),
                loading: false,
                drift: true,
            },
        };
        let text = render(snapshot);
        for line in [
            "segfw_rule_packets_total{rule_id=\"1\",rule=\"allow-ping\"} 6",
            "segfw_rule_bytes_total{rule_id=\"1\",rule=\"allow-ping\"} 588",
            "segfw_drops_total{reason=\"drop_policy\"} 2",
            "segfw_passes_total{reason=\"pass_allowed\"} 3",
            "segfw_conntrack_entries 4",
            "segfw_conntrack_capacity 262144",
            "segfw_events_suppressed_total 7",
            "segfw_policy_generation 3",
            "segfw_policy_confirm_pending 0",
            "segfw_policy_last_apply_success_timestamp_seconds 1.5",
            "segfw_policy_last_apply_success 0",
            "segfw_policy_drift 1",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
