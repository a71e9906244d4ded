//! Issue 12's scanner findings, with real packets: scapy (tests/scripts/scanners.py)
//! sends crafted frames from the client namespace, and the server
//! namespace's own kernel counters (/proc/net/snmp, /proc/net/snmp6) say
//! what reached the protected stack behind segfw's ingress hook.
mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{ns_cmd, require_root, serial, Lab, IFACE, PORT_OPEN, UDP_CLOSED, UDP_OPEN};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/scanners.py");
/// Debian's python3, which has python3-scapy (the pyenv one on PATH has not).
const PYTHON: &str = "/usr/bin/python3";

/// Client to server: ping (both families), tcp/8080, udp/5353; the rest denied.
const RULES: &str = include_str!("fixtures/policies/lab/scanners.toml");

fn policy_text(lab: &Lab, router_ads: &str) -> String {
    lab.policy(&RULES.replacen(
        "failsafe = []\n",
        &format!("failsafe = []\n{router_ads}"),
        1,
    ))
}

/// The MAC address of `dev` in `ns`.
fn mac(ns: &str, dev: &str) -> String {
    let out = ns_cmd(ns, &["cat", &format!("/sys/class/net/{dev}/address")])
        .output()
        .expect("read a MAC address");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs one scenario of tests/scripts/scanners.py in the client namespace.
fn scapy(lab: &Lab, args: &[&str]) {
    let (client_mac, server_mac) = (mac(&lab.ns_b, "sfw1"), mac(&lab.ns_a, IFACE));
    let mut full = vec![PYTHON, SCRIPT, "sfw1", &client_mac, &server_mac];
    full.extend_from_slice(args);
    let out = ns_cmd(&lab.ns_b, &full).output().expect("run scapy");
    assert!(
        out.status.success(),
        "scanners.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A kernel counter of `ns`: "Ip:ReasmOKs" (/proc/net/snmp, table:field)
/// or "Ip6ReasmOKs" (/proc/net/snmp6); absent counters are 0.
fn counter(ns: &str, name: &str) -> u64 {
    let read = |file: &str| {
        let out = ns_cmd(ns, &["cat", file]).output().expect("read snmp");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    if let Some((table, field)) = name.split_once(':') {
        let text = read("/proc/net/snmp");
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{table}:")))
            .collect();
        let (names, values) = (lines[0], lines[1]);
        let index = names
            .split_whitespace()
            .position(|n| n == field)
            .unwrap_or_else(|| panic!("no counter {name} in /proc/net/snmp"));
        return values
            .split_whitespace()
            .nth(index)
            .unwrap()
            .parse()
            .unwrap();
    }
    read("/proc/net/snmp6")
        .lines()
        .find_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some(name)).then(|| parts.next().unwrap().parse().unwrap())
        })
        .unwrap_or(0)
}

/// How much each counter moved while `send` ran.
fn moved(ns: &str, names: &[&str], send: impl FnOnce()) -> Vec<u64> {
    let before: Vec<u64> = names.iter().map(|n| counter(ns, n)).collect();
    send();
    thread::sleep(Duration::from_millis(200));
    names
        .iter()
        .zip(before)
        .map(|(n, b)| counter(ns, n) - b)
        .collect()
}

/// Packets counted under a segfw reason ("drop_frag_orphan").
fn reason(lab: &Lab, name: &str) -> u64 {
    let out = lab.segfw_ok(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&out).expect("stats --json");
    stats["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .find(|r| r["reason"] == name)
        .and_then(|r| r["packets"].as_u64())
        .unwrap_or(0)
}

/// Panics unless scapy is there: `make test` installs it (scripts/install-deps.sh).
fn require_scapy() {
    let ok = std::process::Command::new(PYTHON)
        .args(["-c", "import scapy.all"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "needs {PYTHON} with python3-scapy: run scripts/install-deps.sh (make test does)"
    );
}

fn lab_with(name: &str, net: u8, router_ads: &str) -> Lab {
    let lab = Lab::new(name, net);
    let policy = lab.write_policy("p.toml", &policy_text(&lab, router_ads));
    lab.attach(&policy, &[]);
    lab
}

/// ICMP types riding an echo id 0, the Mobility Header, spoofed, late and
/// last-first fragments: what reaches the server is what the policy allows.
#[test]
#[ignore = "needs root and scapy: network namespaces, segfw attached, crafted scanner packets"]
fn scanner_packets_reach_the_stack_only_as_the_policy_says() {
    require_root();
    require_scapy();
    let _serial = serial();
    let lab = lab_with("scan", 61, "");
    let (a, b) = (&lab.ns_a, &lab.ns_b);
    let (a4, b4, a6, b6) = (lab.a(false), lab.b(false), lab.a(true), lab.b(true));
    // Warm the neighbour caches: scapy frames are addressed by MAC, but the
    // server's echo replies need the client's.
    assert!(lab.ping(b, &a4) && lab.ping(b, &a6), "ping is allowed");

    // An echo request with id 0, then timestamp, info, address mask, 42, 200.
    let got = moved(a, &["Icmp:InMsgs", "Icmp:InTimestamps"], || {
        scapy(&lab, &["icmp-types", "v4", &b4, &a4])
    });
    assert_eq!(got, [1, 0], "IPv4: only the echo request reaches the host");
    let v6 = [
        "Icmp6InEchos",
        "Icmp6InType139",
        "Icmp6InType141",
        "Icmp6InType200",
        "Icmp6InGroupMembQueries",
    ];
    let got = moved(a, &v6, || scapy(&lab, &["icmp-types", "v6", &b6, &a6]));
    assert_eq!(got, [1, 0, 0, 0, 0], "IPv6: only the echo request ({v6:?})");

    // A TCP SYN to an allowed port behind a Mobility Header is protocol 135.
    let port = PORT_OPEN.to_string();
    let got = moved(a, &["Ip6InUnknownProtos"], || {
        scapy(&lab, &["mobility-header", &b6, &a6, &port])
    });
    assert_eq!(got, [0], "a Mobility Header packet must not reach the host");

    // A spoofed first fragment to a denied port does not take the real one's place.
    let (open, closed) = (UDP_OPEN.to_string(), UDP_CLOSED.to_string());
    for (fam, ip_a, ip_b, reasm) in [
        ("v4", &a4, &b4, "Ip:ReasmOKs"),
        ("v6", &a6, &b6, "Ip6ReasmOKs"),
    ] {
        let got = moved(a, &[reasm], || {
            scapy(
                &lab,
                &["frag-spoof", fam, ip_b, ip_a, &open, &closed, "4101"],
            )
        });
        assert_eq!(got, [1], "{fam}: the real datagram must reassemble");
    }

    // Last-first: the fragments before the first are orphans, and the first
    // is counted apart. (tc cannot hold packets: this datagram is lost.)
    let (orphans, late) = (
        reason(&lab, "drop_frag_orphan"),
        reason(&lab, "pass_frag_late_first"),
    );
    let got = moved(a, &["Ip:ReasmOKs"], || {
        scapy(&lab, &["frag-last-first", "v4", &b4, &a4, &open, "4102"])
    });
    assert_eq!(got, [0], "a last-first datagram cannot reassemble");
    assert!(
        reason(&lab, "drop_frag_orphan") > orphans,
        "its later fragments are orphans"
    );
    assert_eq!(
        reason(&lab, "pass_frag_late_first"),
        late + 1,
        "its first is counted apart"
    );

    // Fragment memory expires: 30 s (ipfrag_time) after a first fragment,
    // fragments with its id are orphans, not heirs of its ports.
    for (fam, ip_a, ip_b) in [("v4", &a4, &b4), ("v6", &a6, &b6)] {
        scapy(
            &lab,
            &["frag-part", fam, ip_b, ip_a, &open, "4103", "first"],
        );
    }
    thread::sleep(Duration::from_secs(31));
    for (fam, ip_a, ip_b, reqds) in [
        ("v4", &a4, &b4, "Ip:ReasmReqds"),
        ("v6", &a6, &b6, "Ip6ReasmReqds"),
    ] {
        let got = moved(a, &[reqds], || {
            scapy(&lab, &["frag-part", fam, ip_b, ip_a, &open, "4103", "rest"])
        });
        assert_eq!(
            got,
            [0],
            "{fam}: fragments after the memory expired must not pass"
        );
    }
}

/// The server's IPv6 default route, if any.
fn default_route(ns: &str) -> String {
    let out = ns_cmd(ns, &["ip", "-6", "route", "show", "default"])
        .output()
        .expect("ip -6 route");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_for_route(ns: &str, via: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if default_route(ns).contains(via) {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

fn apply_router_ads(lab: &Lab, file: &str, router_ads: &str) -> std::path::PathBuf {
    let path = lab.write_policy(file, &policy_text(lab, router_ads));
    lab.apply(&path);
    path
}

/// `segfw explain`'s reason for a router advertisement from `src`.
fn explain_ra(lab: &Lab, src: &str) -> String {
    let out = lab.segfw_ok(&[
        "explain",
        "--src",
        src,
        "--dst",
        "ff02::1",
        "--proto",
        "icmpv6",
        "--icmp-type",
        "134",
        "--json",
    ]);
    let e: serde_json::Value = serde_json::from_str(&out).expect("explain --json");
    e["reason"].as_str().unwrap_or_default().to_string()
}

fn ra_mode(lab: &Lab) -> serde_json::Value {
    lab.status()["policy"]["router_advertisements"].clone()
}

/// A rogue router advertisement gave the host an address and a default
/// route under default deny. They pass only as `router_advertisements` says.
#[test]
#[ignore = "needs root and scapy: network namespaces, segfw attached, crafted scanner packets"]
fn router_advertisements_and_redirects_follow_the_policy() {
    require_root();
    require_scapy();
    let _serial = serial();
    let lab = lab_with("ra", 62, "");
    let (a, b) = (&lab.ns_a, &lab.ns_b);
    let (a6, b6) = (lab.a(true), lab.b(true));
    let ra_in = "Icmp6InRouterAdvertisements";
    let ra = |src: &str, hops: &str| scapy(&lab, &["router-advert", src, hops]);

    // Default: any link-local source with hop limit 255.
    assert_eq!(ra_mode(&lab)["mode"], "link-local");
    let text = lab.segfw_ok(&["status"]);
    assert!(
        text.contains("router advertisements and redirects: any link-local source (default)"),
        "status says which setting is live:\n{text}"
    );
    assert_eq!(
        moved(a, &[ra_in], || ra("fe80::b0", "64")),
        [0],
        "hop limit 64"
    );
    assert_eq!(moved(a, &[ra_in], || ra(&b6, "255")), [0], "global source");
    assert!(
        default_route(a).is_empty(),
        "no route from refused advertisements"
    );
    assert_eq!(
        moved(a, &[ra_in], || ra("fe80::b0", "255")),
        [1],
        "link-local, 255"
    );
    assert!(
        wait_for_route(a, "fe80::b0"),
        "the accepted RA gives a default route"
    );
    let redirect = |src: &str| scapy(&lab, &["redirect", src, &a6, "255"]);
    assert_eq!(
        moved(a, &["Icmp6InRedirects"], || redirect(&b6)),
        [0],
        "global redirect"
    );
    assert_eq!(
        moved(a, &["Icmp6InRedirects"], || redirect("fe80::b0")),
        [1],
        "link-local redirect"
    );

    assert_eq!(explain_ra(&lab, "fe80::b0"), "pass_nd", "explain agrees");

    // []: refused from every source; neighbour discovery still works.
    apply_router_ads(&lab, "none.toml", "router_advertisements = []");
    assert_eq!(ra_mode(&lab)["mode"], "none");
    assert_eq!(
        explain_ra(&lab, "fe80::b0"),
        "drop_router_msg",
        "explain agrees"
    );
    ns_cmd(a, &["ip", "-6", "route", "flush", "default"])
        .status()
        .unwrap();
    assert_eq!(
        moved(a, &[ra_in], || ra("fe80::b0", "255")),
        [0],
        "[] refuses all"
    );
    assert!(default_route(a).is_empty(), "no default route under []");
    for ns in [a, b] {
        ns_cmd(ns, &["ip", "-6", "neigh", "flush", "all"])
            .status()
            .unwrap();
    }
    assert!(
        lab.ping(b, &a6),
        "solicitations and neighbour advertisements still pass"
    );

    // A list: only those sources.
    apply_router_ads(
        &lab,
        "listed.toml",
        "router_advertisements = [\"fe80::b1\"]",
    );
    let live = ra_mode(&lab);
    assert_eq!(
        (live["mode"].clone(), live["sources"][0].clone()),
        ("listed".into(), "fe80::b1/128".into())
    );
    assert_eq!(
        moved(a, &[ra_in], || ra("fe80::b0", "255")),
        [0],
        "unlisted source"
    );
    assert_eq!(
        moved(a, &[ra_in], || ra("fe80::b1", "255")),
        [1],
        "listed source"
    );
    assert!(wait_for_route(a, "fe80::b1"), "the listed router's route");

    // diff names the change back to the default.
    let default = lab.write_policy("default.toml", &policy_text(&lab, ""));
    let diff = lab.segfw_ok(&["policy", "diff", &default.display().to_string()]);
    assert!(
        diff.contains(
            "router_advertisements: only from fe80::b1/128 -> any link-local source (default)"
        ),
        "policy diff shows the setting:\n{diff}"
    );
}
