//! The kernel side of segfw as seen from userspace: the pin dir, loading the
//! skeleton once per pin dir, tcx/tc attachments, typed map I/O, and
//! atomic policy apply. (The live maps read back as a policy in
//! crate::policy::view, which does no kernel I/O.)
//!
//! Every function works on one instance, named by its [`pins::PinDir`].
pub mod abi;
pub mod apply;
pub mod attach;
pub mod clock;
pub mod confirm;
pub mod conntrack;
pub mod events;
pub mod explain;
pub mod faults;
pub mod hooks;
pub mod inspect;
pub mod instance;
pub mod loader;
pub mod maps;
pub mod names;
pub mod netns;
pub mod pins;
pub mod records;
pub mod repair;
pub mod set_records;
pub mod sets;
pub mod stats;
pub mod status;
pub mod tcfilters;
pub mod uninstall;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The two tc hooks a program is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// The name used in pin paths and output: "ingress" or "egress".
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    /// The header's enum segfw_direction value for this hook.
    pub fn raw(self) -> crate::skel::types::segfw_direction {
        use crate::skel::types::segfw_direction;
        match self {
            Direction::Ingress => segfw_direction::SEGFW_DIR_INGRESS,
            Direction::Egress => segfw_direction::SEGFW_DIR_EGRESS,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ingress" => Ok(Direction::Ingress),
            "egress" => Ok(Direction::Egress),
            other => Err(format!("unknown direction {other:?} (ingress|egress)")),
        }
    }
}

