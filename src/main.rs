//! segfw CLI: parses arguments, runs one command, maps errors to exit codes
//! (0 ok, 1 runtime failure, 2 usage error or invalid policy).
use std::process::ExitCode;

use clap::Parser;
use segfw::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("segfw: {err:#}");
            ExitCode::from(segfw::exit_code(&err))
        }
    }
}
