//! Policy compile benchmark (not a test): generates policies of 10 to 100k
//! rules over 10 to 10k segments and prints parse/validate and compile
//! times and image sizes. Run: `scripts/bench_compile.sh` (or
//! `cargo bench --bench bench_compile`; release profile).
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use segfw::policy::{compile, parse_str};

/// (rules, segments) of each generated policy.
const SIZES: &[(usize, usize)] = &[(10, 10), (1_000, 100), (10_000, 1_000), (100_000, 10_000)];

/// Deterministic pseudo-random numbers (a 64-bit LCG), so runs compare.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Segments seg<i>: an IPv4 /24 each, every other one also an IPv6 /64.
/// Rules, shaped like real ones: mostly segment -> segment on one TCP or
/// UDP port, some port ranges and ICMP, a few to world / "*" / one of 16
/// external CIDRs, one in eight a deny.
fn generate(rules: usize, segments: usize, rng: &mut Lcg) -> String {
    let mut out = String::from("version = 1\n[defaults]\naction = \"deny\"\n[segments]\n");
    for i in 0..segments {
        let (hi, lo) = (i / 256, i % 256);
        let _ = write!(out, "seg{i} = [\"10.{hi}.{lo}.0/24\"");
        if i % 2 == 0 {
            let _ = write!(out, ", \"fd00:{hi:x}:{lo:x}::/64\"");
        }
        out.push_str("]\n");
    }
    for _ in 0..rules {
        let from = format!("\"seg{}\"", rng.below(segments));
        let to = match rng.below(50) {
            0 => "\"world\"".to_string(),
            1 => "\"*\"".to_string(),
            2 | 3 => format!("\"192.168.{}.0/24\"", rng.below(16)),
            _ => format!("\"seg{}\"", rng.below(segments)),
        };
        let action = if rng.below(8) == 0 { "deny" } else { "allow" };
        let (proto, ports) = match rng.below(10) {
            0 => ("icmp", "icmp_types = [\"echo-request\"]\n".to_string()),
            1 | 2 => ("udp", format!("ports = [{}]\n", 1 + rng.below(65535))),
            3 => {
                let lo = 1 + rng.below(60000);
                (
                    "tcp",
                    format!("ports = [\"{lo}-{}\"]\n", lo + rng.below(100)),
                )
            }
            _ => ("tcp", format!("ports = [{}]\n", 1 + rng.below(65535))),
        };
        let _ = write!(
            out,
            "[[rules]]\nfrom = {from}\nto = {to}\nproto = \"{proto}\"\n{ports}action = \"{action}\"\n"
        );
    }
    out
}

/// The fastest of `runs` runs of `f`, and its last result.
fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut result = None;
    for _ in 0..runs {
        let start = Instant::now();
        let value = f();
        best = best.min(start.elapsed());
        result = Some(value);
    }
    (best, result.expect("at least one run"))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn main() {
    println!(
        "| rules   | segments | prefixes | TOML MiB | parse+validate ms | compile ms | trie entries | rule entries | trie KiB | meta KiB |"
    );
    println!(
        "|--------:|---------:|---------:|---------:|------------------:|-----------:|-------------:|-------------:|---------:|---------:|"
    );
    let mut rng = Lcg(0x5e6f_7701);
    for &(rules, segments) in SIZES {
        let src = generate(rules, segments, &mut rng);
        let runs = if rules >= 100_000 { 3 } else { 10 };
        let (parse_time, model) = best_of(runs, || {
            parse_str(&src, Path::new("bench.toml")).expect("generated policy is valid")
        });
        let (compile_time, image) =
            best_of(runs, || compile::compile(&model).expect("fits the maps"));
        let s = image.summary;
        let trie_bytes = image.trie.len() * 32;
        let meta_bytes = image.meta.len() * 136;
        println!(
            "| {rules:>7} | {segments:>8} | {:>8} | {:>8.2} | {:>17} | {:>10} | {:>12} | {:>12} | {:>8} | {:>8} |",
            s.prefixes,
            src.len() as f64 / (1 << 20) as f64,
            ms(parse_time),
            ms(compile_time),
            s.trie_entries,
            s.rule_entries,
            trie_bytes / 1024,
            meta_bytes / 1024,
        );
    }
}
