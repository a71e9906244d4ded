//! `segfw uninstall`: detach everything and remove the pin dir.
use std::path::Path;

use crate::datapath::pins::PinDir;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(pin_dir: &Path, _args: Args) -> anyhow::Result<()> {
    let pins = PinDir::new(pin_dir);
    if !pins.root().exists() {
        println!("nothing installed in {}", pin_dir.display());
        return Ok(());
    }
    let _lock = pins.lock()?;
    crate::datapath::uninstall::uninstall(&pins)?.print(&pins);
    Ok(())
}
