//! `segfw events [--json] [--count N]`: stream verdict events until N have
//! been printed or SIGINT/SIGTERM.
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

use super::common::installed;
use crate::datapath::events::EventStream;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit after N events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    let pins = installed(pin_dir)?;
    let stream = EventStream::open(&pins).with_context(|| {
        format!(
            "open the event stream of the segfw instance in {}",
            pin_dir.display()
        )
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    ctrlc::set_handler(move || on_signal.store(true, Ordering::Relaxed))
        .context("install the SIGINT/SIGTERM handler")?;
    eprintln!(
        "segfw: streaming events from {} (one reader at a time; Ctrl-C stops)",
        stream.path().display()
    );

    let mut printed = 0u64;
    stream
        .run(&stop, |event| {
            if args.json {
                match serde_json::to_string(&event) {
                    Ok(line) => println!("{line}"),
                    Err(e) => eprintln!("segfw: encode event: {e}"),
                }
            } else {
                println!("{event}");
            }
            printed += 1;
            if args.count.is_some_and(|n| printed >= n) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .with_context(|| format!("stream events from {}", stream.path().display()))
}
