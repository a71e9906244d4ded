//! The pin dir of one instance: its layout (progs/, maps/, links/), the
//! bpffs check (and mount), its permissions, and the lock that serializes
//! mutating commands.
use std::fs::{self, File, Permissions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, MsFlags};
use nix::sys::statfs::{statfs, BPF_FS_MAGIC};

use super::{DatapathError, Direction, Result};

/// Where bpffs is conventionally mounted; segfw mounts it there if missing.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// Every map of bpf/maps.h, pinned under maps/<name>.
pub const MAP_NAMES: [&str; 16] = [
    "policy_a",
    "policy_b",
    "policy_outer",
    "meta_a",
    "meta_b",
    "runtime",
    "conntrack",
    "flow_cache",
    "frags",
    "rule_stats",
    "reason_stats",
    "events",
    "ratelimit",
    "link_records",
    "daemon_record",
    "set_records",
];

/// The pins of progs/: the two attached programs, and the explain program
/// that only BPF_PROG_TEST_RUN runs (`segfw explain`).
pub const PROG_NAMES: [&str; 3] = ["ingress", "egress", EXPLAIN_PROG];
pub const EXPLAIN_PROG: &str = "explain";

/// Maps of records that only userspace reads (see bpf/segfw_shared.h): no
/// program holds them, so a missing one is created again, empty.
pub const RECORD_MAPS: [&str; 3] = ["link_records", "daemon_record", "set_records"];

/// (trie, meta) pins of policy set A (index 0) and B (index 1).
pub const SET_PINS: [(&str, &str); 2] = [("policy_a", "meta_a"), ("policy_b", "meta_b")];

/// Second pins of the active policy set, re-pinned at each apply.
pub const ACTIVE_POLICY_PIN: &str = "policy";
pub const ACTIVE_META_PIN: &str = "meta";
/// Suffix of the temporary name a re-pin goes through (bpffs names may
/// not contain a dot).
pub const REPIN_SUFFIX: &str = "_next";

/// How long a mutating command waits for another one to finish.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How a command opens an instance's maps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OpenMode {
    #[default]
    ReadWrite,
    /// BPF_F_RDONLY: for commands that only read (status, policy show and
    /// diff, stats, conntrack list, explain), so they work on pins an
    /// operator made read-only and can never write a map by mistake.
    /// (`events` is not one: consuming the ring buffer writes its consumer
    /// position.)
    ReadOnly,
}

impl OpenMode {
    /// The file flags of BPF_OBJ_GET.
    pub fn file_flags(self) -> u32 {
        match self {
            OpenMode::ReadWrite => 0,
            OpenMode::ReadOnly => libbpf_sys::BPF_F_RDONLY,
        }
    }
}

/// The pin dir of one segfw instance, and how the command that names it
/// opens its maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinDir {
    root: PathBuf,
    mode: OpenMode,
}

