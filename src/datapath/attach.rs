//! Attaching the pinned programs to interfaces: tcx links pinned at
//! links/IFACE/DIR (bpffs forbids dots in names), or legacy tc clsact filters (TcHook) with the program
//! pinned again at that path as the marker. Also detach and query.
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libbpf_rs::query::LinkTypeInfo;
use libbpf_rs::{Link, ProgramAttachType, ProgramHandle, TcHook, TC_EGRESS, TC_INGRESS};

use super::netns::Netns;
use super::pins::{remove_pin, restrict_pin, PinDir};
use super::records::{delete_link_record, link_record, put_link_record};
use super::{DatapathError, Direction, NetnsConflict, Result};
use crate::skel::types::segfw_link_record;

/// Fixed handle and priority of segfw's legacy tc filters, so that detach
/// and status find exactly ours among other clsact filters.
pub const TC_HANDLE: u32 = 0x5e6f;
pub const TC_PRIORITY: u32 = 0x5e6f;

/// The kernel-internal ENOTSUPP, which some kernels leak to userspace.
const ENOTSUPP: i32 = 524;

/// Which kernel hook to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// tcx, or legacy tc on kernels without tcx.
    Auto,
    Tcx,
    Tc,
}

/// The hook an attachment actually uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HookKind {
    Tcx,
    Tc,
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HookKind::Tcx => "tcx",
            HookKind::Tc => "tc",
        })
    }
}

/// A network interface of the current network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
}

impl Interface {
    /// Looks up `name`; UnknownInterface if it does not exist here.
    pub fn by_name(name: &str) -> Result<Self> {
        match nix::net::if_::if_nametoindex(name) {
            Ok(ifindex) => Ok(Interface {
                name: name.to_string(),
                ifindex,
            }),
            Err(_) => Err(DatapathError::UnknownInterface {
                name: name.to_string(),
            }),
        }
    }
}

/// What `attach` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachOutcome {
    Attached {
        kind: HookKind,
        /// Why auto mode fell back to legacy tc.
        fallback: Option<String>,
    },
    AlreadyAttached {
        kind: HookKind,
    },
}

/// One pin under links/, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    pub interface: String,
    pub direction: Direction,
    pub mode: HookKind,
    pub prog_id: u32,
    /// tcx only: the link's id.
    pub link_id: Option<u32>,
    /// The interface index the hook is on (tcx: from the link; tc: by name).
    pub ifindex: Option<u32>,
    /// The kernel has the hook attached as pinned and recorded (interface
    /// index, attach type, this instance's program): the program sees the
    /// interface's traffic. False once the interface is gone, the filter
    /// was removed behind segfw's back, or what is pinned disagrees.
    pub live: bool,
    /// The network namespace recorded at attach, "net:[INODE] (NAME)";
    /// None: no record (attached by an older segfw).
    pub netns: Option<String>,
    /// Whether the hook is in this command's namespace. tcx: the kernel
    /// lists the link on the interface here; tc: by the record. None: unknown.
    pub in_this_netns: Option<bool>,
    /// What is wrong or needs the operator, if anything.
    pub problem: Option<String>,
    #[serde(skip)]
    recorded: Option<Recorded>,
    /// tc, recorded in a namespace that no longer exists: nothing to protect.
    #[serde(skip)]
    namespace_gone: bool,
}

/// A link record as attach compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recorded {
    netns: Netns,
    ifindex: u32,
    flags: u32,
}

impl Recorded {
    fn from_record(r: &segfw_link_record) -> Self {
        Recorded {
            netns: Netns::of_record(r),
            ifindex: r.ifindex,
            flags: r.flags,
        }
    }

    fn to_record(self) -> segfw_link_record {
        let mut record = segfw_link_record {
            ifindex: self.ifindex,
            flags: self.flags,
            ..Default::default()
        };
        self.netns.store(&mut record);
        record
    }
}

impl Attachment {
    /// Hooked in another namespace (or, for tc, recorded there): commands
    /// of this namespace must not touch it.
    fn elsewhere(&self) -> bool {
        self.in_this_netns == Some(false)
            && (self.live || (self.mode == HookKind::Tc && !self.namespace_gone))
    }

