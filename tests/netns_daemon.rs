//! segfw's long-running side with real traffic between namespaces:
//! `policy apply --confirm` and its detached rollback watchdog, and the
//! `segfw run` daemon (re-apply on file change, invalid edits, metrics,
//! SIGTERM with and without --keep, and its ownership of the instance: the
//! record `status` shows, refusals without --force, drift, vanished pins).
mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::*;

const METRICS: &str = "127.0.0.1:9464";

/// Default deny; the client may ping the server.
fn allow_ping(lab: &Lab) -> String {
    lab.policy(include_str!("fixtures/policies/lab/allow_ping.toml"))
}

/// Default deny; only tcp/8080 from the client: ping is blocked.
fn tcp_only(lab: &Lab) -> String {
    lab.policy(include_str!("fixtures/policies/lab/tcp_8080.toml"))
}

/// Line 8 (after the lab's segments) column 10: the invalid value.
fn invalid(lab: &Lab) -> String {
    lab.policy(include_str!("fixtures/policies/lab/invalid_action.toml"))
}

/// Polls `check` every 100 ms for up to `secs`.
fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn pending(status: &serde_json::Value) -> &serde_json::Value {
    &status["policy"]["pending_confirmation"]
}

fn generation(status: &serde_json::Value) -> u64 {
    status["policy"]["generation"].as_u64().unwrap_or(0)
}

#[test]
#[ignore = "needs root: network namespaces, `segfw run` attached, real traffic"]
fn confirm_keeps_and_missing_confirm_rolls_back() {
    let _serial = serial();
    require_root();
    let lab = Lab::new("confirm", 7);
    let (b, server) = (lab.ns_b.clone(), lab.a(false));
    let allow = lab.write_policy("allow.toml", &allow_ping(&lab));
    let block = lab.write_policy("block.toml", &tcp_only(&lab));
    let (allow_s, block_s) = (allow.display().to_string(), block.display().to_string());
    lab.attach(&allow, &[]);
    assert!(lab.ping(&b, &server), "allow-ping policy: ping failed");

    // Not confirmed: rolled back within a few seconds.
    let out = lab.segfw_ok(&["policy", "apply", &block_s, "--confirm", "2"]);
    assert!(
        out.contains("segfw policy confirm"),
        "apply --confirm should say how to confirm: {out}"
    );
    assert!(
        !lab.ping(&b, &server),
        "the unconfirmed policy should block ping"
    );
    let status = lab.status();
    assert_eq!(
        pending(&status)["generation"],
        2,
        "status should show the pending confirmation: {status}"
    );
    assert_eq!(pending(&status)["rollback_to_generation"], 1, "{status}");
    let refused = lab.segfw(&["policy", "apply", &allow_s]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "an apply while a confirmation is pending must be refused"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--force"),
        "the refusal should name --force: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        eventually(8, || pending(&lab.status()).is_null()),
        "no rollback 8s after a 2s --confirm: {}",
        lab.status()
    );
    let status = lab.status();
    assert_eq!(
        generation(&status),
        3,
        "the rollback must take a new generation: {status}"
    );
    assert_eq!(
        status["policy"]["source"].as_str(),
        Some(allow_s.as_str()),
        "{status}"
    );
    assert!(
        lab.ping(&b, &server),
        "after the rollback ping should pass again"
    );

    // Confirmed: kept.
    lab.segfw_ok(&["policy", "apply", &block_s, "--confirm", "2"]);
    let out = lab.segfw_ok(&["policy", "confirm"]);
    assert!(
        out.contains("confirmed generation 4"),
        "confirm printed: {out}"
    );
    thread::sleep(Duration::from_secs(3));
    let status = lab.status();
    assert_eq!(
        generation(&status),
        4,
        "a confirmed policy must stay: {status}"
    );
    assert!(pending(&status).is_null(), "{status}");
    assert!(!lab.ping(&b, &server), "the confirmed policy blocks ping");
    let again = lab.segfw(&["policy", "confirm"]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "confirm with nothing pending must exit 1"
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("nothing to confirm"),
        "confirm with nothing pending said: {}",
        String::from_utf8_lossy(&again.stderr)
    );

    // A first apply rolls back to no policy: everything passes.
    lab.segfw_ok(&["uninstall"]);
    lab.segfw_ok(&["attach", IFACE]);
    lab.segfw_ok(&["policy", "apply", &block_s, "--confirm", "1"]);
    assert!(
        !lab.ping(&b, &server),
        "the unconfirmed first policy should block ping"
    );
    assert!(
        eventually(6, || lab.status()["policy"].is_null()),
        "a first apply should roll back to no policy: {}",
        lab.status()
    );
    assert!(lab.ping(&b, &server), "with no policy ping should pass");
}