/// Failures of the datapath layer. Messages read "verb object"; the cause
/// is the error's source, so a chain prints as "verb object: cause".
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error(
        "{} is not on a bpffs mount; run: mount -t bpf bpf /sys/fs/bpf, or pass --pin-dir under a bpffs mount",
        .pin_dir.display()
    )]
    NotBpffs { pin_dir: PathBuf },
    #[error("mount bpffs on {}", .path.display())]
    MountBpffs { path: PathBuf, source: nix::Error },
    #[error("inspect filesystem of {}", .path.display())]
    Statfs { path: PathBuf, source: nix::Error },
    #[error("create pin dir {}", .path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("lock pin dir {}", .path.display())]
    Lock { path: PathBuf, source: nix::Error },
    #[error(
        "lock pin dir {}: held by {holder} for all of {waited}; another segfw command is \
         changing this instance, retry when it finishes (SEGFW_LOCK_TIMEOUT_MS sets the wait)",
        .path.display()
    )]
    LockTimeout {
        path: PathBuf,
        waited: String,
        holder: String,
    },
    #[error(
        "open segfw instance in {}: not installed; run `segfw attach IFACE` first",
        .pin_dir.display()
    )]
    NotInstalled { pin_dir: PathBuf },
    #[error(
        "open segfw instance in {}: it was loaded by a segfw with ABI version {pinned} and this \
         segfw has ABI version {ours}, so its maps would be misread; run `segfw uninstall` with \
         this segfw (it detaches and unpins without reading the maps), then attach again, or use \
         the segfw binary that loaded it",
        .pin_dir.display()
    )]
    AbiMismatch {
        pin_dir: PathBuf,
        pinned: u32,
        ours: u32,
    },
    /// EACCES/EPERM on the pin dir, a pin or bpf(2): never "not installed".
    #[error(
        "{verb} {}: {cause}; segfw needs root, or CAP_BPF and CAP_SYS_ADMIN; the pins are 0600 root",
        .path.display()
    )]
    PermissionDenied {
        verb: &'static str,
        path: PathBuf,
        cause: String,
    },
    #[error("open BPF skeleton")]
    OpenSkeleton(#[source] libbpf_rs::Error),
    #[error("set up map {map} before load")]
    PrepareMap {
        map: String,
        source: libbpf_rs::Error,
    },
    #[error("load BPF programs and maps (pins in {})", .pin_dir.display())]
    Load {
        pin_dir: PathBuf,
        source: libbpf_rs::Error,
    },
    #[error("pin {}", .path.display())]
    Pin {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("open pinned object {}", .path.display())]
    OpenPinned {
        path: PathBuf,
        source: libbpf_rs::Error,
    },
    #[error("remove pin {}", .path.display())]
    Unpin {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("find interface {name:?}: no such interface in this network namespace")]
    UnknownInterface { name: String },
    #[error("attach tcx {dir} on {iface}")]
    AttachTcx {
        iface: String,
        dir: Direction,
        source: std::io::Error,
    },
    #[error("attach tc {dir} on {iface}")]
    AttachTc {
        iface: String,
        dir: Direction,
        source: libbpf_rs::Error,
    },
    #[error("detach {dir} from {iface}")]
    Detach {
        iface: String,
        dir: Direction,
        source: libbpf_rs::Error,
    },
    #[error("{op} map {map}")]
    MapIo {
        map: String,
        op: &'static str,
        source: libbpf_rs::Error,
    },
    #[error("read map {map}: {what}")]
    MapContent { map: String, what: String },
    #[error("identify the network namespace: {what}")]
    Netns {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "attach {iface}: this segfw instance ({}) is attached in network namespace {}, \
         and this command runs in {}; interface names are only unique within a \
         namespace, so run segfw in the interface's namespace ({} attach {iface}), or \
         use another --pin-dir for this namespace",
        .at.pin_dir.display(), .at.theirs, .at.ours, .at.hint
    )]
    ForeignNetns {
        iface: String,
        at: Box<NetnsConflict>,
    },
    #[error(
        "{verb} {iface} {dir}: {}/{} is attached in network namespace {}, not in this \
         one ({}); run it there: {} {verb} {iface}",
        .at.pin_dir.display(), .at.pin, .at.theirs, .at.ours, .at.hint
    )]
    LinkElsewhere {
        verb: &'static str,
        iface: String,
        dir: Direction,
        at: Box<NetnsConflict>,
    },
    #[error(
        "attach tc {dir} on {iface}: segfw's tc filter slot there (handle {handle:#x}, priority \
         {handle:#x}) carries program {prog_id}{owner}, not this instance's; attaching would \
         replace it and unfilter that instance; use --attach-mode tcx, or detach the other \
         instance first"
    )]
    TcSlotTaken {
        iface: String,
        dir: Direction,
        handle: u32,
        prog_id: u32,
        owner: String,
    },
    #[error(
        "use pin dir {}: it {relation} the segfw instance {}; instances must not nest \
         (an uninstall of one would delete the other's pins); choose a --pin-dir outside it, \
         such as /sys/fs/bpf/NAME",
        .pin_dir.display(), .other.display()
    )]
    NestedPinDir {
        pin_dir: PathBuf,
        relation: &'static str,
        other: PathBuf,
    },
    #[error("read pin dir {}", .path.display())]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl DatapathError {
    /// OpenPinned, or PermissionDenied when the kernel refused access
    /// (EACCES on the pin's mode, EPERM without CAP_BPF).
    pub fn open_pinned(path: PathBuf, source: libbpf_rs::Error) -> Self {
        if source.kind() == libbpf_rs::ErrorKind::PermissionDenied {
            // The errno, without libbpf's context (which repeats the path).
            let mut cause: &dyn std::error::Error = &source;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            DatapathError::PermissionDenied {
                verb: "open",
                path,
                cause: cause.to_string(),
            }
        } else {
            DatapathError::OpenPinned { path, source }
        }
    }

    /// PermissionDenied for EACCES/EPERM on `path`, else None.
    pub fn permission(verb: &'static str, path: &Path, err: &std::io::Error) -> Option<Self> {
        (err.kind() == std::io::ErrorKind::PermissionDenied).then(|| {
            DatapathError::PermissionDenied {
                verb,
                path: path.to_path_buf(),
                cause: err.to_string(),
            }
        })
    }
}

/// Where an attachment of another network namespace is, for the errors
/// that refuse to touch it from this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsConflict {
    pub pin_dir: PathBuf,
    /// links/IFACE/DIR (empty for the instance as a whole).
    pub pin: String,
    /// Its namespace and this command's, "net:[INODE] (NAME)".
    pub theirs: String,
    pub ours: String,
    /// How to run segfw there: "nsenter --net=PATH segfw".
    pub hint: String,
}

pub type Result<T, E = DatapathError> = std::result::Result<T, E>;