    /// The namespace it is in, for messages.
    fn where_(&self) -> String {
        self.netns.clone().unwrap_or_else(|| UNRECORDED.to_string())
    }

    fn hint(&self) -> String {
        self.recorded
            .map(|r| r.netns.nsenter_hint())
            .unwrap_or_else(|| Netns::default().nsenter_hint())
    }
}

/// What an attachment without a record says about its namespace.
const UNRECORDED: &str = "unknown (attached by an older segfw)";

/// Attaches `prog` to `iface` in `dir`, unless a live attachment is pinned
/// already (then reports AlreadyAttached). A stale pin is replaced; one in
/// another network namespace never is (ForeignNetns / LinkElsewhere). The
/// link's record (namespace, ifindex) is written before the link exists and
/// removed again if attaching fails, so no link is left without one.
pub fn attach(
    pins: &PinDir,
    prog: &ProgramHandle,
    iface: &Interface,
    dir: Direction,
    mode: AttachMode,
) -> Result<AttachOutcome> {
    let here = Netns::current()?;
    refuse_foreign_netns(pins, &iface.name, &here)?;
    let pin = pins.link(&iface.name, dir);
    // The daemon's flag on a record survives a re-attach.
    let mut record = Recorded {
        netns: here,
        ifindex: iface.ifindex,
        flags: 0,
    };
    if let Some(existing) = inspect(pins, &iface.name, dir)? {
        if let Some(old) = existing.recorded {
            record.flags = old.flags;
        }
        // A tc pin of an older segfw whose filter is not here may be
        // another namespace's: only `detach` here removes it.
        let unknown_tc =
            existing.mode == HookKind::Tc && existing.in_this_netns.is_none() && !existing.live;
        if existing.elsewhere() || unknown_tc {
            return Err(elsewhere_error("attach", pins, &existing, &here));
        }
        if existing.live
            && existing.in_this_netns == Some(true)
            && existing.ifindex == Some(iface.ifindex)
        {
            if existing.recorded != Some(record) {
                // Linked by an older segfw, or its record was lost: the
                // kernel just showed where it is.
                put_link_record(pins, &iface.name, dir, &record.to_record())?;
            }
            return Ok(AttachOutcome::AlreadyAttached {
                kind: existing.mode,
            });
        }
        detach(pins, &iface.name, dir)?;
    }
    if matches!(mode, AttachMode::Tc) {
        refuse_taken_tc_slot(prog, iface, dir)?;
    }
    put_link_record(pins, &iface.name, dir, &record.to_record())?;
    let attached = pins.create_link_dir(&iface.name).and_then(|()| match mode {
        AttachMode::Tc => attach_tc(prog, iface, dir, &pin).map(|()| AttachOutcome::Attached {
            kind: HookKind::Tc,
            fallback: None,
        }),
        AttachMode::Tcx => attach_tcx(prog, iface, dir, &pin).map(|()| AttachOutcome::Attached {
            kind: HookKind::Tcx,
            fallback: None,
        }),
        AttachMode::Auto => attach_auto(prog, iface, dir, &pin),
    });
    if attached.is_err() {
        let _ = delete_link_record(pins, &iface.name, dir);
        pins.remove_link_dir_if_empty(&iface.name);
    }
    attached
}

/// Refuses to attach from a namespace other than the one the instance's
/// links are in: one set of maps judges one namespace's interfaces, and
/// names like eth0 mean another interface in each namespace.
pub fn refuse_foreign_netns(pins: &PinDir, iface: &str, here: &Netns) -> Result<()> {
    let Some(other) = attachments(pins)?.into_iter().find(Attachment::elsewhere) else {
        return Ok(());
    };
    Err(DatapathError::ForeignNetns {
        iface: iface.to_string(),
        at: Box::new(NetnsConflict {
            pin_dir: pins.root().to_path_buf(),
            pin: String::new(),
            theirs: other.where_(),
            ours: here.describe(),
            hint: other.hint(),
        }),
    })
}

