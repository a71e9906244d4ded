//! Property tests of the compiler: for random policies and random flows, the
//! compiled image evaluated as the datapath does (LPM lookups) decides
//! exactly what the language's definition decides, action and rule id.
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use proptest::prelude::*;
use segfw::policy::compile::compile;
use segfw::policy::decode::{decode_entry, Entry};
use segfw::policy::eval::{evaluate_naive, Flow, ImageIndex};
use segfw::policy::model::Prefix;
use segfw::policy::{check_str, CheckedPolicy};
use segfw::skel::bytes_of;

const SEGMENTS: usize = 5;

#[derive(Debug, Clone)]
enum Item {
    Segment(usize),
    World,
    Cidr(Prefix),
}

#[derive(Debug, Clone)]
enum Endpoints {
    Any,
    Items(Vec<Item>),
}

#[derive(Debug, Clone)]
struct RuleSpec {
    from: Endpoints,
    to: Endpoints,
    /// None: proto any.
    proto: Option<u8>,
    ports: Option<Vec<(u16, u16)>>,
    icmp_types: Option<Vec<u8>>,
    deny: bool,
    log: bool,
}

#[derive(Debug, Clone)]
struct PolicySpec {
    /// Prefixes per segment s0..s4, unique across segments.
    segments: Vec<Vec<Prefix>>,
    rules: Vec<RuleSpec>,
    default_deny: bool,
}

/// Prefixes in small address spaces, so they nest and overlap often.
fn prefix() -> impl Strategy<Value = Prefix> {
    let v4_len = prop_oneof![
        Just(8u8),
        Just(16),
        Just(24),
        Just(25),
        Just(31),
        Just(32),
        0u8..=32
    ];
    let v6_len = prop_oneof![
        Just(16u8),
        Just(32),
        Just(64),
        Just(120),
        Just(127),
        Just(128),
        0u8..=128
    ];
    let v4 = (0u8..3, 0u8..3, any::<u8>(), v4_len)
        .prop_map(|(b, c, d, len)| (IpAddr::V4(Ipv4Addr::new(10, b, c, d)), len));
    let v6 = (0u16..3, 0u16..3, any::<u8>(), v6_len).prop_map(|(b, c, d, len)| {
        (
            IpAddr::V6(Ipv6Addr::new(0xfd00, b, c, 0, 0, 0, 0, u16::from(d))),
            len,
        )
    });
    let special = prop_oneof![
        Just(("0.0.0.0".parse().unwrap(), 0)),
        Just(("::".parse().unwrap(), 0)),
        Just(("::ffff:10.1.0.0".parse().unwrap(), 112)),
        Just(("::ffff:0.0.0.0".parse().unwrap(), 96)),
    ];
    prop_oneof![4 => v4, 3 => v6, 1 => special]
        .prop_map(|(addr, len)| Prefix::new(addr, len).expect("lengths fit their family"))
}

fn endpoints() -> impl Strategy<Value = Endpoints> {
    let item = prop_oneof![
        3 => (0..SEGMENTS).prop_map(Item::Segment),
        1 => Just(Item::World),
        2 => prefix().prop_map(Item::Cidr),
    ];
    prop_oneof![
        1 => Just(Endpoints::Any),
        4 => prop::collection::vec(item, 1..3).prop_map(Endpoints::Items),
    ]
}

fn port_range() -> impl Strategy<Value = (u16, u16)> {
    prop_oneof![
        4 => (1u16..120, 0u16..20).prop_map(|(lo, n)| (lo, lo + n)),
        1 => Just((1, 65535)),
        1 => Just((65535, 65535)),
        1 => (1u16..=65535).prop_map(|p| (p, p)),
    ]
}

