//! `segfw policy rollback-watch` (hidden): the rollback watchdog of
//! `policy apply --confirm SECS`, a detached process (in its own session, stdio on
//! /dev/null) that outlives the terminal of the apply, waits for the
//! deadline, and then, under the pin-dir lock, makes the previous policy
//! live again unless the apply was confirmed (or replaced) meanwhile.
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::Context;

use crate::datapath::apply::ApplyError;
use crate::datapath::clock::unix_ms;
use crate::datapath::confirm::{live_pending, rollback_if_pending, RollbackReport};
use crate::datapath::instance::Instance;
use crate::datapath::pins::PinDir;
use crate::datapath::sets::next_generation;
use crate::datapath::DatapathError;

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

/// How often the watchdog looks at the pending record: it ends early
/// once the confirmation it guards is resolved.
const POLL: Duration = Duration::from_millis(250);

/// How a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchOutcome {
    RolledBack(RollbackReport),
    /// Confirmed, or replaced by a later apply: nothing to do.
    Resolved,
    /// The instance was uninstalled.
    Uninstalled,
}

/// Starts `segfw --pin-dir DIR policy rollback-watch --generation G
/// --deadline-ms T` detached from the caller: own session (no controlling
/// terminal, so no SIGHUP or Ctrl-C of the caller's terminal reaches it),
/// stdio on /dev/null. The caller may exit at once; the child is reparented.
pub fn spawn(pin_dir: &Path, generation: u32, deadline_ms: u64) -> io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("--pin-dir")
        .arg(pin_dir)
        .args(["policy", "rollback-watch", "--generation"])
        .arg(generation.to_string())
        .arg("--deadline-ms")
        .arg(deadline_ms.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setsid(2), which is async-signal-safe and touches no memory of
    // the parent (no allocation, no locks).
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
    }
    cmd.spawn()
}

/// Waits for the deadline of the confirmation (`generation`,
/// `deadline_ms`), then rolls back if it is still pending. Ends early when
/// it is resolved: its generation is live without the record (confirmed),
/// or the live generation is neither it nor the one before (replaced).
/// The one before is live only until the apply that started this watchdog
/// swaps (it holds the lock, so nothing else applies meanwhile).
pub fn watch(pins: &PinDir, generation: u32, deadline_ms: u64) -> anyhow::Result<WatchOutcome> {
    loop {
        // A stat error is not "uninstalled": the deadline check decides.
        if matches!(pins.is_installed(), Ok(false)) {
            return Ok(WatchOutcome::Uninstalled);
        }
        let now = unix_ms();
        if now >= deadline_ms {
            return roll_back(pins, generation, deadline_ms);
        }
        // Read errors are transient here (a concurrent apply re-pinning);
        // the check under the lock at the deadline is what counts.
        if let Ok((live, pending)) = live_pending(pins) {
            let ours =
                pending.is_some_and(|p| p.generation == generation && p.deadline_ms == deadline_ms);
            let before = next_generation(live) == generation;
            if !ours && !before {
                return Ok(WatchOutcome::Resolved);
            }
        }
        thread::sleep(POLL.min(Duration::from_millis(deadline_ms - now)));
    }
}

fn roll_back(pins: &PinDir, generation: u32, deadline_ms: u64) -> anyhow::Result<WatchOutcome> {
    // A long apply may hold the lock past LOCK_TIMEOUT: keep waiting, the
    // rollback must not be skipped because the instance was busy.
    let lock = loop {
        match pins.lock() {
            Ok(lock) => break lock,
            Err(DatapathError::LockTimeout { .. }) => continue,
            Err(e) => return Err(e).context("lock the pin dir to roll back"),
        }
    };
    let report = Instance::open(pins, &lock)
        .map_err(ApplyError::from)
        .and_then(|mut instance| rollback_if_pending(&mut instance, generation, deadline_ms))
        .with_context(|| format!("roll back unconfirmed generation {generation}"))?;
    Ok(report.map_or(WatchOutcome::Resolved, WatchOutcome::RolledBack))
}
