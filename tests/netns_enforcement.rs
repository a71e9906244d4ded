//! Real traffic through a veth pair with segfw attached on the server side:
//! the allow/deny matrix (TCP, UDP, ICMP; IPv4 and IPv6), replies, policy
//! apply without reloading programs, and revocation of an open session.
//!
//! Every check runs after `segfw attach` has exited: enforcement does not
//! depend on a running segfw process.
mod common;

use std::time::Duration;

use common::*;

const DENY_BY_DEFAULT: &str = include_str!("fixtures/policies/lab/deny_all.toml");

fn allow(name: &str, proto: &str, ports: &str) -> String {
    format!(
        "\n[[rules]]\nname = \"{name}\"\nfrom = \"client\"\nto = \"server\"\nproto = \"{proto}\"\n{ports}\naction = \"allow\"\n"
    )
}

/// client -> server: tcp/8080, udp/5353, ping (v4 and v6); nothing else.
fn matrix_policy(lab: &Lab) -> String {
    let rules = [
        allow("client-tcp", "tcp", "ports = [8080]"),
        allow("client-udp", "udp", "ports = [5353]"),
        allow("client-ping", "icmp", "icmp_types = [\"echo-request\"]"),
        allow("client-ping6", "icmpv6", "icmp_types = [\"echo-request\"]"),
    ];
    lab.policy(&format!("{DENY_BY_DEFAULT}{}", rules.concat()))
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, real traffic"]
fn allow_deny_matrix_ipv4_and_ipv6() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("matrix", 1);
    let policy = lab.write_policy("matrix.toml", &matrix_policy(&lab));
    lab.attach(&policy, &[]);
    let (a, b) = (lab.ns_a.clone(), lab.ns_b.clone());

    for v6 in [false, true] {
        let (server, client) = (lab.a(v6), lab.b(v6));
        let family = if v6 { "IPv6" } else { "IPv4" };
        lab.listen_tcp(&a, &server, PORT_OPEN);
        lab.listen_tcp(&a, &server, PORT_CLOSED);
        lab.listen_udp_echo(&a, &server, UDP_OPEN);
        lab.listen_udp_echo(&a, &server, UDP_CLOSED);

        // Allowed flows complete both ways: the replies pass as established.
        assert!(
            lab.tcp_connects(&b, &server, PORT_OPEN),
            "{family}: tcp/8080 is allowed but did not connect"
        );
        assert!(
            lab.udp_echoes(&b, &server, UDP_OPEN, 3),
            "{family}: udp/5353 is allowed but got no echo"
        );
        assert!(
            lab.ping(&b, &server),
            "{family}: ping client->server is allowed but failed"
        );

        // Listeners exist on the denied ports: only segfw stops these.
        assert!(
            !lab.tcp_connects(&b, &server, PORT_CLOSED),
            "{family}: tcp/8081 is denied but connected"
        );
        assert!(
            !lab.udp_echoes(&b, &server, UDP_CLOSED, 1),
            "{family}: udp/5354 is denied but echoed"
        );
        // New flows the other way are not allowed by any rule (egress hook).
        assert!(
            !lab.ping(&a, &client),
            "{family}: ping server->client is denied but passed"
        );
    }
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, real traffic"]
fn apply_flips_a_verdict_without_reloading_programs() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("apply", 2);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let only_8080 = lab.write_policy(
        "v1.toml",
        &lab.policy(&format!(
            "{DENY_BY_DEFAULT}{}",
            allow("web", "tcp", "ports = [8080]")
        )),
    );
    let both = lab.write_policy(
        "v2.toml",
        &lab.policy(&format!(
            "{DENY_BY_DEFAULT}{}",
            allow("web", "tcp", "ports = [8080, 8081]")
        )),
    );
    lab.attach(&only_8080, &[]);
    lab.listen_tcp(&a, &server, PORT_CLOSED);
    assert!(
        !lab.tcp_connects(&b, &server, PORT_CLOSED),
        "v1 denies tcp/8081 but it connected"
    );
    let before = lab.status();

    lab.apply(&both);
    assert!(
        lab.tcp_connects(&b, &server, PORT_CLOSED),
        "v2 allows tcp/8081 but it did not connect"
    );
    let after = lab.status();

    assert_eq!(
        program_ids(&before),
        program_ids(&after),
        "apply must not reload the programs"
    );
    assert_eq!(
        link_ids(&before),
        link_ids(&after),
        "apply must not touch the attachments"
    );
    assert_eq!(
        before["policy"]["generation"], 1,
        "first apply is generation 1"
    );
    assert_eq!(
        after["policy"]["generation"], 2,
        "second apply is generation 2"
    );

    // The flow just allowed is tracked under the rule that allowed it.
    let flows: serde_json::Value =
        serde_json::from_str(&lab.segfw_ok(&["conntrack", "list", "--json"]))
            .expect("conntrack JSON");
    let tracked = flows
        .as_array()
        .expect("conntrack list --json is an array")
        .iter()
        .any(|f| f["dport"] == PORT_CLOSED && f["rule"] == "web" && f["generation"] == 2);
    assert!(
        tracked,
        "expected a tracked tcp/8081 flow of rule web, generation 2, got {flows}"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&lab.segfw_ok(&["stats", "--json"])).expect("stats JSON");
    let web_packets = stats["rules"]
        .as_array()
        .expect("stats rules")
        .iter()
        .find(|r| r["name"] == "web")
        .and_then(|r| r["packets"].as_u64())
        .unwrap_or(0);
    assert!(
        web_packets > 0,
        "rule web decided a flow but has no packets: {stats}"
    );

    lab.segfw_ok(&["conntrack", "flush"]);
    let flows = lab.segfw_ok(&["conntrack", "list", "--json"]);
    assert_eq!(flows.trim(), "[]", "conntrack flush left entries");
}

#[test]
#[ignore = "needs root: network namespaces, segfw attached, real traffic"]
fn revocation_cuts_an_established_session() {
    let _serial = serial();
    require_root();
    let mut lab = Lab::new("revoke", 3);
    let (a, b, server) = (lab.ns_a.clone(), lab.ns_b.clone(), lab.a(false));
    let allowed = lab.write_policy(
        "allowed.toml",
        &lab.policy(&format!(
            "{DENY_BY_DEFAULT}{}",
            allow("session", "tcp", "ports = [8080]")
        )),
    );
    // Same allow, plus an unrelated rule: the session must survive it.
    let unrelated = lab.write_policy(
        "unrelated.toml",
        &lab.policy(&format!(
            "{DENY_BY_DEFAULT}{}{}",
            allow("session", "tcp", "ports = [8080]"),
            allow("other", "udp", "ports = [53]")
        )),
    );
    let revoked = lab.write_policy("revoked.toml", &lab.policy(DENY_BY_DEFAULT));
    lab.attach(&allowed, &[]);

    let mut session = lab.open_session(&a, &b, &server, PORT_OPEN);
    session.send("one");
    assert!(
        session.server_got("one", Duration::from_secs(3)),
        "allowed session did not deliver data"
    );

    lab.apply(&unrelated);
    session.send("two");
    assert!(
        session.server_got("two", Duration::from_secs(3)),
        "a policy change that still allows the session must not cut it"
    );

    lab.apply(&revoked);
    session.send("three");
    assert!(
        !session.server_got("three", Duration::from_millis(1500)),
        "the allow was removed but the open session still delivered data"
    );
}
