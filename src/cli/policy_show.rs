//! `segfw policy show [--json]`: the policy the kernel enforces now,
//! decoded from the live maps.
use std::path::Path;

use anyhow::Context;

use super::common::{installed, print_json};
use super::status::serde_plain;
use crate::datapath::maps::Maps;
use crate::datapath::sets;
use crate::policy::view::{PolicyView, RuleView};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    let view = live_view(pin_dir)?;
    if args.json {
        return print_json(&view);
    }
    print_text(&view);
    Ok(())
}

/// The live policy of the instance in `pin_dir`.
pub fn live_view(pin_dir: &Path) -> anyhow::Result<PolicyView> {
    let pins = installed(pin_dir)?.read_only();
    let maps = Maps::open(&pins)?;
    sets::live_view(&maps).with_context(|| format!("read the live policy in {}", pin_dir.display()))
}

fn print_text(view: &PolicyView) {
    if view.generation == 0 {
        println!(
            "no policy applied: all traffic passes (apply one with `segfw policy apply FILE`)"
        );
        return;
    }
    println!(
        "generation {} from {} (sha256 {})",
        view.generation,
        view.source.as_deref().unwrap_or("?"),
        view.sha256.as_deref().unwrap_or("?")
    );
    println!(
        "defaults: action {}, mode {}, failsafe [{}]",
        serde_plain(&view.defaults.action),
        serde_plain(&view.defaults.mode),
        view.failsafe.join(", ")
    );
    println!(
        "router advertisements and redirects: {}, hop limit 255",
        view.defaults.router_advertisements.summary()
    );
    println!("segments:");
    for (name, cidrs) in &view.segments {
        println!("  {name:<16} {}", cidrs.join(", "));
    }
    println!("rules:");
    for rule in &view.rules {
        println!("  {}", rule_line(rule));
    }
    println!("{} trie entries", view.trie_entries);
}

fn rule_line(rule: &RuleView) -> String {
    let mut line = format!(
        "#{:<5} {:<20} {:<5} {} -> {} {}",
        rule.id,
        rule.name,
        serde_plain(&rule.action),
        rule.from.join(","),
        rule.to.join(","),
        rule.proto.join(",")
    );
    if !rule.ports.is_empty() {
        line.push_str(&format!(" ports {}", rule.ports.join(",")));
    }
    if !rule.icmp_types.is_empty() {
        line.push_str(&format!(" types {}", rule.icmp_types.join(",")));
    }
    if rule.log {
        line.push_str(" log");
    }
    if rule.audit {
        line.push_str(" audit");
    }
    line
}
