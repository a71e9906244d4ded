//! The libbpf skeleton generated from bpf/segfw.bpf.c, and with it every type
//! that crosses the kernel/user boundary (bpf/segfw_shared.h).
#![allow(
    clippy::all,
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case
)]
include!(concat!(env!("OUT_DIR"), "/segfw.skel.rs"));

use types::*;

// SAFETY: these are the #[repr(C)] types generated from bpf/segfw_shared.h.
// Every one is made of integers and byte arrays with explicit padding fields,
// so any bit pattern is a valid value and there are no implicit padding bytes.
unsafe impl plain::Plain for segfw_policy_key {}
unsafe impl plain::Plain for segfw_policy_value {}
unsafe impl plain::Plain for segfw_rule_key {}
// SAFETY: a union of 16 bytes and segfw_rule_key (integers only, 16 bytes):
// every bit pattern is a valid value of both members.
unsafe impl plain::Plain for segfw_key_data {}
unsafe impl plain::Plain for segfw_meta_key {}
unsafe impl plain::Plain for segfw_meta_value {}
unsafe impl plain::Plain for segfw_runtime {}
unsafe impl plain::Plain for segfw_ct_key {}
unsafe impl plain::Plain for segfw_ct_value {}
unsafe impl plain::Plain for segfw_flow_cache {}
unsafe impl plain::Plain for segfw_frag_key {}
unsafe impl plain::Plain for segfw_frag_value {}
unsafe impl plain::Plain for segfw_rule_stats {}
unsafe impl plain::Plain for segfw_ratelimit {}
unsafe impl plain::Plain for segfw_event {}
unsafe impl plain::Plain for segfw_link_key {}
unsafe impl plain::Plain for segfw_link_record {}
unsafe impl plain::Plain for segfw_daemon_record {}
unsafe impl plain::Plain for segfw_set_record {}

/// The bytes of a shared type, as a map key or value.
pub fn bytes_of<T: plain::Plain>(value: &T) -> &[u8] {
    // SAFETY: T is Plain (see above): no padding bytes, so all bytes are initialised.
    unsafe { plain::as_bytes(value) }
}

/// A shared type read back from map bytes; None if `bytes` is too short.
pub fn from_bytes<T: plain::Plain + Default>(bytes: &[u8]) -> Option<T> {
    let mut value = T::default();
    plain::copy_from_bytes(&mut value, bytes).ok()?;
    Some(value)
}

/// The empty tcx program: the floor that benchmarks compare against.
pub mod empty {
    #![allow(clippy::all, missing_docs, non_camel_case_types, non_snake_case)]
    include!(concat!(env!("OUT_DIR"), "/empty.skel.rs"));
}
