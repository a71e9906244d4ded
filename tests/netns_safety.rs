//! Operator mistakes that must not quietly break enforcement: an attach
//! from another network namespace, a pin dir nested in another instance,
//! an uninstall next to foreign pins, maps/ removed by hand, and a second
//! instance on the same interface. Real traffic through veth pairs.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const POLICY: &str = include_str!("fixtures/policies/lab/tcp_8080.toml");

/// Runs segfw with `pin_dir`, in namespace `ns` (None: this test's own).
fn segfw_at(ns: Option<&str>, pin_dir: &Path, args: &[&str]) -> Output {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}"))
                .arg(env!("CARGO_BIN_EXE_segfw"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_segfw")),
    };
    cmd.arg("--pin-dir")
        .arg(pin_dir)
        .args(args)
        .output()
        .expect("run segfw")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status_at(ns: Option<&str>, pin_dir: &Path) -> serde_json::Value {
    let out = segfw_at(ns, pin_dir, &["status", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "status --json failed: {stderr}");
    serde_json::from_str(&stdout).expect("status --json is one JSON document")
}

fn attachments(status: &serde_json::Value) -> Vec<serde_json::Value> {
    status["attachments"]
        .as_array()
        .expect("attachments array")
        .clone()
}

/// Lines of `bpftool link show` that name program `prog_id`: links in
/// every namespace.
fn kernel_links_of(prog_id: u64) -> usize {
    let out = Command::new("bpftool")
        .args(["link", "show"])
        .output()
        .expect("run bpftool");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w == ["prog", &prog_id.to_string()])
        })
        .count()
}

