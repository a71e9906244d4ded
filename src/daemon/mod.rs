//! The long-running side of segfw: `segfw run` (attach, apply, re-apply
//! the policy file when it changes, log events, serve metrics, detach on
//! SIGINT/SIGTERM).
//!
//! This is application code driven by the CLI: it reports with anyhow and
//! context, as src/cli does, and builds on the typed layers below it
//! (datapath, policy). Its own reusable parts (watcher, metrics) have
//! thiserror enums.
pub mod metrics;
pub mod run;
pub mod watch;
