//! The policy language: TOML model, validation, and the compiler to map images.
pub mod image;
