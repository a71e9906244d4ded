//! `segfw policy check FILE` (not implemented yet).
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (TOML).
    pub file: PathBuf,
}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("policy check is not implemented yet")
}
