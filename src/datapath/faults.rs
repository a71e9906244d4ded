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
