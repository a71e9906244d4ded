//! Shared harness of the netns tests: two namespaces joined by a veth pair,
//! segfw attached on the server side ("a") with its own pin dir, and real
//! traffic sent from the client side ("b"). Everything is removed on drop,
//! also when the test panics.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Tests of one binary share the kernel (bpffs, tcx): run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Panics unless root: the netns tests are `#[ignore = "needs root: ..."]`,
/// so a plain `cargo test` lists them as ignored, and `make test` runs them
/// as root with `--include-ignored`.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "netns tests need root: run this test as root, as `make test` does"
    );
}

/// The path of a helper script in tests/scripts/, run as `python3 PATH ARGS`.
pub fn script(name: &str) -> String {
    format!("{}/tests/scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub const PORT_OPEN: u16 = 8080;
pub const PORT_CLOSED: u16 = 8081;
pub const UDP_OPEN: u16 = 5353;
pub const UDP_CLOSED: u16 = 5354;

/// Two namespaces, a veth pair, a pin dir, and the processes started in
/// them; all removed on drop.
pub struct Lab {
    pub ns_a: String,
    pub ns_b: String,
    pub pin_dir: PathBuf,
    /// 10.99.N.1 / fd99:N::1 (server, segfw attached here) and .2 / ::2.
    pub net: u8,
    pub policies: tempfile::TempDir,
    children: Vec<Child>,
}

/// The interface segfw attaches to, inside ns_a.
pub const IFACE: &str = "sfw0";

impl Lab {
    /// A fresh lab for test `name`; `net` picks its 10.99.N.0/24 subnet.
    pub fn new(name: &str, net: u8) -> Self {
        let pid = std::process::id();
        let lab = Lab {
            ns_a: format!("sfw-{name}-{pid}-a"),
            ns_b: format!("sfw-{name}-{pid}-b"),
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/segfw-test-{name}-{pid}")),
            net,
            policies: tempfile::tempdir().expect("create a temp dir for policy files"),
            children: Vec::new(),
        };
        lab.build_topology();
        lab
    }

    fn build_topology(&self) {
        run_ok("ip", &["netns", "add", &self.ns_a]);
        run_ok("ip", &["netns", "add", &self.ns_b]);
        self.add_veth_pair();
    }

    /// Deletes the veth pair and creates it again, same names and
    /// addresses, new interface indexes: what a restarted container does.
    pub fn recreate_veth_pair(&self) {
        run_ok("ip", &["-n", &self.ns_a, "link", "del", IFACE]);
        self.add_veth_pair();
    }

    fn add_veth_pair(&self) {
        let (a, b) = (self.ns_a.as_str(), self.ns_b.as_str());
        run_ok(
            "ip",
            &[
                "link", "add", IFACE, "netns", a, "type", "veth", "peer", "name", "sfw1", "netns",
                b,
            ],
        );
        for (ns, dev, host) in [(a, IFACE, 1), (b, "sfw1", 2)] {
            let v4 = format!("10.99.{}.{host}/24", self.net);
            let v6 = format!("fd99:{}::{host}/64", self.net);
            run_ok("ip", &["-n", ns, "addr", "add", &v4, "dev", dev]);
            run_ok("ip", &["-n", ns, "addr", "add", &v6, "dev", dev, "nodad"]);
            run_ok("ip", &["-n", ns, "link", "set", dev, "up"]);
            run_ok("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
    }

    /// Server address (ns a) as a string, IPv4 or IPv6.
    pub fn a(&self, v6: bool) -> String {
        if v6 {
            format!("fd99:{}::1", self.net)
        } else {
            format!("10.99.{}.1", self.net)
        }
    }

    /// Client address (ns b).
    pub fn b(&self, v6: bool) -> String {
        if v6 {
            format!("fd99:{}::2", self.net)
        } else {
            format!("10.99.{}.2", self.net)
        }
    }

    /// The policy text with segments "server" (a) and "client" (b).
    pub fn policy(&self, defaults_and_rules: &str) -> String {
        format!(
            "version = 1\n\n[segments]\nserver = [\"{}/32\", \"{}/128\"]\nclient = [\"{}/32\", \"{}/128\"]\n\n{defaults_and_rules}",
            self.a(false),
            self.a(true),
            self.b(false),
            self.b(true)
        )
    }

    /// Writes a policy file; returns its path.
    pub fn write_policy(&self, file: &str, text: &str) -> PathBuf {
        let path = self.policies.path().join(file);
        std::fs::write(&path, text).expect("write policy file");
        path
    }

    /// Runs segfw in ns a with this lab's pin dir.
    pub fn segfw(&self, args: &[&str]) -> Output {
        self.segfw_env(args, &[])
    }

    /// Runs segfw in ns a with this lab's pin dir and extra environment.
    pub fn segfw_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let netns = format!("--net=/run/netns/{}", self.ns_a);
        let pin_dir = self.pin_dir.display().to_string();
        let mut full = vec![
            netns.as_str(),
            env!("CARGO_BIN_EXE_segfw"),
            "--pin-dir",
            &pin_dir,
        ];
        full.extend_from_slice(args);
        Command::new("nsenter")
            .args(&full)
            .envs(env.iter().copied())
            .output()
            .expect("run nsenter segfw")
    }

    /// Runs segfw and asserts it exits 0; returns stdout.
    pub fn segfw_ok(&self, args: &[&str]) -> String {
        let out = self.segfw(args);
        assert!(
            out.status.success(),
            "segfw {args:?} should succeed, got {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `segfw status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.segfw_ok(&["status", "--json"]);
        serde_json::from_str(&out).expect("status --json is one JSON document")
    }

    /// Attaches segfw to IFACE in ns a with `policy`.
    pub fn attach(&self, policy: &Path, extra: &[&str]) -> String {
        let policy = policy.display().to_string();
        let mut args = vec!["attach", IFACE, "--policy", &policy];
        args.extend_from_slice(extra);
        self.segfw_ok(&args)
    }

    pub fn apply(&self, policy: &Path) -> String {
        self.segfw_ok(&["policy", "apply", &policy.display().to_string()])
    }

    /// One ping from `from` to `addr`.
    pub fn ping(&self, from: &str, addr: &str) -> bool {
        ns_cmd(from, &["ping", "-c1", "-W1", addr])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Starts a TCP listener in `ns` that accepts any number of connections.
    pub fn listen_tcp(&mut self, ns: &str, addr: &str, port: u16) {
        let child = ns_cmd(ns, &["nc", "-lk", addr, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nc listener");
        self.children.push(child);
        wait_for_listener(ns, port, "tcp");
    }

    /// Whether a TCP handshake from `from` to addr:port completes (the
    /// SYN passes one way and the SYN-ACK back).
    pub fn tcp_connects(&self, from: &str, addr: &str, port: u16) -> bool {
        ns_cmd(from, &["nc", "-z", "-w1", addr, &port.to_string()])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Starts a UDP echo server in `ns`.
    pub fn listen_udp_echo(&mut self, ns: &str, addr: &str, port: u16) {
        let server = script("udp_echo_server.py");
        let child = ns_cmd(ns, &["python3", &server, addr, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 UDP echo server");
        self.children.push(child);
        wait_for_listener(ns, port, "udp");
    }

    /// Whether a UDP datagram to addr:port gets its echo back; up to
    /// `attempts` datagrams, 1s each (a loaded CI machine can be slow to
    /// schedule the echo server, so allowed checks retry; denied ones need
    /// only one silent second).
    pub fn udp_echoes(&self, from: &str, addr: &str, port: u16, attempts: u32) -> bool {
        let (port, attempts) = (port.to_string(), attempts.to_string());
        let client = script("udp_echo_client.py");
        ns_cmd(from, &["python3", &client, addr, &port, &attempts])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// An open TCP session from `from` to addr:port whose received bytes
    /// the server side appends to a file.
    pub fn open_session(&mut self, server_ns: &str, from: &str, addr: &str, port: u16) -> Session {
        let received = self.policies.path().join(format!("session-{port}.txt"));
        let out = std::fs::File::create(&received).expect("create session output file");
        let server = ns_cmd(server_ns, &["nc", "-l", addr, &port.to_string()])
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("start nc session server");
        self.children.push(server);
        wait_for_listener(server_ns, port, "tcp");
        let mut client = ns_cmd(from, &["nc", addr, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nc session client");
        let stdin = client.stdin.take().expect("client stdin");
        self.children.push(client);
        Session { stdin, received }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        // Deleting the namespaces removed the interfaces; removing the pins
        // frees the (now defunct) links, the programs and the maps.
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

/// A client connection kept open across policy changes.
pub struct Session {
    stdin: ChildStdin,
    received: PathBuf,
}

impl Session {
    /// Sends a line; ignores errors (a revoked session may have broken).
    pub fn send(&mut self, line: &str) {
        let _ = writeln!(self.stdin, "{line}");
        let _ = self.stdin.flush();
    }

    /// Whether the server received `line` within `wait`.
    pub fn server_got(&self, line: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let text = std::fs::read_to_string(&self.received).unwrap_or_default();
            if text.lines().any(|l| l == line) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A command run inside a namespace (traffic tools only: they do not need
/// bpffs, so `ip netns exec` is fine here).
pub fn ns_cmd(ns: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(args);
    cmd
}

fn run_ok(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("run {program} {args:?}: {e}"));
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// Waits until something listens on `port` in `ns` (ss), at most 3s.
fn wait_for_listener(ns: &str, port: u16, proto: &str) {
    let flag = if proto == "tcp" { "-ltnH" } else { "-lunH" };
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let out = ns_cmd(ns, &["ss", flag, "sport", "=", &format!(":{port}")])
            .output()
            .expect("run ss");
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("no {proto} listener on port {port} in {ns} after 3s");
}

/// Program ids of the status document.
pub fn program_ids(status: &serde_json::Value) -> (u64, u64) {
    let p = &status["programs"];
    (
        p["ingress"].as_u64().expect("ingress program id"),
        p["egress"].as_u64().expect("egress program id"),
    )
}

/// Link ids of the attachments in the status document.
pub fn link_ids(status: &serde_json::Value) -> Vec<u64> {
    status["attachments"]
        .as_array()
        .expect("attachments array")
        .iter()
        .filter_map(|a| a["link_id"].as_u64())
        .collect()
}
