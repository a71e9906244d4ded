//! Per-packet cost of the datapath via BPF_PROG_TEST_RUN, side by side in
//! one run: the empty tcx program (the floor), the established-flow path and
//! the new-flow path, for IPv4 and IPv6 frames, at 10, 1k, 10k and 100k rules
//! (over 10, 100, 1k and 10k segments).
//!
//! Run as root: `cargo run --release --example bench_datapath`
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
/// (rules, segments) of the policies measured: the columns of the matrix.
const SCALES: [(usize, usize); 4] = [(10, 10), (1_000, 100), (10_000, 1_000), (100_000, 10_000)];
/// Server port of every benchmark flow (the last rule allows it).
const PORT: u16 = 80;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    V4,
    V6,
}

impl Family {
    const ALL: [Family; 2] = [Family::V4, Family::V6];

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The one address of benchmark segment `i` in this family.
    fn segment_addr(self, i: usize) -> IpAddr {
        match self {
            Family::V4 => Ipv4Addr::new(10, (i >> 16) as u8 + 1, (i >> 8) as u8, i as u8).into(),
            Family::V6 => {
                Ipv6Addr::new(0xfd00, 0x5e6f, 0, 0, 0, 0, (i >> 16) as u16 + 1, i as u16).into()
            }
        }
    }

    /// Two addresses no policy knows, for the empty program.
    fn floor_pair(self) -> (IpAddr, IpAddr) {
        match self {
            Family::V4 => (
                Ipv4Addr::new(10, 0, 0, 1).into(),
                Ipv4Addr::new(10, 0, 0, 2).into(),
            ),
            Family::V6 => (
                Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).into(),
                Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).into(),
            ),
        }
    }
}

/// What one row of a table measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Row {
    EmptyRepeat,
    EmptyDistinct,
    Established,
    NewFlow,
}

impl Row {
    /// What is measured ("established") and how ("repeat").
    fn label(self) -> (&'static str, &'static str) {
        match self {
            Row::EmptyRepeat => ("empty tcx program", "repeat"),
            Row::EmptyDistinct => ("empty tcx program", "distinct packets"),
            Row::Established => ("established", "repeat"),
            Row::NewFlow => ("new flow", "distinct packets"),
        }
    }
}

/// One measurement: row, family and column (index into SCALES; 0 for the
/// empty program, which has no policy).
type Key = (Row, Family, usize);

/// One loaded datapath with its policy and, per family, the flow the
/// policy's last rule allows.
struct Setup {
    skel: SegfwSkel<'static>,
    flows: [(Family, IpAddr, IpAddr); 2],
}

fn main() {
    let empty = load_empty();
    let floor = &empty.progs.empty_ingress;
    let setups: Vec<Setup> = SCALES.iter().map(|&(r, s)| setup(r, s)).collect();

    let mut samples: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for round in 0..ROUNDS {
        let first_port = 1024 + round * NEW_FLOWS;
        for family in Family::ALL {
            let (src, dst) = family.floor_pair();
            let flood = tcp_frame(src, 40000, dst, PORT, 0x10);
            let mut record = |path, ns| samples.entry((path, family, 0)).or_default().push(ns);
            record(Row::EmptyRepeat, time_repeat(floor, &flood));
            record(
                Row::EmptyDistinct,
                time_new_flows(floor, src, dst, first_port),
            );
        }
        for (column, s) in setups.iter().enumerate() {
            let prog = &s.skel.progs.segfw_ingress;
            for &(family, src, dst) in &s.flows {
                let ack = tcp_frame(src, 40000, dst, PORT, 0x10);
                let mut record =
                    |path, ns| samples.entry((path, family, column)).or_default().push(ns);
                record(Row::Established, time_repeat(prog, &ack));
                record(Row::NewFlow, time_new_flows(prog, src, dst, first_port));
            }
        }
    }
    let medians: BTreeMap<Key, f64> = samples.into_iter().map(|(k, v)| (k, median(v))).collect();
    print!("{}", report(&medians));
}

