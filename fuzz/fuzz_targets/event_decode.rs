//! cargo-fuzz target: see checks::event_decode (tests/fuzz_support/checks.rs).
#![no_main]
#[path = "../../tests/fuzz_support/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::event_decode(data));