fn rule() -> impl Strategy<Value = RuleSpec> {
    let proto = prop_oneof![
        2 => Just(None),
        3 => Just(Some(6u8)),
        1 => Just(Some(17u8)),
        1 => Just(Some(132u8)),
        2 => Just(Some(1u8)),
        2 => Just(Some(58u8)),
        1 => any::<u8>().prop_map(Some),
    ];
    let ports = prop::option::of(prop::collection::vec(port_range(), 1..4));
    let types = prop::option::of(prop::collection::vec(
        prop_oneof![0u8..12, 128u8..137, Just(255)],
        1..4,
    ));
    (
        endpoints(),
        endpoints(),
        proto,
        ports,
        types,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(from, to, proto, ports, types, deny, log)| {
            let has_ports = matches!(proto, Some(6 | 17 | 132));
            let is_icmp = matches!(proto, Some(1 | 58));
            RuleSpec {
                from,
                to,
                proto,
                ports: ports.filter(|_| has_ports),
                icmp_types: types.filter(|_| is_icmp),
                deny,
                log,
            }
        })
}

fn policy() -> impl Strategy<Value = PolicySpec> {
    let placements = prop::collection::vec((0..SEGMENTS, prefix()), 0..14);
    (
        placements,
        prop::collection::vec(rule(), 0..12),
        any::<bool>(),
    )
        .prop_map(|(placements, rules, default_deny)| {
            let mut segments = vec![Vec::new(); SEGMENTS];
            let mut seen = HashSet::new();
            for (segment, prefix) in placements {
                // The same prefix in two segments is an error: keep the first.
                if seen.insert(prefix) {
                    segments[segment].push(prefix);
                }
            }
            PolicySpec {
                segments,
                rules,
                default_deny,
            }
        })
}

fn render_endpoints(e: &Endpoints) -> String {
    let Endpoints::Items(items) = e else {
        return "\"*\"".into();
    };
    let texts: Vec<String> = items
        .iter()
        .map(|item| match item {
            Item::Segment(i) => format!("\"s{i}\""),
            Item::World => "\"world\"".into(),
            Item::Cidr(p) => format!("\"{p}\""),
        })
        .collect();
    match texts.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", texts.join(", ")),
    }
}

fn render_proto(proto: Option<u8>) -> String {
    match proto {
        None => "\"any\"".into(),
        Some(6) => "\"tcp\"".into(),
        Some(17) => "\"udp\"".into(),
        Some(1) => "\"icmp\"".into(),
        Some(58) => "\"icmpv6\"".into(),
        Some(n) => n.to_string(),
    }
}

fn render_rule(r: &RuleSpec) -> String {
    let mut out = format!(
        "[[rules]]\nfrom = {}\nto = {}\nproto = {}\naction = \"{}\"\nlog = {}\n",
        render_endpoints(&r.from),
        render_endpoints(&r.to),
        render_proto(r.proto),
        if r.deny { "deny" } else { "allow" },
        r.log
    );
    if let Some(ports) = &r.ports {
        let items: Vec<String> = ports
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("\"{lo}-{hi}\"")
                }
            })
            .collect();
        out += &format!("ports = [{}]\n", items.join(", "));
    }
    if let Some(types) = &r.icmp_types {
        let items: Vec<String> = types.iter().map(u8::to_string).collect();
        out += &format!("icmp_types = [{}]\n", items.join(", "));
    }
    out
}

/// The policy as TOML, segments and rules in the given orders.
fn render(spec: &PolicySpec, segment_order: &[usize], rule_order: &[usize]) -> String {
    let default = if spec.default_deny { "deny" } else { "allow" };
    let mut out = format!("version = 1\n[defaults]\naction = \"{default}\"\n[segments]\n");
    for &i in segment_order {
        let cidrs: Vec<String> = spec.segments[i]
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect();
        out += &format!("s{i} = [{}]\n", cidrs.join(", "));
    }
    for &i in rule_order {
        out += &render_rule(&spec.rules[i]);
    }
    out
}

fn check(src: &str) -> CheckedPolicy {
    check_str(src, Path::new("prop.toml"))
        .unwrap_or_else(|e| panic!("generated policy should be valid: {e}\n{src}"))
}

/// How a flow picks an address: near a prefix of the policy, or anywhere.
#[derive(Debug, Clone, Copy)]
struct AddrPick {
    index: usize,
    edge: u8,
    noise: u128,
    v4_mapped_as_v6: bool,
}

