//! What the verifier spends on each program of the datapath: loads the
//! skeleton (unpinned) with the kernel's BPF_LOG_STATS log level on every
//! program and prints, per program, the instructions it processed, its
//! total and peak states and its verification time; then the wall time of
//! the whole load (open, create the maps, verify all programs), as
//! `segfw attach` pays it on a fresh pin dir, without the log.
//!
//! Run as root: `cargo run --release --example verifier_stats`
use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{OpenObject, PrintLevel};
use segfw::skel::SegfwSkelBuilder;

/// The kernel's BPF_LOG_STATS: only the summary lines of each load.
const BPF_LOG_STATS: u32 = 4;
/// Plain loads timed; the report gives the fastest and the median.
const LOADS: usize = 5;

/// libbpf's debug output of the stats load (it prints each program's
/// kernel log there).
static LOG: Mutex<String> = Mutex::new(String::new());

fn capture(level: PrintLevel, text: String) {
    if level == PrintLevel::Debug {
        LOG.lock().expect("log lock").push_str(&text);
    } else {
        eprint!("{text}");
    }
}

/// The summary of one program's verification.
#[derive(Debug, Default)]
struct Stats {
    insns: u64,
    total_states: u64,
    peak_states: u64,
    usec: u64,
}

fn main() -> ExitCode {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("verifier_stats: needs root (loads BPF programs)");
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verifier_stats: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let names = stats_load()?;
    let log = std::mem::take(&mut *LOG.lock().expect("log lock"));
    println!("| program | processed insns | total states | peak states | verification |");
    println!("|---|---:|---:|---:|---:|");
    let mut sum = Stats::default();
    for name in &names {
        let stats = parse_stats(&log, name).ok_or_else(|| {
            format!("no BPF_LOG_STATS summary for program {name} in libbpf's log")
        })?;
        println!(
            "| {name} | {} | {} | {} | {:.3} s |",
            thousands(stats.insns),
            thousands(stats.total_states),
            thousands(stats.peak_states),
            stats.usec as f64 / 1e6
        );
        sum.insns += stats.insns;
        sum.total_states += stats.total_states;
        sum.usec += stats.usec;
    }
    println!(
        "| all {} | {} | {} | | {:.3} s |",
        names.len(),
        thousands(sum.insns),
        thousands(sum.total_states),
        sum.usec as f64 / 1e6
    );
    let mut times: Vec<Duration> = (0..LOADS).map(|_| timed_load()).collect::<Result<_, _>>()?;
    times.sort();
    println!(
        "\nwhole load (open, maps, verify all {} programs), {LOADS} loads: fastest {:.3} s, \
         median {:.3} s",
        names.len(),
        times[0].as_secs_f64(),
        times[LOADS / 2].as_secs_f64()
    );
    Ok(())
}

/// Loads once with BPF_LOG_STATS on every program; the programs' names.
fn stats_load() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let previous = libbpf_rs::set_print(Some((PrintLevel::Debug, capture)));
    let mut storage = MaybeUninit::<OpenObject>::uninit();
    let mut open = SegfwSkelBuilder::default().open(&mut storage)?;
    let mut names = Vec::new();
    for mut prog in open.open_object_mut().progs_mut() {
        prog.set_log_level(BPF_LOG_STATS);
        names.push(prog.name().to_string_lossy().into_owned());
    }
    let loaded = open.load();
    libbpf_rs::set_print(previous);
    drop(loaded?);
    Ok(names)
}

/// One load without the log, as the loader does it.
fn timed_load() -> Result<Duration, Box<dyn std::error::Error>> {
    let mut storage = MaybeUninit::<OpenObject>::uninit();
    let start = Instant::now();
    let open = SegfwSkelBuilder::default().open(&mut storage)?;
    let skel = open.load()?;
    let took = start.elapsed();
    drop(skel);
    Ok(took)
}

/// The kernel's summary lines of `prog` in libbpf's log:
///   processed N insns (limit 1000000) max_states_per_insn M total_states T peak_states P mark_read R
///   verification time U usec
fn parse_stats(log: &str, prog: &str) -> Option<Stats> {
    let begin = format!("prog '{prog}': -- BEGIN PROG LOAD LOG --");
    let block = &log[log.find(&begin)? + begin.len()..];
    let block = &block[..block.find("-- END PROG LOAD LOG --")?];
    let word_after = |line: &str, key: &str| -> Option<u64> {
        let mut words = line.split_whitespace();
        words.find(|w| *w == key)?;
        words.next()?.parse().ok()
    };
    let processed = block.lines().find(|l| l.starts_with("processed "))?;
    let time = block
        .lines()
        .find(|l| l.starts_with("verification time "))?;
    Some(Stats {
        insns: word_after(processed, "processed")?,
        total_states: word_after(processed, "total_states")?,
        peak_states: word_after(processed, "peak_states")?,
        usec: word_after(time, "time")?,
    })
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
