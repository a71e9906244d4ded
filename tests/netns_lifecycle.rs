//! Attach/detach lifecycle on real interfaces: idempotent attach, legacy tc
//! mode, invalid input that must change nothing, bpftool on the pins,
//! detach restoring traffic, uninstall.
mod common;

use std::process::Command;

use common::*;

const POLICY: &str = include_str!("fixtures/policies/lab/tcp_8080.toml");

/// Lines of `bpftool link show` that name program `prog_id`.
fn kernel_links_of(prog_id: u64) -> usize {
    let out = Command::new("bpftool")
        .args(["link", "show"])
        .output()
        .expect("run bpftool");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w == ["prog", &prog_id.to_string()])
        })
        .count()
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached and detached, real traffic"]
fn attach_twice_detach_and_uninstall() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("life", 4);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let policy = lab.write_policy("p.toml", &lab.policy(POLICY));
    lab.listen_tcp(&a, &server, PORT_CLOSED);

    lab.attach(&policy, &[]);
    let first = lab.status();
    let again = lab.attach(&policy, &[]);
    assert!(
        again.contains("already attached"),
        "second attach should say so, printed: {again}"
    );
    let second = lab.status();
    assert_eq!(
        link_ids(&first),
        link_ids(&second),
        "attaching twice must keep the same links"
    );
    assert_eq!(
        link_ids(&second).len(),
        2,
        "one tcx link per direction: {second}"
    );
    let (ingress, egress) = program_ids(&second);
    assert_eq!(
        kernel_links_of(ingress),
        1,
        "the kernel should hold one ingress link"
    );
    assert_eq!(
        kernel_links_of(egress),
        1,
        "the kernel should hold one egress link"
    );
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "tcp/8081 is denied but connected"
    );

    // bpftool reads the live policy through BTF at the stable pin.
    let config = bpftool_dump(&lab.pin_dir.join("maps/policy"))
        .into_iter()
        .find(|e| e["formatted"]["key"]["kind"] == "SEGFW_KIND_CONFIG")
        .expect("the live trie has a CONFIG entry, its kind printed by name");
    assert_eq!(
        config["formatted"]["value"]["id"], second["policy"]["generation"],
        "maps/policy is not the live set"
    );
    // Enum-typed fields print by their enumerator's name: an allowed
    // connection leaves a tracked flow with a named state.
    lab.listen_tcp(&a, &server, 8080);
    assert!(
        lab.tcp_connects(&b, &server, 8080),
        "tcp/8080 is allowed (tcp_8080.toml)"
    );
    let flows = bpftool_dump(&lab.pin_dir.join("maps/conntrack"));
    let states: Vec<&str> = flows
        .iter()
        .map(|e| {
            e["formatted"]["value"]["state"]
                .as_str()
                .unwrap_or("a number")
        })
        .collect();
    assert!(
        !states.is_empty() && states.iter().all(|s| s.starts_with("SEGFW_CT_")),
        "conntrack states by name, got {states:?}"
    );
    // Each set's record is typed: its fields by name, the path as a string.
    let records = bpftool_dump(&lab.pin_dir.join("maps/set_records"));
    let path = policy.canonicalize().expect("policy path");
    let filled = records
        .iter()
        .find(|e| e["formatted"]["value"]["source"]["path"] == path.display().to_string())
        .unwrap_or_else(|| panic!("a set record names {}: {records:?}", path.display()));
    let value = &filled["formatted"]["value"];
    assert_eq!(value["pending"]["generation"], 0, "no confirmation pending");
    assert_eq!(value["runtime"]["recorded"], 1, "runtime settings recorded");
    assert_eq!(
        value["source"]["sha256"].as_array().map(Vec::len),
        Some(32),
        "sha256 as 32 bytes"
    );

    lab.segfw_ok(&["detach", IFACE]);
    assert!(
        lab.tcp_connects(&b, &server, PORT_CLOSED),
        "after detach tcp/8081 should flow unfiltered"
    );
    assert_eq!(
        lab.status()["attachments"],
        serde_json::json!([]),
        "detach left attachments"
    );
    assert_eq!(
        kernel_links_of(ingress),
        0,
        "detach left the ingress link in the kernel"
    );

    lab.segfw_ok(&["uninstall"]);
    assert!(!lab.pin_dir.exists(), "uninstall must remove the pin dir");
    assert_eq!(lab.status()["installed"], false, "status after uninstall");
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached and detached, real traffic"]
fn legacy_tc_mode_enforces_and_detaches() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("tc", 5);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(true));
    let policy = lab.write_policy("p.toml", &lab.policy(POLICY));
    lab.listen_tcp(&a, &server, PORT_OPEN);
    lab.listen_tcp(&a, &server, PORT_CLOSED);

    lab.attach(&policy, &["--attach-mode", "tc"]);
    let status = lab.status();
    let modes: Vec<&str> = status["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .map(|a| a["mode"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        modes,
        ["tc", "tc"],
        "--attach-mode tc must use legacy tc: {status}"
    );
    assert!(status["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["live"] == true));
    assert!(
        lab.tcp_connects(&b, &server, PORT_OPEN),
        "tc mode: tcp/8080 allowed but blocked"
    );
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "tc mode: tcp/8081 denied but connected"
    );

    let again = lab.attach(&policy, &["--attach-mode", "tc"]);
    assert!(
        again.contains("already attached"),
        "second tc attach should be a no-op: {again}"
    );

    lab.segfw_ok(&["detach", "--all"]);
    assert!(
        lab.tcp_connects(&b, &server, PORT_CLOSED),
        "after tc detach tcp/8081 should flow"
    );
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached and detached, real traffic"]
fn invalid_input_changes_nothing() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("bad", 6);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let good = lab.write_policy("good.toml", &lab.policy(POLICY));
    let bad = lab.write_policy(
        "bad.toml",
        &lab.policy(include_str!("fixtures/policies/lab/invalid_action.toml")),
    );

    // An invalid policy on attach: exit 2, nothing loaded.
    let out = lab.segfw(&["attach", IFACE, "--policy", &bad.display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "attach with an invalid policy must exit 2"
    );
    assert_eq!(
        lab.status()["installed"],
        false,
        "an invalid policy must not load anything"
    );
    // An unknown interface: exit 2 naming it.
    let out = lab.segfw(&["attach", "nosuch0", "--policy", &good.display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "attach to an unknown interface must exit 2"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nosuch0"),
        "the error must name the interface"
    );

    lab.attach(&good, &[]);
    lab.listen_tcp(&a, &server, PORT_OPEN);
    let before = lab.status();
    let out = lab.segfw(&["policy", "apply", &bad.display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "applying an invalid policy must exit 2"
    );
    let after = lab.status();
    assert_eq!(
        before["policy"], after["policy"],
        "an invalid apply must leave the old policy live"
    );
    assert!(
        lab.tcp_connects(&b, &server, PORT_OPEN),
        "the old policy still allows tcp/8080"
    );
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached and detached, real traffic"]
fn concurrent_applies_are_serialized() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("race", 7);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let policy = lab.write_policy("race.toml", &lab.policy(POLICY));
    lab.attach(&policy, &[]);
    lab.listen_tcp(&a, &server, PORT_OPEN);
    let first = lab.status()["policy"]["generation"]
        .as_u64()
        .expect("a generation");

    // Eight applies at once: each takes the pin-dir lock in turn.
    const APPLIES: u64 = 8;
    let outputs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..APPLIES)
            .map(|_| s.spawn(|| lab.segfw(&["policy", "apply", &policy.display().to_string()])))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("apply thread"))
            .collect()
    });
    for out in &outputs {
        assert!(
            out.status.success(),
            "a concurrent apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let last = lab.status()["policy"]["generation"]
        .as_u64()
        .expect("a generation");
    assert_eq!(last, first + APPLIES, "every apply got its own generation");
    assert!(
        lab.tcp_connects(&b, &server, PORT_OPEN),
        "the policy still enforces after the race"
    );
}

/// `bpftool -j map dump pinned PIN`'s entries.
fn bpftool_dump(pin: &std::path::Path) -> Vec<serde_json::Value> {
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned", &pin.display().to_string()])
        .output()
        .expect("run bpftool");
    assert!(
        out.status.success(),
        "bpftool map dump pinned {} failed: {}",
        pin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let dump: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool -j output");
    dump.as_array().expect("dump is an array").clone()
}
