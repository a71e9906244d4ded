//! Conntrack at scale via BPF_PROG_TEST_RUN on the real programs: N distinct
//! TCP flows open with a SYN on ingress, then each flow's SYN-ACK leaves on
//! egress; a reply that finds its conntrack entry passes as established, one
//! whose entry was evicted meets the default deny. Per scale: flows created,
//! entries in the map, replies that found their entry, time to create, and
//! the memory the kernel charges for the maps (fdinfo `memlock`).
//!
//! If the LRU map loses flows before it is full, larger sizes are tried for
//! the largest scale until one keeps every flow.
//!
//! Run as root: `cargo run --release --example bench_conntrack`
use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapMut, OpenObject, ProgramInput, ProgramMut};
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use segfw::skel::types::segfw_reason;
use segfw::skel::{SegfwSkel, SegfwSkelBuilder};

/// (conntrack max_entries, flows): the default size with 100k flows, and
/// 1,048,576 entries with 1M flows.
const SCALES: [(u32, u32); 2] = [(262_144, 100_000), (1_048_576, 1_000_000)];
/// Both sizes filled to exactly their capacity: does the LRU map keep every
/// flow up to full, or evict before (its free lists are per CPU)? Then past
/// it, to show that the count does see evictions.
const AT_CAPACITY: [(u32, u32); 3] = [
    (262_144, 262_144),
    (1_048_576, 1_048_576),
    (262_144, 300_000),
];
/// Sizes tried, in order, for the largest scale if it loses flows.
const LARGER: [u32; 3] = [1_179_648, 1_310_720, 1_572_864];
/// Return code of a dropped packet (SEGFW_RET_DROP, bpf/segfw.bpf.c).
const RET_DROP: u32 = 2;
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PORT: u16 = 80;
/// Flows switch CPU every CHUNK flows, round robin over every CPU, as
/// traffic spread by RSS would: each CPU takes free entries from its own
/// local list of the LRU map.
const CHUNK: u32 = 4096;
/// Flow i comes from client address i / PORTS_PER_CLIENT, source port
/// FIRST_SPORT + i % PORTS_PER_CLIENT.
const PORTS_PER_CLIENT: u32 = 50_000;
const FIRST_SPORT: u32 = 10_000;
const POLICY: &str = r#"version = 1
[defaults]
action = "deny"
failsafe = []
[segments]
clients = ["10.128.0.0/16"]
server = ["10.0.0.1/32"]
[[rules]]
from = "clients"
to = "server"
proto = "tcp"
ports = [80]
action = "allow"
"#;

/// What one scale measured.
struct Outcome {
    max_entries: u32,
    flows: u32,
    syn_passed: u32,
    entries: usize,
    replies_tracked: u64,
    create: Duration,
    syn_kernel_ns: f64,
    conntrack_memlock: u64,
    total_memlock: u64,
}

impl Outcome {
    fn lost(&self) -> u64 {
        u64::from(self.flows) - self.replies_tracked
    }
}

fn main() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut outcomes: Vec<Outcome> = SCALES.iter().map(|&(m, f)| measure(m, f, cpus)).collect();
    let (_, top_flows) = SCALES[SCALES.len() - 1];
    for size in LARGER {
        if outcomes.last().is_some_and(|o| o.lost() == 0) {
            break;
        }
        outcomes.push(measure(size, top_flows, cpus));
    }
    outcomes.extend(AT_CAPACITY.iter().map(|&(m, f)| measure(m, f, cpus)));
    pin_to(None);
    print!("{}", report(&outcomes, cpus));
}

/// Loads a fresh datapath with `max_entries` conntrack entries, opens
/// `flows` flows and sends each one's reply, over `cpus` CPUs.
fn measure(max_entries: u32, flows: u32, cpus: usize) -> Outcome {
    let skel = load_segfw(max_entries);
    let ingress = &skel.progs.segfw_ingress;
    let egress = &skel.progs.segfw_egress;

    let start = Instant::now();
    let (syn_passed, syn_ns) = run_all(ingress, flows, cpus, |i| {
        tcp_frame(client(i), sport(i), SERVER, PORT, 0x02)
    });
    let create = start.elapsed();
    let entries = skel.maps.conntrack.keys().count();

    let before = reason_count(&skel, segfw_reason::SEGFW_PASS_ESTABLISHED);
    run_all(egress, flows, cpus, |i| {
        tcp_frame(SERVER, PORT, client(i), sport(i), 0x12)
    });
    let replies_tracked = reason_count(&skel, segfw_reason::SEGFW_PASS_ESTABLISHED) - before;

    Outcome {
        max_entries,
        flows,
        syn_passed,
        entries,
        replies_tracked,
        create,
        syn_kernel_ns: syn_ns / f64::from(flows),
        conntrack_memlock: memlock(&skel.maps.conntrack),
        total_memlock: all_maps(&skel).iter().map(|m| memlock(m)).sum(),
    }
}

fn client(i: u32) -> Ipv4Addr {
    let k = i / PORTS_PER_CLIENT;
    Ipv4Addr::new(10, 128, (k >> 8) as u8, k as u8)
}

fn sport(i: u32) -> u16 {
    (FIRST_SPORT + i % PORTS_PER_CLIENT) as u16
}

