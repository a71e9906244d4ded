//! `segfw policy check FILE`: parse, validate and compile; no root, no kernel.
use std::path::PathBuf;

use crate::policy::{self, CheckedPolicy};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (TOML).
    pub file: PathBuf,
}

/// Prints a one-line summary; invalid policies return `PolicyErrors`
/// (every error as file:line:col, exit 2).
pub fn run(args: Args) -> anyhow::Result<()> {
    let checked = policy::check_file(&args.file)?;
    println!("{}", summary(&checked));
    Ok(())
}

/// `FILE: ok — 4 segments (9 prefixes), 7 rules, 31 trie entries (12 rule
/// entries), default deny, mode enforce, failsafe tcp/22`
pub fn summary(checked: &CheckedPolicy) -> String {
    let s = &checked.image.summary;
    let defaults = &checked.model.defaults;
    let failsafe = if defaults.failsafe_tcp.is_empty() {
        "off".to_string()
    } else {
        let ports: Vec<String> = defaults
            .failsafe_tcp
            .iter()
            .map(|p| format!("tcp/{p}"))
            .collect();
        ports.join(" ")
    };
    format!(
        "{}: ok — {} ({}), {}, {} ({}), default {}, mode {}, failsafe {failsafe}",
        checked.path.display(),
        count(s.segments, "segment"),
        count(s.prefixes, "prefix"),
        count(s.rules, "rule"),
        count(s.trie_entries, "trie entry"),
        count(s.rule_entries, "rule entry"),
        defaults.action,
        defaults.mode,
    )
}

/// "1 rule", "2 rules", "3 prefixes", "4 trie entries".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    let plural = if let Some(stem) = noun.strip_suffix('y') {
        format!("{stem}ies")
    } else if noun.ends_with('x') {
        format!("{noun}es")
    } else {
        format!("{noun}s")
    };
    format!("{n} {plural}")
}
