//! Every policy under policies/ passes `policy check`, and the examples mean
//! what their comments say.
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use segfw::policy::eval::{Decision, Flow, ImageIndex};
use segfw::policy::model::Action;
use segfw::policy::{check_file, CheckedPolicy};

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn load(name: &str) -> CheckedPolicy {
    let path = policies_dir().join(name);
    check_file(&path).unwrap_or_else(|e| panic!("{} should pass check: {e:#}", path.display()))
}

#[test]
fn every_example_policy_passes_check() {
    let mut checked = 0;
    for entry in std::fs::read_dir(policies_dir()).expect("policies/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = check_file(&path) {
                panic!("{} should pass check, got: {e:#}", path.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "expected at least 4 example policies, found {checked}"
    );
}

/// (src, dst, proto, port, expected action, expected rule name).
type Expectation = (&'static str, &'static str, u8, u16, Action, &'static str);

/// Decides a flow by rule name ("default" when no rule matched).
struct Decider {
    checked: CheckedPolicy,
    index: ImageIndex,
}

impl Decider {
    fn new(name: &str) -> Self {
        let checked = load(name);
        let index = ImageIndex::new(&checked.image);
        Self { checked, index }
    }

    fn decide(&self, src: &str, dst: &str, proto: u8, port: u16) -> (Action, String) {
        let flow = Flow {
            src: src.parse::<IpAddr>().unwrap(),
            dst: dst.parse::<IpAddr>().unwrap(),
            proto,
            port,
        };
        let Decision { action, rule_id } = self.index.evaluate(&flow);
        let naive = segfw::policy::eval::evaluate_naive(&self.checked.model, &flow);
        assert_eq!(
            Decision { action, rule_id },
            naive,
            "image and rules disagree on {flow:?}"
        );
        let name = match rule_id {
            0 => "default".to_string(),
            id => self.checked.model.rules[id as usize - 1].name.clone(),
        };
        (action, name)
    }

    fn expect_all(&self, cases: &[Expectation]) {
        for &(src, dst, proto, port, action, rule) in cases {
            self.expect(src, dst, proto, port, action, rule);
        }
    }

    fn expect(&self, src: &str, dst: &str, proto: u8, port: u16, action: Action, rule: &str) {
        let got = self.decide(src, dst, proto, port);
        assert_eq!(
            got,
            (action, rule.to_string()),
            "{src} -> {dst} proto {proto} port {port}: expected {action} by {rule}"
        );
    }
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

#[test]
#[rustfmt::skip] // one flow per line
fn lab_policy_allows_web_to_db_and_blocks_the_outsider() {
    let lab = Decider::new("lab.toml");
    let names: Vec<&str> = lab
        .checked
        .model
        .rules
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "web-to-db-sql",
            "web-to-db-http",
            "web-ping-db",
            "web-ping6-db",
            "outsider-blocked"
        ]
    );
    assert!(lab.checked.model.defaults.failsafe_tcp.is_empty());
    lab.expect_all(&[
        ("10.99.0.2", "10.99.0.3", TCP, 5432, Action::Allow, "web-to-db-sql"),
        ("fd99::2", "fd99::3", TCP, 8080, Action::Allow, "web-to-db-http"),
        ("10.99.0.2", "10.99.0.3", ICMP, 8, Action::Allow, "web-ping-db"),
        ("fd99::2", "fd99::3", ICMPV6, 128, Action::Allow, "web-ping6-db"),
        ("10.99.0.2", "10.99.0.3", TCP, 22, Action::Deny, "default"),
        ("10.99.0.3", "10.99.0.2", TCP, 5432, Action::Deny, "default"),
        ("10.99.0.4", "10.99.0.3", TCP, 5432, Action::Deny, "outsider-blocked"),
        ("fd99::4", "fd99::3", ICMPV6, 128, Action::Deny, "outsider-blocked"),
        ("10.99.0.4", "10.99.0.2", TCP, 80, Action::Deny, "default"),
    ]);
    let sql = &lab.checked.model.rules[0];
    assert!(sql.log && sql.flags() == 1, "web-to-db-sql logs");
}

#[test]
#[rustfmt::skip] // one flow per line
fn three_tier_policy_means_what_its_comments_say() {
    let p = Decider::new("three-tier.toml");
    p.expect_all(&[
        ("198.51.100.7", "10.0.1.10", TCP, 443, Action::Allow, "world-to-web"),
        ("198.51.100.7", "10.0.2.10", TCP, 8080, Action::Deny, "default"),
        ("10.0.1.10", "10.0.2.10", TCP, 8080, Action::Allow, "web-to-app"),
        ("10.0.2.10", "10.0.3.5", TCP, 5432, Action::Allow, "app-to-db"),
        ("10.0.1.10", "10.0.3.5", TCP, 5432, Action::Deny, "default"),
        // 10.0.9.10 is monitoring, 10.0.9.12 is in bastion's /24: longest prefix wins.
        ("10.0.9.10", "10.0.3.5", TCP, 9100, Action::Allow, "monitoring-scrape"),
        ("10.0.9.12", "10.0.3.5", TCP, 9100, Action::Deny, "default"),
        ("10.0.9.12", "10.0.3.5", TCP, 22, Action::Allow, "bastion-ssh"),
        ("10.0.9.10", "10.0.3.5", TCP, 22, Action::Deny, "default"),
        ("10.0.3.5", "8.8.8.8", UDP, 53, Action::Deny, "db-no-egress"),
        ("10.0.3.5", "10.0.0.53", UDP, 53, Action::Allow, "dns"),
        ("10.0.3.5", "fd00::53", UDP, 53, Action::Allow, "dns"),
        ("10.0.2.10", "203.0.113.9", TCP, 443, Action::Allow, "app-to-payments"),
        ("10.0.2.10", "203.0.114.9", TCP, 443, Action::Deny, "default"),
        ("10.0.9.11", "1.1.1.1", ICMP, 8, Action::Allow, "ping-from-monitoring"),
    ]);
}

#[test]
#[rustfmt::skip] // one flow per line
fn host_ssh_policy_denies_scanners_even_on_https() {
    let p = Decider::new("host-ssh.toml");
    p.expect_all(&[
        ("192.168.10.5", "192.168.1.20", TCP, 22, Action::Allow, "admin-ssh"),
        ("192.168.11.5", "192.168.1.20", TCP, 22, Action::Deny, "default"),
        ("8.8.8.8", "192.168.1.20", TCP, 443, Action::Allow, "https"),
        ("198.51.100.9", "192.168.1.20", TCP, 443, Action::Deny, "block-scanners"),
        ("2001:db8:10::5", "2001:db8:1::20", TCP, 22, Action::Allow, "admin-ssh"),
        ("2001:db8:99::5", "2001:db8:1::20", ICMPV6, 128, Action::Allow, "ping6"),
        ("192.168.1.20", "1.1.1.1", UDP, 53, Action::Allow, "host-egress"),
    ]);
    assert_eq!(p.checked.model.defaults.failsafe_tcp, [22]);
}

#[test]
#[rustfmt::skip] // one flow per line
fn dual_stack_policy_treats_both_families_alike() {
    let p = Decider::new("dual-stack.toml");
    p.expect_all(&[
        ("10.244.1.2", "10.96.0.10", UDP, 53, Action::Allow, "pods-dns"),
        ("2001:db8:244::2", "2001:db8:96::a", UDP, 53, Action::Allow, "pods-dns"),
        ("2001:db8:244::2", "2001:db8:a::1", TCP, 10250, Action::Deny, "no-kubelet-from-pods"),
        ("2001:db8:a::1", "2001:db8:244::2", TCP, 10250, Action::Allow, "nodes-to-pods"),
        ("2001:db8:ffff::1", "2001:db8:244::2", ICMPV6, 2, Action::Allow, "icmpv6-errors"),
        ("2001:db8:ffff::1", "2001:db8:244::2", ICMPV6, 128, Action::Deny, "default"),
        ("10.10.0.5", "10.244.0.9", ICMP, 13, Action::Allow, "nodes-to-pods"),
        ("10.244.0.8", "10.244.0.9", ICMP, 13, Action::Allow, "icmp-ping"),
        // IPv4-mapped IPv6 addresses are IPv4 addresses (RFC 4291).
        ("::ffff:10.244.1.2", "::ffff:10.96.0.10", UDP, 53, Action::Allow, "pods-dns"),
    ]);
}

/// The examples show both non-default router_advertisements settings.
#[test]
fn examples_restrict_router_advertisements() {
    use segfw::policy::model::{Prefix, RouterAdvertisements};
    let lab = load("lab.toml").model.defaults.router_advertisements;
    assert_eq!(lab, RouterAdvertisements::Listed(vec![]), "lab: no router");
    let cluster = load("dual-stack.toml").model.defaults.router_advertisements;
    let gateway = Prefix::new("fe80::1".parse().unwrap(), 128).unwrap();
    assert_eq!(cluster, RouterAdvertisements::Listed(vec![gateway]));
}
