//! The policy language: TOML model, validation, and the compiler to map images.
pub mod image;

use std::path::Path;

use image::PolicyImage;

/// A policy file that passed validation, with its compiled map images.
#[derive(Debug, Clone)]
pub struct CheckedPolicy {
    /// The file as named by the user.
    pub path: std::path::PathBuf,
    /// sha256 of the file's bytes, lowercase hex.
    pub sha256: String,
    /// Compiled map images (generation 0; apply stamps the generation).
    pub image: PolicyImage,
}

/// Reads, validates and compiles a policy file. Pure: no kernel, no root.
/// Errors: every problem found in the file (exit 2), or the I/O error.
pub fn check_file(path: &Path) -> anyhow::Result<CheckedPolicy> {
    anyhow::bail!("policy check of {} is not implemented yet", path.display())
}

/// All errors found in one policy file (placeholder until validation lands).
#[derive(Debug)]
pub struct PolicyErrors(pub Vec<String>);

impl std::fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for PolicyErrors {}
