//! The compiled image, entry by entry: CONFIG, SEGMENT classes, RULE
//! entries after deny-overrides-allow, FAILSAFE, meta names, determinism.
use std::path::Path;

use segfw::policy::decode::{decode_entry, meta_text, Entry};
use segfw::policy::image::{failsafe_key, PROTO_ANY, SEG_ANY};
use segfw::policy::model::{Action, PortRange};
use segfw::policy::{check_file, check_str, CheckedPolicy};
use segfw::skel::types::segfw_key_kind;
use segfw::skel::types::segfw_limits;
use segfw::skel::types::segfw_ra_mode;

fn check(src: &str) -> CheckedPolicy {
    check_str(src, Path::new("t.toml")).unwrap_or_else(|e| panic!("policy should pass: {e}"))
}

fn entries(checked: &CheckedPolicy) -> Vec<Entry> {
    checked
        .image
        .trie
        .iter()
        .map(|(k, v)| decode_entry(k, v))
        .collect()
}

/// (src, dst, proto, ports, rule id, action) of every RULE entry, sorted
/// (the trie itself is sorted by raw key bytes, prefix length first).
fn rule_entries(checked: &CheckedPolicy) -> Vec<(u32, u32, u16, PortRange, u32, Action)> {
    let mut rules: Vec<_> = entries(checked)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Rule(r) => Some((r.src, r.dst, r.proto, r.ports, r.rule_id, r.action)),
            _ => None,
        })
        .collect();
    rules.sort_unstable_by_key(|&(src, dst, proto, ports, id, _)| (src, dst, proto, ports, id));
    rules
}

fn range(lo: u16, hi: u16) -> PortRange {
    PortRange { lo, hi }
}

const TWO_SEGMENTS: &str =
    "version = 1\n[segments]\nweb = [\"10.0.1.0/24\"]\ndb = [\"10.0.2.0/24\"]\n";

#[test]
fn config_entry_comes_first_with_defaults_and_combos() {
    let src = format!(
        "{TWO_SEGMENTS}[defaults]\naction = \"allow\"\nmode = \"audit\"\n\
         [[rules]]\nfrom = \"web\"\nto = \"db\"\nproto = \"tcp\"\nports = [5432]\naction = \"allow\"\n\
         [[rules]]\nfrom = \"*\"\nto = \"db\"\naction = \"deny\"\n"
    );
    let checked = check(&src);
    let Entry::Config {
        generation,
        default_action,
        audit,
        combos,
        ra_mode,
    } = entries(&checked)[0]
    else {
        panic!("CONFIG must be the first entry");
    };
    assert_eq!(
        (generation, default_action, audit),
        (0, Action::Allow, true)
    );
    assert_eq!(
        ra_mode,
        segfw_ra_mode::SEGFW_RA_LINK_LOCAL,
        "router_advertisements absent: the default"
    );
    // Combo bits: (src ANY)<<2 | (dst ANY)<<1 | (proto ANY).
    assert_eq!(
        combos,
        (1 << 0b000) | (1 << 0b101),
        "web->db tcp, and *->db any"
    );
    let stamped = checked.image.clone().with_generation(7);
    assert_eq!(stamped.config().id, 7);
}

