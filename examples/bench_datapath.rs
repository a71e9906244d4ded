//! Per-packet cost of the datapath via BPF_PROG_TEST_RUN, side by side in
//! one run: the empty tcx program, the established-flow path, and the
//! new-flow path with 10 and with 100k rules (10 and 10k segments).
//!
//! Run as root: `cargo run --release --example bench_datapath`
use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::path::Path;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{OpenObject, ProgramInput, ProgramMut};
use segfw::policy::image::PolicyImage;
use segfw::skel::{empty, SegfwSkel, SegfwSkelBuilder};

const REPEAT: u32 = 100_000;
const NEW_FLOWS: u16 = 5_000;
/// Rounds of every measurement, interleaved; the report gives medians, so a
/// noisy neighbour on the machine moves one round, not the result.
const ROUNDS: u16 = 9;

/// One loaded datapath with its policy and the flow the policy allows.
struct Setup {
    label: &'static str,
    skel: SegfwSkel<'static>,
    src: [u8; 4],
    dst: [u8; 4],
}

fn main() {
    let empty = load_empty();
    let floor = &empty.progs.empty_ingress;
    let flood = tcp_frame([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80, 0x10);
    let setups: Vec<Setup> = [
        ("10 rules / 10 segments", 10, 10),
        ("100k rules / 10k segments", 100_000, 10_000),
    ]
    .into_iter()
    .map(|(label, rules, segments)| {
        let (image, src, dst) = policy(rules, segments);
        let skel = load_segfw(&image);
        establish(&skel.progs.segfw_ingress, src, dst);
        Setup {
            label,
            skel,
            src,
            dst,
        }
    })
    .collect();

    let mut samples: Vec<(String, Vec<f64>)> = Vec::new();
    let mut record = |label: String, ns: f64| match samples.iter_mut().find(|(l, _)| *l == label) {
        Some((_, v)) => v.push(ns),
        None => samples.push((label, vec![ns])),
    };
    for round in 0..ROUNDS {
        let first_port = 1024 + round * NEW_FLOWS;
        record(
            "empty tcx program (repeat)".into(),
            time_repeat(floor, &flood),
        );
        record(
            "empty tcx program (distinct packets)".into(),
            time_new_flows(floor, [10, 0, 0, 1], [10, 0, 0, 2], first_port),
        );
        for s in &setups {
            let prog = &s.skel.progs.segfw_ingress;
            let ack = tcp_frame(s.src, 40000, s.dst, 80, 0x10);
            record(
                format!("established, {} (repeat)", s.label),
                time_repeat(prog, &ack),
            );
            record(
                format!("new flow, {} (distinct packets)", s.label),
                time_new_flows(prog, s.src, s.dst, first_port),
            );
        }
    }
    let rows: Vec<(String, f64)> = samples.into_iter().map(|(l, v)| (l, median(v))).collect();
    print!("{}", report(&rows));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs a full handshake so the flow is established, as real traffic is.
fn establish(prog: &ProgramMut<'_>, src: [u8; 4], dst: [u8; 4]) {
    let handshake = [
        tcp_frame(src, 40000, dst, 80, 0x02),
        tcp_frame(dst, 80, src, 40000, 0x12),
        tcp_frame(src, 40000, dst, 80, 0x10),
    ];
    for frame in &handshake {
        let input = ProgramInput {
            data_in: Some(frame),
            ..Default::default()
        };
        prog.test_run(input).expect("handshake");
    }
}

fn report(rows: &[(String, f64)]) -> String {
    let get = |needle: &str| {
        rows.iter()
            .find(|(l, _)| l.contains(needle))
            .map(|r| r.1)
            .unwrap_or(f64::NAN)
    };
    let mut out =
        format!("medians of {ROUNDS} interleaved rounds\n\n| path | ns/packet |\n|---|---:|\n");
    for (label, ns) in rows {
        let _ = writeln!(out, "| {label} | {ns:.1} |");
    }
    let est = get("established, 10 rules") / get("empty tcx program (repeat)");
    let scale = get("new flow, 100k") / get("new flow, 10 rules");
    let _ = writeln!(out, "\nestablished / empty: {est:.2}x (target <= 2.0)");
    let _ = writeln!(
        out,
        "new flow 100k rules / 10 rules: {scale:.2}x (target <= 1.5)"
    );
    out
}

/// A policy with `rules` allow rules over `segments` one-address segments;
/// returns it with a (src, dst) pair that the last rule allows on port 80.
fn policy(rules: usize, segments: usize) -> (PolicyImage, [u8; 4], [u8; 4]) {
    let addr = |i: usize| [10, (i >> 16) as u8 + 1, (i >> 8) as u8, i as u8];
    let mut toml =
        String::from("version = 1\n[defaults]\naction = \"deny\"\nfailsafe = []\n[segments]\n");
    for i in 0..segments {
        let a = addr(i);
        let _ = writeln!(toml, "s{i} = [\"{}.{}.{}.{}/32\"]", a[0], a[1], a[2], a[3]);
    }
    for r in 0..rules {
        let (from, to) = (r % segments, (r / segments + r + 1) % segments);
        let port = 1000 + (r % 50_000);
        let port = if r + 1 == rules { 80 } else { port };
        let _ = writeln!(toml, "[[rules]]\nfrom = \"s{from}\"\nto = \"s{to}\"\nproto = \"tcp\"\nports = [{port}]\naction = \"allow\"");
    }
    let last = rules - 1;
    let (from, to) = (last % segments, (last / segments + last + 1) % segments);
    let checked = segfw::policy::check_str(&toml, Path::new("bench.toml"))
        .expect("benchmark policy is valid");
    (checked.image.with_generation(1), addr(from), addr(to))
}

fn load_empty() -> empty::EmptySkel<'static> {
    let storage = Box::leak(Box::new(MaybeUninit::<OpenObject>::uninit()));
    let open = empty::EmptySkelBuilder::default()
        .open(storage)
        .expect("open empty.bpf.o");
    open.load().expect("load the empty program")
}

fn load_segfw(image: &PolicyImage) -> SegfwSkel<'static> {
    let storage = Box::leak(Box::new(MaybeUninit::<OpenObject>::uninit()));
    let open = SegfwSkelBuilder::default()
        .open(storage)
        .expect("open segfw.bpf.o");
    let skel = open.load().expect("load segfw");
    segfw::datapath::apply::apply_to_skeleton(&skel, image, 1).expect("apply the policy");
    skel
}

/// Kernel-measured ns per run of one frame repeated REPEAT times.
fn time_repeat(prog: &ProgramMut<'_>, frame: &[u8]) -> f64 {
    let out = prog
        .test_run(ProgramInput {
            data_in: Some(frame),
            repeat: REPEAT,
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    out.duration.as_nanos() as f64
}

/// Mean kernel-measured ns over NEW_FLOWS distinct SYNs, each run once.
fn time_new_flows(prog: &ProgramMut<'_>, src: [u8; 4], dst: [u8; 4], first_port: u16) -> f64 {
    let total: f64 = (0..NEW_FLOWS)
        .map(|i| {
            let frame = tcp_frame(src, first_port + i, dst, 80, 0x02);
            let out = prog
                .test_run(ProgramInput {
                    data_in: Some(&frame),
                    ..Default::default()
                })
                .expect("BPF_PROG_TEST_RUN");
            out.duration.as_nanos() as f64
        })
        .sum();
    total / f64::from(NEW_FLOWS)
}

fn tcp_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let mut ip = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}
