//! `segfw policy diff FILE`: what applying FILE would change.
use std::path::{Path, PathBuf};

use super::common::{checked_policy, print_json};
use super::policy_show::live_view;
use crate::datapath::pins::PinDir;
use crate::policy::view::{decode, diff, PolicyDiff};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (TOML).
    pub file: PathBuf,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    let policy = checked_policy(&args.file)?;
    // Nothing installed reads as "no policy": everything in FILE is new.
    // A pin dir this user may not read is an error, never "no policy".
    let live = if PinDir::new(pin_dir).is_installed()? {
        live_view(pin_dir)?
    } else {
        decode(&[], &[])
    };
    let new = decode(&policy.image.trie, &policy.image.meta);
    let changes = diff(&live, &new);
    if args.json {
        return print_json(&changes);
    }
    print_text(&changes);
    Ok(())
}

fn print_text(d: &PolicyDiff) {
    if d.is_empty() {
        println!("no changes");
        return;
    }
    for change in &d.defaults {
        println!("~ defaults {change}");
    }
    for port in &d.failsafe_added {
        println!("+ failsafe {port}");
    }
    for port in &d.failsafe_removed {
        println!("- failsafe {port}");
    }
    for name in &d.segments_added {
        println!("+ segment {name}");
    }
    for name in &d.segments_removed {
        println!("- segment {name}");
    }
    for seg in &d.segments_changed {
        let added = seg.cidrs_added.iter().map(|c| format!("+{c}"));
        let removed = seg.cidrs_removed.iter().map(|c| format!("-{c}"));
        let cidrs: Vec<String> = added.chain(removed).collect();
        println!("~ segment {}: {}", seg.name, cidrs.join(" "));
    }
    for name in &d.rules_added {
        println!("+ rule {name}");
    }
    for name in &d.rules_removed {
        println!("- rule {name}");
    }
    for rule in &d.rules_changed {
        println!("~ rule {}: {}", rule.name, rule.changes.join("; "));
    }
}
