//! `segfw policy apply FILE`: atomically replace the live policy.
use std::path::{Path, PathBuf};

use super::attach::apply_policy;
use super::common::{checked_policy, installed};
use crate::datapath::maps::open_conntrack;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (TOML).
    pub file: PathBuf,
}

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    let policy = checked_policy(&args.file)?;
    let pins = installed(pin_dir)?;
    let lock = pins.lock()?;
    apply_policy(&pins, &lock, &policy, &args.file)?;
    // The conntrack size is fixed when the map is created.
    let wanted = policy.image.runtime.conntrack_max_entries;
    let in_use = open_conntrack(&pins)?.max_entries();
    if wanted != in_use {
        eprintln!(
            "warning: conntrack keeps its {in_use} entries (policy asks for {wanted}); \
             the size only changes after `segfw uninstall` and a new attach"
        );
    }
    Ok(())
}
