//! `segfw policy confirm`: keep the policy applied with `--confirm SECS`
//! (the watchdog of policy_rollback_watch.rs then has nothing to do).
use std::path::Path;

use super::common::installed;
use crate::datapath::confirm::confirm;
use crate::datapath::instance::Instance;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(pin_dir: &Path, _args: Args) -> anyhow::Result<()> {
    let pins = installed(pin_dir)?;
    let lock = pins.lock()?;
    let pending = confirm(&mut Instance::open(&pins, &lock)?)?;
    println!(
        "confirmed generation {}: it stays in force, no rollback",
        pending.generation
    );
    Ok(())
}
