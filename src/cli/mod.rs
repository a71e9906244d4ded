//! The CLI contract of DESIGN.md section 2: one file per command.
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod attach;
mod common;
pub mod conntrack;
pub mod detach;
pub mod events;
mod exit;
pub mod explain;
pub mod policy_apply;
pub mod policy_check;
pub mod policy_confirm;
pub mod policy_diff;
pub mod policy_rollback_watch;
pub mod policy_show;
pub mod run;
pub mod stats;
pub mod status;
pub mod uninstall;

pub use exit::exit_code;

/// Default pin directory of the instance.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/segfw";

#[derive(Debug, Parser)]
#[command(
    name = "segfw",
    version,
    about = "Microsegmentation firewall on eBPF tcx"
)]
pub struct Cli {
    /// bpffs directory of this segfw instance (maps, programs, links).
    #[arg(long, global = true, env = "SEGFW_PIN_DIR", default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the datapath once per pin dir, attach it to interfaces, apply a policy.
    Attach(attach::Args),
    /// Remove segfw from interfaces; their traffic flows unfiltered again.
    Detach(detach::Args),
    /// Detach everything and remove the pin dir.
    Uninstall(uninstall::Args),
    /// Attached interfaces, programs, live policy and map fill levels.
    Status(status::Args),
    /// Check, apply, show or diff policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// List or flush tracked sessions.
    #[command(subcommand)]
    Conntrack(conntrack::Command),
    /// Per-rule packets/bytes/last hit and per-reason verdict counters.
    Stats(stats::Args),
    /// Foreground daemon: attach, apply, re-apply FILE on change, log events, serve metrics.
    Run(run::Args),
    /// Stream verdict events (denies, log rules, audit would-drops) from the ring buffer.
    Events(events::Args),
    /// Run a synthetic packet through the loaded program, without side effects.
    Explain(explain::Args),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse, validate and compile a policy file; needs no root and no kernel.
    Check(policy_check::Args),
    /// Atomically replace the live policy; programs are not reloaded.
    Apply(policy_apply::Args),
    /// The policy the kernel enforces now, decoded from the maps.
    Show(policy_show::Args),
    /// What would change between the live policy and FILE.
    Diff(policy_diff::Args),
    /// Keep the policy applied with `apply --confirm`; cancels its rollback.
    Confirm(policy_confirm::Args),
    /// The rollback watchdog that `apply --confirm` starts (internal).
    #[command(hide = true)]
    RollbackWatch(policy_rollback_watch::WatchArgs),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let pin_dir = cli.pin_dir.as_path();
    match cli.command {
        Command::Attach(args) => attach::run(pin_dir, args),
        Command::Detach(args) => detach::run(pin_dir, args),
        Command::Uninstall(args) => uninstall::run(pin_dir, args),
        Command::Status(args) => status::run(pin_dir, args),
        Command::Policy(PolicyCommand::Check(args)) => policy_check::run(args),
        Command::Policy(PolicyCommand::Apply(args)) => policy_apply::run(pin_dir, args),
        Command::Policy(PolicyCommand::Show(args)) => policy_show::run(pin_dir, args),
        Command::Policy(PolicyCommand::Diff(args)) => policy_diff::run(pin_dir, args),
        Command::Conntrack(cmd) => conntrack::run(pin_dir, cmd),
        Command::Stats(args) => stats::run(pin_dir, args),
        Command::Run(args) => run::run(pin_dir, args),
        Command::Policy(PolicyCommand::Confirm(args)) => policy_confirm::run(pin_dir, args),
        Command::Policy(PolicyCommand::RollbackWatch(args)) => {
            policy_rollback_watch::run_watch(pin_dir, args)
        }
        Command::Events(args) => events::run(pin_dir, args),
        Command::Explain(args) => explain::run(pin_dir, args),
    }
}
