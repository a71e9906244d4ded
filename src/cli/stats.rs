//! `segfw stats [--json] [--unused]`: per-rule and per-reason counters.
use std::path::Path;

use anyhow::Context;

use super::common::{installed, print_json};
use crate::datapath::stats::{collect, Stats};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also list rules that never matched.
    #[arg(long)]
    pub unused: bool,
}

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    let pins = installed(pin_dir)?;
    let stats = collect(&pins, args.unused).context("read counters")?;
    if args.json {
        return print_json(&stats);
    }
    print_text(&stats);
    Ok(())
}

fn print_text(stats: &Stats) {
    println!("rules:");
    if stats.rules.is_empty() {
        println!("  (no rule has matched yet)");
    }
    for r in &stats.rules {
        let last = r
            .last_hit_s_ago
            .map_or("never".to_string(), |s| format!("{s}s ago"));
        println!(
            "  #{:<6} {:<24} {:>10} pkts {:>12} bytes  last {last}",
            r.id, r.name, r.packets, r.bytes
        );
    }
    println!(
        "verdicts: {} passed, {} dropped",
        stats.passed, stats.dropped
    );
    for reason in &stats.reasons {
        println!("  {:<20} {:>10}", reason.reason, reason.packets);
    }
}
