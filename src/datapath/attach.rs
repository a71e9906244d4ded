//! Attaching the pinned programs to interfaces: tcx links pinned at
//! links/IFACE/DIR (bpffs forbids dots in names), or legacy tc clsact filters (TcHook) with the program
//! pinned again at that path as the marker. Also detach and query.
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libbpf_rs::query::LinkTypeInfo;
use libbpf_rs::{Link, ProgramHandle, TcHook, TC_EGRESS, TC_INGRESS};

use super::pins::{remove_pin, restrict_pin, PinDir};
use super::{DatapathError, Direction, Result};

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
    /// False once the interface is gone or the filter was removed behind
    /// segfw's back: the program no longer sees its traffic.
    pub live: bool,
}

/// Attaches `prog` to `iface` in `dir`, unless a live attachment is pinned
/// already (then reports AlreadyAttached). A stale pin is replaced.
pub fn attach(
    pins: &PinDir,
    prog: &ProgramHandle,
    iface: &Interface,
    dir: Direction,
    mode: AttachMode,
) -> Result<AttachOutcome> {
    let pin = pins.link(&iface.name, dir);
    if let Some(existing) = inspect(pins, &iface.name, dir)? {
        if existing.live && existing.ifindex == Some(iface.ifindex) {
            return Ok(AttachOutcome::AlreadyAttached {
                kind: existing.mode,
            });
        }
        detach(pins, &iface.name, dir)?;
    }
    pins.create_link_dir(&iface.name)?;
    match mode {
        AttachMode::Tc => attach_tc(prog, iface, dir, &pin).map(|()| HookKind::Tc),
        AttachMode::Tcx => attach_tcx(prog, iface, dir, &pin).map(|()| HookKind::Tcx),
        AttachMode::Auto => return attach_auto(prog, iface, dir, &pin),
    }
    .map(|kind| AttachOutcome::Attached {
        kind,
        fallback: None,
    })
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
    let attach_type = match dir {
        Direction::Ingress => libbpf_sys::BPF_TCX_INGRESS,
        Direction::Egress => libbpf_sys::BPF_TCX_EGRESS,
    };
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
    hook.create().map_err(tc_err)?;
    hook.replace(true).attach().map_err(tc_err)?;
    prog.pin(pin).map_err(|source| DatapathError::Pin {
        path: pin.to_path_buf(),
        source: io::Error::other(source),
    })?;
    restrict_pin(pin)
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
/// An interface that is gone already is fine: its hooks went with it.
pub fn detach(pins: &PinDir, iface: &str, dir: Direction) -> Result<bool> {
    let pin = pins.link(iface, dir);
    if !pin.exists() {
        return Ok(false);
    }
    let detach_err = |source| DatapathError::Detach {
        iface: iface.to_string(),
        dir,
        source,
    };
    match ProgramHandle::from_pinned_path(&pin) {
        // A program pin is the legacy tc marker.
        Ok(marker) => {
            if let Ok(found) = Interface::by_name(iface) {
                let mut hook = tc_hook(marker.as_fd(), found.ifindex, dir);
                if hook.query().is_ok() {
                    hook.detach().map_err(detach_err)?;
                }
            }
        }
        Err(_) => {
            let link = open_link(&pin)?;
            // A link whose interface is gone is defunct; detaching it fails
            // harmlessly, and removing the pin frees it.
            if tcx_ifindex(&link) != Some(0) {
                link.detach().map_err(detach_err)?;
            }
        }
    }
    remove_pin(&pin)?;
    pins.remove_link_dir_if_empty(iface);
    Ok(true)
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

/// The attachment pinned for `iface`/`dir`, if any.
pub fn inspect(pins: &PinDir, iface: &str, dir: Direction) -> Result<Option<Attachment>> {
    let pin = pins.link(iface, dir);
    if !pin.exists() {
        return Ok(None);
    }
    let attachment = match ProgramHandle::from_pinned_path(&pin) {
        Ok(marker) => inspect_tc(iface, dir, &marker),
        Err(_) => inspect_tcx(iface, dir, &pin)?,
    };
    Ok(Some(attachment))
}

fn inspect_tc(iface: &str, dir: Direction, marker: &ProgramHandle) -> Attachment {
    let ifindex = Interface::by_name(iface).ok().map(|i| i.ifindex);
    let live = ifindex.is_some_and(|ifindex| {
        let mut hook = tc_hook(marker.as_fd(), ifindex, dir);
        hook.query().is_ok_and(|prog_id| prog_id == marker.id())
    });
    Attachment {
        interface: iface.to_string(),
        direction: dir,
        mode: HookKind::Tc,
        prog_id: marker.id(),
        link_id: None,
        ifindex,
        live,
    }
}

fn inspect_tcx(iface: &str, dir: Direction, pin: &Path) -> Result<Attachment> {
    let link = open_link(pin)?;
    let info = link.info().map_err(|source| DatapathError::OpenPinned {
        path: pin.to_path_buf(),
        source,
    })?;
    let ifindex = tcx_ifindex(&link);
    // The kernel reports ifindex 0 once the interface is gone.
    let live = ifindex.is_some_and(|i| i != 0);
    Ok(Attachment {
        interface: iface.to_string(),
        direction: dir,
        mode: HookKind::Tcx,
        prog_id: info.prog_id,
        link_id: Some(info.id),
        ifindex: ifindex.filter(|i| *i != 0),
        live,
    })
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
