//! segfw: a microsegmentation firewall for Linux hosts, on eBPF tcx.
pub mod policy;
pub mod skel;
