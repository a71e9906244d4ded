//! `segfw policy confirm`: keep the policy applied with `--confirm SECS`;
//! and the hidden `segfw policy rollback-watch`, the watchdog that apply
//! starts to roll it back otherwise.
use std::path::Path;

use anyhow::Context;

use super::common::installed;
use crate::daemon::rollback::{watch, WatchOutcome};
use crate::datapath::confirm::confirm;
use crate::datapath::pins::PinDir;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(pin_dir: &Path, _args: Args) -> anyhow::Result<()> {
    let pins = installed(pin_dir)?;
    let lock = pins.lock()?;
    let pending = confirm(&pins, &lock)?;
    println!(
        "confirmed generation {}: it stays in force, no rollback",
        pending.generation
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The generation that awaits confirmation.
    #[arg(long)]
    pub generation: u32,
    /// Rollback deadline, unix milliseconds.
    #[arg(long, value_name = "UNIX_MS")]
    pub deadline_ms: u64,
}

/// Started by `policy apply --confirm`, detached; prints what it did (to
/// /dev/null there, to the terminal when run by hand).
pub fn run_watch(pin_dir: &Path, args: WatchArgs) -> anyhow::Result<()> {
    let pins = PinDir::new(pin_dir);
    let outcome = watch(&pins, args.generation, args.deadline_ms).with_context(|| {
        format!(
            "watch generation {} in {} for its confirmation",
            args.generation,
            pin_dir.display()
        )
    })?;
    match outcome {
        WatchOutcome::RolledBack(r) if r.restored == 0 => println!(
            "generation {} was not confirmed: rolled back to no policy (generation {})",
            r.rolled_back, r.generation
        ),
        WatchOutcome::RolledBack(r) => println!(
            "generation {} was not confirmed: restored generation {} as generation {}",
            r.rolled_back, r.restored, r.generation
        ),
        WatchOutcome::Resolved => println!(
            "generation {} was confirmed or replaced: nothing to roll back",
            args.generation
        ),
        WatchOutcome::Uninstalled => println!("{} was uninstalled", pin_dir.display()),
    }
    Ok(())
}
