//! `segfw stats [--json] [--unused]`: per-rule and per-reason counters.
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::common::{installed, print_json};
use crate::datapath::stats::{collect, unused, Stats};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// List only the rules of the live policy that matched nothing since it was applied.
    #[arg(long)]
    pub unused: bool,
}

/// `stats --unused --json`.
#[derive(Debug, Serialize)]
struct Unused<'a> {
    generation: u32,
    unused: Vec<UnusedRule<'a>>,
}

#[derive(Debug, Serialize)]
struct UnusedRule<'a> {
    id: u32,
    name: &'a str,
}

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    let pins = installed(pin_dir)?.read_only();
    let stats = collect(&pins, args.unused).with_context(|| {
        format!(
            "read counters of the segfw instance in {}",
            pin_dir.display()
        )
    })?;
    if args.unused {
        let rules = Unused {
            generation: stats.generation,
            unused: unused(&stats)
                .into_iter()
                .map(|r| UnusedRule {
                    id: r.id,
                    name: &r.name,
                })
                .collect(),
        };
        if args.json {
            return print_json(&rules);
        }
        print_unused(&rules);
        return Ok(());
    }
    if args.json {
        return print_json(&stats);
    }
    print_text(&stats);
    Ok(())
}

fn print_unused(rules: &Unused<'_>) {
    if rules.generation == 0 {
        println!("no policy applied");
        return;
    }
    if rules.unused.is_empty() {
        println!(
            "every rule of generation {} matched since it was applied",
            rules.generation
        );
        return;
    }
    println!(
        "rules of generation {} that matched nothing since it was applied:",
        rules.generation
    );
    for r in &rules.unused {
        println!("  #{:<6} {}", r.id, r.name);
    }
}

fn print_text(stats: &Stats) {
    println!(
        "rules (policy generation {}, counted since it was applied):",
        stats.generation
    );
    if stats.rules.is_empty() {
        println!("  (no rule has matched yet)");
    }
    for r in &stats.rules {
        let last = match (&r.last_hit, r.last_hit_s_ago) {
            (Some(at), Some(ago)) => format!("{at} ({ago}s ago)"),
            _ => "never".to_string(),
        };
        println!(
            "  #{:<6} {:<24} {:>10} pkts {:>12} bytes  last {last}",
            r.id, r.name, r.packets, r.bytes
        );
    }
    println!(
        "verdicts: {} passed, {} dropped, {} total",
        stats.passed,
        stats.dropped,
        stats.passed + stats.dropped
    );
    println!(
        "audit: {} would-be drops passed (not counted as dropped)",
        stats.audited
    );
    println!("drops by reason:");
    let drops: Vec<_> = stats.reasons.iter().filter(|r| r.drop).collect();
    if drops.is_empty() {
        println!("  (none)");
    }
    for reason in drops {
        println!("  {:<20} {:>10}", reason.reason, reason.packets);
    }
    println!("passes by reason:");
    for reason in stats.reasons.iter().filter(|r| !r.drop) {
        println!("  {:<20} {:>10}", reason.reason, reason.packets);
    }
    println!(
        "events suppressed by the rate limit: {}",
        stats.events_suppressed
    );
}