/// Removes a directory tree on drop (a pin dir or a parent of one).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs root: several network namespaces and pin dirs, segfw attached, real traffic"]
fn attach_from_another_namespace_is_refused_and_the_first_keeps_enforcing() {
    let _serial = serial();
    require_root();
    // Two namespaces, each with an interface named sfw0; one pin dir.
    let mut first = Lab::new("xns1", 120);
    let second = Lab::new("xns2", 121);
    let (a, b, server) = (first.ns_a.clone(), first.ns_b.clone(), first.a(false));
    let policy = first.write_policy("p.toml", &first.policy(POLICY));
    first.listen_tcp(&a, &server, PORT_CLOSED);
    first.attach(&policy, &[]);
    let before = first.status();
    let (ingress, egress) = program_ids(&before);
    assert!(
        !first.tcp_connects(&b, &server, PORT_CLOSED),
        "tcp/8081 is denied but connected"
    );

    let pin = first.pin_dir.clone();
    let shown = policy.display().to_string();
    let out = segfw_at(
        Some(&second.ns_a),
        &pin,
        &["attach", IFACE, "--policy", &shown],
    );
    let (_, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an attach from another namespace must fail: {stderr}"
    );
    for needle in [
        format!("/run/netns/{a}"),
        format!("/run/netns/{}", second.ns_a),
        format!("nsenter --net=/run/netns/{a}"),
        "--pin-dir".to_string(),
    ] {
        assert!(
            stderr.contains(&needle),
            "the refusal should name {needle:?}: {stderr}"
        );
    }
    assert!(
        !first.tcp_connects(&b, &server, PORT_CLOSED),
        "after the refused attach, the first namespace's sfw0 must still drop tcp/8081"
    );
    let after = first.status();
    assert_eq!(
        link_ids(&after),
        link_ids(&before),
        "the refused attach must not replace the links"
    );
    assert_eq!(
        after["policy"]["generation"], before["policy"]["generation"],
        "the refused attach must not apply its policy"
    );
    assert_eq!(
        (kernel_links_of(ingress), kernel_links_of(egress)),
        (1, 1),
        "the second namespace's sfw0 must not get links of this instance"
    );
    for link in attachments(&after) {
        assert_eq!(link["live"], true, "live in its namespace: {link}");
        assert_eq!(link["in_this_netns"], true, "{link}");
        assert!(
            link["netns"].as_str().unwrap_or("").contains(&a),
            "the record names the namespace: {link}"
        );
    }

    // A detach from the second namespace would unfilter the first's sfw0.
    let out = segfw_at(Some(&second.ns_a), &pin, &["detach", IFACE]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a detach from another namespace must fail: {}",
        text(&out).1
    );
    assert!(
        !first.tcp_connects(&b, &server, PORT_CLOSED),
        "after the refused detach tcp/8081 must still be dropped"
    );

    // status in the wrong namespace, and in this test's own (the host's).
    for ns in [Some(second.ns_a.as_str()), None] {
        let wrong = status_at(ns, &pin);
        for link in attachments(&wrong) {
            assert_eq!(link["in_this_netns"], false, "seen from {ns:?}: {link}");
            assert!(
                link["problem"].as_str().unwrap_or("").contains(&a),
                "the problem names the link's namespace: {link}"
            );
        }
        assert!(
            wrong["netns_warning"].as_str().unwrap_or("").contains(&a),
            "status in {ns:?} must say the links are all in {a}: {wrong}"
        );
        let (stdout, _) = text(&segfw_at(ns, &pin, &["status"]));
        assert!(
            stdout.contains("WARNING: no attachment of this instance is in this network namespace"),
            "text status in {ns:?} says so: {stdout}"
        );
    }

    // Links of an older segfw have no record: the kernel still tells where
    // they are not, and the namespace is reported as unknown.
    std::fs::remove_file(pin.join("maps/link_records")).expect("remove maps/link_records");
    let out = segfw_at(Some(&second.ns_a), &pin, &["attach", IFACE]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unrecorded links elsewhere still refuse: {}",
        text(&out).1
    );
    let unrecorded = status_at(Some(&second.ns_a), &pin);
    for link in attachments(&unrecorded) {
        assert_eq!(link["netns"], serde_json::Value::Null, "{link}");
        assert_eq!(link["in_this_netns"], false, "{link}");
        assert!(
            link["problem"]
                .as_str()
                .unwrap_or("")
                .contains("attached by an older segfw"),
            "{link}"
        );
    }
    // An attach in the right namespace records them again.
    first.attach(&policy, &[]);
    for link in attachments(&first.status()) {
        assert!(
            link["netns"].as_str().unwrap_or("").contains(&a),
            "re-recorded: {link}"
        );
    }

    // A renamed interface: the link filters it still, but not under the
    // pinned name, so it is not "live".
    let rename = |from: &str, to: &str| {
        for args in [
            vec!["-n", a.as_str(), "link", "set", from, "down"],
            vec!["-n", a.as_str(), "link", "set", from, "name", to],
            vec!["-n", a.as_str(), "link", "set", to, "up"],
        ] {
            let ok = Command::new("ip").args(&args).status().expect("run ip");
            assert!(ok.success(), "ip {args:?}");
        }
    };
    rename(IFACE, "sfwr0");
    for link in attachments(&first.status()) {
        assert_eq!(link["live"], false, "{link}");
        assert!(
            link["problem"]
                .as_str()
                .unwrap_or("")
                .contains("now named sfwr0"),
            "{link}"
        );
    }
    rename("sfwr0", IFACE);
    assert!(
        attachments(&first.status())
            .iter()
            .all(|l| l["live"] == true && l["problem"].is_null()),
        "live again under its name"
    );

    // An interface created again: the old links are defunct, status says
    // so, and attach replaces them.
    first.recreate_veth_pair();
    for link in attachments(&first.status()) {
        assert_eq!(link["live"], false, "{link}");
        assert!(
            link["problem"].as_str().unwrap_or("").contains("gone"),
            "{link}"
        );
    }
    first.attach(&policy, &[]);
    let reattached = first.status();
    assert!(
        attachments(&reattached)
            .iter()
            .all(|l| l["live"] == true && l["problem"].is_null()),
        "attach re-attaches the new interface"
    );
    first.listen_tcp(&a, &server, PORT_CLOSED);
    assert!(!first.tcp_connects(&b, &server, PORT_CLOSED));

    // uninstall removes the whole instance, from any namespace.
    let out = segfw_at(Some(&second.ns_a), &pin, &["uninstall"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let (ingress, egress) = program_ids(&reattached);
    assert_eq!(
        (kernel_links_of(ingress), kernel_links_of(egress)),
        (0, 0),
        "uninstall from another namespace detaches the links"
    );
    assert!(!pin.exists(), "uninstall removes the pin dir");
    assert!(
        first.tcp_connects(&b, &server, PORT_CLOSED),
        "after uninstall tcp/8081 flows unfiltered"
    );
}

#[test]
#[ignore = "needs root: several network namespaces and pin dirs, segfw attached, real traffic"]
fn nested_pin_dirs_are_refused_and_the_outer_keeps_enforcing() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("nest", 122);
    let parent = lab.pin_dir.clone();
    std::fs::create_dir(&parent).expect("create the parent pin dir");
    let _parent = RemoveOnDrop(parent.clone());
    lab.pin_dir = parent.join("outer");
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let policy = lab.write_policy("p.toml", &lab.policy(POLICY));
    lab.listen_tcp(&a, &server, PORT_OPEN);
    lab.listen_tcp(&a, &server, PORT_CLOSED);
    lab.attach(&policy, &[]);
    let before = lab.status();
    let shown = policy.display().to_string();

    let inner = lab.pin_dir.join("maps");
    for (dir, relation) in [(&inner, "is inside"), (&parent, "contains")] {
        let out = segfw_at(Some(&a), dir, &["attach", IFACE, "--policy", &shown]);
        let (_, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "attach with --pin-dir {} must be refused: {stderr}",
            dir.display()
        );
        assert!(
            stderr.contains(relation) && stderr.contains(&lab.pin_dir.display().to_string()),
            "the refusal names the other instance: {stderr}"
        );
        assert!(
            !dir.join("progs").exists(),
            "a refused pin dir gets nothing: {}",
            dir.display()
        );
    }
    // The uninstall that deleted the outer maps/ before is refused too.
    let out = segfw_at(Some(&a), &inner, &["uninstall"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is inside") && stderr.contains(&lab.pin_dir.display().to_string()),
        "the refused uninstall names the outer instance: {stderr}"
    );
    assert!(
        lab.pin_dir.join("maps/policy_a").exists(),
        "the outer maps/ must survive"
    );
    let after = lab.status();
    assert_eq!(after["damaged"], serde_json::json!([]), "{after}");
    assert_eq!(after["policy"], before["policy"], "the outer policy stays");
    assert_eq!(link_ids(&after), link_ids(&before));
    assert!(
        lab.tcp_connects(&b, &server, PORT_OPEN),
        "the outer instance still allows tcp/8080"
    );
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "the outer instance still drops tcp/8081"
    );
}

#[test]
#[ignore = "needs root: several network namespaces and pin dirs, segfw attached, real traffic"]
fn uninstall_leaves_foreign_pins_and_their_pin_dir() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("foreign", 123);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let policy = lab.write_policy("p.toml", &lab.policy(POLICY));
    lab.listen_tcp(&a, &server, PORT_CLOSED);
    lab.attach(&policy, &[]);
    let foreign = lab.pin_dir.join("other-tool");
    std::fs::create_dir(&foreign).expect("mkdir a foreign dir in the pin dir");
    let stray = lab.pin_dir.join("maps/stray");
    for path in [foreign.join("m"), stray.clone()] {
        let created = Command::new("bpftool")
            .args(["map", "create"])
            .arg(&path)
            .args([
                "type", "array", "key", "4", "value", "4", "entries", "1", "name", "stray",
            ])
            .status()
            .expect("run bpftool map create");
        assert!(created.success(), "bpftool map create {}", path.display());
    }

    let out = lab.segfw(&["uninstall"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "uninstall failed: {stderr}");
    for path in [&foreign, &stray] {
        assert!(
            path.exists(),
            "uninstall removed foreign {}",
            path.display()
        );
        assert!(
            stderr.contains(&format!("warning: left {}", path.display())),
            "uninstall warns about {}: {stderr}",
            path.display()
        );
    }
    assert!(foreign.join("m").exists(), "the foreign pin stays");
    for gone in ["progs", "links", "maps/policy_a", "maps/conntrack"] {
        assert!(
            !lab.pin_dir.join(gone).exists(),
            "uninstall left segfw's {gone}"
        );
    }
    assert!(
        stdout.contains("kept the directory"),
        "uninstall says why the pin dir stays: {stdout}"
    );
    assert!(
        lab.tcp_connects(&b, &server, PORT_CLOSED),
        "after uninstall tcp/8081 flows unfiltered"
    );
}

#[test]
#[ignore = "needs root: several network namespaces and pin dirs, segfw attached, real traffic"]
fn missing_maps_make_the_policy_unknown_and_attach_repairs_them() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("nomaps", 124);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let policy = lab.write_policy("p.toml", &lab.policy(POLICY));
    lab.listen_tcp(&a, &server, PORT_OPEN);
    lab.listen_tcp(&a, &server, PORT_CLOSED);
    lab.attach(&policy, &[]);
    // Set B live, so that the idle set (A) is created like a live twin
    // that must be re-pinned first.
    lab.apply(&policy);
    let before = lab.status();
    assert_eq!(before["policy"]["active_set"], "b", "{before}");

    std::fs::remove_dir_all(lab.pin_dir.join("maps")).expect("remove maps/");
    let broken = lab.status();
    assert_eq!(broken["policy"], serde_json::Value::Null);
    assert!(
        broken["policy_unknown"]
            .as_str()
            .unwrap_or("")
            .contains("maps/ is missing"),
        "status says the policy is unknown: {broken}"
    );
    let shown = lab.segfw_ok(&["status"]);
    assert!(
        !shown.contains("all traffic passes") && shown.contains("policy: UNKNOWN"),
        "text status must not claim that all traffic passes: {shown}"
    );
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "the loaded programs keep dropping tcp/8081"
    );

    // The advice status prints: `segfw attach IFACE`.
    let out = lab.segfw_ok(&["attach", IFACE]);
    assert!(out.contains("repaired maps/runtime: re-pinned"), "{out}");
    let repaired = lab.status();
    assert_eq!(repaired["damaged"], serde_json::json!([]), "{repaired}");
    assert_eq!(
        repaired["policy"]["generation"], before["policy"]["generation"],
        "the live policy is read again: {repaired}"
    );
    assert_eq!(link_ids(&repaired), link_ids(&before));
    assert!(
        lab.tcp_connects(&b, &server, PORT_OPEN),
        "tcp/8080 allowed after repair"
    );
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "tcp/8081 dropped after repair"
    );
    // Names were only in the lost meta maps; the next apply restores them.
    lab.apply(&policy);
    let show = lab.segfw_ok(&["policy", "show"]);
    assert!(show.contains("web"), "policy show after apply: {show}");
    assert!(!lab.tcp_connects(&b, &server, PORT_CLOSED));
}