/// `segfw run` in ns a, its stdout (events) and stderr (log) in files;
/// killed on drop if still running.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(lab: &Lab, policy: &Path, extra: &[&str]) -> Self {
        let mut daemon = Daemon::spawn(lab, policy, extra);
        daemon.wait_for_log("running:", 15);
        daemon
    }

    /// Starts `segfw run` without waiting for it to be running.
    fn spawn(lab: &Lab, policy: &Path, extra: &[&str]) -> Self {
        let log = lab.policies.path().join("run.log");
        let events = lab.policies.path().join("events.log");
        let pin_dir = lab.pin_dir.display().to_string();
        let policy = policy.display().to_string();
        let mut args = vec![
            format!("--net=/run/netns/{}", lab.ns_a),
            env!("CARGO_BIN_EXE_segfw").to_string(),
            "--pin-dir".to_string(),
            pin_dir,
            "run".to_string(),
            IFACE.to_string(),
            "--policy".to_string(),
            policy,
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        // nsenter execs segfw in place: the child's pid is segfw's.
        let child = Command::new("nsenter")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(File::create(&events).expect("create events log"))
            .stderr(File::create(&log).expect("create daemon log"))
            .spawn()
            .expect("start segfw run");
        Daemon { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&mut self, needle: &str, secs: u64) {
        let found = eventually(secs, || {
            self.log_text().contains(needle) || self.child.try_wait().ok().flatten().is_some()
        });
        assert!(
            found && self.log_text().contains(needle),
            "segfw run: no {needle:?} in its log after {secs}s:\n{}",
            self.log_text()
        );
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("send a signal to segfw run");
    }

    /// SIGTERM, then the exit status (within 10s).
    fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(Signal::SIGTERM);
        self.wait_exit(10)
    }

    /// The exit status, waiting up to `secs` for it.
    fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for segfw run") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "segfw run did not exit within {secs}s:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The metrics text, fetched with curl inside ns a.
fn scrape(lab: &Lab) -> String {
    let url = format!("http://{METRICS}/metrics");
    let out = ns_cmd(&lab.ns_a, &["curl", "-sf", "--max-time", "5", &url])
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl {url} failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of sample `series` (name with labels, as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.rsplit_once(' ').filter(|(s, _)| *s == series))
        .and_then(|(_, v)| v.parse().ok())
}

fn metric(lab: &Lab, series: &str) -> f64 {
    let text = scrape(lab);
    sample(&text, series).unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

const PING_PACKETS: &str = "segfw_rule_packets_total{rule_id=\"1\",rule=\"allow-ping\"}";
const GENERATION: &str = "segfw_policy_generation";

#[test]
#[ignore = "needs root: network namespaces, `segfw run` attached, real traffic"]
fn run_reapplies_changes_survives_invalid_edits_and_serves_metrics() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("run", 8);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    lab.listen_tcp(&a, &server, PORT_CLOSED);
    let live = lab.write_policy("live.toml", &allow_ping(&lab));
    let mut daemon = Daemon::start(&lab, &live, &["--metrics", METRICS]);

    assert_eq!(metric(&lab, GENERATION), 1.0, "one apply so far");
    assert_eq!(metric(&lab, "segfw_policy_last_apply_success"), 1.0);
    let before = metric(&lab, PING_PACKETS);
    let pinged = ns_cmd(&b, &["ping", "-c3", "-i0.2", "-W1", &server])
        .output()
        .expect("run ping");
    assert!(pinged.status.success(), "3 pings under allow-ping failed");
    // 3 echo requests (ingress) and 3 replies (egress), one flow.
    assert_eq!(
        metric(&lab, PING_PACKETS) - before,
        6.0,
        "packets of allow-ping after 3 pings"
    );

    // Edited in place.
    std::fs::write(&live, tcp_only(&lab)).expect("write policy in place");
    assert!(
        eventually(5, || metric(&lab, GENERATION) == 2.0),
        "write in place not applied:\n{}",
        daemon.log_text()
    );
    assert!(!lab.ping(&b, &server), "the edited policy blocks ping");

    // Rename-on-save, as editors do.
    let tmp = lab.write_policy(".live.toml.swp", &allow_ping(&lab));
    std::fs::rename(&tmp, &live).expect("rename over the policy");
    assert!(
        eventually(5, || metric(&lab, GENERATION) == 3.0),
        "rename-on-save not applied:\n{}",
        daemon.log_text()
    );
    assert!(lab.ping(&b, &server), "the renamed-in policy allows ping");

    // An invalid edit is logged with file:line:col; the old policy stays.
    let tmp = lab.write_policy(".live.toml.swp", &invalid(&lab));
    std::fs::rename(&tmp, &live).expect("rename over the policy");
    daemon.wait_for_log("live.toml:8:10:", 5);
    assert_eq!(metric(&lab, "segfw_policy_last_apply_success"), 0.0);
    assert_eq!(
        metric(&lab, GENERATION),
        3.0,
        "an invalid edit must not apply"
    );
    assert!(
        lab.ping(&b, &server),
        "after an invalid edit the old policy still allows ping"
    );
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "old policy still denies tcp/8081"
    );
    let events =
        std::fs::read_to_string(lab.policies.path().join("events.log")).unwrap_or_default();
    assert!(
        events
            .lines()
            .any(|l| l.contains(" deny  drop sfw0 ingress ")),
        "denies should be logged as events:\n{events}"
    );

    // SIGTERM detaches: no links left, traffic unfiltered.
    let status = daemon.terminate();
    assert!(
        status.success(),
        "segfw run exit status {status}:\n{}",
        daemon.log_text()
    );
    let links = std::fs::read_dir(lab.pin_dir.join("links"))
        .expect("read links dir")
        .count();
    assert_eq!(links, 0, "links left in the pin dir after SIGTERM");
    let status = lab.status();
    assert_eq!(status["attachments"], serde_json::json!([]));
    assert!(
        status["daemon"].is_null(),
        "the daemon record is cleared on exit: {status}"
    );
    assert!(
        lab.tcp_connects(&b, &server, PORT_CLOSED),
        "after SIGTERM traffic should be unfiltered"
    );
}

