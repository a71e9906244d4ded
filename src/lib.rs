//! segfw: a microsegmentation firewall for Linux hosts, on eBPF tcx.
pub mod cli;
pub mod daemon;
pub mod datapath;
pub mod error;
pub mod parallel;
pub mod policy;
pub mod skel;

pub use cli::exit_code;
pub use error::UsageError;
