//! Each pinned attachment checked against the kernel from this network
//! namespace and against its record: live or not, here or elsewhere, and
//! what is wrong, as `status`, `attach` and `detach` see it.
use std::os::fd::AsFd;
use std::path::Path;

use libbpf_rs::query::LinkTypeInfo;
use libbpf_rs::{ProgramAttachType, ProgramHandle};

use super::hooks::{open_link, query_quietly, tc_hook, tcx_programs, HookKind, Interface};
use super::netns::Netns;
use super::pins::PinDir;
use super::records::link_record;
use super::{DatapathError, Direction, Result};
use crate::skel::types::segfw_link_record;

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
    pub(super) recorded: Option<Recorded>,
    /// tc, recorded in a namespace that no longer exists: nothing to protect.
    #[serde(skip)]
    namespace_gone: bool,
}

/// A link record as attach compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Recorded {
    pub(super) netns: Netns,
    pub(super) ifindex: u32,
    pub(super) flags: u32,
}

impl Recorded {
    pub(super) fn from_record(r: &segfw_link_record) -> Self {
        Recorded {
            netns: Netns::of_record(r),
            ifindex: r.ifindex,
            flags: r.flags,
        }
    }

    pub(super) fn to_record(self) -> segfw_link_record {
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
    pub(super) fn elsewhere(&self) -> bool {
        self.in_this_netns == Some(false)
            && (self.live || (self.mode == HookKind::Tc && !self.namespace_gone))
    }

    /// The namespace it is in, for messages.
    pub(super) fn where_(&self) -> String {
        self.netns.clone().unwrap_or_else(|| UNRECORDED.to_string())
    }

    pub(super) fn hint(&self) -> String {
        self.recorded
            .map(|r| r.netns.nsenter_hint())
            .unwrap_or_else(|| Netns::default().nsenter_hint())
    }
}

/// What an attachment without a record says about its namespace.
const UNRECORDED: &str = "unknown (attached by an older segfw)";

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
            (Some(_), Some(true)) => format!(
                "segfw's tc filter is no longer on {iface} (removed behind segfw's back): \
                 attach again, or detach it"
            ),
            (Some(_), _) => format!(
                "segfw's tc filter is not on {iface} here: removed behind segfw's back, or on \
                 the {iface} of another namespace (which is {UNRECORDED}); if it was this \
                 namespace's, `segfw detach {iface}` removes the stale pin"
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
