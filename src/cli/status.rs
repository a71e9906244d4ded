//! `segfw status [--json]`: attachments, programs, live policy, map fill.
use std::path::Path;

use anyhow::Context;

use super::common::{print_json, short_hash};
use crate::datapath::pins::PinDir;
use crate::datapath::status::{status, DaemonStatus, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    let pins = PinDir::new(pin_dir).read_only();
    let report =
        status(&pins).with_context(|| format!("read segfw status in {}", pin_dir.display()))?;
    if args.json {
        print_json(&report)
    } else {
        print_text(&report);
        Ok(())
    }
}

fn print_text(s: &Status) {
    if !s.installed {
        println!(
            "segfw is not installed in {} (run `segfw attach IFACE --policy FILE`)",
            s.pin_dir
        );
        if let Some(n) = &s.nesting {
            println!("WARNING: {n}");
        }
        return;
    }
    println!("segfw instance {}", s.pin_dir);
    if let Some(n) = &s.nesting {
        println!("WARNING: {n}");
    }
    if let Some(ns) = &s.netns {
        println!("network namespace: {ns}");
    }
    if let Some(p) = &s.programs {
        match p.explain {
            Some(explain) => println!(
                "programs: ingress id {}, egress id {}, explain id {explain}",
                p.ingress, p.egress
            ),
            None => println!(
                "programs: ingress id {}, egress id {}, explain missing (`segfw explain` cannot \
                 run; `segfw uninstall` and a new attach pin it again)",
                p.ingress, p.egress
            ),
        }
    }
    if let Some(d) = &s.daemon {
        print_daemon(d);
    }
    if s.attachments.is_empty() {
        println!("attachments: none");
    } else {
        println!("attachments:");
    }
    for a in &s.attachments {
        let link = a.link_id.map_or(String::new(), |id| format!(" link {id}"));
        let live = match (&a.problem, a.live) {
            (None, true) => "live".to_string(),
            (Some(p), true) => format!("live, but {p}"),
            (Some(p), false) => format!("NOT LIVE: {p}"),
            (None, false) => "NOT LIVE (interface gone or hook removed; detach it)".to_string(),
        };
        println!(
            "  {:<16} {:<7} {:<3} prog {}{link}  {live}",
            a.interface, a.direction, a.mode, a.prog_id
        );
    }
    if let Some(w) = &s.netns_warning {
        println!("WARNING: {w}");
    }
    match &s.policy {
        None if s.policy_unknown.is_some() => println!(
            "policy: UNKNOWN ({})",
            s.policy_unknown.as_deref().unwrap_or_default()
        ),
        None => println!("policy: none applied (all traffic passes)"),
        Some(p) => println!(
            "policy: generation {}, {}, default {}, sha256 {}, from {}",
            p.generation,
            serde_plain(&p.mode),
            serde_plain(&p.default_action),
            p.sha256.as_deref().map_or("?".to_string(), short_hash),
            p.source.as_deref().unwrap_or("?")
        ),
    }
    if let Some(p) = &s.policy {
        let ra = p.router_advertisements.summary();
        println!("router advertisements and redirects: {ra}, hop limit 255");
    }
    if let Some(c) = s
        .policy
        .as_ref()
        .and_then(|p| p.pending_confirmation.as_ref())
    {
        let restores = match c.rollback_to_generation {
            0 => "no policy (all traffic passes)".to_string(),
            g => format!("generation {g}"),
        };
        let when = if c.overdue {
            "OVERDUE: the rollback watchdog is gone; confirm, or apply the previous policy"
                .to_string()
        } else {
            format!("in {}s", c.remaining_s)
        };
        println!(
            "pending confirmation: generation {} rolls back to {restores} at {} ({when}) \
             unless `segfw policy confirm` runs first",
            c.generation, c.deadline
        );
    }
    for d in &s.damaged {
        println!("DAMAGED: {d}");
    }
    if let Some(m) = &s.maps {
        println!(
            "maps: conntrack {}/{}, policy trie {}/{}, {} rules, {} segments, {:.1} MiB locked",
            m.conntrack_entries,
            m.conntrack_max,
            m.trie_entries,
            m.trie_max,
            m.rules,
            m.segments,
            m.memlock_bytes as f64 / (1024.0 * 1024.0)
        );
    }
}

fn print_daemon(d: &DaemonStatus) {
    let interfaces = if d.interfaces.is_empty() {
        "none".to_string()
    } else {
        d.interfaces.join(", ")
    };
    if d.alive {
        println!(
            "daemon: segfw run pid {} since {}, policy {}, interfaces {} \
             (policy apply, detach and uninstall need --force)",
            d.pid, d.started, d.policy, interfaces
        );
    } else {
        println!(
            "daemon: none (a stale record names pid {}, policy {}, which is not running)",
            d.pid, d.policy
        );
    }
}

/// A unit enum as its serde name ("enforce", "deny").
pub fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
