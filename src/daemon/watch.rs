//! Watching the policy file of `segfw run` with inotify.
//!
//! Editors save by writing a temporary file and renaming it over the
//! original, and Kubernetes mounts a ConfigMap key as a symlink chain
//! (`policy.toml -> ..data/policy.toml`, `..data -> ..2024_05_01_…`) whose
//! `..data` link is atomically replaced. A watch on the file itself would
//! follow the old inode in both cases, so the watcher watches the file's
//! directory (and the directory of its resolved target) for the file's
//! name and for `..`-names, debounces, and leaves the decision to the
//! caller, which compares the content hash of the resolved file.
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};

/// Quiet time after the last relevant event before the file is read: an
/// editor's save is several events, a ConfigMap swap about five.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Failures of the watcher (the daemon logs them and keeps enforcing).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("create inotify instance")]
    Init(#[source] nix::Error),
    #[error("watch directory {}", .dir.display())]
    AddWatch {
        dir: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("read inotify events")]
    Read(#[source] nix::Error),
}

/// One directory watched for some names in it.
#[derive(Debug)]
struct Watched {
    dir: PathBuf,
    names: Vec<OsString>,
}

/// Watches one policy file; see the module docs.
#[derive(Debug)]
pub struct PolicyWatcher {
    inotify: Inotify,
    path: PathBuf,
    watched: HashMap<WatchDescriptor, Watched>,
    /// Where the symlink chain ended at the last [`PolicyWatcher::rearm`].
    target: Option<PathBuf>,
    due: Option<Instant>,
}

impl PolicyWatcher {
    /// Watches the directory of `path` (which need not exist yet) and of
    /// its resolved target.
    pub fn new(path: &Path) -> Result<Self, WatchError> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(WatchError::Init)?;
        let mut watcher = PolicyWatcher {
            inotify,
            path: path.to_path_buf(),
            watched: HashMap::new(),
            target: None,
            due: None,
        };
        let (dir, name) = split(path);
        watcher.add(&dir, name)?;
        watcher.rearm()?;
        Ok(watcher)
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Re-resolves the symlink chain and watches the target's directory
    /// too when it is elsewhere (call after each reload: the chain may
    /// have changed).
    pub fn rearm(&mut self) -> Result<(), WatchError> {
        let (dir, name) = split(&self.path);
        // The file's own directory may have been replaced (IN_IGNORED).
        if !self.watched.values().any(|w| w.dir == dir) {
            self.add(&dir, name)?;
        }
        let Ok(target) = std::fs::canonicalize(&self.path) else {
            return Ok(());
        };
        if self.target.as_ref() == Some(&target) {
            return Ok(());
        }
        let (tdir, tname) = split(&target);
        // Kubernetes' target directories come and go with each swap: the
        // `..data` events in the file's own directory cover those.
        if !is_dot_dot(tdir.file_name().unwrap_or_default()) {
            self.add(&tdir, tname)?;
        }
        self.target = Some(target);
        Ok(())
    }

    fn add(&mut self, dir: &Path, name: OsString) -> Result<(), WatchError> {
        let mask = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_ONLYDIR;
        let wd = self
            .inotify
            .add_watch(dir, mask)
            .map_err(|source| WatchError::AddWatch {
                dir: dir.to_path_buf(),
                source,
            })?;
        // The same directory twice gives the same descriptor: merge names.
        let watched = self.watched.entry(wd).or_insert_with(|| Watched {
            dir: dir.to_path_buf(),
            names: Vec::new(),
        });
        if !watched.names.contains(&name) {
            watched.names.push(name);
        }
        Ok(())
    }

    /// Reads the queued events (non-blocking); a relevant one (re)starts
    /// the debounce timer. Returns whether any was relevant.
    pub fn drain(&mut self) -> Result<bool, WatchError> {
        let mut relevant = false;
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(WatchError::Read(e)),
            };
            for event in events {
                relevant |= self.is_relevant(&event);
            }
        }
        if relevant {
            self.due = Some(Instant::now() + DEBOUNCE);
        }
        Ok(relevant)
    }

    fn is_relevant(&mut self, event: &InotifyEvent) -> bool {
        if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            return true;
        }
        if event.mask.contains(AddWatchFlags::IN_IGNORED) {
            // The directory went away; rearm() watches it again if it returns.
            self.watched.remove(&event.wd);
            return true;
        }
        let (Some(watched), Some(name)) = (self.watched.get(&event.wd), &event.name) else {
            return false;
        };
        let entry = watched.dir.join(name);
        relevant(event.mask, name, &watched.names, || {
            entry
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        })
    }

    /// True once the debounce time after the last relevant event passed;
    /// then clears the timer.
    pub fn take_due(&mut self, now: Instant) -> bool {
        match self.due {
            Some(due) if now >= due => {
                self.due = None;
                true
            }
            _ => false,
        }
    }
}