fn elsewhere_error(
    verb: &'static str,
    pins: &PinDir,
    existing: &Attachment,
    here: &Netns,
) -> DatapathError {
    DatapathError::LinkElsewhere {
        verb,
        iface: existing.interface.clone(),
        dir: existing.direction,
        at: Box::new(NetnsConflict {
            pin_dir: pins.root().to_path_buf(),
            pin: format!("links/{}/{}", existing.interface, existing.direction),
            theirs: existing.where_(),
            ours: here.describe(),
            hint: existing.hint(),
        }),
    }
}

/// Legacy tc filters are found by handle and priority, so attaching ours
/// replaces whatever another instance put in the same slot: refuse that.
fn refuse_taken_tc_slot(prog: &ProgramHandle, iface: &Interface, dir: Direction) -> Result<()> {
    let mut hook = tc_hook(prog.as_fd(), iface.ifindex, dir);
    match query_quietly(&mut hook) {
        Ok(prog_id) if prog_id != prog.id() => Err(DatapathError::TcSlotTaken {
            iface: iface.name.clone(),
            dir,
            handle: TC_HANDLE,
            prog_id,
            owner: describe_program(prog_id).map_or(String::new(), |owner| format!(" ({owner})")),
        }),
        _ => Ok(()),
    }
}

/// tcx, falling back to legacy tc only when the kernel lacks tcx.
fn attach_auto(
    prog: &ProgramHandle,
    iface: &Interface,
    dir: Direction,
    pin: &Path,
) -> Result<AttachOutcome> {
    match attach_tcx(prog, iface, dir, pin) {
        Ok(()) => Ok(AttachOutcome::Attached {
            kind: HookKind::Tcx,
            fallback: None,
        }),
        Err(DatapathError::AttachTcx { source, .. }) if means_no_tcx(&source) => {
            refuse_taken_tc_slot(prog, iface, dir)?;
            attach_tc(prog, iface, dir, pin)?;
            Ok(AttachOutcome::Attached {
                kind: HookKind::Tc,
                fallback: Some(format!(
                    "kernel has no tcx ({source}); used legacy tc clsact"
                )),
            })
        }
        Err(e) => Err(e),
    }
}

/// link_create's answer on kernels without tcx: the attach type is unknown
/// (EINVAL) or links are unsupported for it (EOPNOTSUPP, ENOTSUPP).
fn means_no_tcx(err: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        err.raw_os_error(),
        Some(e) if e == Errno::EINVAL as i32 || e == Errno::EOPNOTSUPP as i32 || e == ENOTSUPP
    )
}

fn attach_tcx(prog: &ProgramHandle, iface: &Interface, dir: Direction, pin: &Path) -> Result<()> {
    create_pinned_tcx_link(prog.as_fd(), iface.ifindex, dir, pin).map_err(|source| {
        DatapathError::AttachTcx {
            iface: iface.name.clone(),
            dir,
            source,
        }
    })?;
    restrict_pin(pin)
}

/// Creates a tcx link of `prog` on `ifindex` and pins it at `pin`. The
/// link outlives this process through the pin; if pinning fails, closing
/// the fd detaches it again.
fn create_pinned_tcx_link(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    dir: Direction,
    pin: &Path,
) -> io::Result<()> {
    let attach_type = tcx_attach_type(dir);
    let ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
    let path = CString::new(pin.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `prog` is an open program fd for the whole call; a null opts
    // pointer asks for the defaults (append, no relative program, no
    // expected revision). On success we own the returned link fd.
    let fd = unsafe {
        libbpf_sys::bpf_link_create(prog.as_raw_fd(), ifindex, attach_type, std::ptr::null())
    };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: `fd` was just returned by bpf_link_create and nothing else owns it.
    let link = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `link` is an open link fd and `path` a NUL-terminated string,
    // both valid for the duration of the call.
    let ret = unsafe { libbpf_sys::bpf_obj_pin(link.as_raw_fd(), path.as_ptr()) };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    Ok(())
}

/// Legacy tc: clsact qdisc (created if missing), one direct-action filter
/// with segfw's handle and priority, and the program pinned as the marker.
fn attach_tc(prog: &ProgramHandle, iface: &Interface, dir: Direction, pin: &Path) -> Result<()> {
    let tc_err = |source| DatapathError::AttachTc {
        iface: iface.name.clone(),
        dir,
        source,
    };
    let mut hook = tc_hook(prog.as_fd(), iface.ifindex, dir);
    quietly(|| hook.create()).map_err(tc_err)?;
    hook.replace(true).attach().map_err(tc_err)?;
    prog.pin(pin).map_err(|source| DatapathError::Pin {
        path: pin.to_path_buf(),
        source: io::Error::other(source),
    })?;
    restrict_pin(pin)
}

/// The program in segfw's tc slot.
fn query_quietly(hook: &mut TcHook) -> libbpf_rs::Result<u32> {
    quietly(|| hook.query())
}

/// Runs `f` with libbpf's printing off: it prints the kernel's complaint
/// when an interface has no clsact qdisc (a query: "no filter") or has one
/// already (create: nothing to do), neither of which is an error here.
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    let previous = libbpf_rs::set_print(None);
    let result = f();
    libbpf_rs::set_print(previous);
    result
}