fn addr_pick() -> impl Strategy<Value = AddrPick> {
    (any::<usize>(), 0u8..7, any::<u128>(), any::<bool>()).prop_map(|(index, edge, noise, v6)| {
        AddrPick {
            index,
            edge,
            noise,
            v4_mapped_as_v6: v6,
        }
    })
}

fn resolve_addr(pick: AddrPick, prefixes: &[Prefix]) -> IpAddr {
    let bits = match prefixes.get(pick.index % prefixes.len().max(1)) {
        Some(p) if pick.edge < 6 => {
            let (first, last) = (p.bits(), p.last());
            match pick.edge {
                0 => first,
                1 => last,
                2 => first.wrapping_sub(1),
                3 => last.wrapping_add(1),
                4 => first + (last - first) / 2,
                _ => first | (pick.noise & (last - first)),
            }
        }
        // Anywhere in the small spaces the prefixes come from, or anywhere.
        _ => match pick.noise % 3 {
            0 => (0xffff_u128 << 32) | u128::from(0x0a00_0000 | (pick.noise as u32 & 0x0003_ffff)),
            1 => (0xfd00_u128 << 112) | (pick.noise & ((1 << 100) - 1)),
            _ => pick.noise,
        },
    };
    let v6 = Ipv6Addr::from(bits);
    match v6.to_ipv4_mapped() {
        Some(v4) if !pick.v4_mapped_as_v6 => IpAddr::V4(v4),
        _ => IpAddr::V6(v6),
    }
}

#[derive(Debug, Clone, Copy)]
struct FlowPick {
    src: AddrPick,
    dst: AddrPick,
    proto: u8,
    port_index: usize,
    port_delta: i8,
    port_noise: u16,
}

fn flow_pick() -> impl Strategy<Value = FlowPick> {
    let proto = prop_oneof![
        Just(6u8),
        Just(17),
        Just(132),
        Just(1),
        Just(58),
        Just(47),
        any::<u8>()
    ];
    (
        addr_pick(),
        addr_pick(),
        proto,
        any::<usize>(),
        -1i8..=1,
        any::<u16>(),
    )
        .prop_map(
            |(src, dst, proto, port_index, port_delta, port_noise)| FlowPick {
                src,
                dst,
                proto,
                port_index,
                port_delta,
                port_noise,
            },
        )
}

/// Every prefix the policy mentions, segment or inline.
fn all_prefixes(spec: &PolicySpec) -> Vec<Prefix> {
    let mut out: Vec<Prefix> = spec.segments.iter().flatten().copied().collect();
    for r in &spec.rules {
        for e in [&r.from, &r.to] {
            if let Endpoints::Items(items) = e {
                out.extend(items.iter().filter_map(|i| match i {
                    Item::Cidr(p) => Some(*p),
                    _ => None,
                }));
            }
        }
    }
    out
}

/// Port range ends and ICMP types of the rules: where decisions change.
fn interesting_ports(spec: &PolicySpec) -> Vec<u16> {
    let mut out = vec![0, 1, 65535];
    for r in &spec.rules {
        for &(lo, hi) in r.ports.iter().flatten() {
            out.extend([lo, hi]);
        }
        out.extend(r.icmp_types.iter().flatten().map(|&t| u16::from(t)));
    }
    out
}

fn resolve_flow(pick: &FlowPick, prefixes: &[Prefix], ports: &[u16]) -> Flow {
    let port = if pick.port_index % 5 == 4 {
        pick.port_noise
    } else {
        let base = ports[pick.port_index % ports.len()];
        base.wrapping_add_signed(i16::from(pick.port_delta))
    };
    Flow {
        src: resolve_addr(pick.src, prefixes),
        dst: resolve_addr(pick.dst, prefixes),
        proto: pick.proto,
        port,
    }
}

