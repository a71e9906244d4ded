//! Observability with real traffic through a veth pair (segfw on the server
//! side, both directions): `events` reports each denied flow once with its
//! rule and reason, `stats` counts exactly the packets sent, `stats
//! --unused` lists the rules nothing hit, `explain` agrees with real
//! traffic and changes nothing, and audit mode passes and reports would-be
//! drops.
mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Rules: "web" allows tcp/8080, "no-8081" denies tcp/8081, "dns" allows
/// udp/5353, "ping" allows ICMP echo, "icmpv6-any" allows all ICMPv6 (MLD
/// reports of the fresh interfaces would otherwise be deny events too),
/// and two rules no traffic of these tests matches. Default deny.
fn observe_policy(lab: &Lab, mode: &str) -> String {
    let rule = |name: &str, from: &str, to: &str, proto: &str, extra: &str, action: &str| {
        format!(
            "\n[[rules]]\nname = \"{name}\"\nfrom = \"{from}\"\nto = \"{to}\"\nproto = \"{proto}\"\n{extra}\naction = \"{action}\"\n"
        )
    };
    let rules = [
        rule("web", "client", "server", "tcp", "ports = [8080]", "allow"),
        rule(
            "no-8081",
            "client",
            "server",
            "tcp",
            "ports = [8081]",
            "deny",
        ),
        rule("dns", "client", "server", "udp", "ports = [5353]", "allow"),
        rule(
            "ping",
            "client",
            "server",
            "icmp",
            "icmp_types = [\"echo-request\"]",
            "allow",
        ),
        rule("icmpv6-any", "*", "*", "icmpv6", "", "allow"),
        rule(
            "unused-ssh",
            "client",
            "server",
            "tcp",
            "ports = [2222]",
            "allow",
        ),
        rule(
            "unused-udp",
            "client",
            "server",
            "udp",
            "ports = [9999]",
            "deny",
        ),
    ];
    lab.policy(&format!(
        "[defaults]\naction = \"deny\"\nmode = \"{mode}\"\nfailsafe = []\n{}",
        rules.concat()
    ))
}

/// A running `segfw events`; killed on drop.
struct EventReader {
    child: Child,
}

impl EventReader {
    /// Starts `segfw events --json ARGS` in the server namespace and waits
    /// until it reads (its "streaming" line on stderr).
    fn start(lab: &Lab, extra: &[&str]) -> Self {
        let pin_dir = lab.pin_dir.display().to_string();
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", lab.ns_a))
            .arg(env!("CARGO_BIN_EXE_segfw"))
            .args(["--pin-dir", &pin_dir, "events", "--json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start segfw events");
        let stderr = child.stderr.take().expect("events stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut first = String::new();
            let mut reader = BufReader::new(stderr);
            let _ = reader.read_line(&mut first);
            let _ = tx.send(first);
            // Keep draining so the reader never blocks on a full pipe.
            let _ = reader.read_to_string(&mut String::new());
        });
        let first = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("segfw events should say it is streaming within 10s");
        assert!(
            first.contains("streaming events"),
            "segfw events should start streaming, said: {first:?}"
        );
        EventReader { child }
    }

    /// Waits up to `wait` for the reader to exit by itself (--count);
    /// None if it is still running then.
    fn exits_within(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll segfw events") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, as a service manager would stop it.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM segfw");
        self.exits_within(Duration::from_secs(5))
            .expect("segfw events should exit within 5s of SIGTERM")
    }

    /// The JSON lines it printed (after it exited).
    fn events(&mut self) -> Vec<Value> {
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .expect("events stdout")
            .read_to_string(&mut out)
            .expect("read events stdout");
        out.lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("event line is not JSON ({e}): {line}"))
            })
            .collect()
    }
}

