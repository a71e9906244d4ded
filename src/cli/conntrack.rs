//! `segfw conntrack list|flush` (not implemented yet).
use std::path::Path;

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

pub fn run(_pin_dir: &Path, _cmd: Command) -> anyhow::Result<()> {
    anyhow::bail!("conntrack is not implemented yet")
}