/// Loads the datapath with a policy of `rules` rules over `segments`
/// segments and establishes the allowed flow of each family.
fn setup(rules: usize, segments: usize) -> Setup {
    let (image, from, to) = policy(rules, segments);
    let skel = load_segfw(&image);
    let flows = Family::ALL.map(|f| (f, f.segment_addr(from), f.segment_addr(to)));
    for &(_, src, dst) in &flows {
        establish(&skel.progs.segfw_ingress, src, dst);
    }
    Setup { skel, flows }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Return code of a dropped packet (SEGFW_RET_DROP, bpf/segfw.bpf.c).
const RET_DROP: u32 = 2;

/// Runs a full handshake so the flow is established, as real traffic is;
/// every packet must pass (the policy allows the flow). The conntrack key
/// is direction-free, so the reply may run on ingress too.
fn establish(prog: &ProgramMut<'_>, src: IpAddr, dst: IpAddr) {
    let handshake = [
        tcp_frame(src, 40000, dst, PORT, 0x02),
        tcp_frame(dst, PORT, src, 40000, 0x12),
        tcp_frame(src, 40000, dst, PORT, 0x10),
    ];
    for frame in &handshake {
        let input = ProgramInput {
            data_in: Some(frame),
            ..Default::default()
        };
        let out = prog.test_run(input).expect("handshake");
        assert_ne!(
            out.return_value, RET_DROP,
            "{src} -> {dst}: handshake dropped"
        );
    }
}

/// "10", "1k", "100k".
fn count(n: usize) -> String {
    if n >= 1000 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn report(m: &BTreeMap<Key, f64>) -> String {
    let get = |path, family, column| m.get(&(path, family, column)).copied().unwrap_or(f64::NAN);
    let mut out = format!(
        "medians of {ROUNDS} interleaved rounds; ns per packet (kernel-measured)\n\n\
         | empty tcx program (floor) | IPv4 | IPv6 |\n|---|---:|---:|\n"
    );
    for path in [Row::EmptyRepeat, Row::EmptyDistinct] {
        let cells: Vec<String> = Family::ALL
            .iter()
            .map(|&f| format!("{:.1}", get(path, f, 0)))
            .collect();
        let _ = writeln!(out, "| {} | {} |", path.label().1, cells.join(" | "));
    }

    let heads: Vec<String> = SCALES
        .iter()
        .map(|&(r, s)| format!("{} rules / {} segments", count(r), count(s)))
        .collect();
    let _ = writeln!(
        out,
        "\n| segfw path | {} |\n|---|{}",
        heads.join(" | "),
        "---:|".repeat(SCALES.len())
    );
    for path in [Row::Established, Row::NewFlow] {
        for family in Family::ALL {
            let cells: Vec<String> = (0..SCALES.len())
                .map(|c| format!("{:.1}", get(path, family, c)))
                .collect();
            let (what, how) = path.label();
            let family = family.name();
            let _ = writeln!(out, "| {what}, {family} ({how}) | {} |", cells.join(" | "));
        }
    }

    // The two target lines keep their IPv4 wording (scripts/bench/report.py
    // parses them); the IPv6 ones follow with a ", IPv6" suffix.
    let top = SCALES.len() - 1;
    let _ = writeln!(out);
    for family in Family::ALL {
        let suffix = match family {
            Family::V4 => String::new(),
            Family::V6 => format!(", {}", family.name()),
        };
        let est = get(Row::Established, family, 0) / get(Row::EmptyRepeat, family, 0);
        let scale = get(Row::NewFlow, family, top) / get(Row::NewFlow, family, 0);
        let _ = writeln!(
            out,
            "established / empty{suffix}: {est:.2}x (target <= 2.0)"
        );
        let _ = writeln!(
            out,
            "new flow 100k rules / 10 rules{suffix}: {scale:.2}x (target <= 1.5)"
        );
    }
    out
}

/// A policy with `rules` allow rules over `segments` segments, each one
/// IPv4 /32 and one IPv6 /128 (Family::segment_addr); returns it with the
/// (from, to) segment indices that the last rule allows on PORT.
fn policy(rules: usize, segments: usize) -> (PolicyImage, usize, usize) {
    let mut toml =
        String::from("version = 1\n[defaults]\naction = \"deny\"\nfailsafe = []\n[segments]\n");
    for i in 0..segments {
        let v4 = Family::V4.segment_addr(i);
        let v6 = Family::V6.segment_addr(i);
        let _ = writeln!(toml, "s{i} = [\"{v4}/32\", \"{v6}/128\"]");
    }
    let pair = |r: usize| (r % segments, (r / segments + r + 1) % segments);
    for r in 0..rules {
        let (from, to) = pair(r);
        let port = if r + 1 == rules {
            PORT as usize
        } else {
            1000 + (r % 50_000)
        };
        let _ = writeln!(toml, "[[rules]]\nfrom = \"s{from}\"\nto = \"s{to}\"\nproto = \"tcp\"\nports = [{port}]\naction = \"allow\"");
    }
    let (from, to) = pair(rules - 1);
    let checked = segfw::policy::check_str(&toml, Path::new("bench.toml"))
        .expect("benchmark policy is valid");
    (checked.image.with_generation(1), from, to)
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
    fill_policy(&skel, image);
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

/// Mean kernel-measured ns over NEW_FLOWS distinct SYNs (source ports from
/// `first_port`), each run once.
fn time_new_flows(prog: &ProgramMut<'_>, src: IpAddr, dst: IpAddr, first_port: u16) -> f64 {
    let total: f64 = (0..NEW_FLOWS)
        .map(|i| {
            let frame = tcp_frame(src, first_port + i, dst, PORT, 0x02);
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

/// An Ethernet frame with a 20-byte TCP header (no options, no payload) over
/// IPv4 or IPv6; `src` and `dst` are of the same family.
fn tcp_frame(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: u8) -> Vec<u8> {
    const TCP_LEN: u16 = 20;
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(&[0x45, 0, 0, 20 + TCP_LEN as u8, 0, 1, 0x40, 0, 64, 6, 0, 0]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&TCP_LEN.to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("tcp_frame: {src} and {dst} are of different families"),
    }
    let mut tcp = [0u8; TCP_LEN as usize];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    f.extend_from_slice(&tcp);
    f
}

/// Fills and swaps in `image` as `policy apply` does, on the skeleton's maps.
fn fill_policy(skel: &SegfwSkel<'_>, image: &PolicyImage) {
    use segfw::datapath::{apply, maps::Maps};
    let image = image.clone().with_generation(1);
    let record = apply::set_record("benchmark policy", "", &image.runtime, None);
    let mut maps = Maps::of_skeleton(skel).expect("open the benchmark datapath's maps");
    apply::fill_and_swap(&mut maps, None, 0, &image, &record).expect("apply the policy");
}
