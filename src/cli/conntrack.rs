//! `segfw conntrack list [--json] | flush`.
use std::path::Path;

use anyhow::Context;

use super::common::{installed, print_json};
use crate::datapath::conntrack::{flush, list, Flow};
use crate::datapath::events::endpoint;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Tracked sessions: tuple, state, age, rule id.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove every tracked session.
    Flush,
}

pub fn run(pin_dir: &Path, cmd: Command) -> anyhow::Result<()> {
    let pins = installed(pin_dir)?;
    match cmd {
        Command::List { json } => {
            let flows = list(&pins.read_only()).context("list tracked sessions")?;
            if json {
                return print_json(&flows);
            }
            print_text(&flows);
        }
        Command::Flush => {
            let _lock = pins.lock()?;
            let removed = flush(&pins, &_lock).context("flush tracked sessions")?;
            println!("flushed {removed} tracked sessions");
        }
    }
    Ok(())
}

fn print_text(flows: &[Flow]) {
    if flows.is_empty() {
        println!("no tracked sessions");
        return;
    }
    println!(
        "{:<6} {:<46} {:<11} {:>7} {:>7}  {:<7} rule (generation)",
        "proto", "originator -> responder", "state", "age_s", "idle_s", "seen"
    );
    for f in flows {
        let tuple = format!(
            "{} -> {}",
            endpoint(f.src, f.sport),
            endpoint(f.dst, f.dport)
        );
        println!(
            "{:<6} {:<46} {:<11} {:>7} {:>7}  {:<7} #{} {} ({})",
            f.proto,
            tuple,
            f.state,
            f.age_s,
            f.idle_s,
            f.direction,
            f.rule_id,
            f.rule,
            f.generation
        );
    }
}
