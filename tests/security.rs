//! Security: private pins, no writes by an unprivileged user, read-only
//! commands that open maps read-only, read commands that tell an
//! unprivileged user they lack permission (never "not installed"), and the
//! failsafe port under deny-all.
mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::*;
use segfw::policy::image::failsafe_key;
use segfw::skel::types::segfw_key_kind;

const DENY_ALL: &str = include_str!("fixtures/policies/lab/deny_all.toml");

const USER: &str = "segfwtest";

/// Every directory and pin under `dir`, recursively.
fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read pin dir") {
        let path = entry.expect("pin dir entry").path();
        if path.is_dir() {
            walk(&path, out);
        }
        out.push(path);
    }
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, pins checked against an unprivileged user"]
fn pin_dir_is_0700_and_pins_0600_owned_by_root() {
    let _serial = serial();
    require_root();
    let lab = Lab::new("sec-perm", 51);
    let policy = lab.write_policy("p.toml", &lab.policy(DENY_ALL));
    lab.attach(&policy, &[]);
    let mut paths = vec![lab.pin_dir.clone()];
    walk(&lab.pin_dir, &mut paths);
    assert!(
        paths.len() > 15,
        "expected maps, programs and links: {paths:?}"
    );
    for path in paths {
        let meta = std::fs::metadata(&path).expect("stat pin");
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            want,
            "{} should be {want:o}",
            path.display()
        );
        assert_eq!(meta.uid(), 0, "{} should be owned by root", path.display());
    }
}

/// Creates the unprivileged test user if it does not exist yet.
fn ensure_user() {
    let exists = Command::new("id")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .status()
            .expect("run useradd");
        assert!(status.success(), "useradd {USER} failed: {status}");
    }
}