/// Runs the frame of each flow 0..flows once, CHUNK flows per CPU in turn;
/// returns how many passed and the kernel-measured ns, summed.
fn run_all(
    prog: &ProgramMut<'_>,
    flows: u32,
    cpus: usize,
    frame: impl Fn(u32) -> Vec<u8>,
) -> (u32, f64) {
    let mut passed = 0;
    let mut ns = 0.0;
    for i in 0..flows {
        if i % CHUNK == 0 {
            pin_to(Some((i / CHUNK) as usize % cpus));
        }
        let frame = frame(i);
        let out = prog
            .test_run(ProgramInput {
                data_in: Some(&frame),
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        passed += u32::from(out.return_value != RET_DROP);
        ns += out.duration.as_nanos() as f64;
    }
    (passed, ns)
}

/// Pins this thread to one CPU (BPF_PROG_TEST_RUN runs there), or, with
/// None, lets it run on any (the kernel ignores CPUs the machine lacks).
fn pin_to(cpu: Option<usize>) {
    let mut set = CpuSet::new();
    for c in cpu.map_or(0..CpuSet::count(), |c| c..c + 1) {
        set.set(c).expect("CPU within CpuSet::count()");
    }
    sched_setaffinity(Pid::from_raw(0), &set).expect("sched_setaffinity");
}

/// Packets counted under `reason`, over all CPUs.
fn reason_count(skel: &SegfwSkel<'_>, reason: segfw_reason) -> u64 {
    let per_cpu = skel
        .maps
        .reason_stats
        .lookup_percpu(&u32::from(reason.0).to_ne_bytes(), MapFlags::ANY)
        .expect("read reason_stats")
        .expect("reason is in range");
    per_cpu
        .iter()
        .map(|v| u64::from_ne_bytes(v[..8].try_into().expect("u64 counter")))
        .sum()
}

fn all_maps<'a>(skel: &'a SegfwSkel<'_>) -> [&'a MapMut<'a>; 14] {
    let m = &skel.maps;
    [
        &m.policy_a,
        &m.policy_b,
        &m.policy_outer,
        &m.meta_a,
        &m.meta_b,
        &m.runtime,
        &m.conntrack,
        &m.flow_cache,
        &m.frags,
        &m.rule_stats,
        &m.reason_stats,
        &m.events,
        &m.ratelimit,
        &m.rodata,
    ]
}

/// Bytes the kernel charges for a map: the `memlock:` line of its fdinfo.
fn memlock(map: &MapMut<'_>) -> u64 {
    let fd = map.as_fd().as_raw_fd();
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).expect("map fdinfo");
    info.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("memlock line in map fdinfo")
}

fn load_segfw(conntrack_entries: u32) -> SegfwSkel<'static> {
    let storage = Box::leak(Box::new(MaybeUninit::<OpenObject>::uninit()));
    let mut open = SegfwSkelBuilder::default()
        .open(storage)
        .expect("open segfw.bpf.o");
    open.maps
        .conntrack
        .set_max_entries(conntrack_entries)
        .expect("size conntrack");
    let skel = open.load().expect("load segfw");
    let checked = segfw::policy::check_str(POLICY, Path::new("bench-conntrack.toml"))
        .expect("benchmark policy is valid");
    fill_policy(&skel, &checked.image);
    skel
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn report(outcomes: &[Outcome], cpus: usize) -> String {
    let mut out = format!(
        "flows switch CPU every {CHUNK} flows, round robin over {cpus} CPUs; \
         a reply is tracked if it passed as established\n\n\
         | conntrack max_entries | flows opened | SYNs passed | entries in map | \
         replies tracked | lost | time to create | ns/SYN (kernel) | conntrack memlock | \
         all maps memlock |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for o in outcomes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.2} s | {:.0} | {} | {} |",
            o.max_entries,
            o.flows,
            o.syn_passed,
            o.entries,
            o.replies_tracked,
            o.lost(),
            o.create.as_secs_f64(),
            o.syn_kernel_ns,
            mib(o.conntrack_memlock),
            mib(o.total_memlock),
        );
    }
    let _ = writeln!(out);
    for o in outcomes {
        let verdict = match (o.lost(), o.flows.checked_sub(o.max_entries)) {
            (0, _) => "every flow tracked".to_string(),
            (lost, Some(over)) => format!("{lost} flows lost ({over} over capacity)"),
            (lost, None) => format!("{lost} flows lost before the map was full"),
        };
        let _ = writeln!(
            out,
            "conntrack {} flows in {} entries: {verdict}",
            o.flows, o.max_entries
        );
    }
    out
}

/// An Ethernet + IPv4 + 20-byte TCP header frame (no payload).
fn tcp_frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    f.extend_from_slice(&tcp);
    f
}

/// Fills and swaps in `image` as `policy apply` does, on the skeleton's maps.
fn fill_policy(skel: &SegfwSkel<'_>, image: &segfw::policy::image::PolicyImage) {
    use segfw::datapath::{apply, maps::Maps};
    let image = image.clone().with_generation(1);
    let record = apply::set_record("benchmark policy", "", &image.runtime, None);
    let mut maps = Maps::of_skeleton(skel).expect("open the benchmark datapath's maps");
    apply::fill_and_swap(&mut maps, None, 0, &image, &record).expect("apply the policy");
}
