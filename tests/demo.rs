//! `make demo` as a test: scripts/demo.sh with the built binary must see
//! every allow/deny result that policies/lab.toml prescribes (it exits 1
//! on any surprise), before, during, after a live edit, and after detach.
use std::process::Command;

#[test]
fn demo_runs_and_every_result_matches_the_policy() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the demo needs root (namespaces, BPF)");
        return;
    }
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
