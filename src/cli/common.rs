//! Helpers shared by the commands that work on an instance.
use std::path::Path;

use anyhow::Context;

use crate::datapath::attach::Interface;
use crate::datapath::pins::PinDir;
use crate::datapath::DatapathError;
use crate::policy::{check_file, CheckedPolicy};
use crate::UsageError;

/// Checks a policy file (invalid => exit 2) and records its absolute path,
/// so `status` names it whatever directory it runs in.
pub fn checked_policy(path: &Path) -> anyhow::Result<CheckedPolicy> {
    if !path.is_file() {
        return Err(UsageError(format!(
            "policy file {} does not exist or is not a file",
            path.display()
        ))
        .into());
    }
    let mut policy =
        check_file(path).with_context(|| format!("check policy {}", path.display()))?;
    if let Ok(absolute) = path.canonicalize() {
        policy.path = absolute;
    }
    Ok(policy)
}

/// Resolves every interface name first, so that a typo changes nothing.
pub fn interfaces(names: &[String]) -> anyhow::Result<Vec<Interface>> {
    names
        .iter()
        .map(|name| match Interface::by_name(name) {
            Ok(iface) => Ok(iface),
            Err(err @ DatapathError::UnknownInterface { .. }) => Err(UsageError(format!(
                "{err}; list interfaces with `ip link` (run segfw in the interface's network namespace)"
            ))
            .into()),
            Err(err) => Err(err.into()),
        })
        .collect()
}

/// The pin dir of an instance that must exist already (exit 1 otherwise).
pub fn installed(pin_dir: &Path) -> anyhow::Result<PinDir> {
    let pins = PinDir::new(pin_dir);
    pins.require_installed()?;
    Ok(pins)
}

/// Prints `value` as one pretty JSON document.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// First 8 hex digits of a sha256, for one-line messages.
pub fn short_hash(sha256: &str) -> String {
    let short: String = sha256.chars().take(8).collect();
    format!("{short}…")
}
