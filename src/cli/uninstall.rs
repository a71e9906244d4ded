//! `segfw uninstall`: detach everything and remove the pin dir.
use std::path::Path;

use super::common::{refuse_under_daemon, DaemonGuard};
use crate::datapath::pins::PinDir;
use crate::datapath::DatapathError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Uninstall although a `segfw run` daemon manages this instance; the
    /// daemon notices its pins are gone, logs it and exits 1.
    #[arg(long)]
    pub force: bool,
}

const UNDER_DAEMON: DaemonGuard<'static> = DaemonGuard {
    command: "uninstall",
    instead: "stop the daemon first",
    after_force: Some("the daemon notices its pins are gone, logs it and exits 1"),
};

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    let pins = PinDir::new(pin_dir);
    match std::fs::symlink_metadata(pins.root()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("nothing installed in {}", pin_dir.display());
            return Ok(());
        }
        Err(e) => {
            return Err(DatapathError::permission("stat", pins.root(), &e)
                .map_or_else(|| anyhow::Error::new(e), anyhow::Error::new)
                .context(format!("uninstall segfw from {}", pin_dir.display())))
        }
        Ok(_) => {}
    }
    let _lock = pins.lock()?;
    refuse_under_daemon(&pins, &UNDER_DAEMON, args.force)?;
    crate::datapath::uninstall::uninstall(&pins)?.print(&pins);
    Ok(())
}
