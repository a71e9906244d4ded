//! `segfw attach IFACE... [--policy FILE] [--direction ..] [--attach-mode ..]`
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::common::{
    announce_fresh_load, checked_policy, interfaces, refuse_under_daemon,
    ATTACH_POLICY_UNDER_DAEMON,
};
use crate::datapath::apply::apply;
use crate::datapath::attach::{
    attach, other_programs, refuse_foreign_netns, AttachMode, AttachOutcome, Interface,
};
use crate::datapath::instance::Instance;
use crate::datapath::loader::{load_or_reuse, LoadReport};
use crate::datapath::netns::Netns;
use crate::datapath::pins::PinDir;
use crate::datapath::Direction;
use crate::policy::CheckedPolicy;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Interfaces to attach to (in the current network namespace).
    #[arg(required = true, value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// Policy file to apply before traffic is filtered.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Hooks to attach to.
    #[arg(long, value_enum, default_value_t = Directions::Both)]
    pub direction: Directions,
    /// tcx (kernel 6.6+), legacy tc clsact, or tcx with tc as fallback.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    pub attach_mode: AttachMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Directions {
    Ingress,
    Egress,
    Both,
}

impl Directions {
    pub fn list(self) -> &'static [Direction] {
        match self {
            Directions::Ingress => &[Direction::Ingress],
            Directions::Egress => &[Direction::Egress],
            Directions::Both => &Direction::BOTH,
        }
    }
}

pub fn run(pin_dir: &Path, args: Args) -> anyhow::Result<()> {
    // Everything the user can get wrong is checked before the kernel is touched.
    let policy = args.policy.as_deref().map(checked_policy).transpose()?;
    let ifaces = interfaces(&args.interfaces)?;

    let pins = PinDir::new(pin_dir);
    pins.ensure_bpffs()?;
    pins.create()?;
    let lock = pins.lock()?;
    // Before anything changes: an instance judges one namespace's interfaces.
    refuse_foreign_netns(&pins, &args.interfaces.join(" "), &Netns::current()?)?;
    if policy.is_some() {
        refuse_under_daemon(&pins, &ATTACH_POLICY_UNDER_DAEMON, false)?;
    }
    announce_fresh_load(&pins)?;
    let conntrack_size = policy
        .as_ref()
        .map(|p| p.image.runtime.conntrack_max_entries);
    let (programs, report) = load_or_reuse(&pins, conntrack_size)
        .with_context(|| format!("load segfw into {}", pin_dir.display()))?;
    print_load(&pins, &report);
    // An apply killed half-way left runtime or the second pins behind.
    let mut instance = Instance::open(&pins, &lock)
        .and_then(|mut instance| instance.repair().map(|()| instance))
        .with_context(|| format!("repair segfw in {}", pin_dir.display()))?;

    // The policy goes in before the hooks, so no packet of a new attachment
    // is ever judged without it.
    if let (Some(policy), Some(path)) = (&policy, &args.policy) {
        apply_policy(&mut instance, policy, path)?;
    }
    for iface in &ifaces {
        for dir in args.direction.list() {
            attach_one(&pins, &programs, iface, *dir, args.attach_mode)?;
        }
    }
    Ok(())
}

fn print_load(pins: &PinDir, report: &LoadReport) {
    if let Some(warning) = crate::datapath::loader::host_unprivileged_bpf_warning() {
        eprintln!("{warning}");
    }
    if report.loaded {
        println!("loaded segfw into {}", pins.root().display());
    }
    for line in &report.repaired {
        println!("repaired {line}");
    }
    if let Some(wanted) = report.conntrack_size_ignored {
        eprintln!(
            "warning: conntrack keeps its {} entries (policy asks for {wanted}); \
             the size only changes after `segfw uninstall` and a new attach",
            report.conntrack_max_entries
        );
    }
}

pub fn apply_policy(
    instance: &mut Instance,
    policy: &CheckedPolicy,
    shown_path: &Path,
) -> anyhow::Result<()> {
    let report = apply(instance, policy).with_context(|| {
        format!(
            "apply {}; the previous policy stays in force",
            shown_path.display()
        )
    })?;
    super::policy_apply::print_applied(shown_path, &report);
    Ok(())
}

fn attach_one(
    pins: &PinDir,
    programs: &crate::datapath::loader::Programs,
    iface: &Interface,
    dir: Direction,
    mode: AttachMode,
) -> anyhow::Result<()> {
    let others = other_programs(iface, dir, programs.get(dir));
    if !others.is_empty() {
        eprintln!(
            "warning: {} {dir} already carries {}; they filter its traffic next to this \
             instance, in attach order (tcx before tc), and one that passes a packet outright \
             (TC_ACT_OK) skips the rest",
            iface.name,
            others.join(", ")
        );
    }
    let outcome = attach(pins, programs.get(dir), iface, dir, mode)
        .with_context(|| format!("attach segfw to {} {dir}", iface.name))?;
    match outcome {
        AttachOutcome::Attached { kind, fallback } => {
            if let Some(why) = fallback {
                println!("{} {dir}: {why}", iface.name);
            }
            println!("attached {} {dir} ({kind})", iface.name);
        }
        AttachOutcome::AlreadyAttached { kind } => {
            println!("{} {dir}: already attached ({kind})", iface.name);
        }
    }
    Ok(())
}
