//! Attaching the pinned programs to interfaces: tcx links pinned at
//! links/IFACE/DIR (bpffs forbids dots in names), or legacy tc clsact
//! filters (TcHook) with the program pinned again at that path as the
//! marker, each with its record (network namespace, ifindex). Also detach.
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libbpf_rs::ProgramHandle;

use super::hooks::{open_link, query_quietly, quietly, tc_hook, tcx_attach_type, tcx_ifindex};
use super::inspect::Recorded;
use super::netns::Netns;
use super::pins::{remove_pin, restrict_pin, PinDir};
use super::records::{delete_link_record, put_link_record};
use super::{DatapathError, Direction, NetnsConflict, Result};

// Where callers have always found them.
pub use super::hooks::{other_programs, HookKind, Interface, TC_HANDLE, TC_PRIORITY};
pub use super::inspect::{attachments, inspect, Attachment};

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
            theirs: match existing.netns {
                Some(_) => existing.where_(),
                // Maybe it was this namespace's and its filter is gone.
                None => format!(
                    "{} (if it was this namespace's, `segfw detach {}` here removes the stale pin)",
                    existing.where_(),
                    existing.interface
                ),
            },
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
            owner: super::hooks::describe_program(prog_id)
                .map_or(String::new(), |owner| format!(" ({owner})")),
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