impl Drop for EventReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Exactly one TCP SYN from `ns` to addr:port: connect gives up after
/// 0.3s, before the kernel's first retransmission (1s).
fn single_syn(ns: &str, addr: &str, port: u16) {
    let port = port.to_string();
    let status = ns_cmd(ns, &["python3", &script("single_syn.py"), addr, &port])
        .status()
        .expect("run python3 for one SYN");
    assert!(status.success(), "python3 single SYN failed: {status}");
}

/// One UDP request/answer from a fixed source port (so the flow can be
/// named to `explain`); whether the answer came back.
fn udp_from_port(ns: &str, src: &str, sport: u16, dst: &str, dport: u16) -> bool {
    let (dport, sport) = (dport.to_string(), sport.to_string());
    let client = script("udp_echo_client.py");
    ns_cmd(ns, &["python3", &client, dst, &dport, "3", src, &sport])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn json(lab: &Lab, args: &[&str]) -> Value {
    let out = lab.segfw_ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("segfw {args:?} is not JSON ({e}): {out}"))
}

/// Rule name -> id of the live policy.
fn rule_id(lab: &Lab, name: &str) -> u64 {
    let show = json(lab, &["policy", "show", "--json"]);
    show["rules"]
        .as_array()
        .expect("policy show rules")
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["id"].as_u64())
        .unwrap_or_else(|| panic!("rule {name} not in the live policy: {show}"))
}

/// (packets, bytes) of a rule in `stats --json` (0, 0 if not listed).
fn rule_counts(stats: &Value, name: &str) -> (u64, u64) {
    stats["rules"]
        .as_array()
        .expect("stats rules")
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| (r["packets"].as_u64().unwrap(), r["bytes"].as_u64().unwrap()))
        .unwrap_or((0, 0))
}

fn reason_count(stats: &Value, reason: &str) -> u64 {
    stats["reasons"]
        .as_array()
        .expect("stats reasons")
        .iter()
        .find(|r| r["reason"] == reason)
        .and_then(|r| r["packets"].as_u64())
        .unwrap_or(0)
}

