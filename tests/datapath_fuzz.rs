//! Differential fuzzing of the real datapath against the Rust reference
//! model (testrun_support/model.rs): valid frames of every kind from the
//! packet builder, mutated (bytes flipped, truncated, lengths, IHL, flags,
//! ethertypes, next headers, VLAN tags changed), run through the loaded
//! explain program as an ingress or egress packet (no side effects:
//! conntrack stays empty, so the model stays stateless), comparing (pass,
//! reason, rule id).
//!
//! Reproducible: `SEGFW_FUZZ_SEED=N` picks the seed (printed on every run
//! and on a mismatch, with the frame in hex), `SEGFW_FUZZ_CASES=N` the
//! number of cases (default 20,000, split over an enforce and an audit
//! policy).
#[path = "testrun_support/mod.rs"]
mod support;

use std::path::Path;
use std::time::Instant;

use segfw::policy::image::PolicyImage;
use support::model::{self, ModelPolicy, Verdict};
use support::packet::*;
use support::*;

const DEFAULT_SEED: u64 = 0x05e6_fa11_f022;
const DEFAULT_CASES: u64 = 20_000;

/// Segments, allow and deny rules over every protocol the datapath parses,
/// an `any` rule, a per-rule audit deny, a failsafe port, and router
/// advertisements from one address and one segment.
const ENFORCE: &str = include_str!("fixtures/policies/datapath_fuzz_enforce.toml");

/// Global audit mode: every would-be drop passes as pass_audit; router
/// advertisements from the default sources (any link-local).
fn audit_policy() -> String {
    ENFORCE
        .replace(
            "action = \"deny\"\nfailsafe",
            "action = \"deny\"\nmode = \"audit\"\nfailsafe",
        )
        .replace("router_advertisements = [\"fe80::1\", \"ops\"]\n", "")
}

fn compile(src: &str) -> PolicyImage {
    match segfw::policy::check_str(src, Path::new("fuzz.toml")) {
        Ok(checked) => checked.image,
        Err(errors) => panic!("fuzz policy must be valid:\n{errors}"),
    }
}

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const V4: &[&str] = &[
    "10.0.1.5",
    "10.0.2.7",
    "10.0.3.9",
    "10.9.4.4",
    "192.0.2.1",
    "10.0.2.255",
];
const V6: &[&str] = &[
    "fd00:1::5",
    "fd00:2::7",
    "fd00:3::9",
    "2001:db8::1",
    "::ffff:10.0.1.5",
    "::ffff:10.0.2.7",
    "fe80::1",
    "fe80::2",
];
const PORTS: &[u16] = &[
    22, 2222, 5432, 6000, 6050, 6100, 6101, 53, 9, 3868, 8080, 1500, 80,
];
const TCP_FLAGS: &[u8] = &[
    SYN,
    SYN | ACK,
    ACK,
    ACK | PSH,
    FIN | ACK,
    RST,
    RST | ACK,
    SYN | URG,
    SYN | FIN,
    0,
    0xff,
    SYN | 0xc0,
];
const PROTOS: &[u8] = &[0, 1, 6, 17, 43, 44, 47, 51, 58, 59, 60, 132, 135, 255];

fn port(rng: &mut Rng) -> u16 {
    if rng.chance(80) {
        rng.pick(PORTS)
    } else {
        rng.next() as u16
    }
}