#[test]
fn deny_overrides_allow_inside_a_port_range() {
    let src = format!(
        "{TWO_SEGMENTS}\
         [[rules]]\nfrom = \"web\"\nto = \"db\"\nproto = \"tcp\"\nports = [\"1-1000\"]\naction = \"allow\"\n\
         [[rules]]\nfrom = \"web\"\nto = \"db\"\nproto = \"tcp\"\nports = [80]\naction = \"deny\"\n\
         [[rules]]\nfrom = \"web\"\nto = \"db\"\nproto = \"tcp\"\nports = [\"1-2000\"]\naction = \"allow\"\n"
    );
    let checked = check(&src);
    // Classes: web 10.0.1.0/24 = 1, db 10.0.2.0/24 = 2.
    let mut covered: Vec<(PortRange, u32)> = rule_entries(&checked)
        .into_iter()
        .map(|(src, dst, proto, ports, id, _)| {
            assert_eq!((src, dst, proto), (1, 2, 6));
            (ports, id)
        })
        .collect();
    covered.sort_unstable_by_key(|(r, _)| r.lo);
    // Coalesce the prefixes back into ranges per winner.
    let mut ranges: Vec<(PortRange, u32)> = Vec::new();
    for (r, id) in covered {
        match ranges.last_mut() {
            Some((last, last_id)) if *last_id == id && last.hi + 1 == r.lo => last.hi = r.hi,
            _ => ranges.push((r, id)),
        }
    }
    assert_eq!(
        ranges,
        [
            (range(1, 79), 1),
            (range(80, 80), 2),
            (range(81, 1000), 1),
            (range(1001, 2000), 3)
        ]
    );
}

#[test]
fn icmp_types_and_protocol_numbers_key_rules() {
    let src = format!(
        "{TWO_SEGMENTS}\
         [[rules]]\nfrom = \"web\"\nto = \"*\"\nproto = \"icmpv6\"\nicmp_types = [\"echo-request\", 1]\naction = \"allow\"\n\
         [[rules]]\nfrom = \"*\"\nto = \"*\"\nproto = 47\naction = \"deny\"\n"
    );
    let got = rule_entries(&check(&src));
    assert_eq!(
        got,
        [
            (1, SEG_ANY, 58, range(1, 1), 1, Action::Allow),
            (1, SEG_ANY, 58, range(128, 128), 1, Action::Allow),
            (SEG_ANY, SEG_ANY, 47, PortRange::ALL, 2, Action::Deny),
        ]
    );
    assert!(!got.iter().any(|e| e.2 == PROTO_ANY));
}

#[test]
fn nested_and_inline_prefixes_get_classes_owned_by_their_segment() {
    // 10.0.1.128/25 (inline) lies inside web: web's addresses there are
    // still web, so "from = web" must cover both classes.
    let src = format!(
        "{TWO_SEGMENTS}\
         [[rules]]\nfrom = \"web\"\nto = \"db\"\nproto = \"tcp\"\nports = [22]\naction = \"allow\"\n\
         [[rules]]\nfrom = \"10.0.1.128/25\"\nto = \"db\"\nproto = \"tcp\"\nports = [22]\naction = \"deny\"\n"
    );
    let checked = check(&src);
    let mut segments: Vec<(String, u32)> = entries(&checked)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Segment { prefix, class } => Some((prefix.to_string(), class)),
            _ => None,
        })
        .collect();
    segments.sort_unstable_by_key(|&(_, class)| class);
    assert_eq!(
        segments,
        [
            ("10.0.1.0/24".to_string(), 1),
            ("10.0.1.128/25".to_string(), 2),
            ("10.0.2.0/24".to_string(), 3)
        ]
    );
    let rules: Vec<(u32, u32)> = rule_entries(&checked).iter().map(|e| (e.0, e.4)).collect();
    assert_eq!(
        rules,
        [(1, 1), (2, 2)],
        "class 2 (the /25) is web too, and the deny wins there"
    );
    assert_eq!(checked.image.summary.prefixes, 3);
    assert_eq!(checked.image.summary.segments, 2);
}

