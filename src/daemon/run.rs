//! `segfw run`: the foreground daemon. The main thread drains the signalfd
//! and the policy watcher every 100 ms; one thread prints events from the
//! ring buffer (the reader `segfw events` uses), one serves metrics.
use std::collections::BTreeSet;
use std::fmt::Display;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::error::error_chain;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::metrics::{ApplyState, MetricsServer, SharedApplyState};
use super::watch::PolicyWatcher;
use crate::datapath::apply::{apply_with, ApplyError, ApplyOptions, ApplyReport};
use crate::datapath::attach::{attach, detach, inspect, AttachMode, AttachOutcome, Interface};
use crate::datapath::clock::rfc3339_utc;
use crate::datapath::clock::unix_ms;
use crate::datapath::events::EventStream;
use crate::datapath::instance::Instance;
use crate::datapath::loader::{load_or_reuse, Programs};
use crate::datapath::maps::Maps;
use crate::datapath::pins::{PinDir, PinLock};
use crate::datapath::records::{
    clear_daemon_record, live_daemon, write_daemon_record, DaemonRecord,
};
use crate::datapath::sets::live_view;
use crate::datapath::{DatapathError, Direction};
use crate::policy::{check_bytes, sha256_hex, CheckedPolicy};

/// How long the loop blocks on the ring buffer: the latency of signals
/// and file changes.
const TICK: Duration = Duration::from_millis(100);
/// How often the instance is checked: pins still there, hooks of
/// interfaces deleted and created again, hooks detached and policies
/// applied by hand (drift).
const HOOK_CHECK: Duration = Duration::from_secs(1);
/// Retry of an apply refused because a confirmation is pending.
const RETRY_PENDING: Duration = Duration::from_secs(1);
/// Retry of an apply that failed in the kernel (maps, permissions).
const RETRY_FAILED: Duration = Duration::from_secs(5);

/// What `segfw run` was asked to do (checked by the CLI).
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub interfaces: Vec<Interface>,
    /// The policy file as given, made absolute (symlinks not resolved: a
    /// ConfigMap's resolved path changes at every update).
    pub policy: PathBuf,
    pub metrics: Option<SocketAddr>,
    pub keep: bool,
}

/// Runs until SIGINT or SIGTERM. SIGHUP re-reads and re-applies the file.
pub fn run(pins: &PinDir, config: RunConfig) -> anyhow::Result<()> {
    // Everything the user can get wrong first: an invalid policy exits 2
    // before the kernel is touched.
    let bytes = read(&config.policy)?;
    let first = check(&bytes, &config.policy)?;

    // Signals are blocked in every thread (the metrics thread inherits the
    // mask) and read from a signalfd, so no handler runs in signal context.
    let mut mask = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        mask.add(signal);
    }
    mask.thread_block().context("block SIGINT/SIGTERM/SIGHUP")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("create signalfd")?;

    pins.ensure_bpffs()?;
    pins.create()?;
    let state: SharedApplyState = Arc::new(Mutex::new(ApplyState {
        loading: true,
        ..ApplyState::default()
    }));
    // Bound before anything is attached: a busy port changes nothing.
    let metrics = config
        .metrics
        .map(|addr| MetricsServer::start(addr, pins.clone(), Arc::clone(&state)))
        .transpose()?;
    if let Some(addr) = config.metrics {
        log(format_args!("serving metrics at http://{addr}/metrics"));
    }

    let mut daemon = Daemon {
        pins: pins.clone(),
        config,
        state,
        last_sha: None,
        retry_at: None,
        deferred: false,
        last_error: None,
        prog_ids: [0; 2],
        generation: None,
        foreign_generation: None,
        detached: BTreeSet::new(),
    };
    daemon.last_sha = Some(sha256_hex(&bytes));
    daemon.start(first)?;
    let result = daemon.event_loop(&signals);
    let stopped = match &result {
        // Nothing is left to detach or to clear.
        Ok(Stop::PinsGone(_)) => Ok(()),
        _ => daemon.stop(),
    };
    drop(metrics);
    match result? {
        Stop::Signal => stopped,
        Stop::PinsGone(why) => {
            log(format_args!("{why}; exiting"));
            Err(anyhow::anyhow!("{why}"))
        }
    }
}

