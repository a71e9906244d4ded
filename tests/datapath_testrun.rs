//! BPF_PROG_TEST_RUN tests of the real compiled datapath on crafted packets.
#[path = "testrun_support/mod.rs"]
mod support;

use support::packet::*;
use support::*;

#[test]
fn programs_load_and_pass_non_ip() {
    if !is_root() {
        eprintln!("skipped: needs root for BPF");
        return;
    }
    let h = Harness::new();
    assert_eq!(h.run(INGRESS, &arp_frame()), PASS);
}
