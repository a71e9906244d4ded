//! Validation: TOML text -> `model::Policy`, collecting every error in the
//! file (each at its line and column) instead of stopping at the first.
mod fields;
mod router_ads;
mod rules;
mod segments;
pub(crate) mod values;

use crate::skel::types::segfw_limits;

use super::chunked;
use super::errors::{Collector, PolicyError, PolicyErrorKind as Kind};
use super::model::{ConntrackSettings, Defaults, Policy};
use super::raw::Span;
use fields::{Field, Table};
use values::Problem;

const TOP_KEYS: &[&str] = &["version", "defaults", "conntrack", "segments", "rules"];
const DEFAULTS_KEYS: &[&str] = &[
    "action",
    "mode",
    "failsafe",
    "events_per_second",
    "router_advertisements",
];
const CONNTRACK_KEYS: &[&str] = &[
    "max_entries",
    "tcp_timeout_s",
    "udp_timeout_s",
    "icmp_timeout_s",
    "other_timeout_s",
];
const CT_MIN_ENTRIES: i64 = 1024;
const CT_MAX_ENTRIES: i64 = 16_777_216;
const MAX_FAILSAFE: usize = segfw_limits::SEGFW_MAX_FAILSAFE.0 as usize;

/// Parses and validates a policy; Err holds every error found.
pub fn validate(src: &str) -> Result<Policy, Vec<PolicyError>> {
    let mut c = Collector::new(src);
    let entries = match chunked::parse(src) {
        Ok(entries) => entries,
        Err((message, span)) => {
            let span = span.unwrap_or(0..0);
            c.error(Kind::Syntax, &span, format!("TOML syntax error: {message}"));
            return Err(c.errors);
        }
    };
    let root = Table::root(&entries);
    root.reject_unknown(&mut c, "the policy file", TOP_KEYS);
    check_version(&mut c, &root);
    let defaults_table = root
        .get("defaults")
        .and_then(|f| f.value.table(&mut c, "defaults"));
    let mut defaults = defaults_table
        .as_ref()
        .map(|t| check_defaults(&mut c, t))
        .unwrap_or_default();
    let conntrack = section(&mut c, &root, "conntrack", check_conntrack).unwrap_or_default();
    let segments = segments::check(&mut c, root.get("segments"));
    if let Some(table) = &defaults_table {
        defaults.router_advertisements = router_ads::check(&mut c, table, &segments);
    }
    let rules = rules::check(&mut c, root.get("rules"), &segments);
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    Ok(Policy {
        defaults,
        conntrack,
        segments: segments.list,
        rules,
    })
}

/// Records a value's problem at `span`, prefixed with what holds the value.
fn report(c: &mut Collector, label: impl std::fmt::Display, span: &Span, (kind, message): Problem) {
    c.error(kind, span, format!("{label}: {message}"));
}

/// Runs `check` on the table `[name]` if present.
fn section<T>(
    c: &mut Collector,
    root: &Table,
    name: &str,
    check: fn(&mut Collector, &Table) -> T,
) -> Option<T> {
    let table = root.get(name)?.value.table(c, name)?;
    Some(check(c, &table))
}

fn check_version(c: &mut Collector, root: &Table) {
    let Some(field) = root.get("version") else {
        root.missing(
            c,
            "the policy file",
            "version",
            "add `version = 1` at the top",
        );
        return;
    };
    match field.value.int(c, "version", "the integer 1") {
        Some(1) | None => {}
        Some(n) => c.error(
            Kind::UnsupportedVersion,
            &field.value.span,
            format!("version = {n} is not supported; this segfw reads version 1"),
        ),
    }
}

fn check_defaults(c: &mut Collector, table: &Table) -> Defaults {
    table.reject_unknown(c, "[defaults]", DEFAULTS_KEYS);
    let mut defaults = Defaults::default();
    if let Some(field) = table.get("action") {
        let label = "defaults.action";
        if let Some(text) = field.value.str(c, label, "\"allow\" or \"deny\"") {
            match values::action(text) {
                Ok(action) => defaults.action = action,
                Err(problem) => report(c, label, &field.value.span, problem),
            }
        }
    }
    if let Some(field) = table.get("mode") {
        let label = "defaults.mode";
        if let Some(text) = field.value.str(c, label, "\"enforce\" or \"audit\"") {
            match values::mode(text) {
                Ok(mode) => defaults.mode = mode,
                Err(problem) => report(c, label, &field.value.span, problem),
            }
        }
    }
    if let Some(field) = table.get("failsafe") {
        defaults.failsafe_tcp = check_failsafe(c, &field);
    }
    if let Some(field) = table.get("events_per_second") {
        let label = "defaults.events_per_second";
        let max = i64::from(u32::MAX);
        if let Some(n) = ranged(c, &field, label, 0, max, "0 (unlimited) to 4294967295") {
            defaults.events_per_second = n;
        }
    }
    defaults
}

fn check_failsafe(c: &mut Collector, field: &Field) -> Vec<u16> {
    let label = "defaults.failsafe";
    let expected = "a list like [\"tcp/22\"] ([] disables)";
    let Some(items) = field.value.array(c, label, expected) else {
        return vec![22];
    };
    let mut ports = Vec::new();
    for item in &items {
        let Some(text) = item.str(c, label, "a string \"tcp/PORT\"") else {
            continue;
        };
        match values::failsafe(text) {
            Ok(port) => ports.push(port),
            Err(problem) => report(c, label, &item.span, problem),
        }
    }
    ports.sort_unstable();
    ports.dedup();
    if ports.len() > MAX_FAILSAFE {
        c.error(
            Kind::BadFailsafe,
            &field.value.span,
            format!(
                "{label}: {} ports listed; at most {MAX_FAILSAFE} are supported",
                ports.len()
            ),
        );
    }
    ports
}

fn check_conntrack(c: &mut Collector, table: &Table) -> ConntrackSettings {
    table.reject_unknown(c, "[conntrack]", CONNTRACK_KEYS);
    let mut settings = ConntrackSettings::default();
    let max = i64::from(u32::MAX);
    let timeouts: [(&str, &mut u32); 4] = [
        ("tcp_timeout_s", &mut settings.tcp_timeout_s),
        ("udp_timeout_s", &mut settings.udp_timeout_s),
        ("icmp_timeout_s", &mut settings.icmp_timeout_s),
        ("other_timeout_s", &mut settings.other_timeout_s),
    ];
    for (key, slot) in timeouts {
        if let Some(field) = table.get(key) {
            let label = format!("conntrack.{key}");
            if let Some(n) = ranged(c, &field, &label, 1, max, "1 to 4294967295 seconds") {
                *slot = n;
            }
        }
    }
    if let Some(field) = table.get("max_entries") {
        let label = "conntrack.max_entries";
        let allowed = "1024 to 16777216 entries";
        if let Some(n) = ranged(c, &field, label, CT_MIN_ENTRIES, CT_MAX_ENTRIES, allowed) {
            settings.max_entries = n;
        }
    }
    settings
}

/// An integer field within `min..=max` (which must fit u32).
fn ranged(
    c: &mut Collector,
    field: &Field,
    label: &str,
    min: i64,
    max: i64,
    allowed: &str,
) -> Option<u32> {
    let n = field
        .value
        .int(c, label, &format!("an integer, {allowed}"))?;
    if !(min..=max).contains(&n) {
        c.error(
            Kind::OutOfRange,
            &field.value.span,
            format!("{label}: {n} is out of range; allowed: {allowed}"),
        );
        return None;
    }
    u32::try_from(n).ok()
}