#[test]
#[ignore = "needs root: network namespaces, `segfw run` attached, real traffic"]
fn run_with_keep_leaves_enforcement_on_sigterm() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("keep", 9);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    lab.listen_tcp(&a, &server, PORT_CLOSED);
    let live = lab.write_policy("live.toml", &allow_ping(&lab));
    let mut daemon = Daemon::start(&lab, &live, &["--keep"]);
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "tcp/8081 is denied"
    );

    let status = daemon.terminate();
    assert!(
        status.success(),
        "segfw run --keep exit status {status}:\n{}",
        daemon.log_text()
    );
    let status = lab.status();
    assert!(
        status["daemon"].is_null(),
        "after --keep no daemon manages the instance, the record says so: {status}"
    );
    let live_links = status["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .filter(|a| a["live"] == true)
        .count();
    assert_eq!(
        live_links, 2,
        "--keep must leave both hooks attached: {status}"
    );
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "with --keep tcp/8081 stays denied"
    );
    assert!(
        lab.ping(&b, &server),
        "with --keep the policy still allows ping"
    );

    // A daemon killed without cleaning up leaves a stale record, which
    // status shows as such and which binds nothing.
    let mut killed = Daemon::start(&lab, &live, &["--keep"]);
    killed.signal(Signal::SIGKILL);
    killed.wait_exit(10);
    let status = lab.status();
    assert_eq!(status["daemon"]["pid"], killed.pid(), "{status}");
    assert_eq!(
        status["daemon"]["alive"], false,
        "a killed daemon is not alive: {status}"
    );
    let tcp = lab.write_policy("tcp.toml", &tcp_only(&lab));
    lab.apply(&tcp);
    assert!(
        !lab.ping(&b, &server),
        "the apply after a stale record took effect"
    );
}