/// A valid packet of a random kind.
fn packet(rng: &mut Rng) -> Pkt {
    let v4 = rng.chance(50);
    let pool = if v4 { V4 } else { V6 };
    let (src, dst) = (rng.pick(pool), rng.pick(pool));
    let echo = if v4 { 8 } else { 128 };
    let mut p = match rng.below(10) {
        0 | 1 => Pkt::tcp(src, port(rng), dst, port(rng), rng.pick(TCP_FLAGS)),
        2 => Pkt::udp(src, port(rng), dst, port(rng)),
        3 => Pkt::sctp(src, port(rng), dst, port(rng)),
        4 => {
            let types: &[u8] = if v4 {
                &[0, 8, 13, 3, 11, 133]
            } else {
                &[128, 129, 133, 134, 135, 136, 137, 1, 3, 4, 138]
            };
            Pkt::icmp(src, dst, rng.pick(types), rng.next() as u16)
        }
        5 => Pkt::icmp(src, dst, echo, 7),
        6 | 7 => {
            let inner = match rng.below(3) {
                0 => Pkt::tcp(dst, port(rng), src, port(rng), SYN),
                1 => Pkt::udp(dst, port(rng), src, port(rng)),
                _ => Pkt::icmp(dst, src, echo, 9),
            };
            let ty = if v4 {
                rng.pick(&[3, 4, 5, 11, 12])
            } else {
                rng.pick(&[1, 2, 3, 4])
            };
            Pkt::icmp_error(src, dst, ty, &inner)
        }
        8 => Pkt::raw(src, dst, rng.pick(PROTOS)),
        _ => Pkt::tcp(src, port(rng), dst, rng.pick(&[22, 2222]), SYN),
    };
    p = p.with_vlans(match rng.below(10) {
        0 | 1 => 1,
        2 => 2,
        3 => 3,
        _ => 0,
    });
    if v4 && rng.chance(20) {
        p = p.with_ipv4_options(4 * rng.below(11));
    }
    if !v4 && rng.chance(30) {
        let n = rng.below(10);
        let ext: Vec<u8> = (0..n)
            .map(|_| rng.pick(&[0, 43, 60, 135, 51, 50]))
            .collect();
        p = p.with_ext(&ext);
    }
    if rng.chance(15) {
        let offset = if rng.chance(50) {
            0
        } else {
            rng.pick(&[1, 2, 3, 185])
        };
        p = p.fragment(offset, rng.chance(70));
    }
    if rng.chance(30) {
        p = p.with_payload(rng.below(80));
    }
    if rng.chance(40) {
        // RFC 4861's hop limit, which router advertisements must carry
        p = p.with_hop_limit(255);
    }
    p
}

/// Offset of the IP header and its ethertype, walking up to 3 VLAN tags.
fn l3_of(f: &[u8]) -> Option<(usize, u16)> {
    let mut off = 12;
    for _ in 0..4 {
        if off + 2 > f.len() {
            return None;
        }
        let proto = u16::from_be_bytes([f[off], f[off + 1]]);
        if proto != 0x8100 && proto != 0x88a8 {
            return Some((off + 2, proto));
        }
        off += 4;
    }
    None
}

fn set(f: &mut [u8], at: usize, value: u8) {
    if let Some(b) = f.get_mut(at) {
        *b = value;
    }
}

fn set16(f: &mut [u8], at: usize, value: u16) {
    let [hi, lo] = value.to_be_bytes();
    set(f, at, hi);
    set(f, at + 1, lo);
}