fn tc_hook(prog: BorrowedFd<'_>, ifindex: u32, dir: Direction) -> TcHook {
    let mut hook = TcHook::new(prog);
    hook.ifindex(ifindex as i32)
        .handle(TC_HANDLE)
        .priority(TC_PRIORITY)
        .attach_point(match dir {
            Direction::Ingress => TC_INGRESS,
            Direction::Egress => TC_EGRESS,
        });
    hook
}

/// Removes segfw from `iface` in `dir`. Returns false if nothing was pinned.
/// An interface that is gone already is fine: its hooks went with it. An
/// attachment in another network namespace is refused (LinkElsewhere):
/// there `iface` names another interface than the one in this namespace.
pub fn detach(pins: &PinDir, iface: &str, dir: Direction) -> Result<bool> {
    let Some(existing) = inspect(pins, iface, dir)? else {
        return Ok(false);
    };
    if existing.elsewhere() {
        return Err(elsewhere_error(
            "detach",
            pins,
            &existing,
            &Netns::current()?,
        ));
    }
    unhook(pins, &existing)?;
    Ok(true)
}

/// Detaches wherever the attachment is (for `uninstall`, which removes the
/// whole instance): a tcx link is detached through its pin from any
/// namespace. Returns a warning for a legacy tc filter in another
/// namespace, which only a command run there can remove.
pub fn detach_anywhere(pins: &PinDir, iface: &str, dir: Direction) -> Result<Option<String>> {
    let Some(existing) = inspect(pins, iface, dir)? else {
        return Ok(None);
    };
    let warning = (existing.mode == HookKind::Tc && existing.elsewhere()).then(|| {
        format!(
            "the tc filter of {iface} {dir} in network namespace {} stays until removed there: \
             {} tc filter del dev {iface} {dir} handle {TC_HANDLE:#x} prio {TC_PRIORITY} bpf",
            existing.where_(),
            existing.hint().replace(" segfw", "")
        )
    });
    unhook(pins, &existing)?;
    Ok(warning)
}

/// Takes the hook off (where this namespace can reach it), then removes
/// the pin and the record.
fn unhook(pins: &PinDir, existing: &Attachment) -> Result<()> {
    let (iface, dir) = (existing.interface.as_str(), existing.direction);
    let pin = pins.link(iface, dir);
    let detach_err = |source| DatapathError::Detach {
        iface: iface.to_string(),
        dir,
        source,
    };
    match existing.mode {
        // A program pin is the legacy tc marker; only our program is
        // taken out of the slot, never another instance's.
        HookKind::Tc if !existing.elsewhere() => {
            if let (Ok(marker), Ok(found)) = (
                ProgramHandle::from_pinned_path(&pin),
                Interface::by_name(iface),
            ) {
                let mut hook = tc_hook(marker.as_fd(), found.ifindex, dir);
                if query_quietly(&mut hook).is_ok_and(|id| id == marker.id()) {
                    hook.detach().map_err(detach_err)?;
                }
            }
        }
        HookKind::Tc => {}
        HookKind::Tcx => {
            let link = open_link(&pin)?;
            // A link whose interface is gone is defunct; detaching it fails
            // harmlessly, and removing the pin frees it.
            if tcx_ifindex(&link) != Some(0) {
                link.detach().map_err(detach_err)?;
            }
        }
    }
    remove_pin(&pin)?;
    delete_link_record(pins, iface, dir)?;
    pins.remove_link_dir_if_empty(iface);
    Ok(())
}