fn is_flow(event: &Value, proto: &str, src: &str, dst: &str, dport: Option<u16>) -> bool {
    event["proto"] == proto
        && event["src"] == src
        && event["dst"] == dst
        && dport.is_none_or(|port| event["dport"] == port)
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, real traffic, events and stats"]
fn events_report_denies_once_and_stats_count_exactly() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("obs-events", 41);
    let policy = lab.write_policy("observe.toml", &observe_policy(&lab, "enforce"));
    lab.attach(&policy, &[]);
    let (a, b) = (lab.ns_a.clone(), lab.ns_b.clone());
    let (server, client) = (lab.a(false), lab.b(false));
    lab.listen_tcp(&a, &server, PORT_OPEN);
    lab.listen_tcp(&a, &server, PORT_CLOSED);
    lab.listen_udp_echo(&a, &server, UDP_OPEN);
    let deny_id = rule_id(&lab, "no-8081");

    // One SYN to the denied port: `--count 1` prints its one event and exits.
    let mut reader = EventReader::start(&lab, &["--count", "1"]);
    single_syn(&b, &server, PORT_CLOSED);
    let status = reader
        .exits_within(Duration::from_secs(5))
        .expect("events --count 1 should exit after the deny event");
    assert!(status.success(), "events --count 1 exited with {status}");
    let events = reader.events();
    assert_eq!(events.len(), 1, "--count 1 prints one event: {events:?}");
    let ev = &events[0];
    assert!(
        is_flow(ev, "tcp", &client, &server, Some(PORT_CLOSED)),
        "expected the client's tcp/8081 SYN, got {ev}"
    );
    assert_eq!(ev["kind"], "deny", "kind of {ev}");
    assert_eq!(ev["verdict"], "drop", "verdict of {ev}");
    assert_eq!(ev["rule_id"], deny_id, "rule id of {ev}");
    assert_eq!(ev["rule"], "no-8081", "rule name of {ev}");
    assert_eq!(ev["reason"], "drop_policy", "reason of {ev}");
    assert_eq!(ev["direction"], "ingress", "direction of {ev}");
    assert_eq!(ev["interface"], IFACE, "interface of {ev}");
    assert!(
        ev["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "time is RFC 3339 UTC: {ev}"
    );

    // Exactly one: another single SYN, and a reader that would stop at
    // two events still runs 2s later, having printed one.
    let mut reader = EventReader::start(&lab, &["--count", "2"]);
    single_syn(&b, &server, PORT_CLOSED);
    assert!(
        reader.exits_within(Duration::from_secs(2)).is_none(),
        "events --count 2 exited: a single SYN produced more than one event"
    );
    let status = reader.terminate();
    assert!(
        status.success(),
        "events should exit 0 on SIGTERM, got {status}"
    );
    let events = reader.events();
    let denies: Vec<&Value> = events
        .iter()
        .filter(|e| is_flow(e, "tcp", &client, &server, Some(PORT_CLOSED)))
        .collect();
    assert_eq!(denies.len(), 1, "one SYN, one deny event; got {events:?}");

    // Counters: ping -c 5 on rule "ping". segfw runs on both hooks of
    // sfw0, so each echo request (ingress, a new flow then established)
    // and each echo reply (egress, established) is counted to the rule
    // that allowed the flow: 5 + 5 = 10 packets of 98 bytes (14 Ethernet +
    // 20 IPv4 + 8 ICMP + 56 data, as tc sees them).
    let before = json(&lab, &["stats", "--json"]);
    let out = ns_cmd(&b, &["ping", "-c5", "-i0.2", "-W1", &server])
        .output()
        .expect("run ping");
    assert!(
        out.status.success(),
        "ping -c5 to the server is allowed but failed"
    );
    let after = json(&lab, &["stats", "--json"]);
    let (p0, b0) = rule_counts(&before, "ping");
    let (p1, b1) = rule_counts(&after, "ping");
    assert_eq!(
        (p1 - p0, b1 - b0),
        (10, 980),
        "rule ping should rise by 10 packets / 980 bytes; before {before}, after {after}"
    );
    assert!(
        reason_count(&after, "drop_policy") >= 2,
        "two SYNs were dropped by policy: {after}"
    );
    assert_eq!(after["audited"], 0, "nothing is audited in enforce mode");
    assert_eq!(
        after["events_suppressed"], 0,
        "two events stay far under the rate limit"
    );

    // Hit every rule but two, then --unused lists exactly those two.
    assert!(
        lab.tcp_connects(&b, &server, PORT_OPEN),
        "tcp/8080 is allowed"
    );
    assert!(
        lab.udp_echoes(&b, &server, UDP_OPEN, 3),
        "udp/5353 is allowed"
    );
    assert!(lab.ping(&b, &lab.a(true)), "ping6 is allowed");
    let unused = json(&lab, &["stats", "--unused", "--json"]);
    let names: Vec<&str> = unused["unused"]
        .as_array()
        .expect("stats --unused --json has an unused array")
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["unused-ssh", "unused-udp"],
        "--unused should list exactly the rules nothing hit: {unused}"
    );
    let text = lab.segfw_ok(&["stats", "--unused"]);
    assert!(
        text.contains("unused-ssh") && !text.contains("no-8081"),
        "stats --unused text: {text}"
    );
    let text = lab.segfw_ok(&["stats"]);
    assert!(
        text.contains("no-8081") && text.contains("drop_policy"),
        "stats text names rules and reasons: {text}"
    );

    // Counters count since the apply: applying again zeroes them.
    lab.apply(&policy);
    let unused = json(&lab, &["stats", "--unused", "--json"]);
    assert_eq!(
        unused["unused"].as_array().map(Vec::len),
        Some(7),
        "after a new apply no rule has matched yet: {unused}"
    );
}

