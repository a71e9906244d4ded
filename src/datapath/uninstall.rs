//! Removing an instance: every attachment is detached, then exactly the
//! pins segfw creates are removed. Anything else in the pin dir (a foreign
//! pin, another tool's directory, a pin dir nested by an older segfw) is
//! left where it is, with a warning, and keeps the pin dir.
use std::fs;
use std::path::{Path, PathBuf};

use super::attach::detach_anywhere;
use super::pins::{
    looks_like_instance, read_dir_names, PinDir, ACTIVE_META_PIN, ACTIVE_POLICY_PIN,
    INSTANCE_ENTRIES, MAP_NAMES, PROG_NAMES, REPIN_SUFFIX,
};
use super::{DatapathError, Direction, Result};

/// What `uninstall` did.
#[derive(Debug, Default)]
pub struct UninstallReport {
    /// (interface, direction) detached.
    pub detached: Vec<(String, Direction)>,
    /// Entries left in place because segfw did not create them.
    pub foreign: Vec<PathBuf>,
    /// Things the operator must do by hand.
    pub warnings: Vec<String>,
    /// Whether the pin dir itself is gone.
    pub removed_root: bool,
}

impl UninstallReport {
    pub fn print(&self, pins: &PinDir) {
        let mut ifaces: Vec<&str> = Vec::new();
        for (iface, _) in &self.detached {
            if !ifaces.contains(&iface.as_str()) {
                ifaces.push(iface);
            }
        }
        for iface in ifaces {
            let dirs: Vec<&str> = self
                .detached
                .iter()
                .filter(|(i, _)| i == iface)
                .map(|(_, d)| d.as_str())
                .collect();
            println!("detached {iface} {}", dirs.join(" "));
        }
        for path in &self.foreign {
            eprintln!(
                "warning: left {}: not a name this segfw instance pins; remove it yourself if it \
                 is not needed",
                path.display()
            );
        }
        for warning in &self.warnings {
            eprintln!("warning: {warning}");
        }
        if self.removed_root {
            println!("removed {}", pins.root().display());
        } else {
            println!(
                "removed segfw's pins from {}; kept the directory for what is not segfw's",
                pins.root().display()
            );
        }
    }
}

/// Detaches everything, then removes segfw's pins and directories, and
/// the pin dir when nothing else is left in it. The caller holds the lock.
pub fn uninstall(pins: &PinDir) -> Result<UninstallReport> {
    // A pin dir that is no instance itself but lies inside or around one
    // is a mistaken --pin-dir: say so instead of listing the other's pins.
    if !looks_like_instance(pins.root()) {
        pins.refuse_nesting()?;
    }
    let mut report = UninstallReport::default();
    for (iface, dir) in pins.link_pins()? {
        if let Some(warning) = detach_anywhere(pins, &iface, dir)? {
            report.warnings.push(warning);
        }
        report.detached.push((iface, dir));
    }
    let map_names = known_map_names();
    let known_maps: Vec<&str> = map_names.iter().map(String::as_str).collect();
    remove_known(pins.links_dir(), &[], true, &mut report)?;
    remove_known(pins.progs_dir(), &PROG_NAMES, false, &mut report)?;
    remove_known(pins.maps_dir(), &known_maps, false, &mut report)?;
    for entry in read_dir_names(pins.root())? {
        let path = pins.root().join(&entry);
        // progs/, maps/, links/ are gone unless they hold something foreign,
        // which is reported already.
        let ours = INSTANCE_ENTRIES.contains(&entry.as_str());
        if !ours || !report.foreign.iter().any(|f| f.starts_with(&path)) {
            report.foreign.push(path);
        }
    }
    report.removed_root = report.foreign.is_empty() && remove_dir(pins.root())?;
    Ok(report)
}

/// Pins of maps/: every map, the second pins of the live set, and the
/// temporaries an interrupted re-pin leaves.
fn known_map_names() -> Vec<String> {
    let mut names: Vec<String> = MAP_NAMES.iter().map(|n| n.to_string()).collect();
    names.push(ACTIVE_POLICY_PIN.to_string());
    names.push(ACTIVE_META_PIN.to_string());
    let temporaries: Vec<String> = names.iter().map(|n| format!("{n}{REPIN_SUFFIX}")).collect();
    names.extend(temporaries);
    names
}

/// Removes the `known` pins of `dir` (links/: its per-interface dirs,
/// each holding ingress/egress), then `dir` if that empties it; records
/// anything else as foreign.
fn remove_known(
    dir: PathBuf,
    known: &[&str],
    links: bool,
    report: &mut UninstallReport,
) -> Result<()> {
    for name in read_dir_names(&dir)? {
        let path = dir.join(&name);
        if links && path.is_dir() {
            remove_known(path, &["ingress", "egress"], false, report)?;
        } else if known.contains(&name.as_str()) && !path.is_dir() {
            super::pins::remove_pin(&path)?;
        } else {
            report.foreign.push(path);
        }
    }
    remove_dir(&dir)?;
    Ok(())
}

/// Removes an empty directory: Ok(false) if it is missing or not empty.
fn remove_dir(dir: &Path) -> Result<bool> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(false),
        Err(source) => Err(DatapathError::Unpin {
            path: dir.to_path_buf(),
            source,
        }),
    }
}