/// Every pinned attachment with its live state, sorted by interface.
pub fn attachments(pins: &PinDir) -> Result<Vec<Attachment>> {
    let mut found = Vec::new();
    for (iface, dir) in pins.link_pins()? {
        if let Some(attachment) = inspect(pins, &iface, dir)? {
            found.push(attachment);
        }
    }
    Ok(found)
}

/// The attachment pinned for `iface`/`dir`, if any, checked against the
/// kernel from this namespace and against its record.
pub fn inspect(pins: &PinDir, iface: &str, dir: Direction) -> Result<Option<Attachment>> {
    let pin = pins.link(iface, dir);
    if !pin.exists() {
        return Ok(None);
    }
    let recorded = link_record(pins, iface, dir)?.map(|r| Recorded::from_record(&r));
    let here = Netns::current()?;
    let ours = ProgramHandle::from_pinned_path(pins.prog(dir))
        .ok()
        .map(|p| p.id());
    let attachment = match ProgramHandle::from_pinned_path(&pin) {
        Ok(marker) => inspect_tc(iface, dir, &marker, recorded, &here),
        Err(_) => inspect_tcx(iface, dir, &pin, recorded, &here, ours)?,
    };
    Ok(Some(attachment))
}

fn new_attachment(
    iface: &str,
    dir: Direction,
    mode: HookKind,
    prog_id: u32,
    recorded: Option<Recorded>,
) -> Attachment {
    Attachment {
        interface: iface.to_string(),
        direction: dir,
        mode,
        prog_id,
        link_id: None,
        ifindex: None,
        live: false,
        netns: recorded.map(|r| r.netns.describe()),
        in_this_netns: None,
        problem: None,
        recorded,
        namespace_gone: false,
    }
}

fn inspect_tc(
    iface: &str,
    dir: Direction,
    marker: &ProgramHandle,
    recorded: Option<Recorded>,
    here: &Netns,
) -> Attachment {
    let mut a = new_attachment(iface, dir, HookKind::Tc, marker.id(), recorded);
    let recorded_here = recorded.map(|r| r.netns.same(here));
    if recorded_here == Some(false) {
        a.in_this_netns = Some(false);
        a.namespace_gone = recorded.is_some_and(|r| r.netns.entry_path().is_none());
        if a.namespace_gone {
            a.problem = Some(format!(
                "attached in network namespace {}, which is gone with its interfaces: detach it",
                a.where_()
            ));
            return a;
        }
        a.problem = Some(format!(
            "attached in network namespace {}, not this one ({}); a tc filter can only be \
             checked from there: {} status",
            a.where_(),
            here.describe(),
            a.hint()
        ));
        return a;
    }
    a.ifindex = Interface::by_name(iface).ok().map(|i| i.ifindex);
    a.live = a.ifindex.is_some_and(|ifindex| {
        let mut hook = tc_hook(marker.as_fd(), ifindex, dir);
        query_quietly(&mut hook).is_ok_and(|prog_id| prog_id == marker.id())
    });
    a.in_this_netns = if a.live { Some(true) } else { recorded_here };
    if !a.live {
        a.problem = Some(match (a.ifindex, recorded_here) {
            (None, Some(true)) => format!("{iface} is gone: detach it"),
            (None, _) => format!(
                "{iface} is not in this namespace, and the namespace it was attached in is {}",
                UNRECORDED
            ),
            (Some(_), _) => format!(
                "segfw's tc filter is no longer on {iface} (removed behind segfw's back): \
                 attach again, or detach it"
            ),
        });
    }
    a
}

