//! A pin dir loaded by a segfw of another ABI version is refused by name
//! before any of its maps is read, keeps enforcing, and `segfw uninstall`
//! of this build still removes it. The other build is simulated with the
//! debug-only SEGFW_TEST_ABI_VERSION, which sets the version a fresh load
//! writes into the programs' frozen .rodata.
mod common;

use common::*;

#[test]
#[ignore = "needs root: network namespaces, segfw attached, pins of another ABI"]
fn a_pin_dir_of_another_abi_is_refused_and_uninstall_still_works() {
    require_root();
    let _serial = serial();
    let mut lab = Lab::new("abi", 61);
    let policy = lab.write_policy(
        "p.toml",
        &lab.policy(include_str!("fixtures/policies/lab/tcp_8080.toml")),
    );
    let policy = policy.to_str().unwrap();
    let old = lab.segfw_env(
        &["attach", IFACE, "--policy", policy],
        &[("SEGFW_TEST_ABI_VERSION", "1")],
    );
    assert!(old.status.success(), "attach as ABI 1: {old:?}");
    lab.listen_tcp(&lab.ns_a.clone(), &lab.a(false), PORT_OPEN);
    lab.listen_tcp(&lab.ns_a.clone(), &lab.a(false), PORT_CLOSED);

    let ours = segfw::datapath::abi::ABI_VERSION.to_string();
    for args in [
        vec!["status"],
        vec!["policy", "show"],
        vec!["stats"],
        vec!["conntrack", "list"],
        vec!["policy", "apply", policy],
        vec!["attach", IFACE],
    ] {
        let out = lab.segfw(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: expected exit 1, got {out:?}"
        );
        assert!(
            stderr.contains("ABI version 1")
                && stderr.contains(&format!("ABI version {ours}"))
                && stderr.contains("segfw uninstall"),
            "{args:?}: expected the message to name both ABI versions and the fix, got {stderr}"
        );
    }
    assert!(
        lab.tcp_connects(&lab.ns_b.clone(), &lab.a(false), PORT_OPEN)
            && !lab.tcp_connects(&lab.ns_b.clone(), &lab.a(false), PORT_CLOSED),
        "expected the refused instance to keep enforcing its policy"
    );

    let out = lab.segfw(&["uninstall"]);
    assert!(
        out.status.success(),
        "uninstall of the ABI 1 instance: {out:?}"
    );
    assert!(!lab.pin_dir.exists(), "expected the pin dir removed");
    assert!(
        lab.tcp_connects(&lab.ns_b.clone(), &lab.a(false), PORT_CLOSED),
        "expected traffic unfiltered after uninstall"
    );
    lab.segfw_ok(&["attach", IFACE, "--policy", policy]);
    let status = lab.status();
    assert_eq!(
        status["installed"], true,
        "a fresh attach works again: {status}"
    );
}