#[test]
fn prefixes_no_rule_can_tell_apart_share_a_class() {
    // web's IPv4 and IPv6 prefixes, and db's two IPv4 prefixes outside the
    // inline /25, are one class each: one rule entry per rule. db's
    // 10.0.2.0/25 is named by a rule, so it keeps a class of its own.
    let src = "version = 1\n[segments]\n\
               web = [\"10.0.1.0/24\", \"fd00:1::/64\"]\n\
               db = [\"10.0.2.0/24\", \"10.0.3.0/24\", \"fd00:2::/64\"]\n\
               [[rules]]\nfrom = \"web\"\nto = \"db\"\nproto = \"tcp\"\nports = [5432]\naction = \"allow\"\n\
               [[rules]]\nfrom = \"web\"\nto = \"10.0.2.0/25\"\nproto = \"tcp\"\nports = [5432]\naction = \"deny\"\n";
    let checked = check(src);
    let mut classes: Vec<(String, u32)> = entries(&checked)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Segment { prefix, class } => Some((prefix.to_string(), class)),
            _ => None,
        })
        .collect();
    classes.sort_unstable();
    let class = |cidr: &str| classes.iter().find(|(p, _)| p == cidr).expect(cidr).1;
    assert_eq!(class("10.0.1.0/24"), class("fd00:1::/64"));
    assert_eq!(class("10.0.2.0/24"), class("10.0.3.0/24"));
    assert_eq!(class("10.0.2.0/24"), class("fd00:2::/64"));
    assert_ne!(class("10.0.2.0/25"), class("10.0.2.0/24"));
    let (web, db, inner) = (
        class("10.0.1.0/24"),
        class("10.0.2.0/24"),
        class("10.0.2.0/25"),
    );
    let rules: Vec<(u32, u32, u32)> = rule_entries(&checked)
        .iter()
        .map(|e| (e.0, e.1, e.4))
        .collect();
    assert_eq!(
        rules,
        [(web, db, 1), (web, inner, 2)],
        "one entry per (class, class): the /25 is db too, and the deny wins there"
    );
    assert_eq!(checked.image.summary.prefixes, 6);
    let segment_names: Vec<(u32, String)> = checked
        .image
        .meta
        .iter()
        .filter(|(k, _)| k.kind == segfw_key_kind::SEGFW_KIND_SEGMENT)
        .map(|(k, v)| (k.id, meta_text(v)))
        .collect();
    assert_eq!(
        segment_names,
        [
            (web, "web".to_string()),
            (db, "db".to_string()),
            (inner, "10.0.2.0/25".to_string())
        ],
        "one name per class"
    );
}

#[test]
fn failsafe_ports_become_failsafe_entries() {
    let src = "version = 1\n[defaults]\nfailsafe = [\"tcp/22\", \"tcp/2222\", \"tcp/22\"]\n";
    let checked = check(src);
    let failsafe: Vec<u16> = entries(&checked)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Failsafe { port } => Some(port),
            _ => None,
        })
        .collect();
    assert_eq!(failsafe, [22, 2222]);
    let (_, value) = checked
        .image
        .trie
        .iter()
        .find(|(k, _)| segfw::skel::bytes_of(k) == segfw::skel::bytes_of(&failsafe_key(22)))
        .expect("failsafe entry for tcp/22");
    assert_eq!(
        (value.id, value.action),
        (segfw_limits::SEGFW_RULE_FAILSAFE.0, Action::Allow.raw())
    );
    // Default failsafe is tcp/22; [] disables it.
    assert_eq!(check("version = 1\n").model.defaults.failsafe_tcp, [22]);
    assert!(check("version = 1\n[defaults]\nfailsafe = []\n")
        .model
        .defaults
        .failsafe_tcp
        .is_empty());
}

/// The RA_SOURCE prefixes and the CONFIG entry's ra_mode of a policy.
fn router_ads(src: &str) -> (Vec<String>, segfw::skel::types::segfw_ra_mode) {
    let checked = check(src);
    let mut sources = Vec::new();
    let mut mode = None;
    for entry in entries(&checked) {
        match entry {
            Entry::RaSource { prefix } => sources.push(prefix.to_string()),
            Entry::Config { ra_mode, .. } => mode = Some(ra_mode),
            _ => {}
        }
    }
    (sources, mode.expect("a CONFIG entry"))
}