fn inspect_tcx(
    iface: &str,
    dir: Direction,
    pin: &Path,
    recorded: Option<Recorded>,
    here: &Netns,
    ours: Option<u32>,
) -> Result<Attachment> {
    let link = open_link(pin)?;
    let info = link.info().map_err(|source| DatapathError::OpenPinned {
        path: pin.to_path_buf(),
        source,
    })?;
    let mut a = new_attachment(iface, dir, HookKind::Tcx, info.prog_id, recorded);
    a.link_id = Some(info.id);
    let LinkTypeInfo::Tcx(tcx) = info.info else {
        a.problem = Some(format!(
            "{} holds a link that is not a tcx link: remove it by hand",
            pin.display()
        ));
        return Ok(a);
    };
    // The kernel reports ifindex 0 once the interface is gone.
    if tcx.ifindex == 0 {
        a.in_this_netns = recorded.map(|r| r.netns.same(here));
        a.problem = Some(format!(
            "{iface} is gone, so the link is defunct: detach it"
        ));
        return Ok(a);
    }
    a.ifindex = Some(tcx.ifindex);
    // The link is on this namespace's interface exactly when the kernel
    // lists it among that interface's tcx links here.
    a.in_this_netns = Some(
        tcx_programs(tcx.ifindex, dir)
            .map(|progs| progs.iter().any(|p| p.link_id == Some(info.id)))
            .unwrap_or(false),
    );
    let (live, problem) = tcx_check(&a, tcx.attach_type, recorded, here, ours);
    a.live = live;
    a.problem = problem;
    Ok(a)
}

/// Whether a hooked tcx link is live as pinned and recorded, and what is
/// wrong or notable about it.
fn tcx_check(
    a: &Attachment,
    attach_type: ProgramAttachType,
    recorded: Option<Recorded>,
    here: &Netns,
    ours: Option<u32>,
) -> (bool, Option<String>) {
    let (iface, dir) = (&a.interface, a.direction);
    let ifindex = a.ifindex.unwrap_or(0);
    let expected = matches!(
        (dir, &attach_type),
        (Direction::Ingress, ProgramAttachType::TcxIngress)
            | (Direction::Egress, ProgramAttachType::TcxEgress)
    );
    if !expected {
        return (
            false,
            Some(format!(
                "the link is a {attach_type:?} hook, not tcx {dir}: detach it"
            )),
        );
    }
    if let Some(ours) = ours.filter(|id| *id != a.prog_id) {
        return (
            false,
            Some(format!(
                "the link runs program {}, not this instance's progs/{dir} (program {ours}): \
                 detach it and attach again",
                a.prog_id
            )),
        );
    }
    if let Some(r) = recorded.filter(|r| r.ifindex != ifindex) {
        return (
            false,
            Some(format!(
                "recorded on ifindex {}, but the link is on ifindex {ifindex}: detach it",
                r.ifindex
            )),
        );
    }
    let recorded_here = recorded.map(|r| r.netns.same(here));
    if a.in_this_netns == Some(false) {
        if recorded_here == Some(true) {
            return (
                false,
                Some(format!(
                    "recorded in this namespace, but ifindex {ifindex} here does not carry the \
                     link: {iface} moved to another namespace; detach it"
                )),
            );
        }
        return (
            true,
            Some(format!(
                "attached in network namespace {}, not this one ({}); check it there: {} status",
                a.where_(),
                here.describe(),
                a.hint()
            )),
        );
    }
    let name = nix::net::if_::if_indextoname(ifindex)
        .ok()
        .map(|n| n.to_string_lossy().into_owned());
    if name.as_deref() != Some(iface.as_str()) {
        return (
            false,
            Some(format!(
                "the link is on ifindex {ifindex}, now named {}: detach {iface}",
                name.unwrap_or_else(|| "?".to_string())
            )),
        );
    }
    if recorded_here == Some(false) {
        return (
            true,
            Some(format!(
                "recorded in network namespace {}, but the kernel has it in this one; \
                 `segfw attach {iface}` records it again",
                a.where_()
            )),
        );
    }
    (true, None)
}

/// A program on a tcx hook: its id and, if attached through a link, the
/// link's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookProgram {
    pub prog_id: u32,
    pub link_id: Option<u32>,
}