/// One structured or blind change to a frame.
fn mutate(rng: &mut Rng, f: &mut Vec<u8>) {
    let (l3, ethertype) = l3_of(f).unwrap_or((14, 0));
    let v4 = ethertype == 0x0800;
    // L4 header, for a frame as built (no IPv6 extension headers counted).
    let l4 = if v4 {
        l3 + usize::from(f.get(l3).map_or(5, |b| b & 0xf)) * 4
    } else {
        l3 + 40
    };
    match rng.below(16) {
        0 | 1 => {
            let at = rng.below(f.len().max(1));
            set(f, at, rng.byte());
        }
        2 => {
            // a byte in the headers
            let at = rng.below(f.len().clamp(1, 100));
            let flipped = f.get(at).map_or(0, |b| b ^ (1 << rng.below(8)));
            set(f, at, flipped);
        }
        3 => {
            let keep = 14 + rng.below(f.len().saturating_sub(13).max(1));
            f.truncate(keep);
        }
        4 => {
            for _ in 0..rng.below(64) {
                f.push(rng.byte());
            }
        }
        5 => {
            // IHL and version
            let b = f.get(l3).copied().unwrap_or(0);
            let b = if rng.chance(50) {
                (b & 0xf0) | rng.below(16) as u8
            } else {
                (rng.pick(&[4u8, 6, 0, 5, 15]) << 4) | (b & 0x0f)
            };
            set(f, l3, b);
        }
        6 => {
            // total length / payload length
            let at = if v4 { l3 + 2 } else { l3 + 4 };
            let old = f
                .get(at..at + 2)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            let new = match rng.below(4) {
                0 => rng.next() as u16,
                1 => 0,
                2 => old.wrapping_add(rng.below(9) as u16).wrapping_sub(4),
                _ => (f.len() - l3) as u16,
            };
            set16(f, at, new);
        }
        7 => {
            // fragment field: IPv4 flags/offset
            let value = rng.pick(&[0u16, 0x2000, 0x0001, 0x2001, 0x4000, 0x0002, 0x1fff, 0x8000]);
            if v4 {
                set16(f, l3 + 6, value);
            }
        }
        8 => {
            // protocol / next header
            let at = if v4 { l3 + 9 } else { l3 + 6 };
            let value = if rng.chance(80) {
                rng.pick(PROTOS)
            } else {
                rng.byte()
            };
            set(f, at, value);
        }
        9 => {
            // an extension header's next header or length
            if !v4 {
                let at = l3 + 40 + 8 * rng.below(4) + rng.below(2);
                set(
                    f,
                    at,
                    if rng.chance(50) {
                        rng.pick(PROTOS)
                    } else {
                        rng.byte()
                    },
                );
            }
        }
        10 => {
            let at = l3 - 2;
            let value = rng.pick(&[0x0800u16, 0x86dd, 0x8100, 0x88a8, 0x0806, 0x0000, 0x05dc]);
            set16(f, at, value);
        }
        11 => {
            // add a VLAN tag
            let tag = [
                rng.pick(&[0x81u8, 0x88]),
                if rng.chance(50) { 0x00 } else { 0xa8 },
                0,
                5,
            ];
            for (i, b) in tag.iter().enumerate() {
                f.insert(12 + i, *b);
            }
        }
        12 => {
            // TCP data offset or flags
            if rng.chance(50) {
                set(f, l4 + 12, (rng.below(16) as u8) << 4);
            } else {
                set(f, l4 + 13, rng.byte());
            }
        }
        13 => {
            // ICMP type
            let ty = rng.pick(&[0u8, 1, 2, 3, 4, 5, 8, 11, 12, 13, 128, 129, 133, 137, 138]);
            set(f, l4, ty);
        }
        14 => {
            // an inner IP header of an ICMP error: version/IHL or protocol
            let inner = l4 + 8;
            if rng.chance(50) {
                set(f, inner, rng.byte());
            } else {
                set(f, inner + if v4 { 9 } else { 6 }, rng.pick(PROTOS));
            }
        }
        _ => {
            // cut right inside the L4 header or the inner header
            let keep = (l4 + rng.below(40)).max(14);
            f.truncate(keep.min(f.len()));
        }
    }
}

