//! `segfw policy apply FILE`: atomically replace the live policy.
use std::path::{Path, PathBuf};

use super::attach::apply_policy;
use super::common::{checked_policy, installed};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (TOML).
    pub file: PathBuf,
}

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    let policy = checked_policy(&args.file)?;
    let pins = installed(pin_dir)?;
    let lock = pins.lock()?;
    apply_policy(&pins, &lock, &policy, &args.file)
}
