//! What each cargo-fuzz target checks, on one input. Shared by the targets
//! in fuzz/fuzz_targets/ and by tests/fuzz_regressions.rs (which replays
//! every input kept in tests/fuzz_regressions/<target>/), so a crash found
//! by fuzzing stays a test of the normal `cargo test`.
#![allow(dead_code)]
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use segfw::datapath::events::decode_record;
use segfw::policy::decode::{decode_entry, meta_text};
use segfw::policy::eval::{evaluate_image, evaluate_naive, Flow};
use segfw::policy::view::decode as decode_view;
use segfw::skel::from_bytes;
use segfw::skel::types::{segfw_meta_key, segfw_meta_value, segfw_policy_key, segfw_policy_value};

/// One target's check of one input: panics on a failure.
pub type Check = fn(&[u8]);

/// The targets, by the name of their directory of kept inputs.
pub const TARGETS: &[(&str, Check)] = &[
    ("policy_check", policy_check),
    ("policy_compile", policy_compile),
    ("event_decode", event_decode),
    ("map_decode", map_decode),
];

/// Time one input may take (the check runs inside an unoptimized `cargo
/// test` too, so this is generous for what fuzzing feeds it).
const MAX_TIME: Duration = Duration::from_secs(1);

/// `policy check` on arbitrary bytes: an answer (Ok or errors), no
/// panic, in bounded time; errors render.
pub fn policy_check(data: &[u8]) {
    let start = Instant::now();
    let result = segfw::policy::check_bytes(data, Path::new("fuzz.toml"));
    if let Err(errors) = &result {
        let _ = errors.to_string();
    }
    let took = start.elapsed();
    assert!(
        took < MAX_TIME,
        "policy check took {took:?} on {} bytes",
        data.len()
    );
}

/// Reads choices from the fuzzer's bytes; zeros once they run out.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
    fn pick<'s>(&mut self, items: &[&'s str]) -> &'s str {
        items[usize::from(self.byte()) % items.len()]
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

const SEGMENTS: &[&str] = &["web", "db", "ops", "lab", "w-1"];

impl Choices<'_> {
    /// True about once in 32: where the generator writes something wrong.
    fn rare(&mut self) -> bool {
        self.byte() % 32 == 31
    }
    /// A valid item mostly, a wrong one rarely.
    fn valid_or<'s>(&mut self, valid: &[&'s str], wrong: &[&'s str]) -> &'s str {
        if self.rare() {
            self.pick(wrong)
        } else {
            self.pick(valid)
        }
    }
}

fn cidr(c: &mut Choices) -> String {
    if c.rare() {
        return c
            .pick(&[
                "10.0.0.256/8",
                "zz/1",
                "10.0.0.0/33",
                "fd00::/129",
                "10.0.0.1/8",
            ])
            .into();
    }
    let v4 = !c.byte().is_multiple_of(3);
    let len = if v4 {
        16 + c.byte() % 17
    } else {
        32 + c.byte() % 97
    };
    let (a, b) = (c.byte(), c.byte());
    let addr: IpAddr = if v4 {
        Ipv4Addr::new(10, a % 4, b, c.byte()).into()
    } else {
        Ipv6Addr::new(0xfd00, u16::from(a % 4), u16::from(b), 0, 0, 0, 0, 1).into()
    };
    // the network address of the prefix
    let net = ipnetwork::IpNetwork::new(addr, len).expect("length in range");
    format!("{}/{len}", net.network())
}

fn endpoint(c: &mut Choices, defined: &[&str]) -> String {
    if defined.is_empty() {
        return "\"*\"".into();
    }
    match c.byte() % 6 {
        0 => "\"*\"".into(),
        1 => format!("\"{}\"", cidr(c)),
        2 => format!("[\"{}\", \"{}\"]", c.pick(defined), c.pick(defined)),
        3 if c.rare() => "\"nosuch\"".into(),
        _ => format!("\"{}\"", c.pick(defined)),
    }
}

fn port_item(c: &mut Choices) -> String {
    match c.byte() % 8 {
        0 => {
            let lo = 1 + c.u16() % 8192;
            format!("\"{lo}-{}\"", lo + c.u16() % 2048)
        }
        1 if c.rare() => format!("\"{}-{}\"", c.u16(), c.u16()),
        2 if c.rare() => "70000".into(),
        _ => format!("{}", 1 + c.u16() % 8192),
    }
}

