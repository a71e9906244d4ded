//! The policy language: TOML model, validation, and the compiler to map images.
//!
//! `check_file` = read (size and UTF-8 checked) -> `validate` (every error
//! in the file, at its line:col) -> `compile` (pure) -> [`CheckedPolicy`].
mod chunked;
mod classes;
pub mod compile;
pub mod decode;
pub mod errors;
pub mod eval;
pub mod image;
pub mod model;
mod raw;
pub mod validate;
pub mod view;

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::UsageError;

pub use errors::{PolicyError, PolicyErrorKind, PolicyErrors};
use image::PolicyImage;
use model::Policy;

/// Policy files above this size are rejected before parsing.
pub const MAX_POLICY_BYTES: u64 = 64 << 20;

/// A policy file that passed validation, with its compiled map images.
#[derive(Debug, Clone)]
pub struct CheckedPolicy {
    /// The file as named by the user.
    pub path: PathBuf,
    /// sha256 of the file's bytes, lowercase hex.
    pub sha256: String,
    /// The validated policy (names, rules in file order).
    pub model: Policy,
    /// Compiled map images (generation 0; apply stamps the generation).
    /// Its meta also holds the file's sha256 (CONFIG id 0) and path (id 1).
    pub image: PolicyImage,
}

/// Reads, validates and compiles a policy file. Pure: no kernel, no root.
/// Errors: [`PolicyErrors`] for every problem found in the file (exit 2),
/// [`UsageError`] if it does not exist (exit 2), else the I/O error (exit 1).
pub fn check_file(path: &Path) -> anyhow::Result<CheckedPolicy> {
    let bytes = read_policy(path)?;
    Ok(check_bytes(&bytes, path)?)
}

/// Checks a policy given as bytes (`file` names it in errors).
pub fn check_bytes(bytes: &[u8], file: &Path) -> Result<CheckedPolicy, PolicyErrors> {
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(too_large(file, bytes.len() as u64));
    }
    let src = std::str::from_utf8(bytes).map_err(|e| not_utf8(file, bytes, e))?;
    check_str(src, file)
}

/// Validates and compiles policy text (`file` names it in errors; the
/// apply records it with the sha256, once, in its set's record).
pub fn check_str(src: &str, file: &Path) -> Result<CheckedPolicy, PolicyErrors> {
    let model = parse_str(src, file)?;
    let image =
        compile::compile(&model).map_err(|e| PolicyErrors::new(file.to_path_buf(), vec![e]))?;
    let sha256 = sha256_hex(src.as_bytes());
    Ok(CheckedPolicy {
        path: file.to_path_buf(),
        sha256,
        model,
        image,
    })
}

/// Validates policy text into the model, without compiling it.
pub fn parse_str(src: &str, file: &Path) -> Result<Policy, PolicyErrors> {
    validate::validate(src).map_err(|errors| PolicyErrors::new(file.to_path_buf(), errors))
}

/// The file's bytes, refusing huge ones before reading them.
fn read_policy(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(UsageError(format!("policy file {} does not exist", path.display())).into())
        }
        Err(e) => return Err(e).with_context(|| format!("open policy file {}", path.display())),
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > MAX_POLICY_BYTES {
        return Err(too_large(path, size).into());
    }
    // `take` also bounds files whose size metadata lies (pipes, /proc).
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("read policy file {}", path.display()))?;
    Ok(bytes)
}

fn too_large(file: &Path, size: u64) -> PolicyErrors {
    let error = PolicyError::whole_file(
        PolicyErrorKind::FileTooLarge,
        format!(
            "the file is {size} bytes or more; policy files are limited to {MAX_POLICY_BYTES} bytes (64 MiB)"
        ),
    );
    PolicyErrors::new(file.to_path_buf(), vec![error])
}

fn not_utf8(file: &Path, bytes: &[u8], e: std::str::Utf8Error) -> PolicyErrors {
    let valid = &bytes[..e.valid_up_to()];
    // The prefix before the bad byte is valid UTF-8 by definition.
    let prefix = std::str::from_utf8(valid).unwrap_or_default();
    let (line, column) = errors::LineIndex::new(prefix).position(prefix.len());
    let byte = bytes[e.valid_up_to()];
    let error = PolicyError {
        kind: PolicyErrorKind::NotUtf8,
        line,
        column,
        message: format!("invalid UTF-8 (byte 0x{byte:02x}); policy files must be UTF-8 text"),
    };
    PolicyErrors::new(file.to_path_buf(), vec![error])
}

/// A file's sha256 as `status` shows it (lowercase hex).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
