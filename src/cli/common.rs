//! Helpers shared by the commands that work on an instance.
use std::path::Path;

use anyhow::Context;

use crate::datapath::attach::Interface;
use crate::datapath::pins::PinDir;
use crate::datapath::records::live_daemon;
use crate::datapath::DatapathError;
use crate::policy::{check_file, CheckedPolicy};
use crate::UsageError;

/// Checks a policy file (invalid => exit 2) and records its absolute path,
/// so `status` names it whatever directory it runs in.
pub fn checked_policy(path: &Path) -> anyhow::Result<CheckedPolicy> {
    require_policy_file(path)?;
    let mut policy =
        check_file(path).with_context(|| format!("check policy {}", path.display()))?;
    if let Ok(absolute) = path.canonicalize() {
        policy.path = absolute;
    }
    Ok(policy)
}

/// A missing policy file, or one that is not a file, is a usage error
/// (exit 2); one this user may not read is a runtime error (exit 1) that
/// says so, not "does not exist".
pub fn require_policy_file(path: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(UsageError(format!("policy file {} is not a file", path.display())).into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(UsageError(format!("policy file {} does not exist", path.display())).into())
        }
        Err(e) => Err(e).with_context(|| format!("read policy file {}", path.display())),
    }
}

/// Resolves every interface name first, so that a typo changes nothing.
pub fn interfaces(names: &[String]) -> anyhow::Result<Vec<Interface>> {
    names
        .iter()
        .map(|name| match Interface::by_name(name) {
            Ok(iface) => Ok(iface),
            Err(err @ DatapathError::UnknownInterface { .. }) => Err(UsageError(format!(
                "{err}; list interfaces with `ip link` (run segfw in the interface's network namespace)"
            ))
            .into()),
            Err(err) => Err(err.into()),
        })
        .collect()
}

/// The pin dir of an instance that must exist already (exit 1 otherwise).
pub fn installed(pin_dir: &Path) -> anyhow::Result<PinDir> {
    let pins = PinDir::new(pin_dir);
    pins.require_installed()?;
    Ok(pins)
}

/// What a command would do to an instance that a `segfw run` daemon
/// manages (DESIGN §2: such commands need --force).
pub struct DaemonGuard<'a> {
    /// The command, as the refusal names it ("policy apply").
    pub command: &'a str,
    /// What to do instead; "{file}" stands for the daemon's policy file.
    pub instead: &'a str,
    /// What the daemon does after a forced run of the command; None: the
    /// command has no --force.
    pub after_force: Option<&'a str>,
}

/// `attach --policy` would override the daemon's policy; attach has no
/// --force (DESIGN §2), and without --policy it only adds interfaces.
pub const ATTACH_POLICY_UNDER_DAEMON: DaemonGuard<'static> = DaemonGuard {
    command: "attach --policy",
    instead: "attach without --policy (the daemon's policy then applies there too), or edit \
              {file} (the daemon applies it)",
    after_force: None,
};

/// Says so before a fresh load, so that the verifier's seconds are not a
/// silent wait.
pub fn announce_fresh_load(pins: &PinDir) -> anyhow::Result<()> {
    if !pins.is_installed()? {
        println!("loading the datapath (verifier) ...");
    }
    Ok(())
}

/// Refuses the command (exit 1) while a live `segfw run` manages the
/// instance, naming its pid and policy file, unless `force`; then it warns.
/// Call it under the pin dir lock, which the daemon holds while it records
/// itself.
pub fn refuse_under_daemon(
    pins: &PinDir,
    guard: &DaemonGuard<'_>,
    force: bool,
) -> anyhow::Result<()> {
    let daemon = live_daemon(pins)
        .with_context(|| format!("read the daemon record in {}", pins.root().display()))?;
    let Some(daemon) = daemon else {
        return Ok(());
    };
    let who = format!(
        "segfw run (pid {}, policy {}) manages the instance in {}",
        daemon.pid,
        daemon.policy,
        pins.root().display()
    );
    let instead = guard.instead.replace("{file}", &daemon.policy);
    match guard.after_force {
        Some(after) if force => {
            eprintln!("warning: {}: {who}; --force: {after}", guard.command);
            Ok(())
        }
        Some(after) => Err(anyhow::anyhow!(
            "{}: refused, {who}; {instead}, or pass --force ({after})",
            guard.command
        )),
        None => Err(anyhow::anyhow!(
            "{}: refused, {who}; {instead}",
            guard.command
        )),
    }
}

/// Prints `value` as one pretty JSON document.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// First 8 hex digits of a sha256, for one-line messages.
pub fn short_hash(sha256: &str) -> String {
    let short: String = sha256.chars().take(8).collect();
    format!("{short}…")
}
