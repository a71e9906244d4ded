//! Test-only fault injection points of the mutating paths (apply, re-pin):
//! a leaf module, so that every layer can name a step without depending on
//! the layer above it.

/// Test-only fault injection, compiled into debug builds only:
/// `SEGFW_TEST_KILL_AT=<step>` makes this process SIGKILL itself at that
/// step of an apply (cleared, mid-fill, filled, swapped, runtime,
/// repin-tmp, repinned), so tests can check that every interruption
/// leaves a consistent datapath that the next command repairs.
pub fn fault_point(step: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("SEGFW_TEST_KILL_AT").is_ok_and(|s| s == step) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    #[cfg(not(debug_assertions))]
    let _ = step;
}

/// Test-only, debug builds only: `SEGFW_TEST_ABI_VERSION=N` makes this
/// process act as a segfw of ABI version N (a fresh load writes N into the
/// programs, and N is what it expects), so tests can check that a pin dir
/// of another build is refused.
pub fn abi_version_override() -> Option<u32> {
    #[cfg(debug_assertions)]
    return std::env::var("SEGFW_TEST_ABI_VERSION")
        .ok()
        .and_then(|v| v.parse().ok());
    #[cfg(not(debug_assertions))]
    None
}