/// The programs on `ifindex`'s tcx hook `dir` in this namespace, in the
/// order they run (BPF_PROG_QUERY).
pub fn tcx_programs(ifindex: u32, dir: Direction) -> io::Result<Vec<HookProgram>> {
    const MAX: usize = 64;
    let mut prog_ids = [0u32; MAX];
    let mut link_ids = [0u32; MAX];
    let mut opts = libbpf_sys::bpf_prog_query_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_prog_query_opts>() as _,
        prog_ids: prog_ids.as_mut_ptr(),
        link_ids: link_ids.as_mut_ptr(),
        ..Default::default()
    };
    opts.__bindgen_anon_1.count = MAX as u32;
    let ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
    // SAFETY: `opts` is a valid bpf_prog_query_opts whose prog_ids and
    // link_ids point at arrays of `count` u32s that outlive the call; the
    // kernel writes at most `count` entries into each and the new count
    // into `opts`.
    let ret = unsafe { libbpf_sys::bpf_prog_query_opts(ifindex, tcx_attach_type(dir), &mut opts) };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    // SAFETY: both members of the union are the same u32.
    let count = (unsafe { opts.__bindgen_anon_1.count } as usize).min(MAX);
    Ok((0..count)
        .map(|i| HookProgram {
            prog_id: prog_ids[i],
            link_id: (link_ids[i] != 0).then_some(link_ids[i]),
        })
        .collect())
}

fn tcx_attach_type(dir: Direction) -> libbpf_sys::bpf_attach_type {
    match dir {
        Direction::Ingress => libbpf_sys::BPF_TCX_INGRESS,
        Direction::Egress => libbpf_sys::BPF_TCX_EGRESS,
    }
}

/// What else filters `iface` in `dir` besides `ours`: other programs on
/// its tcx hook and every other legacy tc filter, each bpf program named
/// with its segfw instance when one is found under /sys/fs/bpf.
pub fn other_programs(iface: &Interface, dir: Direction, ours: &ProgramHandle) -> Vec<String> {
    let found: Vec<(&str, u32)> = tcx_programs(iface.ifindex, dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.prog_id != ours.id())
        .map(|p| ("tcx", p.prog_id))
        .collect();
    let mut others: Vec<String> = found
        .into_iter()
        .map(|(kind, id)| match describe_program(id) {
            Some(owner) => format!("{kind} program {id} ({owner})"),
            None => format!("{kind} program {id}"),
        })
        .collect();
    let filters = super::tcfilters::tc_filters(iface.ifindex, dir).unwrap_or_default();
    for filter in filters {
        let slot = format!("priority {} handle {:#x}", filter.priority, filter.handle);
        match filter.prog_id {
            Some(id) if id == ours.id() => {}
            Some(id) => others.push(match describe_program(id) {
                Some(owner) => format!("tc program {id} ({owner}; {slot})"),
                None => format!("tc program {id} ({slot})"),
            }),
            None => {
                // u32 lists its hash table and its filters: one line per priority.
                let line = format!("a tc {} filter (priority {})", filter.kind, filter.priority);
                if !others.contains(&line) {
                    others.push(line);
                }
            }
        }
    }
    others
}

/// "segfw_ingress of the segfw instance /sys/fs/bpf/x", or the program's
/// name when no instance under /sys/fs/bpf pins it.
fn describe_program(prog_id: u32) -> Option<String> {
    let owner = super::pins::find_instances(std::path::Path::new(super::pins::BPFFS_ROOT), 4)
        .into_iter()
        .find(|dir| {
            let pins = PinDir::new(dir);
            Direction::BOTH.iter().any(|d| {
                ProgramHandle::from_pinned_path(pins.prog(*d)).is_ok_and(|p| p.id() == prog_id)
            })
        });
    let name = ProgramHandle::from_prog_id(prog_id)
        .ok()
        .map(|p| p.name().to_string_lossy().into_owned());
    match (name, owner) {
        (Some(name), Some(dir)) => Some(format!("{name} of the segfw instance {}", dir.display())),
        (None, Some(dir)) => Some(format!("of the segfw instance {}", dir.display())),
        (Some(name), None) => Some(format!("named {name}")),
        (None, None) => None,
    }
}
fn open_link(pin: &Path) -> Result<Link> {
    Link::open(pin).map_err(|source| DatapathError::OpenPinned {
        path: pin.to_path_buf(),
        source,
    })
}

fn tcx_ifindex(link: &Link) -> Option<u32> {
    match link.info().ok()?.info {
        LinkTypeInfo::Tcx(tcx) => Some(tcx.ifindex),
        _ => None,
    }
}
