//! Per-rule and per-reason counters, summed over CPUs, for `stats`.
//!
//! Per-rule counters (maps/rule_stats) count since the live policy was
//! applied: `policy apply` zeroes the ids of the policy it swaps in (see
//! [`reset_rule_counters`]), so a rule with no packets never matched since
//! then. Per-reason counters count since the datapath was loaded.
use std::collections::BTreeSet;

use serde::Serialize;

use super::clock::{datapath_clock_ns, rfc3339_utc, wall_clock_ns};
use super::maps::{open_reason_stats, open_rule_stats, Maps, TypedMap};
use super::names::{live_rule_names, reason_name};
use super::pins::PinDir;
use super::Result;
use crate::policy::image::PolicyImage;
use crate::policy::view::{rule_label, RULE_DEFAULT, RULE_FAILSAFE};
use crate::skel::types::{segfw_key_kind, segfw_ratelimit, segfw_reason, segfw_rule_stats};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCounters {
    pub id: u32,
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
    /// Seconds since the last packet it decided; None if never hit.
    pub last_hit_s_ago: Option<u64>,
    /// Wall-clock time of the last packet it decided (RFC 3339 UTC).
    pub last_hit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonCounter {
    pub reason: String,
    pub code: u32,
    pub drop: bool,
    pub packets: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Generation of the live policy the rule counters belong to (0: none).
    pub generation: u32,
    /// Rules with hits (every rule of the live policy with
    /// `include_unused`), by id; id 0 is "(default)", the default action.
    pub rules: Vec<RuleCounters>,
    /// Reasons with a non-zero count, by code.
    pub reasons: Vec<ReasonCounter>,
    /// Packets passed, including `audited`.
    pub passed: u64,
    /// Packets dropped (every drop reason).
    pub dropped: u64,
    /// Packets passed only because of audit mode (reason pass_audit): the
    /// would-be drops, not counted in `dropped`.
    pub audited: u64,
    /// Events the per-CPU rate limit (or a full ring buffer) kept from
    /// maps/events, since the datapath was loaded.
    pub events_suppressed: u64,
}

/// Reads the counters of the live policy's rules, the default and the
/// failsafe rule.
pub fn collect(pins: &PinDir, include_unused: bool) -> Result<Stats> {
    let maps = Maps::open(pins)?;
    let generation = maps.runtime()?.generation;
    let names = live_rule_names(&maps)?;
    let ids: BTreeSet<u32> = [RULE_DEFAULT, RULE_FAILSAFE]
        .into_iter()
        .chain(names.keys().copied())
        .collect();

    let rule_stats = open_rule_stats(pins)?;
    let now = datapath_clock_ns();
    let mut rules = Vec::new();
    for id in ids {
        let per_cpu: Vec<segfw_rule_stats> = rule_stats.get_percpu(id)?;
        let packets = per_cpu.iter().map(|s| s.packets).sum();
        let last_hit = per_cpu.iter().map(|s| s.last_hit_ns).max().unwrap_or(0);
        if packets == 0 && !include_unused {
            continue;
        }
        rules.push(RuleCounters {
            id,
            name: rule_label(id, &names),
            packets,
            bytes: per_cpu.iter().map(|s| s.bytes).sum(),
            last_hit_s_ago: (last_hit != 0).then(|| now.saturating_sub(last_hit) / 1_000_000_000),
            last_hit: (last_hit != 0).then(|| rfc3339_utc(wall_clock_ns(last_hit) / 1_000_000)),
        });
    }

    let reasons = reason_counters(pins)?;
    let sum = |drop: bool| {
        reasons
            .iter()
            .filter(|r| r.drop == drop)
            .map(|r| r.packets)
            .sum()
    };
    let audited = reasons
        .iter()
        .filter(|r| r.code == u32::from(segfw_reason::SEGFW_PASS_AUDIT.0))
        .map(|r| r.packets)
        .sum();
    Ok(Stats {
        generation,
        passed: sum(false),
        dropped: sum(true),
        audited,
        events_suppressed: events_suppressed(pins)?,
        rules,
        reasons,
    })
}

/// Rules of the live policy that decided no packet since it was applied
/// (the default and failsafe pseudo-rules are not listed).
pub fn unused(stats: &Stats) -> Vec<&RuleCounters> {
    stats
        .rules
        .iter()
        .filter(|r| r.packets == 0 && r.id != RULE_DEFAULT && r.id != RULE_FAILSAFE)
        .collect()
}

/// Sum over CPUs of segfw_ratelimit.suppressed (maps/ratelimit).
fn events_suppressed(pins: &PinDir) -> Result<u64> {
    let map = TypedMap::open::<u32, segfw_ratelimit>(pins, "ratelimit")?;
    Ok(map
        .get_percpu::<segfw_ratelimit>(0)?
        .iter()
        .map(|r| r.suppressed)
        .sum())
}

/// Zeroes the per-rule counters of every id `image` uses (its rules, the
/// default and the failsafe rule), so that they count from this apply on.
/// Called by `policy apply` right after the swap; packets decided in
/// between are not counted, which errs towards "unused".
pub fn reset_rule_counters(rule_stats: &TypedMap, image: &PolicyImage) -> Result<()> {
    let ids: Vec<u32> = image
        .meta
        .iter()
        .filter(|(key, _)| key.kind == segfw_key_kind::SEGFW_KIND_RULE)
        .map(|(key, _)| key.id)
        .chain([RULE_DEFAULT, RULE_FAILSAFE])
        .collect();
    rule_stats.zero_percpu(&ids)
}

fn reason_counters(pins: &PinDir) -> Result<Vec<ReasonCounter>> {
    let map = open_reason_stats(pins)?;
    let mut out = Vec::new();
    for code in 0..u32::from(segfw_reason::SEGFW_REASON_MAX.0) {
        let packets: u64 = map.get_percpu::<u64>(code)?.iter().sum();
        if packets == 0 {
            continue;
        }
        out.push(ReasonCounter {
            reason: reason_name(code),
            code,
            drop: code >= u32::from(segfw_reason::SEGFW_REASON_FIRST_DROP.0),
            packets,
        });
    }
    Ok(out)
}
