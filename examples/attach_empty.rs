//! Attaches the empty tcx program (`bpf/empty.bpf.c`, the benchmark floor)
//! to an interface of the current network namespace, on ingress and egress,
//! with tcx links pinned under PIN_DIR so that they outlive this process.
//! Used by `scripts/bench/netbench.py` as the "empty tcx program" column.
//!
//! Run as root, in the namespace of the interface:
//!   nsenter --net=/run/netns/NS attach_empty attach IFACE /sys/fs/bpf/DIR
//!   attach_empty detach /sys/fs/bpf/DIR   # removes the pins: links go away
use std::ffi::CString;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::OpenObject;
use segfw::skel::empty::EmptySkelBuilder;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["attach", iface, dir] => attach(iface, Path::new(dir)),
        ["detach", dir] => detach(Path::new(dir)),
        _ => Err("usage: attach_empty attach IFACE PIN_DIR | detach PIN_DIR".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attach_empty: {e}");
            ExitCode::FAILURE
        }
    }
}

fn attach(iface: &str, dir: &Path) -> Result<(), String> {
    let ifindex =
        nix::net::if_::if_nametoindex(iface).map_err(|e| format!("interface {iface}: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut storage = MaybeUninit::<OpenObject>::uninit();
    let open = EmptySkelBuilder::default()
        .open(&mut storage)
        .map_err(|e| format!("open empty.bpf.o: {e}"))?;
    let skel = open.load().map_err(|e| format!("load: {e}"))?;
    let prog = skel.progs.empty_ingress.as_fd();
    for (name, attach_type) in [
        ("ingress", libbpf_sys::BPF_TCX_INGRESS),
        ("egress", libbpf_sys::BPF_TCX_EGRESS),
    ] {
        let pin = dir.join(name);
        let path = CString::new(pin.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: `prog` is an open program fd; null opts asks for the
        // defaults (append, no relative program, no expected revision).
        let fd = unsafe {
            libbpf_sys::bpf_link_create(
                prog.as_raw_fd(),
                ifindex as i32,
                attach_type,
                std::ptr::null(),
            )
        };
        if fd < 0 {
            return Err(format!(
                "tcx {name} on {iface}: {}",
                std::io::Error::from_raw_os_error(-fd)
            ));
        }
        // SAFETY: `fd` was just returned by bpf_link_create; nothing else owns it.
        let link = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an open link fd and a NUL-terminated path, valid for the call.
        let ret = unsafe { libbpf_sys::bpf_obj_pin(link.as_raw_fd(), path.as_ptr()) };
        if ret < 0 {
            return Err(format!(
                "pin {}: {}",
                pin.display(),
                std::io::Error::from_raw_os_error(-ret)
            ));
        }
    }
    Ok(())
}

/// Unpinning the last reference to a tcx link detaches it.
fn detach(dir: &Path) -> Result<(), String> {
    for name in ["ingress", "egress"] {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("remove {}: {e}", dir.join(name).display())),
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("remove {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}
