//! `segfw attach` (not implemented yet).
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_pin_dir: &Path, _args: Args) -> anyhow::Result<()> {
    anyhow::bail!("attach is not implemented yet")
}