impl PinDir {
    /// A pin dir whose maps are opened read-write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        PinDir {
            root: root.into(),
            mode: OpenMode::ReadWrite,
        }
    }

    /// The same pin dir, its maps opened read-only ([`OpenMode::ReadOnly`]).
    pub fn read_only(self) -> Self {
        PinDir {
            mode: OpenMode::ReadOnly,
            ..self
        }
    }

    pub fn open_mode(&self) -> OpenMode {
        self.mode
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn progs_dir(&self) -> PathBuf {
        self.root.join("progs")
    }

    pub fn maps_dir(&self) -> PathBuf {
        self.root.join("maps")
    }

    pub fn links_dir(&self) -> PathBuf {
        self.root.join("links")
    }

    /// progs/ingress or progs/egress.
    pub fn prog(&self, dir: Direction) -> PathBuf {
        self.progs_dir().join(dir.as_str())
    }

    /// progs/explain.
    pub fn explain_prog(&self) -> PathBuf {
        self.progs_dir().join(EXPLAIN_PROG)
    }

    /// maps/<name>.
    pub fn map(&self, name: &str) -> PathBuf {
        self.maps_dir().join(name)
    }

    /// links/IFACE: the pins of one interface's attachments.
    pub fn link_dir(&self, iface: &str) -> PathBuf {
        self.links_dir().join(encode_iface(iface))
    }

    /// links/IFACE/ingress or links/IFACE/egress.
    pub fn link(&self, iface: &str, dir: Direction) -> PathBuf {
        self.link_dir(iface).join(dir.as_str())
    }

    /// Creates links/IFACE (0700) before a link is pinned there.
    pub fn create_link_dir(&self, iface: &str) -> Result<()> {
        create_private_dir(&self.link_dir(iface))
    }

    /// Removes links/IFACE once it holds no pins.
    pub fn remove_link_dir_if_empty(&self, iface: &str) {
        // Fails harmlessly while a pin of the other direction remains.
        let _ = fs::remove_dir(self.link_dir(iface));
    }

    /// Whether both attached programs are pinned: the instance was loaded.
    /// (A load pins progs/explain before them, so an interrupted load never
    /// looks installed; an instance without progs/explain is either an
    /// older build's, refused by its ABI version, or lost that pin by hand,
    /// which only `explain` needs.) What this
    /// process may not see or open is PermissionDenied, never "absent"
    /// (`Path::exists` reads EACCES on a 0700 pin dir as false): the pin
    /// dir's mode, and bpf(2) itself (EPERM without CAP_BPF), are checked.
    pub fn is_installed(&self) -> Result<bool> {
        for dir in Direction::BOTH {
            let path = self.prog(dir);
            if let Err(e) = fs::symlink_metadata(&path) {
                if is_absent(&e) {
                    return Ok(false);
                }
                return Err(DatapathError::permission("stat", &path, &e).unwrap_or(
                    DatapathError::ReadDir {
                        path: self.root.clone(),
                        source: e,
                    },
                ));
            }
        }
        // Other failures of this open are left to the command's own opens,
        // which name what they open.
        let prog = self.prog(Direction::Ingress);
        match libbpf_rs::ProgramHandle::from_pinned_path(&prog) {
            Err(e) if e.kind() == libbpf_rs::ErrorKind::PermissionDenied => {
                Err(DatapathError::open_pinned(prog, e))
            }
            _ => Ok(true),
        }
    }

    /// Fails with NotInstalled unless both attached programs are pinned (and with
    /// PermissionDenied when this process may not tell).
    pub fn require_installed(&self) -> Result<()> {
        if self.is_installed()? {
            Ok(())
        } else {
            Err(DatapathError::NotInstalled {
                pin_dir: self.root.clone(),
            })
        }
    }

    /// Makes sure the pin dir lives on bpffs, mounting bpffs on /sys/fs/bpf
    /// when the pin dir is below it and nothing is mounted there yet.
    pub fn ensure_bpffs(&self) -> Result<()> {
        if is_on_bpffs(&self.root)? {
            return Ok(());
        }
        let root = Path::new(BPFFS_ROOT);
        if self.root.starts_with(root) && !is_on_bpffs(root)? {
            mount_bpffs(root)?;
            if is_on_bpffs(&self.root)? {
                return Ok(());
            }
        }
        Err(DatapathError::NotBpffs {
            pin_dir: self.root.clone(),
        })
    }

    /// Creates the pin dir and its subdirectories, owner-only (0700).
    pub fn create(&self) -> Result<()> {
        self.refuse_nesting()?;
        if let Some(name) = self
            .root
            .file_name()
            .filter(|n| n.to_string_lossy().contains('.'))
        {
            return Err(DatapathError::CreateDir {
                path: self.root.clone(),
                source: std::io::Error::other(format!(
                    "bpffs reserves names with a dot ({name:?}); choose a --pin-dir without one"
                )),
            });
        }
        for dir in [
            self.root.clone(),
            self.progs_dir(),
            self.maps_dir(),
            self.links_dir(),
        ] {
            create_private_dir(&dir)?;
        }
        Ok(())
    }

    /// Takes the instance lock: flock(2) on the pin dir itself. Waits up to
    /// LOCK_TIMEOUT (env SEGFW_LOCK_TIMEOUT_MS overrides it) for a
    /// concurrent command, then fails naming the pin dir and the holder.
    pub fn lock(&self) -> Result<PinLock> {
        self.lock_with_timeout(lock_timeout())
    }

    pub fn lock_with_timeout(&self, timeout: Duration) -> Result<PinLock> {
        let start = Instant::now();
        loop {
            let dir = File::open(&self.root).map_err(|source| {
                DatapathError::permission("open", &self.root, &source).unwrap_or(
                    DatapathError::ReadDir {
                        path: self.root.clone(),
                        source,
                    },
                )
            })?;
            match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(PinLock { _lock: lock }),
                Err((_, nix::Error::EWOULDBLOCK)) if start.elapsed() < timeout => {
                    thread::sleep(Duration::from_millis(50));
                }
                Err((dir, nix::Error::EWOULDBLOCK)) => {
                    return Err(DatapathError::LockTimeout {
                        path: self.root.clone(),
                        waited: format!("{:.1}s", timeout.as_secs_f64()),
                        holder: describe_holder(lock_holder(&dir)),
                    })
                }
                Err((_, source)) => {
                    return Err(DatapathError::Lock {
                        path: self.root.clone(),
                        source,
                    })
                }
            }
        }
    }

    /// Interfaces whose links/IFACE dir is empty (detach removes the dir
    /// with its last pin, so an empty one means pins removed by hand).
    pub fn empty_link_dirs(&self) -> Result<Vec<String>> {
        let mut empty = Vec::new();
        for iface_dir in read_dir_names(&self.links_dir())? {
            let iface = decode_iface(&iface_dir);
            if read_dir_names(&self.link_dir(&iface))?.is_empty() {
                empty.push(iface);
            }
        }
        Ok(empty)
    }

    /// Every pinned attachment as (interface, direction), sorted.
    pub fn link_pins(&self) -> Result<Vec<(String, Direction)>> {
        let mut found = Vec::new();
        for iface_dir in read_dir_names(&self.links_dir())? {
            let iface = decode_iface(&iface_dir);
            for name in read_dir_names(&self.link_dir(&iface))? {
                if let Ok(dir) = name.parse::<Direction>() {
                    found.push((iface.clone(), dir));
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// Removes the whole pin dir (maps and programs are freed once nothing
    /// else holds them).
    pub fn remove_all(&self) -> Result<()> {
        match fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(DatapathError::Unpin {
                path: self.root.clone(),
                source,
            }),
        }
    }
}

// ---- Nesting: an instance's pin dir is never inside or around another's ----

/// How deep below a pin dir (or /sys/fs/bpf) other instances are looked for.
const NESTING_DEPTH: usize = 4;

/// The top-level entries a pin dir of segfw holds.
pub const INSTANCE_ENTRIES: [&str; 3] = ["progs", "maps", "links"];

impl PinDir {
    /// Fails with NestedPinDir when this pin dir is inside another
    /// instance's, or holds one below it: the uninstall of either would
    /// then delete pins of the other.
    pub fn refuse_nesting(&self) -> Result<()> {
        match self.nesting() {
            Some((relation, other)) => Err(DatapathError::NestedPinDir {
                pin_dir: self.root.clone(),
                relation,
                other,
            }),
            None => Ok(()),
        }
    }

    /// ("is inside", outer) or ("contains", inner) for the first other instance
    /// found, None when this pin dir stands alone.
    pub fn nesting(&self) -> Option<(&'static str, PathBuf)> {
        let root = absolute(&self.root);
        if let Some(outer) = root.ancestors().skip(1).find(|p| looks_like_instance(p)) {
            return Some(("is inside", outer.to_path_buf()));
        }
        find_instances(&root, NESTING_DEPTH)
            .into_iter()
            .find(|inner| inner != &root)
            .map(|inner| ("contains", inner))
    }
}

/// Whether `dir` holds a segfw instance: a pinned program, or the maps
/// only segfw pins (an instance whose maps/ was removed still has progs/).
pub fn looks_like_instance(dir: &Path) -> bool {
    [
        "progs/ingress",
        "progs/egress",
        "progs/explain",
        "maps/policy_outer",
        "maps/runtime",
    ]
    .iter()
    .any(|p| dir.join(p).exists())
}

/// Instances at or below `root`, at most `depth` levels down; the inside
/// of an instance is searched too (a pin dir nested there by an older
/// segfw). Symlinks are not followed.
pub fn find_instances(root: &Path, depth: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if looks_like_instance(root) {
        found.push(root.to_path_buf());
    }
    if depth == 0 {
        return found;
    }
    let Ok(entries) = fs::read_dir(root) else {
        return found;
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        found.extend(find_instances(&dir, depth - 1));
    }
    found
}

/// `path` made absolute against the working directory (not resolved: a
/// pin dir may not exist yet).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod nesting_tests {
    use super::*;

    fn instance_at(dir: &Path) {
        fs::create_dir_all(dir.join("progs")).unwrap();
        fs::write(dir.join("progs/ingress"), b"").unwrap();
    }

    #[test]
    fn a_pin_dir_inside_or_around_an_instance_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let outer = tmp.path().join("outer");
        instance_at(&outer);
        assert_eq!(PinDir::new(&outer).nesting(), None, "an instance alone");
        let inside = PinDir::new(outer.join("maps"));
        assert_eq!(inside.nesting(), Some(("is inside", outer.clone())));
        let around = PinDir::new(tmp.path());
        assert_eq!(around.nesting(), Some(("contains", outer.clone())));
        let err = inside.refuse_nesting().unwrap_err().to_string();
        assert!(err.contains(&outer.display().to_string()), "{err}");
        assert_eq!(PinDir::new(tmp.path().join("beside")).nesting(), None);
    }
}

