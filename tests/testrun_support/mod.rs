//! BPF_PROG_TEST_RUN harness over the real compiled programs: a private,
//! unpinned instance per test, policies applied as `policy apply` does.
#![allow(dead_code)]
pub mod model;
pub mod packet;

use std::mem::{size_of, MaybeUninit};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject, ProgramInput};
use segfw::datapath::apply;
use segfw::datapath::explain::run_explain;
use segfw::datapath::maps::Maps;
use segfw::datapath::Direction;
use segfw::policy::image::PolicyImage;
use segfw::skel::types::{self, segfw_reason};
use segfw::skel::{bytes_of, from_bytes, SegfwSkel, SegfwSkelBuilder};

pub const PASS: u32 = u32::MAX; // TCX_NEXT (-1)
pub const DROP: u32 = 2; // TCX_DROP
pub const INGRESS: bool = true;
pub const EGRESS: bool = false;

/// What the explain program answered (enum segfw_explain_cb).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explained {
    pub pass: bool,
    pub reason: u32,
    pub rule_id: Option<u32>,
    pub ct_hit: bool,
}

pub struct Harness {
    pub skel: SegfwSkel<'static>,
    generation: u32,
}

/// Panics unless root: the tests that load the datapath are
/// `#[ignore = "needs root: ..."]`, and `make test` runs them as root.
fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "BPF_PROG_TEST_RUN needs root: run this test as root, as `make test` does"
    );
}

impl Harness {
    /// Loads the datapath, with its maps as declared.
    pub fn new() -> Self {
        Self::with_conntrack(None)
    }

    /// Loads the datapath; `conntrack_entries` sizes the conntrack map.
    pub fn with_conntrack(conntrack_entries: Option<u32>) -> Self {
        require_root();
        let storage: &'static mut MaybeUninit<OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = SegfwSkelBuilder::default()
            .open(storage)
            .expect("open the segfw BPF object");
        if let Some(n) = conntrack_entries {
            open.maps
                .conntrack
                .set_max_entries(n)
                .expect("size the conntrack map");
        }
        let skel = open.load().expect("load segfw programs (verifier)");
        Harness {
            skel,
            generation: 0,
        }
    }

    /// Writes `image` into policy set A and swaps it in, as apply does.
    pub fn apply(&mut self, image: &PolicyImage) {
        self.generation += 1;
        let image = image.clone().with_generation(self.generation);
        let record = apply::set_record("test policy", "", &image.runtime, None);
        let mut maps = Maps::of_skeleton(&self.skel).expect("open the test datapath's maps");
        apply::fill_and_swap(&mut maps, None, 0, &image, &record)
            .expect("apply the policy to the test datapath");
    }

