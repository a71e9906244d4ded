//! `segfw run IFACE... --policy FILE [--metrics ADDR] [--keep]`: the
//! foreground daemon (see crate::daemon::run).
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::common::{interfaces, require_policy_file};
use crate::daemon::run::{run as run_daemon, RunConfig};
use crate::datapath::pins::PinDir;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Interfaces to attach to, both directions (in the current network namespace).
    #[arg(required = true, value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// Policy file; re-applied whenever its content changes (also through
    /// rename-on-save and Kubernetes ConfigMap symlink swaps).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// On SIGINT/SIGTERM leave the interfaces attached: the last policy
    /// keeps enforcing after segfw exits.
    #[arg(long)]
    pub keep: bool,
}

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    require_policy_file(&args.policy)?;
    let config = RunConfig {
        interfaces: interfaces(&args.interfaces)?,
        policy: std::path::absolute(&args.policy)
            .with_context(|| format!("resolve {}", args.policy.display()))?,
        metrics: args.metrics,
        keep: args.keep,
    };
    run_daemon(&PinDir::new(pin_dir), config)
}