/// bpffs reserves names with a dot, and interface names may have one
/// (VLANs: "eth0.100"); ':' never appears in an interface name, so it
/// stands in for '.' reversibly.
fn encode_iface(iface: &str) -> String {
    iface.replace('.', ":")
}

fn decode_iface(encoded: &str) -> String {
    encoded.replace(':', ".")
}

/// ENOENT, or ENOTDIR (a file where a directory of the path should be).
fn is_absent(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR)
}

/// Names in `dir`, sorted; a missing dir has none.
pub(crate) fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DatapathError::ReadDir {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DatapathError::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The lock timeout: SEGFW_LOCK_TIMEOUT_MS if set and valid, else
/// LOCK_TIMEOUT.
fn lock_timeout() -> Duration {
    std::env::var("SEGFW_LOCK_TIMEOUT_MS")
        .ok()
        .and_then(|ms| ms.trim().parse().ok())
        .map_or(LOCK_TIMEOUT, Duration::from_millis)
}

/// The pid holding a flock on `file`, from /proc/locks (None if not
/// found: the lock was just released, or /proc is not mounted).
fn lock_holder(file: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let locks = fs::read_to_string("/proc/locks").ok()?;
    holder_in_proc_locks(&locks, meta.dev(), meta.ino())
}

/// Parses /proc/locks lines such as
/// `3: FLOCK  ADVISORY  WRITE 4242 00:2a:1234 0 EOF` for the holder of
/// inode `ino` on device `dev`.
fn holder_in_proc_locks(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Blocked waiters are listed as "-> FLOCK ..."; skip them.
        let fields = fields.get(1..)?;
        if fields.first() != Some(&"FLOCK") {
            return None;
        }
        let pid: u32 = fields.get(3)?.parse().ok()?;
        let mut id = fields.get(4)?.split(':');
        let maj = u64::from_str_radix(id.next()?, 16).ok()?;
        let min = u64::from_str_radix(id.next()?, 16).ok()?;
        let inode: u64 = id.next()?.parse().ok()?;
        (maj == major && min == minor && inode == ino).then_some(pid)
    })
}