fn bpftool_path() -> String {
    let out = Command::new("sh")
        .args(["-c", "command -v bpftool"])
        .output()
        .expect("find bpftool");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs bpftool as the unprivileged user; returns (success, stderr).
fn bpftool_as_user(args: &[&str]) -> (bool, String) {
    let bpftool = bpftool_path();
    let out = Command::new("runuser")
        .args(["-u", USER, "--", &bpftool])
        .args(args)
        .output()
        .expect("run runuser");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// Sets the mode of the pin dir and its subdirectories.
fn chmod_dirs(pin_dir: &Path, mode: u32) {
    for dir in [
        pin_dir.to_path_buf(),
        pin_dir.join("maps"),
        pin_dir.join("progs"),
        pin_dir.join("links"),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, pins checked against an unprivileged user"]
fn an_unprivileged_user_cannot_update_the_policy_maps() {
    let _serial = serial();
    require_root();
    ensure_user();
    let lab = Lab::new("sec-user", 52);
    let policy = lab.write_policy("p.toml", &lab.policy(DENY_ALL));
    lab.attach(&policy, &[]);
    let before = lab.segfw_ok(&["policy", "show", "--json"]);
    let outer = lab.pin_dir.join("maps/policy_outer").display().to_string();
    let runtime = lab.pin_dir.join("maps/runtime").display().to_string();
    let update_outer = [
        "map", "update", "pinned", &outer, "key", "0", "0", "0", "0", "value", "0", "0", "0", "0",
    ];
    let delete_runtime = [
        "map", "delete", "pinned", &runtime, "key", "0", "0", "0", "0",
    ];

    // As installed: the 0700 pin dir stops the user at the path (bpftool
    // cannot even statfs it, and says "not in bpf file system").
    let stat = Command::new("runuser")
        .args(["-u", USER, "--", "stat", &outer])
        .output()
        .expect("run runuser stat");
    assert!(
        String::from_utf8_lossy(&stat.stderr).contains("Permission denied"),
        "{USER} should not reach {outer}: {stat:?}"
    );
    for args in [&update_outer[..], &delete_runtime[..]] {
        let (ok, out) = bpftool_as_user(args);
        assert!(!ok, "{USER} could run bpftool {args:?}: {out}");
    }
    // Even with the directories opened up, the 0600 pins (and the lack of
    // CAP_BPF) refuse a write.
    chmod_dirs(&lab.pin_dir, 0o711);
    let results: Vec<(bool, String)> = [&update_outer[..], &delete_runtime[..]]
        .iter()
        .map(|args| bpftool_as_user(args))
        .collect();
    chmod_dirs(&lab.pin_dir, 0o700);
    for (ok, out) in results {
        assert!(
            !ok,
            "{USER} could write a map through a traversable pin dir: {out}"
        );
        assert!(
            out.contains("Permission denied") || out.contains("Operation not permitted"),
            "expected EACCES/EPERM: {out}"
        );
    }
    assert_eq!(
        lab.segfw_ok(&["policy", "show", "--json"]),
        before,
        "the live policy changed"
    );
}

/// Runs segfw in ns a without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so
/// that file modes bind root too.
fn segfw_without_dac(lab: &Lab, args: &[&str]) -> std::process::Output {
    let netns = format!("--net=/run/netns/{}", lab.ns_a);
    let pin_dir = lab.pin_dir.display().to_string();
    Command::new("setpriv")
        .args([
            "--bounding-set=-dac_override,-dac_read_search",
            "--inh-caps=-dac_override,-dac_read_search",
            "nsenter",
            &netns,
            env!("CARGO_BIN_EXE_segfw"),
            "--pin-dir",
            &pin_dir,
        ])
        .args(args)
        .output()
        .expect("run setpriv nsenter segfw")
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, pins checked against an unprivileged user"]
fn read_only_commands_open_maps_read_only() {
    let _serial = serial();
    require_root();
    let lab = Lab::new("sec-ro", 53);
    let policy = lab.write_policy("p.toml", &lab.policy(DENY_ALL));
    lab.attach(&policy, &[]);
    let maps: Vec<_> = std::fs::read_dir(lab.pin_dir.join("maps"))
        .expect("read maps/")
        .map(|e| e.expect("entry").path())
        .collect();
    let chmod = |mode| {
        for map in &maps {
            std::fs::set_permissions(map, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
    };
    // Read-only map pins: a write open (O_RDWR) needs the w bit, which
    // root without CAP_DAC_OVERRIDE lacks; a BPF_F_RDONLY open does not.
    chmod(0o400);
    let policy_arg = policy.display().to_string();
    let commands: [&[&str]; 6] = [
        &["status", "--json"],
        &["policy", "show", "--json"],
        &["policy", "diff", &policy_arg],
        &["stats", "--json"],
        &["conntrack", "list", "--json"],
        &[
            "explain",
            "--src",
            "10.99.53.2",
            "--dst",
            "10.99.53.1:80",
            "--proto",
            "tcp",
        ],
    ];
    let read_results: Vec<_> = commands
        .iter()
        .map(|args| (args, segfw_without_dac(&lab, args)))
        .collect();
    let write_result = segfw_without_dac(&lab, &["policy", "apply", &policy_arg]);
    chmod(0o600);
    for (args, out) in read_results {
        assert!(
            out.status.success(),
            "segfw {args:?} should work on read-only map pins: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stderr = String::from_utf8_lossy(&write_result.stderr);
    assert_eq!(
        write_result.status.code(),
        Some(1),
        "policy apply needs writable pins, so this check means something: {stderr}"
    );
    assert!(
        stderr.contains("Permission denied"),
        "apply on read-only pins should fail with EACCES: {stderr}"
    );
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, pins checked against an unprivileged user"]
fn failsafe_keeps_tcp_22_reachable_under_deny_all_until_disabled() {
    let _serial = serial();
    require_root();
    // Compiled image: no [defaults].failsafe means tcp/22; [] means none.
    let image = |src: &str| {
        segfw::policy::check_str(src, Path::new("p.toml"))
            .expect("valid policy")
            .image
    };
    let default = image("version = 1\n[defaults]\naction = \"deny\"\n");
    let failsafe_22 = segfw::skel::bytes_of(&failsafe_key(22)).to_vec();
    assert!(
        default
            .trie
            .iter()
            .any(|(k, _)| segfw::skel::bytes_of(k) == failsafe_22.as_slice()),
        "a policy without [defaults].failsafe should keep tcp/22"
    );
    let disabled = image("version = 1\n[defaults]\naction = \"deny\"\nfailsafe = []\n");
    assert!(
        !disabled
            .trie
            .iter()
            .any(|(k, _)| k.kind == segfw_key_kind::SEGFW_KIND_FAILSAFE),
        "failsafe = [] should compile no failsafe entry"
    );

    // Real traffic.
    let mut lab = Lab::new("sec-failsafe", 54);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    lab.listen_tcp(&a, &server, 22);
    lab.listen_tcp(&a, &server, PORT_OPEN);
    let keep = lab.write_policy("keep.toml", &lab.policy("[defaults]\naction = \"deny\"\n"));
    let off = lab.write_policy("off.toml", &lab.policy(DENY_ALL));
    lab.attach(&keep, &[]);
    assert!(
        lab.tcp_connects(&b, &server, 22),
        "tcp/22 is failsafe under a deny-all policy but did not connect"
    );
    assert!(
        !lab.tcp_connects(&b, &server, PORT_OPEN),
        "tcp/8080 is denied but connected"
    );
    lab.apply(&off);
    assert!(
        !lab.tcp_connects(&b, &server, 22),
        "failsafe = [] disables the failsafe, but tcp/22 still connected"
    );
}

/// Sets every directory under the pin dir (and it) to `dir_mode` and every
/// pin to `pin_mode`; restores 0700/0600 on drop, also when a test fails.
struct Modes<'a> {
    pin_dir: &'a Path,
}

impl<'a> Modes<'a> {
    fn set(pin_dir: &'a Path, dir_mode: u32, pin_mode: u32) -> Self {
        chmod_tree(pin_dir, dir_mode, pin_mode);
        Modes { pin_dir }
    }
}

impl Drop for Modes<'_> {
    fn drop(&mut self) {
        chmod_tree(self.pin_dir, 0o700, 0o600);
    }
}

fn chmod_tree(pin_dir: &Path, dir_mode: u32, pin_mode: u32) {
    let mut paths = vec![pin_dir.to_path_buf()];
    walk(pin_dir, &mut paths);
    for path in paths {
        let mode = if path.is_dir() { dir_mode } else { pin_mode };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

/// segfw as the unprivileged user (no capabilities), with the lab's pin
/// dir; `timeout` ends an `events` that would wait for events.
fn segfw_as_user(pin_dir: &Path, args: &[&str]) -> std::process::Output {
    let pin_dir = pin_dir.display().to_string();
    Command::new("timeout")
        .args(["20", "runuser", "-u", USER, "--"])
        .args([env!("CARGO_BIN_EXE_segfw"), "--pin-dir", &pin_dir])
        .args(args)
        .output()
        .expect("run timeout runuser segfw")
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, pins checked against an unprivileged user"]
fn read_commands_as_an_unprivileged_user_say_permission_denied_not_not_installed() {
    let _serial = serial();
    require_root();
    ensure_user();
    let lab = Lab::new("sec-read", 55);
    let live = lab.write_policy("live.toml", &lab.policy(DENY_ALL));
    lab.attach(&live, &[]);
    // The file to diff, where the user may read it (the lab's dir is 0700):
    // against a policy misread as "none", it would show a made-up diff.
    let readable = tempfile::tempdir().expect("create a temp dir");
    std::fs::set_permissions(readable.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod temp dir");
    let other = readable.path().join("other.toml");
    std::fs::write(&other, lab.policy("[defaults]\naction = \"allow\"\n")).expect("write");
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let other = other.display().to_string();
    let (src, dst) = (
        format!("{}:40000", lab.b(false)),
        format!("{}:80", lab.a(false)),
    );
    let commands: [&[&str]; 11] = [
        &["status"],
        &["status", "--json"],
        &["policy", "show"],
        &["policy", "show", "--json"],
        &["policy", "diff", &other],
        &["policy", "diff", &other, "--json"],
        &["stats", "--json"],
        &["conntrack", "list"],
        &["events", "--count", "1"],
        &["explain", "--src", &src, "--dst", &dst, "--proto", "tcp"],
        &[
            "explain", "--src", &src, "--dst", &dst, "--proto", "tcp", "--json",
        ],
    ];

    // As installed, the 0700 pin dir refuses the path (EACCES on stat);
    // with it traversable, the 0600 pins refuse the open (EACCES). (With
    // the pins open to all, Linux 6.x lets anyone BPF_OBJ_GET them whatever
    // unprivileged_bpf_disabled says: the modes are the protection.)
    let modes = [
        ("0700 pin dir", 0o700, 0o600),
        ("0711 dirs, 0600 pins", 0o711, 0o600),
    ];
    for (label, dir_mode, pin_mode) in modes {
        let _modes = Modes::set(&lab.pin_dir, dir_mode, pin_mode);
        for args in commands {
            let out = segfw_as_user(&lab.pin_dir, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{label}: segfw {args:?} as {USER} should exit 1\nstdout: {stdout}\nstderr: {stderr}"
            );
            assert!(
                stderr.contains("needs root, or CAP_BPF and CAP_SYS_ADMIN; the pins are 0600 root"),
                "{label}: segfw {args:?} as {USER} should say what it needs: {stderr}"
            );
            assert!(
                !stderr.contains("not installed") && !stdout.contains("not installed"),
                "{label}: segfw {args:?} as {USER} said \"not installed\": {stdout}{stderr}"
            );
            if args.starts_with(&["policy", "diff"]) {
                assert!(
                    stdout.trim().is_empty(),
                    "{label}: policy diff as {USER} printed a diff against a policy it could \
                     not read:\n{stdout}"
                );
            }
        }
    }
    // The instance is intact, and a pin dir that does not exist is still
    // "not installed" for anyone (/sys/fs/bpf is world-searchable).
    let view = lab.segfw_ok(&["policy", "show", "--json"]);
    assert!(view.contains("\"deny\""), "the live policy changed: {view}");
    let absent = std::path::PathBuf::from(format!("{}-absent", lab.pin_dir.display()));
    let out = segfw_as_user(&absent, &["status"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("not installed"),
        "status of a pin dir that does not exist: {out:?}"
    );
}