fn hex(frame: &[u8]) -> String {
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Tally {
    cases: u64,
    refused: u64,
    mismatches: Vec<String>,
    by_reason: std::collections::BTreeMap<u32, u64>,
}

fn run_phase(h: &mut Harness, src: &str, name: &str, seed: u64, cases: u64, tally: &mut Tally) {
    let image = compile(src);
    h.apply(&image);
    let policy = ModelPolicy::new(&image);
    let mut rng = Rng::new(seed);
    for i in 0..cases {
        let ingress = rng.chance(50);
        let mut frame = packet(&mut rng).build();
        if rng.chance(5) {
            frame = arp_frame();
        }
        if rng.chance(75) {
            for _ in 0..=rng.below(3) {
                mutate(&mut rng, &mut frame);
            }
        }
        let got = match h.try_explain(ingress, &frame) {
            Ok((rc, e)) => {
                let want_rc = if e.pass { PASS } else { DROP };
                assert_eq!(rc, want_rc, "return code disagrees with the explain answer");
                assert!(!e.ct_hit, "conntrack hit in a stateless run");
                Verdict {
                    pass: e.pass,
                    reason: e.reason,
                    rule_id: e.rule_id,
                }
            }
            Err(_) => {
                // the kernel refused the frame (EINVAL): not a case
                tally.refused += 1;
                continue;
            }
        };
        tally.cases += 1;
        *tally.by_reason.entry(got.reason).or_default() += 1;
        let want = model::verdict(&policy, ingress, &frame);
        if got != want {
            tally.mismatches.push(format!(
                "{name} seed {seed:#x} case {i} {}: model {want:?}, datapath {got:?}\n  frame {}",
                if ingress { "ingress" } else { "egress" },
                hex(&frame)
            ));
        }
    }
}

#[test]
#[ignore = "needs root: loads the datapath and runs frames through it with BPF_PROG_TEST_RUN"]
fn datapath_matches_the_model_on_random_frames() {
    let seed = env_u64("SEGFW_FUZZ_SEED", DEFAULT_SEED);
    let cases = env_u64("SEGFW_FUZZ_CASES", DEFAULT_CASES);
    let start = Instant::now();
    let mut h = Harness::new();
    let mut tally = Tally::default();
    run_phase(&mut h, ENFORCE, "enforce", seed, cases / 2, &mut tally);
    let audit = audit_policy();
    run_phase(
        &mut h,
        &audit,
        "audit",
        seed ^ 0xa0d1,
        cases - cases / 2,
        &mut tally,
    );
    eprintln!(
        "datapath fuzz: seed {seed:#x}: {} cases, {} refused by the kernel (EINVAL), {} mismatches, {:.1?}",
        tally.cases,
        tally.refused,
        tally.mismatches.len(),
        start.elapsed()
    );
    eprintln!("reasons seen: {:?}", tally.by_reason);
    for m in tally.mismatches.iter().take(20) {
        eprintln!("{m}");
    }
    assert!(
        tally.mismatches.is_empty(),
        "{} of {} cases differ between the datapath and the model (seed {seed:#x}); first: {}",
        tally.mismatches.len(),
        tally.cases,
        tally.mismatches[0]
    );
    assert!(
        tally.cases > cases / 2,
        "most frames should be cases, not refusals"
    );
}

/// The model itself, on the builder's frames, agrees with the table of
/// datapath_testrun.rs where the two overlap (no kernel needed).
#[test]
fn model_on_known_frames() {
    let image = compile(ENFORCE);
    let policy = ModelPolicy::new(&image);
    let web = "10.0.1.5";
    let db = "10.0.2.7";
    let v = |ingress, p: Pkt| model::verdict(&policy, ingress, &p.build());
    let allowed = v(INGRESS, Pkt::tcp(web, 40000, db, 5432, SYN));
    assert_eq!((allowed.pass, allowed.rule_id), (true, Some(1)));
    let denied = v(INGRESS, Pkt::tcp(web, 40000, db, 6050, SYN));
    assert_eq!((denied.pass, denied.rule_id), (false, Some(2)));
    let failsafe = v(INGRESS, Pkt::tcp("192.0.2.1", 40000, db, 22, SYN));
    assert_eq!(failsafe.rule_id, Some(model::RULE_FAILSAFE));
    let egress22 = v(EGRESS, Pkt::tcp("192.0.2.1", 40000, db, 22, SYN));
    assert_eq!((egress22.pass, egress22.rule_id), (false, Some(0)));
    let nd = v(INGRESS, Pkt::icmp("fd00:1::5", "fd00:2::7", 135, 0));
    assert_eq!((nd.pass, nd.rule_id), (true, None));
    let vlan3 = v(INGRESS, Pkt::tcp(web, 1, db, 5432, SYN).with_vlans(3));
    assert!(!vlan3.pass);
    let audit = v(INGRESS, Pkt::tcp("10.0.3.9", 1, db, 8080, SYN));
    assert_eq!((audit.pass, audit.rule_id), (true, Some(10)));
    let orphan = v(INGRESS, Pkt::udp(web, 1, db, 53).fragment(2, false));
    assert!(!orphan.pass);
}

/// Found by the fuzz test's model review: an IPv4 packet whose protocol is
/// 58 (ICMPv6) with a neighbor discovery type (133-137) passes as
/// pass_nd, bypassing policy: bpf/parse.h parse_l4() (line 288,
/// `if (icmp6_is_nd(icmp6->type))`) marks ND without checking that the
/// packet is IPv6. The model mirrors the C (so the fuzz test agrees); this
/// test states what the datapath should do: decide it by policy
/// (world -> db, proto 58, default deny: drop_default, rule 0).
#[test]
#[ignore = "needs root: loads the datapath and runs frames through it with BPF_PROG_TEST_RUN"]
fn ipv4_protocol_58_is_not_neighbor_discovery() {
    let mut h = Harness::new();
    h.apply(&compile(ENFORCE));
    let mut p = Pkt::raw("192.0.2.1", "10.0.2.7", ICMPV6);
    p.l4 = icmp_header(135, 0, 0);
    let frame = p.build();
    let (_, got) = h.explain(INGRESS, &frame);
    assert_eq!(
        (got.pass, got.reason, got.rule_id),
        (
            false,
            segfw::skel::types::segfw_reason::SEGFW_DROP_DEFAULT
                .0
                .into(),
            Some(0)
        ),
        "IPv4 proto 58 type 135 from world to db must be decided by policy, frame {}",
        hex(&frame)
    );
}

/// Same root cause as above, found reviewing the model's cross-family
/// cases: parse_l4() picks the ICMP parser by protocol number alone
/// (bpf/parse.h:266 `case IPPROTO_ICMP`), so an IPv6 packet with next
/// header 1 (ICMPv4) and an error type is parsed as an ICMPv4 error, its
/// quoted IPv4 header is looked up in conntrack, and it passes as
/// pass_related for a tracked IPv4 flow. Expected: ICMPv4 inside IPv6 is
/// no ICMP error of an IPv4 flow; it is a new flow of protocol 1, decided
/// by policy (here: drop).
#[test]
#[ignore = "needs root: loads the datapath and runs frames through it with BPF_PROG_TEST_RUN"]
fn icmpv4_error_inside_ipv6_is_not_related() {
    let mut h = Harness::new();
    h.apply(&compile(ENFORCE));
    let syn = Pkt::tcp("10.0.1.5", 40000, "10.0.2.7", 5432, SYN);
    assert_eq!(
        h.run(EGRESS, &syn.build()),
        PASS,
        "web -> db:5432 opens a flow"
    );
    // db's side reports an error about that flow, carried over IPv6.
    let mut p = Pkt::raw("2001:db8::1", "fd00:1::5", ICMP);
    p.l4 = icmp_header(3, 0, 0);
    p.l4[4..8].copy_from_slice(&[0; 4]);
    let quoted = syn.ip_packet();
    p.payload = quoted[..28].to_vec();
    let frame = p.build();
    let (_, got) = h.explain(INGRESS, &frame);
    assert!(
        !got.pass,
        "an ICMPv4 error in IPv6 must not pass as related to an IPv4 flow: got {got:?}, frame {}",
        hex(&frame)
    );
}
