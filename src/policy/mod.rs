//! The policy language: TOML model, validation, and the compiler to map images.
pub mod image;

/// All errors found in one policy file (placeholder until validation lands).
#[derive(Debug)]
pub struct PolicyErrors(pub Vec<String>);

impl std::fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for PolicyErrors {}