/// A policy file built from the input: mostly valid, with a wrong value
/// here and there (about one choice in 32).
pub fn policy_toml(data: &[u8]) -> String {
    let mut c = Choices(data);
    let mut s = String::from("version = 1\n\n[defaults]\n");
    s += &format!(
        "action = \"{}\"\n",
        c.valid_or(&["deny", "allow"], &["reject"])
    );
    if c.byte() % 2 == 0 {
        s += &format!(
            "mode = \"{}\"\n",
            c.valid_or(&["enforce", "audit"], &["off"])
        );
    }
    let failsafe: Vec<String> = (0..c.byte() % 3)
        .map(|_| format!("\"tcp/{}\"", 1 + c.u16() % 1024))
        .collect();
    s += &format!("failsafe = [{}]\n", failsafe.join(", "));
    if c.byte() % 8 == 0 {
        s += &format!(
            "\n[conntrack]\nmax_entries = {}\n",
            1024 + u32::from(c.u16()) * 16
        );
    }
    s += "\n[segments]\n";
    let mut defined = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for name in SEGMENTS.iter().take(1 + usize::from(c.byte() % 5)) {
        if c.done() {
            break;
        }
        defined.push(*name);
        let mut cidrs = Vec::new();
        for _ in 0..1 + c.byte() % 3 {
            let prefix = cidr(&mut c);
            // a prefix may be in one segment once (else a validation error)
            if seen.insert(prefix.clone()) || c.rare() {
                cidrs.push(format!("\"{prefix}\""));
            }
        }
        s += &format!("{name} = [{}]\n", cidrs.join(", "));
    }
    let mut n = 0;
    while !c.done() {
        n += 1;
        s += "\n[[rules]]\n";
        if c.byte() % 3 == 0 {
            s += &format!("name = \"r{n}\"\n");
        }
        s += &format!(
            "from = {}\nto = {}\n",
            endpoint(&mut c, &defined),
            endpoint(&mut c, &defined)
        );
        let proto = c.valid_or(
            &["tcp", "udp", "icmp", "icmpv6", "sctp", "any", "47"],
            &["256", "bogus"],
        );
        if proto.bytes().all(|b| b.is_ascii_digit()) {
            s += &format!("proto = {proto}\n");
        } else {
            s += &format!("proto = \"{proto}\"\n");
        }
        let ported = matches!(proto, "tcp" | "udp" | "sctp");
        let icmp = matches!(proto, "icmp" | "icmpv6");
        if (ported && c.byte() % 2 == 0) || c.rare() {
            let ports: Vec<String> = (0..1 + c.byte() % 4).map(|_| port_item(&mut c)).collect();
            s += &format!("ports = [{}]\n", ports.join(", "));
        }
        if (icmp && c.byte() % 2 == 0) || c.rare() {
            let types = if proto == "icmpv6" {
                ["\"echo-request\"", "\"echo-reply\"", "1", "135"]
            } else {
                ["\"echo-request\"", "\"echo-reply\"", "3", "13"]
            };
            let n = 1 + usize::from(c.byte() % 3);
            let picked: Vec<&str> = (0..n)
                .map(|_| c.valid_or(&types, &["300", "\"nope\""]))
                .collect();
            s += &format!("icmp_types = [{}]\n", picked.join(", "));
        }
        s += &format!(
            "action = \"{}\"\n",
            c.valid_or(&["allow", "deny"], &["drop"])
        );
        if c.byte() % 4 == 0 {
            s += "log = true\n";
        }
        if c.byte() % 4 == 0 {
            s += "audit = true\n";
        }
    }
    s
}

/// Flows over the addresses the generated policies use.
fn flows(data: &[u8]) -> Vec<Flow> {
    let addrs: Vec<IpAddr> = vec![
        Ipv4Addr::new(10, 0, 1, 7).into(),
        Ipv4Addr::new(10, 0, 0, 1).into(),
        Ipv4Addr::new(192, 168, 0, 1).into(),
        Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 5).into(),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
        Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().into(),
    ];
    let mut c = Choices(data);
    let mut out = Vec::new();
    for &src in &addrs {
        for &dst in &addrs {
            let proto = [6u8, 17, 1, 58, 132, 47][usize::from(c.byte()) % 6];
            out.push(Flow {
                src,
                dst,
                proto,
                port: c.u16() % 8192,
            });
        }
    }
    out
}

/// Structured policies: validate + compile never panic; a compiled image
/// decodes, and its trie decides every flow as the language says.
pub fn policy_compile(data: &[u8]) {
    let src = policy_toml(data);
    let start = Instant::now();
    let checked = match segfw::policy::check_str(&src, Path::new("fuzz.toml")) {
        Ok(checked) => checked,
        Err(errors) => {
            let _ = errors.to_string();
            return;
        }
    };
    let took = start.elapsed();
    assert!(took < MAX_TIME, "compile took {took:?}:\n{src}");
    let view = decode_view(&checked.image.trie, &checked.image.meta);
    let _ = serde_json::to_string(&view);
    for flow in flows(data) {
        let image = evaluate_image(&checked.image, &flow);
        let naive = evaluate_naive(&checked.model, &flow);
        assert_eq!(
            image, naive,
            "compiled trie and rules disagree on {flow:?}:\n{src}"
        );
    }
}

/// The events decoder on arbitrary ring buffer records.
pub fn event_decode(data: &[u8]) {
    let names = HashMap::from([(1, "rule-one".to_string())]);
    if let Some(event) = decode_record(data, &names) {
        let _ = event.to_string();
        serde_json::to_string(&event).expect("an event serializes");
    }
}

/// Policy trie and meta entries as read back from maps: each decodes, and
/// a whole set of them reassembles into a policy view (`policy show`).
pub fn map_decode(data: &[u8]) {
    let key_len = std::mem::size_of::<segfw_policy_key>();
    let value_len = std::mem::size_of::<segfw_policy_value>();
    let mut trie = Vec::new();
    for chunk in data.chunks(key_len + value_len) {
        let (Some(key), Some(value)) = (
            from_bytes::<segfw_policy_key>(chunk),
            chunk
                .get(key_len..)
                .and_then(from_bytes::<segfw_policy_value>),
        ) else {
            continue;
        };
        let _ = decode_entry(&key, &value);
        trie.push((key, value));
    }
    let meta_len = std::mem::size_of::<segfw_meta_key>() + std::mem::size_of::<segfw_meta_value>();
    let mut meta = Vec::new();
    for chunk in data.chunks(meta_len) {
        if let (Some(key), Some(value)) = (
            from_bytes::<segfw_meta_key>(chunk),
            chunk
                .get(std::mem::size_of::<segfw_meta_key>()..)
                .and_then(from_bytes::<segfw_meta_value>),
        ) {
            let _ = meta_text(&value);
            meta.push((key, value));
        }
    }
    let view = decode_view(&trie, &meta);
    let _ = serde_json::to_string(&view);
}
