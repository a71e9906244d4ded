//! `segfw detach IFACE... | --all`: traffic on those interfaces flows
//! unfiltered again.
use std::path::Path;

use anyhow::Context;

use super::common::{installed, refuse_under_daemon, DaemonGuard};
use crate::datapath::attach::{attachments, detach, Interface};
use crate::datapath::pins::PinDir;
use crate::datapath::Direction;
use crate::UsageError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Interfaces to detach from (both directions).
    #[arg(
        value_name = "IFACE",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub interfaces: Vec<String>,
    /// Detach from every interface this instance is attached to.
    #[arg(long)]
    pub all: bool,
    /// Detach although a `segfw run` daemon manages this instance; it logs
    /// the detach and re-attaches only when its policy file changes or on
    /// SIGHUP.
    #[arg(long)]
    pub force: bool,
}

const UNDER_DAEMON: DaemonGuard<'static> = DaemonGuard {
    command: "detach",
    instead: "stop the daemon (it detaches on SIGTERM)",
    after_force: Some(
        "the daemon logs the detach, reports drift (segfw_policy_drift 1) and re-attaches \
                  only when its policy file changes or on SIGHUP",
    ),
};

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    let pins = installed(pin_dir)?;
    let _lock = pins.lock()?;
    refuse_under_daemon(&pins, &UNDER_DAEMON, args.force)?;
    let targets = if args.all {
        attached_interfaces(&pins)?
    } else {
        args.interfaces
    };
    if targets.is_empty() {
        println!("nothing attached");
    }
    for iface in &targets {
        detach_interface(&pins, iface)?;
    }
    Ok(())
}

/// Interfaces with at least one pinned attachment.
pub fn attached_interfaces(pins: &PinDir) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = attachments(pins)?
        .into_iter()
        .map(|a| a.interface)
        .collect();
    names.dedup();
    Ok(names)
}

/// Detaches both directions; an interface with nothing attached is only
/// an error if it does not exist either (a typo).
pub fn detach_interface(pins: &PinDir, iface: &str) -> anyhow::Result<()> {
    let mut removed = Vec::new();
    for dir in Direction::BOTH {
        if detach(pins, iface, dir).with_context(|| format!("detach segfw from {iface} {dir}"))? {
            removed.push(dir.as_str());
        }
    }
    if !removed.is_empty() {
        println!("detached {iface} {}", removed.join(" "));
    } else if Interface::by_name(iface).is_err() {
        return Err(UsageError(format!(
            "detach {iface}: no such interface, and segfw is not attached to it"
        ))
        .into());
    } else {
        println!("{iface}: not attached");
    }
    Ok(())
}