/// Why the daemon's loop ended.
#[derive(Debug)]
enum Stop {
    /// SIGINT or SIGTERM: detach (unless --keep) and exit 0.
    Signal,
    /// The instance's pins were removed (`uninstall --force`) or replaced by
    /// another load: there is nothing left to manage, exit 1.
    PinsGone(String),
}

struct Daemon {
    pins: PinDir,
    config: RunConfig,
    state: SharedApplyState,
    /// sha256 of the content last tried: an unchanged file is not re-applied.
    last_sha: Option<String>,
    /// When to try again an apply that could not happen.
    retry_at: Option<Instant>,
    /// A confirmation is pending and the file waits for it (logged once).
    deferred: bool,
    /// The last failure to re-attach a hook, logged once.
    last_error: Option<String>,
    /// Ids of its programs (ingress, egress): others mean another load.
    prog_ids: [u32; 2],
    /// Generation of its last apply; another live one is drift.
    generation: Option<u32>,
    /// The live generation that is not its own, once logged.
    foreign_generation: Option<u32>,
    /// Hooks detached by hand (`detach --force`): left detached until the
    /// file is applied again (its next change, or SIGHUP).
    detached: BTreeSet<(String, Direction)>,
}

impl Daemon {
    /// Loads (or reuses) the datapath, applies the policy, then attaches:
    /// no packet of a new attachment is judged without the policy.
    fn start(&mut self, policy: CheckedPolicy) -> anyhow::Result<()> {
        let lock = self.pins.lock()?;
        self.refuse_second_daemon()?;
        let wanted = policy.image.runtime.conntrack_max_entries;
        if !self.pins.is_installed()? {
            log(format_args!("loading the datapath (verifier) ..."));
        }
        let (programs, report) = load_or_reuse(&self.pins, Some(wanted))
            .with_context(|| format!("load segfw into {}", self.pins.root().display()))?;
        self.update_state(|s| s.loading = false);
        self.prog_ids = [programs.ingress.id(), programs.egress.id()];
        if report.loaded {
            log(format_args!(
                "loaded segfw into {}",
                self.pins.root().display()
            ));
        }
        if let Some(wanted) = report.conntrack_size_ignored {
            log(format_args!(
                "warning: conntrack keeps its {} entries (policy asks for {wanted}); \
                 the size only changes after `segfw uninstall`",
                report.conntrack_max_entries
            ));
        }
        let names: Vec<String> = self
            .config
            .interfaces
            .iter()
            .map(|i| i.name.clone())
            .collect();
        let record = DaemonRecord::of_this_process(&self.config.policy, &names, unix_ms());
        write_daemon_record(&self.pins, &record)
            .with_context(|| format!("record this daemon in {}", self.pins.root().display()))?;
        let started = self.apply_and_attach(&lock, &policy, &programs);
        if started.is_err() {
            let _ = clear_daemon_record(&self.pins);
        }
        started
    }

    /// A second daemon on one instance would fight the first over it.
    fn refuse_second_daemon(&self) -> anyhow::Result<()> {
        match live_daemon(&self.pins)? {
            Some(other) if other.pid != std::process::id() => Err(anyhow::anyhow!(
                "segfw run (pid {}, policy {}) already manages the instance in {}; stop it first, \
                 or use another --pin-dir",
                other.pid,
                other.policy,
                self.pins.root().display()
            )),
            _ => Ok(()),
        }
    }