#[test]
#[ignore = "needs root: network namespaces, `segfw run` attached, real traffic"]
fn run_reattaches_an_interface_that_was_deleted_and_created_again() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("reattach", 10);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let policy = lab.write_policy("tcp.toml", &tcp_only(&lab));
    let mut daemon = Daemon::start(&lab, &policy, &[]);
    assert!(!lab.ping(&b, &server), "ping is denied while segfw runs");

    lab.recreate_veth_pair();
    lab.listen_tcp(&a, &server, PORT_OPEN);
    daemon.wait_for_log("re-attached sfw0 ingress", 10);
    daemon.wait_for_log("re-attached sfw0 egress", 10);
    let hooks = lab.status()["attachments"].clone();
    let live = hooks
        .as_array()
        .expect("attachments")
        .iter()
        .filter(|h| h["live"] == true)
        .count();
    assert_eq!(live, 2, "both hooks live on the new interface: {hooks}");
    assert!(
        !lab.ping(&b, &server),
        "the policy enforces on the new interface"
    );
    assert!(
        lab.tcp_connects(&b, &server, PORT_OPEN),
        "and still allows tcp/8080"
    );
    assert!(daemon.terminate().success(), "segfw run exits 0 on SIGTERM");
}

/// (HTTP status, body) of /metrics, or None while nothing answers.
fn try_scrape(lab: &Lab) -> Option<(u16, String)> {
    let url = format!("http://{METRICS}/metrics");
    let out = ns_cmd(
        &lab.ns_a,
        &[
            "curl",
            "-s",
            "--max-time",
            "2",
            "-w",
            "\n%{http_code}",
            &url,
        ],
    )
    .output()
    .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    let code: u16 = code.trim().parse().ok()?;
    (code != 0).then(|| (code, body.to_string()))
}

const DRIFT: &str = "segfw_policy_drift";

