//! What the kernel has on an interface's tc hooks: segfw's legacy tc slot
//! (TcHook), the programs and links on its tcx hooks (BPF_PROG_QUERY), and
//! a description of every other program there, named with its segfw
//! instance when one pins it.
use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;

use libbpf_rs::query::LinkTypeInfo;
use libbpf_rs::{Link, ProgramHandle, TcHook, TC_EGRESS, TC_INGRESS};

use super::pins::PinDir;
use super::{DatapathError, Direction, Result};

/// Fixed handle and priority of segfw's legacy tc filters, so that detach
/// and status find exactly ours among other clsact filters.
pub const TC_HANDLE: u32 = 0x5e6f;

pub const TC_PRIORITY: u32 = 0x5e6f;

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

/// The program in segfw's tc slot.
pub(super) fn query_quietly(hook: &mut TcHook) -> libbpf_rs::Result<u32> {
    quietly(|| hook.query())
}

/// Runs `f` with libbpf's printing off: it prints the kernel's complaint
/// when an interface has no clsact qdisc (a query: "no filter") or has one
/// already (create: nothing to do), neither of which is an error here.
pub(super) fn quietly<T>(f: impl FnOnce() -> T) -> T {
    let previous = libbpf_rs::set_print(None);
    let result = f();
    libbpf_rs::set_print(previous);
    result
}

pub(super) fn tc_hook(prog: BorrowedFd<'_>, ifindex: u32, dir: Direction) -> TcHook {
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

pub(super) fn tcx_attach_type(dir: Direction) -> libbpf_sys::bpf_attach_type {
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
pub(super) fn describe_program(prog_id: u32) -> Option<String> {
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

pub(super) fn open_link(pin: &Path) -> Result<Link> {
    Link::open(pin).map_err(|source| DatapathError::OpenPinned {
        path: pin.to_path_buf(),
        source,
    })
}

pub(super) fn tcx_ifindex(link: &Link) -> Option<u32> {
    match link.info().ok()?.info {
        LinkTypeInfo::Tcx(tcx) => Some(tcx.ifindex),
        _ => None,
    }
}