fn identity(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// Case counts stay small so `cargo test` stays fast; run deeper with
/// e.g. `PROPTEST_CASES=5000 cargo test --release --test policy_props`.
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn compiled_image_decides_like_the_rules(spec in policy(), picks in prop::collection::vec(flow_pick(), 48)) {
        let src = render(&spec, &identity(SEGMENTS), &identity(spec.rules.len()));
        let checked = check(&src);
        let index = ImageIndex::new(&checked.image);
        let (prefixes, ports) = (all_prefixes(&spec), interesting_ports(&spec));
        for pick in &picks {
            let flow = resolve_flow(pick, &prefixes, &ports);
            let naive = evaluate_naive(&checked.model, &flow);
            let compiled = index.evaluate(&flow);
            prop_assert_eq!(compiled, naive, "flow {:?}\npolicy:\n{}", flow, src);
        }
    }

}

proptest! {
    #![proptest_config(cases(48))]

    #[test]
    fn rule_order_changes_ids_but_not_actions(
        spec in policy(),
        picks in prop::collection::vec(flow_pick(), 24),
        seed in any::<u64>(),
    ) {
        let src = render(&spec, &identity(SEGMENTS), &identity(spec.rules.len()));
        let mut order = identity(spec.rules.len());
        shuffle(&mut order, seed);
        let shuffled_src = render(&spec, &identity(SEGMENTS), &order);
        let (a, b) = (check(&src), check(&shuffled_src));
        let (ia, ib) = (ImageIndex::new(&a.image), ImageIndex::new(&b.image));
        let (prefixes, ports) = (all_prefixes(&spec), interesting_ports(&spec));
        for pick in &picks {
            let flow = resolve_flow(pick, &prefixes, &ports);
            prop_assert_eq!(ia.evaluate(&flow).action, ib.evaluate(&flow).action, "flow {:?}", flow);
        }
    }

    #[test]
    fn compilation_is_deterministic_and_well_formed(spec in policy()) {
        let src = render(&spec, &identity(SEGMENTS), &identity(spec.rules.len()));
        let (a, b) = (check(&src), check(&src));
        prop_assert_eq!(a.image.to_bytes(), b.image.to_bytes());
        // Segment order does not matter: classes are numbered by prefix.
        let mut reversed = identity(SEGMENTS);
        reversed.reverse();
        let c = check(&render(&spec, &reversed, &identity(spec.rules.len())));
        prop_assert_eq!(compile(&a.model).unwrap().to_bytes(), compile(&c.model).unwrap().to_bytes());
        assert_well_formed(&a);
    }
}

/// CONFIG first, then keys strictly increasing (so unique), no rule key
/// with bits set past its prefix, and the summary matching the entries.
fn assert_well_formed(checked: &CheckedPolicy) {
    let trie = &checked.image.trie;
    assert!(matches!(
        decode_entry(&trie[0].0, &trie[0].1),
        Entry::Config { .. }
    ));
    for pair in trie[1..].windows(2) {
        assert!(
            bytes_of(&pair[0].0) < bytes_of(&pair[1].0),
            "trie keys must be sorted and unique"
        );
    }
    let mut rule_entries = 0;
    for (key, value) in &trie[1..] {
        match decode_entry(key, value) {
            Entry::Rule(rule) => {
                let (ports, rule_id) = (rule.ports, rule.rule_id);
                rule_entries += 1;
                assert!(rule_id >= 1 && rule_id as usize <= checked.model.rules.len());
                // Bits past the port prefix are clear (bytes 18..20: port, big-endian).
                let bytes = bytes_of(key);
                let raw_port = u16::from_be_bytes([bytes[18], bytes[19]]);
                assert_eq!(raw_port, ports.lo, "rule key with host bits set");
            }
            Entry::Config { .. } => panic!("CONFIG must come first, once"),
            _ => {}
        }
    }
    assert_eq!(rule_entries, checked.image.summary.rule_entries);
    assert_eq!(trie.len(), checked.image.summary.trie_entries);
}

/// Fisher-Yates with a small LCG: deterministic for a seed.
fn shuffle(items: &mut [usize], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (seed >> 33) as usize % (i + 1);
        items.swap(i, j);
    }
}