#[test]
#[ignore = "needs root: several network namespaces and pin dirs, segfw attached, real traffic"]
fn a_second_instance_on_an_interface_is_warned_about() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("second", 125);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let policy = lab.write_policy("p.toml", &lab.policy(POLICY));
    lab.listen_tcp(&a, &server, PORT_CLOSED);
    lab.attach(&policy, &[]);
    let (ingress, _) = program_ids(&lab.status());
    let other = PathBuf::from(format!("{}-other", lab.pin_dir.display()));
    let _other = RemoveOnDrop(other.clone());

    // A filter of another tool, in legacy tc.
    for args in [
        vec!["qdisc", "add", "dev", IFACE, "clsact"],
        vec![
            "filter",
            "add",
            "dev",
            IFACE,
            "egress",
            "prio",
            "7",
            "protocol",
            "ip",
            "u32",
            "match",
            "ip",
            "dst",
            "192.0.2.1/32",
            "classid",
            "1:1",
        ],
    ] {
        let ok = ns_cmd(&a, &[&["tc"][..], &args].concat())
            .status()
            .expect("run tc");
        assert!(ok.success(), "tc {args:?}");
    }
    let out = segfw_at(Some(&a), &other, &["attach", IFACE, "--attach-mode", "tc"]);
    let (_, stderr) = text(&out);
    assert!(
        out.status.success(),
        "a second instance may attach: {stderr}"
    );
    assert!(
        stderr.contains(&format!("warning: {IFACE} egress already carries"))
            && stderr.contains("a tc u32 filter (priority 7)"),
        "the warning names the other tool's tc filter: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "warning: {IFACE} ingress already carries tcx program {ingress}"
        )) && stderr.contains(&lab.pin_dir.display().to_string()),
        "the warning names the first instance's program and pin dir: {stderr}"
    );
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "the first instance still drops tcp/8081"
    );

    // Legacy tc finds filters by a fixed slot: the first instance moving
    // to tc would replace the second's filter, so it is refused.
    lab.segfw_ok(&["detach", IFACE]);
    let out = lab.segfw(&["attach", IFACE, "--attach-mode", "tc"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let theirs = program_ids(&status_at(Some(&a), &other)).0;
    assert!(
        stderr.contains(&format!("carries program {theirs}"))
            && stderr.contains(&other.display().to_string()),
        "the refusal names the other instance's program and pin dir: {stderr}"
    );
    let kept = status_at(Some(&a), &other);
    assert!(
        attachments(&kept).iter().all(|l| l["live"] == true),
        "the second instance's tc filters stay: {kept}"
    );
    let out = segfw_at(Some(&a), &other, &["uninstall"]);
    assert!(out.status.success(), "{}", text(&out).1);
}