    fn apply_and_attach(
        &mut self,
        lock: &PinLock,
        policy: &CheckedPolicy,
        programs: &Programs,
    ) -> anyhow::Result<()> {
        match self.apply(lock, policy) {
            Ok(()) | Err(ApplyError::ConfirmPending { .. }) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("apply {}", self.config.policy.display()))
            }
        }
        self.attach_all(programs)?;
        log(format_args!(
            "running: {} attached, watching {}",
            self.iface_list(),
            self.config.policy.display()
        ));
        Ok(())
    }

    /// The check every HOOK_CHECK: pins gone or replaced end the daemon;
    /// otherwise, under the lock (skipped while another command holds it,
    /// so a half-done command is never taken for drift), hooks are checked
    /// and the live generation compared with the daemon's own.
    fn check_instance(&mut self) -> Option<Stop> {
        if let Some(why) = self.pins_gone() {
            return Some(Stop::PinsGone(why));
        }
        let lock = match self.pins.lock_with_timeout(Duration::ZERO) {
            Ok(lock) => lock,
            Err(DatapathError::LockTimeout { .. }) => return None,
            Err(e) => {
                // The pin dir itself went away between the two checks.
                if let Some(why) = self.pins_gone() {
                    return Some(Stop::PinsGone(why));
                }
                self.log_once(format!("check the instance: {e}"));
                return None;
            }
        };
        self.check_hooks(&lock);
        self.check_policy();
        self.publish_drift();
        None
    }

    /// Why the instance is gone, if it is: no programs pinned any more
    /// (`segfw uninstall --force`), or programs of another load.
    fn pins_gone(&self) -> Option<String> {
        let root = self.pins.root().display();
        match self.pins.is_installed() {
            Ok(false) => {
                return Some(format!(
                    "the pins in {root} were removed (segfw uninstall --force?)"
                ))
            }
            Ok(true) => {}
            Err(_) => return None,
        }
        let ids = Programs::open(&self.pins)
            .map(|p| [p.ingress.id(), p.egress.id()])
            .ok()?;
        (ids != self.prog_ids).then(|| {
            format!(
                "the programs pinned in {root} are not this daemon's any more (ids {}/{}, were \
                 {}/{}): the instance was uninstalled and loaded again",
                ids[0], ids[1], self.prog_ids[0], self.prog_ids[1]
            )
        })
    }

    /// A hook whose pin is gone was detached by hand (`detach --force`): it
    /// stays detached until the file is applied again. A pinned hook that
    /// is not live on the interface of that name means the interface was
    /// deleted and created again (a container or VM restarted): it is
    /// attached again at once. An interface still gone is left until it
    /// appears.
    fn check_hooks(&mut self, lock: &PinLock) {
        for i in 0..self.config.interfaces.len() {
            let name = self.config.interfaces[i].name.clone();
            let Ok(now) = Interface::by_name(&name) else {
                continue;
            };
            let mut lost = Vec::new();
            for dir in Direction::BOTH {
                if self.detached.contains(&(name.clone(), dir)) {
                    continue;
                }
                match inspect(&self.pins, &name, dir) {
                    Ok(None) => self.note_detached_by_hand(&name, dir),
                    Ok(Some(hook)) if hook.live && hook.ifindex == Some(now.ifindex) => {}
                    Ok(Some(_)) => lost.push(dir),
                    Err(e) => self.log_once(format!("inspect {name} {dir}: {e}")),
                }
            }
            if !lost.is_empty() {
                if let Err(e) = self.reattach(lock, &now, &lost) {
                    self.log_once(format!("re-attach {name}: {e:#}"));
                }
            }
            self.config.interfaces[i] = now;
        }
    }

    fn note_detached_by_hand(&mut self, name: &str, dir: Direction) {
        self.detached.insert((name.to_string(), dir));
        log(format_args!(
            "drift: {name} {dir} was detached by hand (segfw detach --force?), its traffic is \
             unfiltered; it is attached again when {} changes or on SIGHUP",
            self.config.policy.display()
        ));
    }

    /// A live generation other than the daemon's last apply: someone ran
    /// `policy apply --force` (or its rollback). Logged once per generation.
    fn check_policy(&mut self) {
        let Some(ours) = self.generation else {
            return; // deferred behind a pending confirmation: nothing of ours is live
        };
        let live = match Maps::open(&self.pins).and_then(|m| m.runtime()) {
            Ok(rt) => rt.generation,
            Err(e) => {
                self.log_once(format!("read the live generation: {e}"));
                return;
            }
        };
        if live == ours {
            self.foreign_generation = None;
            return;
        }
        if self.foreign_generation == Some(live) {
            return;
        }
        self.foreign_generation = Some(live);
        log(format_args!(
            "drift: the live policy is generation {live}{}, not this daemon's generation {ours} \
             from {}: applied by hand (segfw policy apply --force?); {} is applied again when it \
             changes or on SIGHUP",
            self.describe_source(),
            self.config.policy.display(),
            self.config.policy.display()
        ));
    }

    /// " (from FILE)" of the live policy, if its maps say.
    fn describe_source(&self) -> String {
        let view = Maps::open(&self.pins).and_then(|m| live_view(&m));
        match view.ok().and_then(|v| v.source) {
            Some(source) => format!(" (from {source})"),
            None => String::new(),
        }
    }

    fn publish_drift(&self) {
        let drift = self.foreign_generation.is_some() || !self.detached.is_empty();
        self.update_state(|s| s.drift = drift);
    }

    fn update_state(&self, change: impl FnOnce(&mut ApplyState)) {
        change(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Attaches `dirs` of `iface` again (the caller holds the lock).
    fn reattach(
        &mut self,
        _lock: &PinLock,
        iface: &Interface,
        dirs: &[Direction],
    ) -> anyhow::Result<()> {
        let programs = Programs::open(&self.pins)?;
        for &dir in dirs {
            if let AttachOutcome::Attached { kind, .. } =
                attach(&self.pins, programs.get(dir), iface, dir, AttachMode::Auto)?
            {
                log(format_args!(
                    "re-attached {} {dir} ({kind}): the interface came back as ifindex {}",
                    iface.name, iface.ifindex
                ));
            }
        }
        self.last_error = None;
        Ok(())
    }

    /// After the file was applied again: the hooks detached by hand go back.
    fn restore_detached(&mut self, _lock: &PinLock) {
        if self.detached.is_empty() {
            return;
        }
        let programs = match Programs::open(&self.pins) {
            Ok(programs) => programs,
            Err(e) => {
                log(format_args!("re-attach the hooks detached by hand: {e}"));
                return;
            }
        };
        for (name, dir) in std::mem::take(&mut self.detached) {
            let attached = Interface::by_name(&name).and_then(|iface| {
                attach(&self.pins, programs.get(dir), &iface, dir, AttachMode::Auto)
            });
            match attached {
                Ok(_) => log(format_args!(
                    "re-attached {name} {dir}, detached by hand before this apply"
                )),
                Err(e) => {
                    log(format_args!("re-attach {name} {dir}: {e}"));
                    self.detached.insert((name, dir));
                }
            }
        }
        self.publish_drift();
    }

    /// Logs a failure once, not every second while it lasts.
    fn log_once(&mut self, message: String) {
        if self.last_error.as_deref() != Some(message.as_str()) {
            log(format_args!("{message}"));
            self.last_error = Some(message);
        }
    }

    fn attach_all(&self, programs: &Programs) -> anyhow::Result<()> {
        let mut attached = Vec::new();
        for iface in &self.config.interfaces {
            for dir in Direction::BOTH {
                let outcome = attach(&self.pins, programs.get(dir), iface, dir, AttachMode::Auto)
                    .with_context(|| format!("attach segfw to {} {dir}", iface.name));
                match outcome {
                    Ok(AttachOutcome::Attached { kind, fallback }) => {
                        if let Some(why) = fallback {
                            log(format_args!("{} {dir}: {why}", iface.name));
                        }
                        log(format_args!("attached {} {dir} ({kind})", iface.name));
                        attached.push((iface.name.clone(), dir));
                    }
                    Ok(AttachOutcome::AlreadyAttached { kind }) => {
                        log(format_args!(
                            "{} {dir}: already attached ({kind})",
                            iface.name
                        ));
                    }
                    Err(e) => {
                        // Leave things as they were before this run.
                        for (name, dir) in attached {
                            let _ = detach(&self.pins, &name, dir);
                        }
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    fn event_loop(&mut self, signals: &SignalFd) -> anyhow::Result<Stop> {
        let mut watcher = PolicyWatcher::new(&self.config.policy)
            .with_context(|| format!("watch {}", self.config.policy.display()))?;
        let stop_events = Arc::new(AtomicBool::new(false));
        let printer = self.print_events(Arc::clone(&stop_events))?;
        let result = self.watch_loop(signals, &mut watcher);
        stop_events.store(true, Ordering::Relaxed);
        if printer.join().is_err() {
            log(format_args!("the event printer panicked"));
        }
        result
    }

    /// Prints each event on stdout, from a thread of its own, until `stop`.
    fn print_events(&self, stop: Arc<AtomicBool>) -> anyhow::Result<std::thread::JoinHandle<()>> {
        let stream = EventStream::open(&self.pins).context("read verdict events")?;
        Ok(std::thread::spawn(move || {
            let printed = stream.run(&stop, |event| {
                println!("{event}");
                ControlFlow::Continue(())
            });
            if let Err(e) = printed {
                log(format_args!("read events: {e}"));
            }
        }))
    }

    fn watch_loop(
        &mut self,
        signals: &SignalFd,
        watcher: &mut PolicyWatcher,
    ) -> anyhow::Result<Stop> {
        let mut watch_failed = false;
        let mut hooks_checked = Instant::now();

        loop {
            std::thread::sleep(TICK);
            if hooks_checked.elapsed() >= HOOK_CHECK {
                hooks_checked = Instant::now();
                if let Some(stop) = self.check_instance() {
                    return Ok(stop);
                }
            }
            let mut force = false;
            while let Some(info) = signals.read_signal().context("read signalfd")? {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGHUP) => {
                        log(format_args!(
                            "SIGHUP: re-applying {}",
                            self.config.policy.display()
                        ));
                        force = true;
                    }
                    Ok(signal) => {
                        log(format_args!("{signal}: stopping"));
                        return Ok(Stop::Signal);
                    }
                    Err(_) => {}
                }
            }
            match watcher.drain() {
                Ok(_) => watch_failed = false,
                Err(e) if !watch_failed => {
                    log(format_args!("{e:#}; changes may go unnoticed until SIGHUP"));
                    watch_failed = true;
                }
                Err(_) => {}
            }
            let now = Instant::now();
            let retry = self.retry_at.is_some_and(|at| now >= at);
            if watcher.take_due(now) || retry || force {
                self.retry_at = None;
                self.reload(force);
                if let Err(e) = watcher.rearm() {
                    log(format_args!("{e:#}"));
                }
            }
        }
    }

    /// Re-reads the file; applies it if its content changed (or `force`).
    /// Whatever goes wrong is logged and the live policy keeps enforcing.
    fn reload(&mut self, force: bool) {
        let path = self.config.policy.clone();
        let bytes = match read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                log(format_args!("{e:#}; {} keeps enforcing", self.live()));
                return;
            }
        };
        let sha = sha256_hex(&bytes);
        if !force && self.last_sha.as_deref() == Some(sha.as_str()) {
            return;
        }
        self.last_sha = Some(sha);
        let policy = match check(&bytes, &path) {
            Ok(policy) => policy,
            Err(e) => {
                log(format_args!(
                    "not applied, {} keeps enforcing: {e:#}",
                    self.live()
                ));
                self.record(false);
                return;
            }
        };
        let lock = match self.pins.lock() {
            Ok(lock) => lock,
            Err(e) => {
                log(format_args!("{e}; retrying in {}s", RETRY_FAILED.as_secs()));
                self.retry_later(RETRY_FAILED);
                return;
            }
        };
        match self.apply(&lock, &policy) {
            Ok(()) => self.restore_detached(&lock),
            Err(e) if !matches!(e, ApplyError::ConfirmPending { .. }) => {
                log(format_args!(
                    "apply {}: {}; {} keeps enforcing, retrying in {}s",
                    path.display(),
                    error_chain(&e),
                    self.live(),
                    RETRY_FAILED.as_secs()
                ));
                self.retry_later(RETRY_FAILED);
            }
            Err(_) => {}
        }
    }

    /// Applies; logs and records the outcome. A pending confirmation
    /// defers the apply (retried every second) instead of overriding it.
    fn apply(&mut self, lock: &PinLock, policy: &CheckedPolicy) -> Result<(), ApplyError> {
        let applied = Instance::open(&self.pins, lock)
            .map_err(ApplyError::from)
            .and_then(|mut instance| apply_with(&mut instance, policy, ApplyOptions::default()));
        match applied {
            Ok(report) => {
                self.deferred = false;
                self.log_applied(&report);
                self.record(true);
                if self.foreign_generation.take().is_some() {
                    log(format_args!(
                        "drift resolved: {} is live again",
                        self.config.policy.display()
                    ));
                }
                self.generation = Some(report.generation);
                self.publish_drift();
                Ok(())
            }
            Err(ApplyError::ConfirmPending { pending }) => {
                if !self.deferred {
                    log(format_args!(
                        "{} not applied yet: generation {} awaits `segfw policy confirm` ({}); \
                         applying it once that is confirmed or rolled back",
                        self.config.policy.display(),
                        pending.generation,
                        pending.describe_deadline()
                    ));
                }
                self.deferred = true;
                self.retry_later(RETRY_PENDING);
                Err(ApplyError::ConfirmPending { pending })
            }
            Err(e) => {
                self.record(false);
                Err(e)
            }
        }
    }

    fn retry_later(&mut self, after: Duration) {
        // Forget the content, so that the retry applies it.
        self.last_sha = None;
        self.retry_at = Some(Instant::now() + after);
    }

    fn log_applied(&self, report: &ApplyReport) {
        log(format_args!(
            "applied {}: generation {} (sha256 {}), {} rules, {} entries, swapped in {} ms",
            self.config.policy.display(),
            report.generation,
            &report.sha256[..report.sha256.len().min(8)],
            report.rules,
            report.trie_entries,
            report.elapsed.as_millis()
        ));
    }

    fn record(&self, ok: bool) {
        self.update_state(|state| {
            state.last_ok = Some(ok);
            if ok {
                state.last_success_unix_ms = Some(unix_ms());
            }
        });
    }

    /// "generation N" of the live policy, for log lines.
    fn live(&self) -> String {
        match Maps::open(&self.pins).and_then(|m| m.runtime()) {
            Ok(rt) if rt.generation != 0 => {
                format!("the live policy (generation {})", rt.generation)
            }
            _ => "the live policy".to_string(),
        }
    }

    /// Detaches the interfaces this daemon runs on (also ones it found
    /// attached, e.g. left by a crashed earlier run), unless --keep.
    /// The record is cleared either way: it says who manages the instance
    /// now, and after --keep nobody does.
    fn stop(&self) -> anyhow::Result<()> {
        let _lock = self.pins.lock()?;
        if let Err(e) = clear_daemon_record(&self.pins) {
            log(format_args!("clear the daemon record: {e}"));
        }
        if self.config.keep {
            log(format_args!(
                "--keep: {} stay attached, {} keeps enforcing",
                self.iface_list(),
                self.live()
            ));
            return Ok(());
        }
        let mut first_err = None;
        for iface in &self.config.interfaces {
            for dir in Direction::BOTH {
                match detach(&self.pins, &iface.name, dir) {
                    Ok(true) => log(format_args!("detached {} {dir}", iface.name)),
                    Ok(false) => {}
                    Err(e) => {
                        let e = anyhow::Error::new(e)
                            .context(format!("detach segfw from {} {dir}", iface.name));
                        log(format_args!("{e:#}"));
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn iface_list(&self) -> String {
        let names: Vec<&str> = self
            .config
            .interfaces
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        names.join(", ")
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("read policy file {}", path.display()))
}

fn check(bytes: &[u8], path: &Path) -> anyhow::Result<CheckedPolicy> {
    Ok(check_bytes(bytes, path)?)
}

/// One line on stderr (stdout carries the events), with a UTC timestamp.
fn log(message: impl Display) {
    eprintln!("{} segfw run: {message}", rfc3339_utc(unix_ms()));
}