/// One explain probe with what it should answer, and the real traffic
/// that must agree with it.
struct Case {
    what: &'static str,
    args: Vec<String>,
    verdict: &'static str,
    rule: &'static str,
    reason: &'static str,
}

fn case(what: &'static str, args: &[&str], verdict: &'static str, rule: &'static str) -> Case {
    let reason = match (verdict, rule) {
        ("pass", _) => "pass_allowed",
        (_, "(default)") => "drop_default",
        _ => "drop_policy",
    };
    Case {
        what,
        args: args.iter().map(|s| s.to_string()).collect(),
        verdict,
        rule,
        reason,
    }
}

fn explain(lab: &Lab, args: &[String]) -> Value {
    let mut full = vec!["explain", "--json"];
    full.extend(args.iter().map(String::as_str));
    json(lab, &full)
}

/// The counters explain must not move: every rule's packets and bytes,
/// and every reason but those of frames no policy decides (ND and ARP,
/// which the fresh interfaces still send now and then).
fn counters(lab: &Lab) -> Value {
    let mut stats = json(lab, &["stats", "--json"]);
    for rule in stats["rules"].as_array_mut().expect("stats rules") {
        let rule = rule.as_object_mut().unwrap();
        rule.remove("last_hit_s_ago");
    }
    let reasons = stats["reasons"].as_array_mut().expect("stats reasons");
    reasons.retain(|r| r["reason"] != "pass_nd" && r["reason"] != "pass_non_ip");
    let passed = reasons
        .iter()
        .filter(|r| r["drop"] == false)
        .map(|r| r["packets"].as_u64().unwrap())
        .sum::<u64>();
    stats["passed"] = passed.into();
    stats
}