fn describe_holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => {
            let cmd = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| {
                    raw.split(|b| *b == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            if cmd.is_empty() {
                format!("pid {pid}")
            } else {
                format!("pid {pid} ({cmd})")
            }
        }
        None => "a process whose pid /proc/locks does not show".to_string(),
    }
}

/// Held while a mutating command runs; released on drop (or process exit).
#[derive(Debug)]
pub struct PinLock {
    _lock: Flock<File>,
}

/// Restricts a pin to its owner (0600): maps that only segfw writes.
pub fn restrict_pin(path: &Path) -> Result<()> {
    fs::set_permissions(path, Permissions::from_mode(0o600)).map_err(|source| DatapathError::Pin {
        path: path.to_path_buf(),
        source,
    })
}

/// Removes a pin; a pin that is already gone is fine.
pub fn remove_pin(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DatapathError::Unpin {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Whether `path`, or its nearest existing ancestor, is on bpffs.
fn is_on_bpffs(path: &Path) -> Result<bool> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let fs = statfs(existing).map_err(|source| DatapathError::Statfs {
        path: existing.to_path_buf(),
        source,
    })?;
    Ok(fs.filesystem_type() == BPF_FS_MAGIC)
}

fn mount_bpffs(path: &Path) -> Result<()> {
    mount(
        Some("bpf"),
        path,
        Some("bpf"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|source| DatapathError::MountBpffs {
        path: path.to_path_buf(),
        source,
    })
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let create_err = |source: std::io::Error| {
        DatapathError::permission("create", dir, &source).unwrap_or(DatapathError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
    };
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(create_err(source)),
    }
    .and_then(|()| {
        // umask may have narrowed or the dir may predate us: set it exactly.
        fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(create_err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_holder_is_found_in_proc_locks() {
        let dev = nix::sys::stat::makedev(0, 0x2a);
        let locks = "1: POSIX  ADVISORY  WRITE 11 00:2a:99 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 00:2a:1234 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 4343 00:2a:1234 0 EOF\n";
        assert_eq!(holder_in_proc_locks(locks, dev, 1234), Some(4242));
        assert_eq!(
            holder_in_proc_locks(locks, dev, 99),
            None,
            "POSIX locks are not ours"
        );
        assert_eq!(holder_in_proc_locks(locks, dev, 7), None);
    }

    #[test]
    fn eacces_and_eperm_are_permission_errors_and_enoent_is_absence() {
        let path = Path::new("/sys/fs/bpf/segfw/progs/ingress");
        for errno in [nix::libc::EACCES, nix::libc::EPERM] {
            let err = std::io::Error::from_raw_os_error(errno);
            let found = DatapathError::permission("stat", path, &err).map(|e| e.to_string());
            assert!(
                found.as_deref().is_some_and(|m| m
                    .starts_with("stat /sys/fs/bpf/segfw/progs/ingress: ")
                    && m.ends_with(
                        "; segfw needs root, or CAP_BPF and CAP_SYS_ADMIN; the pins are 0600 root"
                    )),
                "errno {errno}: {found:?}"
            );
            assert!(!is_absent(&err), "errno {errno} is not absence");
        }
        let enoent = std::io::Error::from_raw_os_error(nix::libc::ENOENT);
        assert!(DatapathError::permission("stat", path, &enoent).is_none());
        assert!(is_absent(&enoent));
        assert!(is_absent(&std::io::Error::from_raw_os_error(
            nix::libc::ENOTDIR
        )));
    }

    #[test]
    fn a_pin_dir_that_does_not_exist_is_not_installed() {
        let dir = tempfile::tempdir().unwrap();
        let pins = PinDir::new(dir.path().join("absent"));
        assert!(!pins.is_installed().expect("absence is no error"));
        assert!(matches!(
            pins.require_installed(),
            Err(DatapathError::NotInstalled { .. })
        ));
    }

    #[test]
    fn link_pins_have_no_dots_and_decode_back() {
        let pins = PinDir::new("/sys/fs/bpf/segfw");
        let pin = pins.link("eth0.100", Direction::Egress);
        assert_eq!(pin, Path::new("/sys/fs/bpf/segfw/links/eth0:100/egress"));
        assert_eq!(decode_iface("eth0:100"), "eth0.100");
    }
}
