//! Faults and pressure: policy reloads under continuous traffic, an apply
//! SIGKILLed at each of its steps, and a lock held by someone else.
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Applies in the reload-under-load test: 1000 debug-build applies (one
/// nsenter + segfw process each) take about 26 s on the 2-core CI box, so
/// the test stays near 30 s; see README "Reliability and security".
const RELOADS: usize = 1000;

/// A and B agree on X (udp/5353 allowed) and Y (udp/5354 denied by the
/// default), and differ on tcp/8080 (A allows it) and tcp/8081 (B does).
fn policy_a(lab: &Lab) -> String {
    lab.policy(include_str!("fixtures/policies/lab/reload_a.toml"))
}

fn policy_b(lab: &Lab) -> String {
    lab.policy(include_str!("fixtures/policies/lab/reload_b.toml"))
}

/// Kills and reaps a traffic process even when the test panics.
struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for_file(path: &Path, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {within:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, injected faults and real traffic"]
fn reload_under_load_drops_no_allowed_and_passes_no_denied_packet() {
    let _serial = serial();
    require_root();
    let lab = Lab::new("reload", 31);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let pa = lab.write_policy("a.toml", &policy_a(&lab));
    let pb = lab.write_policy("b.toml", &policy_b(&lab));
    lab.attach(&pa, &[]);
    let _ = lab.ping(&b, &server); // resolves the neighbour (ARP passes; the ping is denied)

    let dir = lab.policies.path();
    let (stop, received, sent) = (dir.join("stop"), dir.join("received"), dir.join("sent"));
    let s = |p: &PathBuf| p.display().to_string();
    let (px, py) = (UDP_OPEN.to_string(), UDP_CLOSED.to_string());
    let mut reaper = Reaper(Vec::new());
    reaper.0.push(
        ns_cmd(
            &a,
            &[
                "python3",
                &script("reload_receiver.py"),
                &server,
                &px,
                &py,
                &s(&stop),
                &s(&received),
            ],
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("start the UDP receiver"),
    );
    wait_for_file(&dir.join("received.ready"), Duration::from_secs(5));
    reaper.0.push(
        ns_cmd(
            &b,
            &[
                "python3",
                &script("reload_sender.py"),
                &server,
                &px,
                &py,
                "2000",
                &s(&stop),
                &s(&sent),
            ],
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("start the UDP sender"),
    );

    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..RELOADS {
        let policy = if i % 2 == 0 { &pb } else { &pa };
        let out = lab.segfw(&["policy", "apply", &policy.display().to_string()]);
        assert!(
            out.status.success(),
            "apply {i} of {RELOADS} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let elapsed = start.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&stop, "").expect("write the stop file");
    let sent: u64 = wait_for_file(&sent, Duration::from_secs(5))
        .trim()
        .parse()
        .expect("sender count");
    let counts: Vec<u64> = wait_for_file(&received, Duration::from_secs(10))
        .split_whitespace()
        .map(|n| n.parse().expect("receiver count"))
        .collect();
    let (x_unique, y_total) = (counts[0], counts[2]);
    eprintln!(
        "reload under load: {RELOADS} applies in {:.1}s ({:.1} ms each); X sent {sent}, \
         received {x_unique}, lost {}; Y sent {sent}, leaked {y_total}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / RELOADS as f64,
        sent - x_unique
    );
    assert!(sent > 1000, "the sender sent only {sent} datagrams");
    assert_eq!(
        x_unique,
        sent,
        "flow X is allowed by A and by B: all {sent} datagrams should arrive, {} were lost",
        sent - x_unique
    );
    assert_eq!(
        y_total, 0,
        "flow Y is denied by A and by B: none of {sent} datagrams should arrive"
    );
    // RELOADS is even: A is live again, with its own verdicts.
    let show: serde_json::Value =
        serde_json::from_str(&lab.segfw_ok(&["policy", "show", "--json"])).expect("show json");
    assert_eq!(rule_names(&show), ["x", "za"], "A should be live: {show}");
}

fn rule_names(show: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = show["rules"]
        .as_array()
        .expect("rules array")
        .iter()
        .map(|r| r["name"].as_str().expect("rule name").to_string())
        .collect();
    names.sort();
    names
}

/// Map id of every pin under maps/, by name.
/// The policy sets' pins: every apply builds the idle set's trie and meta
/// anew and re-pins maps/policy and maps/meta at the live set.
const POLICY_SET_PINS: [&str; 6] = ["meta", "meta_a", "meta_b", "policy", "policy_a", "policy_b"];

/// Map ids under maps/ but the policy sets': what no apply or adoption may
/// replace (conntrack, counters, runtime, policy_outer...).
fn persistent_map_ids(pin_dir: &Path) -> BTreeMap<String, u64> {
    let mut ids = pinned_map_ids(pin_dir);
    ids.retain(|name, _| !POLICY_SET_PINS.contains(&name.as_str()));
    ids
}

fn pinned_map_ids(pin_dir: &Path) -> BTreeMap<String, u64> {
    let mut ids = BTreeMap::new();
    for entry in std::fs::read_dir(pin_dir.join("maps")).expect("read maps/") {
        let name = entry.expect("maps/ entry").file_name();
        let name = name.to_string_lossy().into_owned();
        let out = Command::new("bpftool")
            .args(["-j", "map", "show", "pinned"])
            .arg(pin_dir.join("maps").join(&name))
            .output()
            .expect("run bpftool");
        let info: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("bpftool map show json");
        ids.insert(name, info["id"].as_u64().expect("map id"));
    }
    ids
}

/// Whether the pin dir lock is free (flock -n succeeds).
fn lock_is_free(pin_dir: &Path) -> bool {
    Command::new("flock")
        .args(["-n", "-E", "99"])
        .arg(pin_dir)
        .arg("true")
        .status()
        .expect("run flock")
        .success()
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, injected faults and real traffic"]
fn apply_killed_at_each_step_leaves_a_or_b_and_the_next_apply_repairs() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("kill", 32);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let pa = lab.write_policy("a.toml", &policy_a(&lab));
    let pb = lab.write_policy("b.toml", &policy_b(&lab));
    let pb_arg = pb.display().to_string();
    lab.listen_tcp(&a, &server, PORT_OPEN);
    lab.listen_tcp(&a, &server, PORT_CLOSED);
    lab.attach(&pa, &[]);
    let before = persistent_map_ids(&lab.pin_dir);

    // (step, whether B is swapped in when the kill lands, status damaged)
    let steps = [
        ("created", false, false),
        ("mid-fill", false, false),
        ("repin-tmp:policy_b", false, true),
        ("filled", false, false),
        ("swapped", true, true),
        ("runtime", true, true),
        ("repin-tmp:policy", true, true),
        ("repinned", true, false),
    ];
    let mut converged = 0;
    for (step, b_live, damaged) in steps {
        let out = lab.segfw_env(
            &["policy", "apply", &pb_arg],
            &[("SEGFW_TEST_KILL_AT", step)],
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "apply with SEGFW_TEST_KILL_AT={step} should die of SIGKILL, got {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            lock_is_free(&lab.pin_dir),
            "{step}: the lock outlived the killed apply"
        );

        let expect = if b_live { ["x", "zb"] } else { ["x", "za"] };
        let show: serde_json::Value =
            serde_json::from_str(&lab.segfw_ok(&["policy", "show", "--json"])).expect("json");
        assert_eq!(
            rule_names(&show),
            expect,
            "{step}: policy show after the kill"
        );
        let status = lab.status();
        assert_eq!(
            status["policy"]["generation"], show["generation"],
            "{step}: status and policy show disagree on the live generation"
        );
        let reported = status["damaged"].as_array().expect("damaged array");
        assert_eq!(
            !reported.is_empty(),
            damaged,
            "{step}: status damaged should be {damaged}: {reported:?}"
        );
        assert_eq!(
            lab.tcp_connects(&b, &server, PORT_OPEN),
            !b_live,
            "{step}: tcp/8080 (allowed by A only) after the kill"
        );
        assert_eq!(
            lab.tcp_connects(&b, &server, PORT_CLOSED),
            b_live,
            "{step}: tcp/8081 (allowed by B only) after the kill"
        );

        // The next apply succeeds and leaves a consistent instance.
        lab.apply(&pb);
        let status = lab.status();
        assert_eq!(
            status["damaged"].as_array().map(Vec::len),
            Some(0),
            "{step}: the apply after the kill should repair everything: {status}"
        );
        let show: serde_json::Value =
            serde_json::from_str(&lab.segfw_ok(&["policy", "show", "--json"])).expect("json");
        assert_eq!(rule_names(&show), ["x", "zb"], "{step}: B after re-apply");
        let after = pinned_map_ids(&lab.pin_dir);
        let extra: Vec<&String> = after
            .keys()
            .filter(|n| !before.contains_key(*n) && !POLICY_SET_PINS.contains(&n.as_str()))
            .collect();
        assert!(
            extra.is_empty(),
            "{step}: leftover pins under maps/: {extra:?}"
        );
        assert_eq!(
            persistent_map_ids(&lab.pin_dir),
            before,
            "{step}: the instance's maps were replaced"
        );
        lab.apply(&pa);
        converged += 1;
    }
    eprintln!("kill points: {} tried, {converged} converged", steps.len());
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, injected faults and real traffic"]
fn a_held_lock_times_out_with_the_pin_dir_and_the_holder() {
    let _serial = serial();
    require_root();
    let lab = Lab::new("lock", 33);
    let pa = lab.write_policy("a.toml", &policy_a(&lab));
    lab.attach(&pa, &[]);
    let dir = std::fs::File::open(&lab.pin_dir).expect("open pin dir");
    let held = nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .expect("flock the pin dir");

    let start = Instant::now();
    let out = lab.segfw_env(
        &["policy", "apply", &pa.display().to_string()],
        &[("SEGFW_LOCK_TIMEOUT_MS", "300")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a lock timeout exits 1: {stderr}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the 300 ms timeout took {:?}",
        start.elapsed()
    );
    let pin_dir = lab.pin_dir.display().to_string();
    let holder = format!("pid {}", std::process::id());
    assert!(
        stderr.contains(&pin_dir) && stderr.contains(&holder),
        "the error should name {pin_dir} and {holder}: {stderr}"
    );

    drop(held);
    lab.apply(&pa);
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, injected faults and real traffic"]
fn a_new_segfw_adopts_the_pins_and_refuses_an_incompatible_layout() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("adopt", 34);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let small = policy_a(&lab) + "\n[conntrack]\nmax_entries = 65536\n";
    let big = policy_a(&lab) + "\n[conntrack]\nmax_entries = 131072\n";
    let pa = lab.write_policy("a.toml", &small);
    let pbig = lab.write_policy("big.toml", &big);
    lab.attach(&pa, &[]);
    let ids = persistent_map_ids(&lab.pin_dir);
    let mut session = lab.open_session(&a, &b, &server, PORT_OPEN);
    let mut check = |line: &str, what: &str| {
        session.send(line);
        assert!(
            session.server_got(line, Duration::from_secs(3)),
            "the open session should keep passing data {what}"
        );
    };
    check("one", "after attach");

    // segfw exited long ago; a new one adopts the pins.
    lab.attach(&pa, &[]);
    check("two", "across a second `segfw attach`");
    lab.apply(&pa);
    check("three", "across `policy apply` of the same policy");

    // A changed conntrack size cannot resize a live map: the apply goes
    // through with the pinned size and says so.
    let out = lab.segfw(&["policy", "apply", &pbig.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "apply with a new conntrack size: {stderr}"
    );
    assert!(
        stderr.contains("conntrack keeps its 65536 entries"),
        "apply should warn that the conntrack size is kept: {stderr}"
    );
    assert_eq!(lab.status()["maps"]["conntrack_max"], 65536);
    check("four", "across an apply with another conntrack size");
    assert_eq!(
        persistent_map_ids(&lab.pin_dir),
        ids,
        "no map may be replaced by adoption or apply"
    );

    // A pinned map of another layout (value size 8 instead of runtime's):
    // segfw refuses, naming the map, and the loaded datapath is untouched.
    let runtime = lab.pin_dir.join("maps/runtime");
    let aside = lab.pin_dir.join("maps/runtime_orig");
    std::fs::rename(&runtime, &aside).expect("move maps/runtime aside");
    let created = Command::new("bpftool")
        .args(["map", "create"])
        .arg(&runtime)
        .args([
            "type", "array", "key", "4", "value", "8", "entries", "1", "name", "runtime",
        ])
        .status()
        .expect("run bpftool map create");
    assert!(created.success(), "bpftool map create failed");
    let out = lab.segfw(&["policy", "apply", &pa.display().to_string()]);
    std::fs::remove_file(&runtime).expect("remove the foreign map");
    std::fs::rename(&aside, &runtime).expect("restore maps/runtime");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "apply on a foreign layout: {stderr}"
    );
    assert!(
        stderr.contains("runtime") && stderr.contains("key/value sizes 4/8"),
        "the refusal should name the map and its layout: {stderr}"
    );
    check("five", "after the refused apply");
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "tcp/8081 should still be denied"
    );
    lab.apply(&pa);
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, injected faults and real traffic"]
fn pins_removed_by_hand_are_reported_and_attach_repairs_them() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("repair", 35);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let pa = lab.write_policy("a.toml", &policy_a(&lab));
    let pb = lab.write_policy("b.toml", &policy_b(&lab));
    lab.listen_tcp(&a, &server, PORT_OPEN);
    lab.listen_tcp(&a, &server, PORT_CLOSED);
    lab.attach(&pa, &[]);
    let ids = pinned_map_ids(&lab.pin_dir);
    let damaged = |lab: &Lab| -> String {
        let status = lab.status();
        status["damaged"]
            .as_array()
            .expect("damaged array")
            .iter()
            .map(|d| d.as_str().unwrap_or_default().to_string() + "\n")
            .collect()
    };

    // A map the programs use, and one of the idle policy set (A is live).
    for name in ["conntrack", "meta_b"] {
        std::fs::remove_file(lab.pin_dir.join("maps").join(name)).expect("remove a map pin");
    }
    let report = damaged(&lab);
    assert!(
        report.contains("maps/conntrack") && report.contains("maps/meta_b"),
        "status should report both missing map pins: {report}"
    );
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "the loaded datapath keeps enforcing A without the pins"
    );
    let out = lab.attach(&pa, &[]);
    assert!(
        out.contains("repaired maps/conntrack: re-pinned")
            && out.contains("repaired maps/meta_b: created again"),
        "attach should say what it repaired: {out}"
    );
    assert_eq!(damaged(&lab), "", "attach should leave nothing damaged");
    assert_eq!(
        pinned_map_ids(&lab.pin_dir)["conntrack"],
        ids["conntrack"],
        "conntrack must be re-pinned, not replaced"
    );
    lab.apply(&pb);
    let show: serde_json::Value =
        serde_json::from_str(&lab.segfw_ok(&["policy", "show", "--json"])).expect("json");
    assert_eq!(rule_names(&show), ["x", "zb"], "B through the new meta_b");
    assert!(
        lab.tcp_connects(&b, &server, PORT_CLOSED),
        "B allows tcp/8081"
    );

    // Link pins: removing them destroys the tcx links (nothing else holds
    // them), so traffic is unfiltered until attach runs again.
    for dir in ["ingress", "egress"] {
        std::fs::remove_file(lab.pin_dir.join("links").join(IFACE).join(dir))
            .expect("remove a link pin");
    }
    let report = damaged(&lab);
    assert!(
        report.contains(&format!("links/{IFACE} holds no pin")),
        "status should report the removed links: {report}"
    );
    let unfiltered = (0..5).any(|_| lab.tcp_connects(&b, &server, PORT_OPEN));
    assert!(
        unfiltered,
        "without its links segfw no longer filters tcp/8080"
    );
    lab.attach(&pb, &[]);
    assert_eq!(damaged(&lab), "", "attach should re-attach the interface");
    assert!(
        !lab.tcp_connects(&b, &server, PORT_OPEN),
        "B denies tcp/8080 again after attach"
    );
}
