//! Network namespaces: the identity of the one this process runs in, and
//! how to name another one to an operator (its /run/netns name, or a
//! process in it) so that a message can say where to run segfw instead.
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use super::{DatapathError, Result};
use crate::skel::types::segfw_link_record;

/// getsockopt(SOL_SOCKET) option of the netns cookie (Linux 5.14+,
/// asm-generic/socket.h); the libc crate does not export it.
const SO_NETNS_COOKIE: i32 = 71;

/// Where named namespaces are bind-mounted (`ip netns add`).
const RUN_NETNS: &str = "/run/netns";

/// The identity of one network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Netns {
    /// SO_NETNS_COOKIE: unique for the whole boot, never reused (0: the
    /// kernel has no cookies).
    pub cookie: u64,
    /// st_dev and st_ino of its nsfs file, as `lsns` and `ls -iL` show it.
    pub dev: u64,
    pub ino: u64,
}

impl Netns {
    /// The namespace of the calling thread.
    pub fn current() -> Result<Self> {
        let path = Path::new("/proc/thread-self/ns/net");
        let meta = fs::metadata(path)
            .or_else(|_| fs::metadata("/proc/self/ns/net"))
            .map_err(|source| DatapathError::Netns {
                what: format!("stat {}", path.display()),
                source,
            })?;
        Ok(Netns {
            cookie: current_cookie().unwrap_or(0),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// The namespace a link record names.
    pub fn of_record(record: &segfw_link_record) -> Self {
        Netns {
            cookie: record.netns_cookie,
            dev: record.netns_dev,
            ino: record.netns_ino,
        }
    }

    /// Writes this namespace into a link record (other fields untouched).
    pub fn store(&self, record: &mut segfw_link_record) {
        record.netns_cookie = self.cookie;
        record.netns_dev = self.dev;
        record.netns_ino = self.ino;
    }

    /// Whether both are the same namespace: by cookie where both have one
    /// (inodes are reused once a namespace is gone), else by inode.
    pub fn same(&self, other: &Netns) -> bool {
        if self.cookie != 0 && other.cookie != 0 {
            return self.cookie == other.cookie;
        }
        (self.dev, self.ino) == (other.dev, other.ino)
    }

    /// `net:[INODE]`, as /proc/PID/ns/net reads, with its name when one is
    /// found: "net:[4026532290] (/run/netns/blue)".
    pub fn describe(&self) -> String {
        let id = format!("net:[{}]", self.ino);
        match self.entry_path() {
            Some(path) if path == Path::new("/proc/1/ns/net") => {
                format!("{id} (the host namespace)")
            }
            Some(path) => format!("{id} ({})", path.display()),
            None => format!("{id} (no longer exists, or no process or /run/netns name holds it)"),
        }
    }

    /// A path `nsenter --net=PATH` enters this namespace through: its
    /// /run/netns name, pid 1's (the host), or any process in it.
    pub fn entry_path(&self) -> Option<PathBuf> {
        named_paths()
            .chain(std::iter::once(PathBuf::from("/proc/1/ns/net")))
            .chain(process_paths())
            .find(|path| self.is_at(path))
    }

    /// How to run a segfw command in this namespace.
    pub fn nsenter_hint(&self) -> String {
        match self.entry_path() {
            Some(path) => format!("nsenter --net={} segfw", path.display()),
            None => "nsenter --net=/run/netns/NAME segfw".to_string(),
        }
    }

    fn is_at(&self, path: &Path) -> bool {
        fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == (self.dev, self.ino))
    }
}

/// SO_NETNS_COOKIE of a fresh socket (None: the kernel predates it).
fn current_cookie() -> Option<u64> {
    let sock: OwnedFd = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as nix::libc::socklen_t;
    // SAFETY: `sock` is an open socket for the whole call; `cookie` and
    // `len` are valid for writes and `len` holds the size of `cookie`.
    let ret = unsafe {
        nix::libc::getsockopt(
            sock.as_raw_fd(),
            nix::libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    (ret == 0).then_some(cookie)
}

fn named_paths() -> impl Iterator<Item = PathBuf> {
    let mut names: Vec<PathBuf> = fs::read_dir(RUN_NETNS)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    names.into_iter()
}

/// Every other process's namespace file (this one exits soon).
fn process_paths() -> impl Iterator<Item = PathBuf> {
    let me = std::process::id().to_string();
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(move |e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name != me && name.bytes().all(|b| b.is_ascii_digit())
        })
        .map(|e| e.path().join("ns/net"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_namespace_by_cookie_or_by_inode() {
        let a = Netns {
            cookie: 7,
            dev: 4,
            ino: 100,
        };
        let reused = Netns {
            cookie: 9,
            dev: 4,
            ino: 100,
        };
        assert!(
            !a.same(&reused),
            "a new namespace may reuse an inode, never a cookie"
        );
        let old = Netns {
            cookie: 0,
            dev: 4,
            ino: 100,
        };
        assert!(a.same(&old), "without a cookie the inode decides");
        assert!(a.same(&a));
    }

    #[test]
    fn this_namespace_has_an_identity_and_a_way_in() {
        let here = Netns::current().expect("stat /proc/self/ns/net");
        assert_ne!(here.ino, 0);
        assert!(here.same(&Netns::current().unwrap()));
    }
}
