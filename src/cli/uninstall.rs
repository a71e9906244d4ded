//! `segfw uninstall`: detach everything and remove the pin dir.
use std::path::Path;

use super::detach::{attached_interfaces, detach_interface};
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
    for iface in attached_interfaces(&pins)? {
        detach_interface(&pins, &iface)?;
    }
    pins.remove_all()?;
    println!("removed {}", pin_dir.display());
    Ok(())
}
