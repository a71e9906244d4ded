//! `make demo` as a test: scripts/demo.sh with the built binary must see
//! every allow/deny result that policies/lab.toml prescribes (it exits 1
//! on any surprise), before, during, after a live edit, and after detach.
use std::process::Command;

#[test]
#[ignore = "needs root: runs scripts/demo.sh (network namespaces, segfw attached, real traffic)"]
fn demo_runs_and_every_result_matches_the_policy() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the demo needs root (namespaces, BPF): run it as root, as `make test` does"
    );
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .arg(env!("CARGO_BIN_EXE_segfw"))
        .output()
        .expect("run scripts/demo.sh");
    assert!(
        out.status.success(),
        "demo failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
