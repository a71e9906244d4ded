//! segfw CLI: parses arguments, runs one command, maps errors to exit codes
//! (0 ok, 1 runtime failure, 2 usage error or invalid policy).
use std::process::ExitCode;

use clap::Parser;
use segfw::cli::{self, Cli};

/// mimalloc: large policies are millions of small allocations (Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("segfw: {err:#}");
            ExitCode::from(segfw::exit_code(&err))
        }
    }
}

/// `segfw ... | head` should end quietly, as other CLI tools do, instead of
/// panicking on the closed pipe: Rust starts with SIGPIPE ignored.
fn restore_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL
    // installs no Rust handler, so nothing can run in signal context.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