fn live_hooks(lab: &Lab) -> usize {
    lab.status()["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .filter(|a| a["live"] == true)
        .count()
}

/// Runs segfw in ns a; asserts it exits 1 and its error names the daemon's
/// pid and policy file. Returns stderr.
fn refused(lab: &Lab, daemon: &Daemon, live: &Path, args: &[&str]) -> String {
    let out = lab.segfw(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "segfw {args:?} under a daemon must be refused (exit 1): {stderr}"
    );
    for needle in [format!("pid {}", daemon.pid()), live.display().to_string()] {
        assert!(
            stderr.contains(&needle),
            "the refusal of segfw {args:?} should name {needle}: {stderr}"
        );
    }
    stderr
}

#[test]
#[ignore = "needs root: network namespaces, `segfw run` attached, real traffic"]
fn run_owns_its_instance_reports_drift_and_exits_when_its_pins_vanish() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("own", 11);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    lab.listen_tcp(&a, &server, PORT_CLOSED);
    let live = lab.write_policy("live.toml", &allow_ping(&lab));
    let other = lab.write_policy("other.toml", &tcp_only(&lab));
    let other_s = other.display().to_string();
    let mut daemon = Daemon::spawn(&lab, &live, &["--metrics", METRICS]);

    // The first answer of /metrics comes during the load (seconds of
    // verifier): it says so instead of "not installed".
    let mut first = None;
    assert!(
        eventually(20, || {
            first = try_scrape(&lab);
            first.is_some()
        }),
        "/metrics never answered:\n{}",
        daemon.log_text()
    );
    let (code, body) = first.expect("an answer");
    assert!(
        code == 503 && body.contains("loading the datapath"),
        "during the first load /metrics should answer 503 \"loading the datapath\", got {code}: {body}"
    );
    daemon.wait_for_log("running:", 20);
    let log = daemon.log_text();
    let (loading, loaded) = (
        log.find("loading the datapath (verifier)"),
        log.find("loaded segfw"),
    );
    assert!(
        loading.is_some() && loading < loaded,
        "the log should announce the load before it happens:\n{log}"
    );

    // status names the daemon: pid (alive), policy file, interfaces.
    let status = lab.status();
    let d = &status["daemon"];
    assert_eq!(d["pid"], daemon.pid(), "status --json daemon: {status}");
    assert_eq!(d["alive"], true, "{status}");
    assert_eq!(
        d["policy"].as_str(),
        Some(live.display().to_string().as_str())
    );
    assert_eq!(d["interfaces"], serde_json::json!([IFACE]), "{status}");
    let text = lab.segfw_ok(&["status"]);
    assert!(
        text.contains(&format!("daemon: segfw run pid {}", daemon.pid()))
            && text.contains(&live.display().to_string()),
        "status should name the daemon:\n{text}"
    );

    // A second daemon on the same pin dir is refused at once.
    let pin_dir = lab.pin_dir.display().to_string();
    let netns = format!("--net=/run/netns/{}", lab.ns_a);
    let live_s = live.display().to_string();
    let second = Command::new("timeout")
        .args(["30", "nsenter", &netns, env!("CARGO_BIN_EXE_segfw")])
        .args(["--pin-dir", &pin_dir, "run", IFACE, "--policy", &live_s])
        .output()
        .expect("run a second segfw run");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(
        second.status.code(),
        Some(1),
        "a second daemon must exit 1: {stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", daemon.pid())),
        "the refusal should name the running daemon: {stderr}"
    );

    // Commands that would change what it manages are refused; nothing changes.
    refused(&lab, &daemon, &live, &["policy", "apply", &other_s]);
    refused(&lab, &daemon, &live, &["detach", IFACE]);
    refused(&lab, &daemon, &live, &["uninstall"]);
    refused(
        &lab,
        &daemon,
        &live,
        &["attach", IFACE, "--policy", &other_s],
    );
    assert_eq!(
        generation(&lab.status()),
        1,
        "a refused apply changed the policy"
    );
    assert_eq!(live_hooks(&lab), 2, "a refused detach removed a hook");
    assert!(
        lab.ping(&b, &server),
        "the daemon's policy still allows ping"
    );
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "the daemon's policy still denies tcp/8081"
    );
    assert_eq!(metric(&lab, DRIFT), 0.0, "no drift yet");

    // --force: applied; the daemon notices, says so, and does not fight it.
    lab.segfw_ok(&["policy", "apply", "--force", &other_s]);
    assert!(!lab.ping(&b, &server), "the forced policy blocks ping");
    assert!(
        eventually(5, || metric(&lab, DRIFT) == 1.0),
        "segfw_policy_drift should go to 1 after a forced apply:\n{}",
        daemon.log_text()
    );
    daemon.wait_for_log("drift: the live policy is generation 2", 5);
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        metric(&lab, GENERATION),
        2.0,
        "the daemon must not re-apply its file until it changes or SIGHUP"
    );
    assert!(!lab.ping(&b, &server), "the forced policy still enforces");

    // SIGHUP: its file is live again.
    daemon.signal(Signal::SIGHUP);
    assert!(
        eventually(5, || metric(&lab, DRIFT) == 0.0),
        "SIGHUP should re-apply the file and clear the drift:\n{}",
        daemon.log_text()
    );
    assert_eq!(metric(&lab, GENERATION), 3.0);
    assert!(
        lab.ping(&b, &server),
        "the daemon's policy allows ping again"
    );

    // detach --force: logged as a detach by hand, left detached (traffic
    // unfiltered), and attached again at the file's next change.
    lab.segfw_ok(&["detach", "--force", IFACE]);
    daemon.wait_for_log("sfw0 ingress was detached by hand", 5);
    assert!(
        eventually(5, || metric(&lab, DRIFT) == 1.0),
        "a forced detach is drift"
    );
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        live_hooks(&lab),
        0,
        "the daemon re-attached a forced detach at once"
    );
    assert!(
        !daemon.log_text().contains("came back as ifindex"),
        "a detach by hand is not an interface that came back:\n{}",
        daemon.log_text()
    );
    assert!(
        lab.tcp_connects(&b, &server, PORT_CLOSED),
        "detached: traffic flows unfiltered"
    );
    std::fs::write(&live, allow_ping(&lab) + "# edited\n").expect("edit the policy");
    daemon.wait_for_log("re-attached sfw0 egress", 5);
    assert!(
        eventually(5, || metric(&lab, DRIFT) == 0.0),
        "drift after re-attach"
    );
    assert_eq!(
        live_hooks(&lab),
        2,
        "both hooks back after the file changed"
    );
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "re-attached: tcp/8081 is denied again"
    );

    // The pins vanish under it: it says so and exits 1.
    lab.segfw_ok(&["uninstall", "--force"]);
    let status = daemon.wait_exit(10);
    assert_eq!(
        status.code(),
        Some(1),
        "segfw run should exit 1 when its pins are removed:\n{}",
        daemon.log_text()
    );
    assert!(
        daemon.log_text().contains("were removed"),
        "the daemon should log why it exits:\n{}",
        daemon.log_text()
    );
}
