//! `segfw policy apply FILE [--confirm SECS] [--force]`: atomically replace
//! the live policy, optionally on probation until `segfw policy confirm`.
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::common::{checked_policy, installed, refuse_under_daemon, short_hash, DaemonGuard};
use super::policy_rollback_watch;
use crate::datapath::apply::{apply_with, next_generation_of, ApplyOptions, ApplyReport};
use crate::datapath::clock::rfc3339_utc;
use crate::datapath::clock::unix_ms;
use crate::datapath::instance::Instance;

/// A manual apply overrides the daemon's policy file.
pub const UNDER_DAEMON: DaemonGuard<'static> = DaemonGuard {
    command: "policy apply",
    instead: "edit {file} instead (the daemon applies it)",
    after_force: Some(
        "the daemon reports the drift (segfw_policy_drift 1) and re-applies its file \
                  only when that file changes or on SIGHUP",
    ),
};

/// Longest --confirm: a week.
const MAX_CONFIRM_SECS: u64 = 7 * 24 * 3600;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (TOML).
    pub file: PathBuf,
    /// Roll back to the previous policy unless `segfw policy confirm` runs
    /// within SECS seconds (a detached watchdog does it, so it happens even
    /// if this terminal is gone). With no previous policy, rolling back
    /// means no policy: all traffic passes.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=MAX_CONFIRM_SECS))]
    pub confirm: Option<u64>,
    /// Apply even though a `segfw run` daemon manages this instance (it
    /// then reports the drift and re-applies its own file only when that
    /// file changes or on SIGHUP), or the live policy still awaits
    /// confirmation (that policy then counts as confirmed: it is what a
    /// rollback of this apply restores).
    #[arg(long)]
    pub force: bool,
}

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    let policy = checked_policy(&args.file)?;
    let pins = installed(pin_dir)?;
    let lock = pins.lock()?;
    refuse_under_daemon(&pins, &UNDER_DAEMON, args.force)?;
    let not_applied = || {
        format!(
            "apply {}; the live policy stays in force",
            args.file.display()
        )
    };
    let mut instance = Instance::open(&pins, &lock).with_context(not_applied)?;
    let options = ApplyOptions {
        force: args.force,
        confirm_deadline_ms: args.confirm.map(|secs| unix_ms() + secs * 1000),
    };
    // The watchdog starts before the swap: if this process dies right
    // after it, the rollback still happens.
    let mut watchdog = match options.confirm_deadline_ms {
        Some(deadline) => {
            let generation = next_generation_of(&mut instance)?;
            let child = policy_rollback_watch::spawn(pin_dir, generation, deadline)
                .context("start the rollback watchdog; nothing was applied")?;
            Some(child)
        }
        None => None,
    };
    let report = match apply_with(&mut instance, &policy, options) {
        Ok(report) => report,
        Err(err) => {
            if let Some(child) = watchdog.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
            return Err(err).with_context(not_applied);
        }
    };
    print_report(&args.file, &report);
    // The conntrack size is fixed when the map is created.
    let wanted = policy.image.runtime.conntrack_max_entries;
    let in_use = instance.conntrack.max_entries();
    if wanted != in_use {
        eprintln!(
            "warning: conntrack keeps its {in_use} entries (policy asks for {wanted}); \
             the size only changes after `segfw uninstall` and a new attach"
        );
    }
    Ok(())
}

/// "applied FILE: generation G ...", the line every apply prints (here
/// and in `attach --policy`).
pub(super) fn print_applied(file: &Path, report: &ApplyReport) {
    println!(
        "applied {}: generation {} (sha256 {}), {} rules, {} entries, swapped in {} ms",
        file.display(),
        report.generation,
        short_hash(&report.sha256),
        report.rules,
        report.trie_entries,
        report.elapsed.as_millis()
    );
}

fn print_report(file: &Path, report: &ApplyReport) {
    print_applied(file, report);
    if let Some(forced) = &report.forced {
        println!(
            "generation {} was awaiting confirmation: confirmed implicitly (--force)",
            forced.generation
        );
    }
    if let Some(pending) = &report.pending {
        let restores = match pending.previous_generation {
            0 => "no policy (all traffic passes)".to_string(),
            g => format!("generation {g}"),
        };
        println!(
            "run `segfw policy confirm` before {} ({}), or {restores} is restored",
            rfc3339_utc(pending.deadline_ms),
            pending.describe_deadline()
        );
    }
}