#[test]
fn router_advertisement_sources_become_ra_source_entries() {
    use segfw::skel::types::segfw_ra_mode as M;
    assert_eq!(
        router_ads("version = 1\n"),
        (vec!["fe80::/10".to_string()], M::SEGFW_RA_LINK_LOCAL),
        "default: any link-local source"
    );
    assert_eq!(
        router_ads("version = 1\n[defaults]\nrouter_advertisements = []\n"),
        (vec![], M::SEGFW_RA_NONE),
        "[] refuses all"
    );
    // A segment means its IPv6 CIDRs; addresses are host prefixes; duplicates go.
    let src = "version = 1\n[defaults]\n\
               router_advertisements = [\"fe80::1\", \"routers\", \"fd00:9::/64\"]\n\
               [segments]\nrouters = [\"fd00:9::/64\", \"10.9.0.0/24\", \"fd00:a::1\"]\n";
    let (sources, mode) = router_ads(src);
    assert_eq!(mode, M::SEGFW_RA_LISTED);
    let mut sorted = sources.clone();
    sorted.sort();
    assert_eq!(sorted, ["fd00:9::/64", "fd00:a::1/128", "fe80::1/128"]);
}

#[test]
fn meta_names_classes_and_rules_only() {
    let src = format!(
        "{TWO_SEGMENTS}[[rules]]\nname = \"web-db\"\nfrom = \"web\"\nto = \"192.0.2.0/24\"\naction = \"allow\"\n\
         [[rules]]\nfrom = \"db\"\nto = \"web\"\naction = \"deny\"\n"
    );
    let checked = check(&src);
    let names: Vec<(u32, u32, String)> = checked
        .image
        .meta
        .iter()
        .map(|(k, v)| (k.kind.0, k.id, meta_text(v)))
        .collect();
    let (segment, rule) = (
        segfw_key_kind::SEGFW_KIND_SEGMENT.0,
        segfw_key_kind::SEGFW_KIND_RULE.0,
    );
    // The file's sha256 and path are not names: the apply writes them once,
    // in the set's record (maps/set_records).
    assert_eq!(
        names,
        [
            (segment, 1, "web".to_string()),
            // Classes are numbered in address order.
            (segment, 2, "db".to_string()),
            (segment, 3, "192.0.2.0/24".to_string()),
            (rule, 1, "web-db".to_string()),
            (rule, 2, "rule-2".to_string()),
        ]
    );
}

#[test]
fn conntrack_and_event_settings_reach_the_runtime_image() {
    let src = "version = 1\n[defaults]\nevents_per_second = 0\n\
               [conntrack]\nmax_entries = 1048576\ntcp_timeout_s = 600\nother_timeout_s = 5\n";
    let runtime = check(src).image.runtime;
    assert_eq!(runtime.conntrack_max_entries, 1_048_576);
    assert_eq!(
        (
            runtime.tcp_timeout_s,
            runtime.udp_timeout_s,
            runtime.icmp_timeout_s
        ),
        (600, 60, 30)
    );
    assert_eq!((runtime.other_timeout_s, runtime.events_per_sec), (5, 0));
    let defaults = check("version = 1\n").image.runtime;
    assert_eq!(
        (defaults.conntrack_max_entries, defaults.events_per_sec),
        (262_144, 1000)
    );
}

#[test]
fn the_same_file_compiles_to_the_same_bytes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for name in [
        "three-tier.toml",
        "dual-stack.toml",
        "lab.toml",
        "host-ssh.toml",
    ] {
        let path = dir.join(name);
        let (a, b) = (check_file(&path).unwrap(), check_file(&path).unwrap());
        assert_eq!(
            a.image.to_bytes(),
            b.image.to_bytes(),
            "{name} compiled twice differs"
        );
        assert_eq!(a.sha256.len(), 64);
        assert!(a
            .sha256
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}

#[test]
fn sha256_is_of_the_file_bytes() {
    // printf 'version = 1\n' | sha256sum
    let expected = "dbab12665d98aef021ba64953c61b0ed8a908cfb56a1c01e2fcb4b052b71a2a1";
    assert_eq!(check("version = 1\n").sha256, expected);
}