    fn prog(&self, ingress: bool) -> &libbpf_rs::ProgramMut<'static> {
        if ingress {
            &self.skel.progs.segfw_ingress
        } else {
            &self.skel.progs.segfw_egress
        }
    }

    /// Runs one frame through the ingress or egress program; the return code.
    pub fn run(&self, ingress: bool, frame: &[u8]) -> u32 {
        self.try_run(ingress, frame).expect("BPF_PROG_TEST_RUN")
    }

    pub fn try_run(&self, ingress: bool, frame: &[u8]) -> libbpf_rs::Result<u32> {
        let out = self.prog(ingress).test_run(ProgramInput {
            data_in: Some(frame),
            ..Default::default()
        })?;
        Ok(out.return_value)
    }

    /// Runs a frame through the explain program as a packet of the ingress
    /// or egress program: no side effects, answer in cb.
    pub fn explain(&self, ingress: bool, frame: &[u8]) -> (u32, Explained) {
        self.try_explain(ingress, frame)
            .expect("BPF_PROG_TEST_RUN (explain)")
    }

    /// `explain`, with the kernel's refusal (e.g. EINVAL for an IPv4 frame
    /// too short for an IP header) returned instead of panicking.
    pub fn try_explain(&self, ingress: bool, frame: &[u8]) -> libbpf_rs::Result<(u32, Explained)> {
        let direction = if ingress {
            Direction::Ingress
        } else {
            Direction::Egress
        };
        let (rc, words) = run_explain(&self.skel.progs.segfw_explain, frame, direction)
            .map_err(libbpf_rs::Error::from)?;
        let words = words.expect("the explain program answers every probe");
        Ok((
            rc,
            Explained {
                pass: words.verdict & 1 == 1,
                reason: words.verdict >> 8,
                rule_id: (words.rule != types::segfw_explain_cb::SEGFW_EXPLAIN_NO_RULE.0)
                    .then_some(words.rule),
                ct_hit: words.ct_hit == 1,
            },
        ))
    }

    /// Runs one frame through an attached (ingress or egress) program with
    /// `cb` as the __sk_buff's cb words, as a tc program ahead of segfw may
    /// leave them; the return code.
    pub fn run_with_cb(&self, ingress: bool, frame: &[u8], cb: [u32; 5]) -> u32 {
        let mut ctx_in = vec![0u8; size_of::<types::__sk_buff>()];
        let at = std::mem::offset_of!(types::__sk_buff, cb);
        for (i, word) in cb.iter().enumerate() {
            ctx_in[at + 4 * i..at + 4 * i + 4].copy_from_slice(&word.to_ne_bytes());
        }
        self.prog(ingress)
            .test_run(ProgramInput {
                data_in: Some(frame),
                context_in: Some(&mut ctx_in),
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN with cb")
            .return_value
    }

    /// Packets counted under `reason`, summed over CPUs.
    pub fn reason_count(&self, reason: segfw_reason) -> u64 {
        let per_cpu = self
            .skel
            .maps
            .reason_stats
            .lookup_percpu(&u32::from(reason.0).to_ne_bytes(), MapFlags::ANY)
            .expect("read reason_stats")
            .expect("reason in range");
        per_cpu
            .iter()
            .map(|b| u64::from_ne_bytes(b[..8].try_into().unwrap()))
            .sum()
    }

    /// Packets counted for `rule_id`, summed over CPUs.
    pub fn rule_packets(&self, rule_id: u32) -> u64 {
        let per_cpu = self
            .skel
            .maps
            .rule_stats
            .lookup_percpu(&rule_id.to_ne_bytes(), MapFlags::ANY)
            .expect("read rule_stats")
            .expect("rule id in range");
        per_cpu
            .iter()
            .map(|b| from_bytes::<types::segfw_rule_stats>(b).unwrap().packets)
            .sum()
    }

    pub fn conntrack_len(&self) -> usize {
        self.skel.maps.conntrack.keys().count()
    }

    pub fn conntrack_entries(&self) -> Vec<(types::segfw_ct_key, types::segfw_ct_value)> {
        let map = &self.skel.maps.conntrack;
        map.keys()
            .filter_map(|k| {
                let v = map.lookup(&k, MapFlags::ANY).ok()??;
                Some((from_bytes(&k)?, from_bytes(&v)?))
            })
            .collect()
    }

    /// Remembered first fragments (and orphan notes), by key.
    pub fn frag_entries(&self) -> Vec<(types::segfw_frag_key, types::segfw_frag_value)> {
        let map = &self.skel.maps.frags;
        map.keys()
            .filter_map(|k| {
                let v = map.lookup(&k, MapFlags::ANY).ok()??;
                Some((from_bytes(&k)?, from_bytes(&v)?))
            })
            .collect()
    }

    /// Makes every fragment memory `secs` older, as if that time had passed.
    pub fn age_frags(&self, secs: u64) {
        for (key, mut value) in self.frag_entries() {
            value.seen_ns = value.seen_ns.saturating_sub(secs * 1_000_000_000);
            self.skel
                .maps
                .frags
                .update(bytes_of(&key), bytes_of(&value), MapFlags::EXIST)
                .expect("age a frags entry");
        }
    }

    pub fn flush_frags(&self) {
        let keys: Vec<Vec<u8>> = self.skel.maps.frags.keys().collect();
        for k in keys {
            let _ = self.skel.maps.frags.delete(&k);
        }
    }

    /// Forgets every flow: conntrack entries and each CPU's flow cache, as
    /// `segfw conntrack flush` does.
    pub fn flush_conntrack(&self) {
        let keys: Vec<Vec<u8>> = self.skel.maps.conntrack.keys().collect();
        for k in keys {
            let _ = self.skel.maps.conntrack.delete(&k);
        }
        let cache = &self.skel.maps.flow_cache;
        let cpus = libbpf_rs::num_possible_cpus().expect("count CPUs");
        let zeros = vec![vec![0u8; cache.value_size() as usize]; cpus];
        cache
            .update_percpu(&0u32.to_ne_bytes(), &zeros, MapFlags::ANY)
            .expect("clear flow_cache");
    }
}