/// Tracked flows without their ages.
fn flows(lab: &Lab) -> Value {
    let mut flows = json(lab, &["conntrack", "list", "--json"]);
    // Fresh interfaces send MLD reports to ff02::/16 on their own, at any
    // time: those flows are background traffic, not the test's.
    flows
        .as_array_mut()
        .expect("conntrack list array")
        .retain(|flow| !flow["dst"].as_str().unwrap_or("").starts_with("ff0"));
    for flow in flows.as_array_mut().expect("conntrack list array") {
        let flow = flow.as_object_mut().unwrap();
        flow.remove("age_s");
        flow.remove("idle_s");
    }
    flows
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, real traffic, events and stats"]
fn explain_agrees_with_real_traffic_and_changes_nothing() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("obs-explain", 42);
    let policy = lab.write_policy("observe.toml", &observe_policy(&lab, "enforce"));
    lab.attach(&policy, &[]);
    let (a, b) = (lab.ns_a.clone(), lab.ns_b.clone());
    let (s4, c4, s6, c6) = (lab.a(false), lab.b(false), lab.a(true), lab.b(true));
    for server in [&s4, &s6] {
        lab.listen_tcp(&a, server, PORT_OPEN);
        lab.listen_tcp(&a, server, PORT_CLOSED);
        lab.listen_tcp(&a, server, 8082);
        lab.listen_udp_echo(&a, server, UDP_OPEN);
        lab.listen_udp_echo(&a, server, UDP_CLOSED);
    }
    let at = |addr: &str, port: u16| {
        if addr.contains(':') {
            format!("[{addr}]:{port}")
        } else {
            format!("{addr}:{port}")
        }
    };

    for (v6, server, client) in [(false, &s4, &c4), (true, &s6, &c6)] {
        let (tcp_open, tcp_denied, tcp_default) = (
            at(server, PORT_OPEN),
            at(server, PORT_CLOSED),
            at(server, 8082),
        );
        let (udp_open, udp_default) = (at(server, UDP_OPEN), at(server, UDP_CLOSED));
        let ping_proto = if v6 { "icmpv6" } else { "icmp" };
        let ping_rule = if v6 { "icmpv6-any" } else { "ping" };
        let cases = [
            case(
                "tcp allowed",
                &["--src", client, "--dst", &tcp_open, "--proto", "tcp"],
                "pass",
                "web",
            ),
            case(
                "tcp denied by rule",
                &["--src", client, "--dst", &tcp_denied, "--proto", "tcp"],
                "drop",
                "no-8081",
            ),
            case(
                "tcp denied by default",
                &["--src", client, "--dst", &tcp_default, "--proto", "6"],
                "drop",
                "(default)",
            ),
            case(
                "udp allowed",
                &["--src", client, "--dst", &udp_open, "--proto", "udp"],
                "pass",
                "dns",
            ),
            case(
                "udp denied by default",
                &["--src", client, "--dst", &udp_default, "--proto", "udp"],
                "drop",
                "(default)",
            ),
            case(
                "ping client -> server",
                &["--src", client, "--dst", server, "--proto", ping_proto],
                "pass",
                ping_rule,
            ),
            case(
                "ping server -> client (egress)",
                &[
                    "--src", server, "--dst", client, "--proto", ping_proto, "--dir", "egress",
                ],
                if v6 { "pass" } else { "drop" },
                if v6 { "icmpv6-any" } else { "(default)" },
            ),
        ];
        for c in &cases {
            let family = if v6 { "IPv6" } else { "IPv4" };
            let answer = explain(&lab, &c.args);
            assert_eq!(
                (
                    answer["verdict"].as_str(),
                    answer["rule"].as_str(),
                    answer["reason"].as_str()
                ),
                (Some(c.verdict), Some(c.rule), Some(c.reason)),
                "{family} {}: explain {:?} answered {answer}",
                c.what,
                c.args
            );
            assert_eq!(
                answer["conntrack_hit"], false,
                "{family} {}: a new flow",
                c.what
            );
            let real = match c.what {
                "tcp allowed" => lab.tcp_connects(&b, server, PORT_OPEN),
                "tcp denied by rule" => lab.tcp_connects(&b, server, PORT_CLOSED),
                "tcp denied by default" => lab.tcp_connects(&b, server, 8082),
                "udp allowed" => lab.udp_echoes(&b, server, UDP_OPEN, 3),
                "udp denied by default" => lab.udp_echoes(&b, server, UDP_CLOSED, 1),
                "ping client -> server" => lab.ping(&b, server),
                _ => lab.ping(&a, client),
            };
            assert_eq!(
                real,
                c.verdict == "pass",
                "{family} {}: explain said {}, real traffic {}",
                c.what,
                c.verdict,
                if real { "passed" } else { "was dropped" }
            );
        }
    }

    // A tracked flow: explain sees it in conntrack, both ways.
    assert!(
        udp_from_port(&b, &c4, 45353, &s4, UDP_OPEN),
        "udp/5353 from port 45353 is allowed"
    );
    let strings = |args: &[&str]| -> Vec<String> { args.iter().map(|s| s.to_string()).collect() };
    let (client_end, server_end) = (at(&c4, 45353), at(&s4, UDP_OPEN));
    let tracked = [
        strings(&["--src", &client_end, "--dst", &server_end, "--proto", "udp"]),
        strings(&[
            "--src",
            &server_end,
            "--dst",
            &client_end,
            "--proto",
            "udp",
            "--dir",
            "egress",
        ]),
    ];
    for args in &tracked {
        let answer = explain(&lab, args);
        assert_eq!(
            (
                answer["verdict"].as_str(),
                answer["reason"].as_str(),
                answer["rule"].as_str(),
                answer["conntrack_hit"].as_bool()
            ),
            (
                Some("pass"),
                Some("pass_established"),
                Some("dns"),
                Some(true)
            ),
            "explain {args:?} of a tracked flow answered {answer}"
        );
    }

    // Explain changes nothing: no conntrack entry, no counter.
    let (counters_before, flows_before) = (counters(&lab), flows(&lab));
    let probes = [
        ["--src", &c4, "--dst", &at(&s4, 9000), "--proto", "tcp"],
        ["--src", &c4, "--dst", &at(&s4, PORT_OPEN), "--proto", "tcp"],
        ["--src", &c4, "--dst", &at(&s4, UDP_OPEN), "--proto", "udp"],
        ["--src", &c4, "--dst", &s4, "--proto", "icmp"],
        [
            "--src",
            &c6,
            "--dst",
            &at(&s6, PORT_CLOSED),
            "--proto",
            "tcp",
        ],
        ["--src", &c6, "--dst", &s6, "--proto", "icmpv6"],
        ["--src", &c4, "--dst", &at(&s4, 80), "--proto", "sctp"],
        ["--src", &c4, "--dst", &s4, "--proto", "47"],
    ];
    for args in probes {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        explain(&lab, &args);
        // text output too
        let mut text_args = vec!["explain"];
        text_args.extend(args.iter().map(String::as_str));
        let text = lab.segfw_ok(&text_args);
        assert!(text.contains("verdict:"), "explain text output: {text}");
    }
    assert_eq!(
        flows(&lab),
        flows_before,
        "explain must not create or change conntrack entries"
    );
    assert_eq!(
        counters(&lab),
        counters_before,
        "explain must not count packets"
    );

    // Without progs/explain (removed by hand), explain says what to do;
    // status shows it; the attached programs go on enforcing.
    let explain_pin = lab.pin_dir.join("progs/explain");
    let id = lab.status()["programs"]["explain"].as_u64();
    assert!(id.is_some(), "status names the explain program's id");
    std::fs::remove_file(&explain_pin).expect("remove progs/explain");
    let dst = at(&s4, PORT_OPEN);
    let out = lab.segfw(&["explain", "--src", &c4, "--dst", &dst, "--proto", "tcp"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "explain without its program: {stderr}"
    );
    assert!(
        stderr.contains(&explain_pin.display().to_string()) && stderr.contains("segfw uninstall"),
        "the error names the missing pin and what to do: {stderr}"
    );
    assert_eq!(lab.status()["programs"]["explain"], Value::Null);
    assert!(
        lab.segfw_ok(&["status"]).contains("explain missing"),
        "status text says the explain program is missing"
    );
    assert!(lab.tcp_connects(&b, &s4, PORT_OPEN), "still allowed");
    assert!(!lab.tcp_connects(&b, &s4, PORT_CLOSED), "still denied");
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, real traffic, events and stats"]
fn audit_mode_passes_would_be_drops_and_reports_them() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("obs-audit", 43);
    let policy = lab.write_policy("audit.toml", &observe_policy(&lab, "audit"));
    lab.attach(&policy, &[]);
    let (a, b) = (lab.ns_a.clone(), lab.ns_b.clone());
    let (server, client) = (lab.a(false), lab.b(false));
    lab.listen_tcp(&a, &server, PORT_CLOSED);

    let answer = json(
        &lab,
        &[
            "explain",
            "--json",
            "--src",
            &client,
            "--dst",
            &format!("{server}:{PORT_CLOSED}"),
            "--proto",
            "tcp",
        ],
    );
    assert_eq!(
        (
            answer["verdict"].as_str(),
            answer["reason"].as_str(),
            answer["rule"].as_str()
        ),
        (Some("pass"), Some("pass_audit"), Some("no-8081")),
        "explain in audit mode: {answer}"
    );

    let mut reader = EventReader::start(&lab, &[]);
    // Denied by rule no-8081 and by default (server -> client ping): both pass.
    assert!(
        lab.tcp_connects(&b, &server, PORT_CLOSED),
        "audit mode: tcp/8081 is denied by a rule but must pass"
    );
    assert!(
        lab.ping(&a, &client),
        "audit mode: ping server -> client is denied by default but must pass"
    );
    thread::sleep(Duration::from_millis(500));
    let status = reader.terminate();
    assert!(
        status.success(),
        "events should exit 0 on SIGTERM, got {status}"
    );
    let events = reader.events();
    let audits = |proto: &str, src: &str, dst: &str, port: Option<u16>| -> Vec<Value> {
        events
            .iter()
            .filter(|e| is_flow(e, proto, src, dst, port))
            .cloned()
            .collect()
    };
    let tcp = audits("tcp", &client, &server, Some(PORT_CLOSED));
    assert_eq!(
        tcp.len(),
        1,
        "one audit event for the tcp/8081 flow: {events:?}"
    );
    assert_eq!(
        (
            tcp[0]["kind"].as_str(),
            tcp[0]["verdict"].as_str(),
            tcp[0]["rule"].as_str(),
            tcp[0]["reason"].as_str()
        ),
        (
            Some("audit"),
            Some("pass"),
            Some("no-8081"),
            Some("drop_policy")
        ),
        "audit event of tcp/8081: {}",
        tcp[0]
    );
    let ping = audits("icmp", &server, &client, None);
    assert_eq!(ping.len(), 1, "one audit event for the ping: {events:?}");
    assert_eq!(
        (
            ping[0]["kind"].as_str(),
            ping[0]["rule"].as_str(),
            ping[0]["reason"].as_str(),
            ping[0]["direction"].as_str()
        ),
        (
            Some("audit"),
            Some("(default)"),
            Some("drop_default"),
            Some("egress")
        ),
        "audit event of the ping: {}",
        ping[0]
    );

    let stats = json(&lab, &["stats", "--json"]);
    assert_eq!(
        stats["audited"], 2,
        "two flows passed only because of audit (their first packets): {stats}"
    );
    assert_eq!(
        reason_count(&stats, "drop_policy") + reason_count(&stats, "drop_default"),
        0,
        "audit mode drops nothing the policy denies: {stats}"
    );
    let text = lab.segfw_ok(&["stats"]);
    assert!(
        text.contains("audit: 2 would-be drops passed"),
        "stats text shows audit hits apart: {text}"
    );
}

#[test]
fn explain_rejects_bad_input_with_exit_2() {
    // Checked before the instance is opened: no root or pins needed.
    let cases: [(&[&str], &str); 8] = [
        (
            &[
                "--src",
                "10.0.0.1",
                "--dst",
                "10.0.0.300:80",
                "--proto",
                "tcp",
            ],
            "not an address",
        ),
        (
            &[
                "--src",
                "10.0.0.1",
                "--dst",
                "10.0.0.2:70000",
                "--proto",
                "tcp",
            ],
            "not an address",
        ),
        (
            &["--src", "10.0.0.1", "--dst", "10.0.0.2:0", "--proto", "tcp"],
            "port 0",
        ),
        (
            &["--src", "10.0.0.1", "--dst", "fd00::2", "--proto", "udp"],
            "different address families",
        ),
        (
            &[
                "--src",
                "10.0.0.1",
                "--dst",
                "10.0.0.2:80",
                "--proto",
                "tcpp",
            ],
            "unknown protocol",
        ),
        (
            &[
                "--src",
                "10.0.0.1",
                "--dst",
                "10.0.0.2:80",
                "--proto",
                "icmp",
            ],
            "icmp has no ports",
        ),
        (
            &["--src", "10.0.0.1", "--dst", "10.0.0.2", "--proto", "tcp"],
            "needs a destination port",
        ),
        (
            &["--src", "fd00::1", "--dst", "fd00::2", "--proto", "icmp"],
            "use --proto icmpv6",
        ),
    ];
    for (args, message) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_segfw"))
            .args(["--pin-dir", "/nonexistent/segfw-explain-test", "explain"])
            .args(args)
            .output()
            .expect("run segfw explain");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "explain {args:?} should exit 2, stderr: {stderr}"
        );
        assert!(
            stderr.contains(message),
            "explain {args:?} should say {message:?}, said: {stderr}"
        );
    }
}