/// Whether an event for `name` in a directory watched for `names` may have
/// changed the policy file's content:
/// - the file itself closed after writing, or renamed into place;
/// - the file created as a symlink (a new regular file is only complete at
///   its IN_CLOSE_WRITE, which follows);
/// - a `..`-name renamed or created (a ConfigMap's `..data` swap).
fn relevant(
    mask: AddWatchFlags,
    name: &OsStr,
    names: &[OsString],
    is_symlink: impl FnOnce() -> bool,
) -> bool {
    let written = mask.intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO);
    let created = mask.contains(AddWatchFlags::IN_CREATE);
    if names.iter().any(|n| n == name) {
        return written || (created && is_symlink());
    }
    is_dot_dot(name) && (written || created)
}

fn is_dot_dot(name: &OsStr) -> bool {
    name.as_bytes().starts_with(b"..")
}

/// (directory, file name) of a file path; a bare name is in ".".
fn split(path: &Path) -> (PathBuf, OsString) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    (dir, path.file_name().unwrap_or_default().to_os_string())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::thread;

    use super::*;

    fn names(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn relevant_events() {
        let ours = names(&["policy.toml"]);
        let f = OsStr::new("policy.toml");
        let yes = || true;
        let no = || false;
        assert!(relevant(AddWatchFlags::IN_CLOSE_WRITE, f, &ours, no));
        assert!(relevant(AddWatchFlags::IN_MOVED_TO, f, &ours, no));
        assert!(
            !relevant(AddWatchFlags::IN_CREATE, f, &ours, no),
            "regular file: wait for close"
        );
        assert!(relevant(AddWatchFlags::IN_CREATE, f, &ours, yes), "ln -sf");
        assert!(relevant(
            AddWatchFlags::IN_MOVED_TO,
            OsStr::new("..data"),
            &ours,
            no
        ));
        assert!(!relevant(
            AddWatchFlags::IN_CLOSE_WRITE,
            OsStr::new(".policy.toml.swp"),
            &ours,
            no
        ));
        assert!(!relevant(
            AddWatchFlags::IN_CLOSE_WRITE,
            OsStr::new("other.toml"),
            &ours,
            no
        ));
    }

    /// Waits up to 2s for the watcher to report the file due.
    fn fires(w: &mut PolicyWatcher) -> bool {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            w.drain().expect("read inotify events");
            if w.take_due(Instant::now()) {
                w.rearm().expect("rearm");
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn sees_write_in_place_rename_on_save_and_not_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.toml");
        std::fs::write(&file, "a").unwrap();
        let mut w = PolicyWatcher::new(&file).unwrap();
        std::fs::write(&file, "b").unwrap();
        assert!(fires(&mut w), "write in place not seen");
        let tmp = dir.path().join(".policy.toml.tmp");
        std::fs::write(&tmp, "c").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        assert!(fires(&mut w), "rename-on-save not seen");
        std::fs::write(dir.path().join("unrelated.toml"), "d").unwrap();
        assert!(!fires(&mut w), "a neighbour's write fired");
    }

    #[test]
    fn sees_configmap_data_swap() {
        // Layout of a ConfigMap volume: policy.toml -> ..data/policy.toml,
        // ..data -> ..v1; an update writes ..v2 and renames ..data_tmp over ..data.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..v1")).unwrap();
        std::fs::write(d.join("..v1/policy.toml"), "v1").unwrap();
        symlink("..v1", d.join("..data")).unwrap();
        symlink("..data/policy.toml", d.join("policy.toml")).unwrap();
        let file = d.join("policy.toml");
        let mut w = PolicyWatcher::new(&file).unwrap();

        std::fs::create_dir(d.join("..v2")).unwrap();
        std::fs::write(d.join("..v2/policy.toml"), "v2").unwrap();
        symlink("..v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        std::fs::remove_dir_all(d.join("..v1")).unwrap();
        assert!(fires(&mut w), "..data swap not seen");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "v2");
    }

    #[test]
    fn sees_edits_of_a_symlink_target_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let (etc, srv) = (dir.path().join("etc"), dir.path().join("srv"));
        std::fs::create_dir(&etc).unwrap();
        std::fs::create_dir(&srv).unwrap();
        std::fs::write(srv.join("real.toml"), "a").unwrap();
        symlink(srv.join("real.toml"), etc.join("policy.toml")).unwrap();
        let mut w = PolicyWatcher::new(&etc.join("policy.toml")).unwrap();
        std::fs::write(srv.join("real.toml"), "b").unwrap();
        assert!(fires(&mut w), "edit of the symlink's target not seen");
    }
}
