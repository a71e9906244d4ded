//! `segfw events [--json] [--count N]`: stream verdict events until N have
//! been printed or SIGINT/SIGTERM.
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

use super::common::installed;
use crate::datapath::events::{Event, EventStream};

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
                println!("{}", text(&event));
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

/// One line: time, kind, verdict, where, the flow, the rule and the reason.
fn text(e: &Event) -> String {
    let iface = e
        .interface
        .clone()
        .unwrap_or_else(|| format!("ifindex {}", e.ifindex));
    let flow = if matches!(e.proto.as_str(), "tcp" | "udp" | "sctp") {
        format!(
            "{} -> {}",
            endpoint(e.src, e.sport),
            endpoint(e.dst, e.dport)
        )
    } else {
        format!("{} -> {}", e.src, e.dst)
    };
    format!(
        "{} {:<5} {:<4} {} {:<7} {:<6} {flow}  rule #{} {} ({})",
        e.time, e.kind, e.verdict, iface, e.direction, e.proto, e.rule_id, e.rule, e.reason
    )
}

/// addr:port, with IPv6 in brackets.
pub(super) fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}
