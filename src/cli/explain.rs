//! `segfw explain --src IP[:PORT] --dst IP[:PORT] --proto P [--dir ingress|egress] [--json]`:
//! what the loaded program would do with such a packet, without side effects.
use std::path::Path;

use anyhow::Context;

use super::common::{installed, print_json};
use crate::datapath::events::endpoint;
use crate::datapath::explain::{explain, parse_endpoint, Explanation, Probe};
use crate::datapath::Direction;
use crate::policy::model::Proto;
use crate::policy::validate::values::{icmp_type_name, proto_from_name, proto_number};
use crate::UsageError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Source address; for tcp/udp/sctp with a port (default 40000).
    #[arg(long, value_name = "IP[:PORT]")]
    pub src: String,
    /// Destination address; the port is required for tcp/udp/sctp.
    #[arg(long, value_name = "IP[:PORT]")]
    pub dst: String,
    /// tcp, udp, icmp, icmpv6, sctp, or a protocol number 0-255.
    #[arg(long, value_name = "P")]
    pub proto: String,
    /// Decide as the ingress or the egress program would.
    #[arg(long, value_name = "ingress|egress", default_value = "ingress")]
    pub dir: Direction,
    /// ICMP type for icmp/icmpv6, by name or number (default echo-request).
    #[arg(long, value_name = "N")]
    pub icmp_type: Option<String>,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    // The probe is checked before the instance: a typo exits 2 anywhere.
    let probe = probe(&args)?;
    let pins = installed(pin_dir)?.read_only();
    let answer = explain(&pins, &probe).with_context(|| {
        format!(
            "explain an {} packet with the explain program of the segfw instance in {}",
            probe.direction,
            pin_dir.display()
        )
    })?;
    if args.json {
        return print_json(&answer);
    }
    print_text(&answer);
    Ok(())
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

fn probe(args: &Args) -> anyhow::Result<Probe> {
    let src = parse_endpoint(&args.src).map_err(|e| usage(format!("--src: {e}")))?;
    let dst = parse_endpoint(&args.dst).map_err(|e| usage(format!("--dst: {e}")))?;
    let proto = parse_proto(&args.proto)?;
    let icmp_type = match &args.icmp_type {
        None => None,
        Some(text) => Some(match text.parse::<u8>() {
            Ok(number) => number,
            Err(_) => icmp_type_name(proto, text)
                .map_err(|(_, msg)| usage(format!("--icmp-type: {msg}")))?,
        }),
    };
    Probe::new(src, dst, proto, icmp_type, args.dir).map_err(|e| usage(e.to_string()))
}

/// The policy's protocol names and numbers; "any" is not one packet.
fn parse_proto(text: &str) -> anyhow::Result<u8> {
    let parsed = match text.parse::<i64>() {
        Ok(n) => proto_number(n),
        Err(_) => proto_from_name(text),
    };
    match parsed.map_err(|(_, msg)| usage(format!("--proto: {msg}")))? {
        Proto::Number(n) => Ok(n),
        Proto::Any => Err(usage(
            "--proto: a packet has one protocol; give tcp, udp, icmp, icmpv6, sctp or a number, not any",
        )),
    }
}

fn print_text(a: &Explanation) {
    let flow = match a.icmp_type {
        Some(ty) => format!("{} -> {} type {ty}", a.src, a.dst),
        None if a.sport != 0 || a.dport != 0 => format!(
            "{} -> {}",
            endpoint(a.src, a.sport),
            endpoint(a.dst, a.dport)
        ),
        None => format!("{} -> {}", a.src, a.dst),
    };
    println!(
        "{} {flow} on {} (policy generation {})",
        a.proto, a.direction, a.generation
    );
    println!("verdict:   {}", a.verdict.as_str());
    match (a.rule_id, &a.rule) {
        (Some(id), Some(name)) => println!("rule:      #{id} {name}"),
        _ => println!("rule:      none (decided before any rule was consulted)"),
    }
    println!("reason:    {}", a.reason);
    println!(
        "conntrack: {}",
        if a.conntrack_hit {
            "hit (a tracked flow)"
        } else {
            "miss (decided as a new flow)"
        }
    );
}
