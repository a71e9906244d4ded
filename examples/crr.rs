//! TCP_CRR-style connection rate: each transaction is a fresh connection
//! (connect, 1-byte request, 1-byte response, close). The server closes
//! first, so TIME_WAIT stays on the server and the client can reuse ports.
//! Used by `scripts/bench/netbench.py` for new connections per second.
//!
//! Client and server are each one thread with an epoll loop, and the client
//! keeps PARALLEL connections in flight. One connection at a time measures
//! wakeup latency, which no filter changes much; a thread per connection
//! spends most of the CPU on waking threads across CPUs, which on a VM costs
//! more than the connection's packets. An event loop with work always
//! pending rarely sleeps, so the rate measures the CPU a connection costs
//! in the stack, filter included.
//!
//!   crr server ADDR:PORT                  run until killed
//!   crr client ADDR:PORT SECS [PARALLEL]  prints one JSON line: conns, errors, secs, per_sec
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::{
    connect, getsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage,
};

/// A connection that got no answer this long is counted as an error and
/// replaced (a filter that drops it would otherwise stall its slot).
const STALL: Duration = Duration::from_secs(2);
/// epoll_wait's timeout: how often the client checks the clock when idle.
const TICK_MS: u16 = 50;
/// The listener's epoll token on the server; connections use their slot.
const LISTENER: u64 = u64::MAX;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["server", addr] => parse(addr).and_then(server),
        ["client", addr, secs] => client_args(addr, secs, "1"),
        ["client", addr, secs, parallel] => client_args(addr, secs, parallel),
        _ => Err("usage: crr server ADDR:PORT | crr client ADDR:PORT SECS [PARALLEL]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crr: {e}");
            ExitCode::FAILURE
        }
    }
}

fn client_args(addr: &str, secs: &str, parallel: &str) -> Result<(), String> {
    let secs: f64 = secs.parse().map_err(|e| format!("SECS {secs}: {e}"))?;
    let parallel = match parallel.parse() {
        Ok(n) if n > 0 => n,
        _ => return Err(format!("PARALLEL {parallel}: expected a positive integer")),
    };
    parse(addr).and_then(|a| client(a, Duration::from_secs_f64(secs), parallel))
}

fn parse(addr: &str) -> Result<SocketAddr, String> {
    addr.parse().map_err(|e| format!("address {addr}: {e}"))
}

fn new_epoll() -> Result<Epoll, String> {
    Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| format!("epoll_create1: {e}"))
}

fn readable(token: u64) -> EpollEvent {
    EpollEvent::new(EpollFlags::EPOLLIN, token)
}

// --- server -------------------------------------------------------------------

fn server(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listener: {e}"))?;
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        // one event loop per CPU, on each side
        let loops: Vec<_> = (0..segfw::parallel::cpus())
            .map(|_| scope.spawn(|| serve(&listener)))
            .collect();
        loops
            .into_iter()
            .map(|l| l.join().expect("server loop panicked"))
            .collect()
    });
    results.into_iter().collect()
}

/// One server loop: its own epoll set, the shared listener in it
/// exclusively (one loop woken per connection).
fn serve(listener: &TcpListener) -> Result<(), String> {
    let epoll = new_epoll()?;
    let interest = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE, LISTENER);
    epoll
        .add(listener, interest)
        .map_err(|e| format!("epoll add listener: {e}"))?;
    let mut conns: Slots<TcpStream> = Slots::default();
    let mut events = vec![EpollEvent::empty(); 256];
    loop {
        let n = match epoll.wait(&mut events, 1000u16) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("epoll_wait: {e}")),
        };
        for ev in &events[..n] {
            match ev.data() {
                LISTENER => accept_all(listener, &epoll, &mut conns),
                slot => answer(&mut conns, slot as usize),
            }
        }
    }
}

fn accept_all(listener: &TcpListener, epoll: &Epoll, conns: &mut Slots<TcpStream>) {
    while let Ok((conn, _)) = listener.accept() {
        if conn.set_nonblocking(true).is_err() || conn.set_nodelay(true).is_err() {
            continue;
        }
        if epoll.add(&conn, readable(conns.next_slot() as u64)).is_ok() {
            conns.insert(conn);
        }
    }
}

/// Reads the request byte, writes it back and closes (closing also takes
/// the socket out of the epoll set).
fn answer(conns: &mut Slots<TcpStream>, slot: usize) {
    let mut byte = [0u8; 1];
    let Some(conn) = conns.get_mut(slot) else {
        return;
    };
    match conn.read(&mut byte) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
        Ok(1) => {
            let _ = conn.write(&byte);
        }
        _ => {}
    }
    conns.remove(slot);
}

// --- client -------------------------------------------------------------------

/// Where one client connection is in its transaction.
enum Phase {
    /// Non-blocking connect under way: waiting for writable.
    Connecting(OwnedFd),
    /// Request sent: waiting for the response byte.
    Request(TcpStream),
    /// Response read: waiting for the server's FIN.
    Closing(TcpStream),
}

struct Conn {
    phase: Phase,
    started: Instant,
}

#[derive(Default)]
struct Tally {
    conns: u64,
    errors: u64,
}

fn client(addr: SocketAddr, secs: Duration, parallel: usize) -> Result<(), String> {
    let start = Instant::now();
    let deadline = start + secs;
    let n_loops = segfw::parallel::cpus().min(parallel);
    let results: Vec<Result<Tally, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..n_loops)
            .map(|i| {
                // PARALLEL connections spread over the loops
                let share = parallel / n_loops + usize::from(i < parallel % n_loops);
                scope.spawn(move || transactions(addr, deadline, share))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("client loop panicked"))
            .collect()
    });
    let mut tally = Tally::default();
    for r in results {
        let t = r?;
        tally.conns += t.conns;
        tally.errors += t.errors;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{{\"conns\": {}, \"errors\": {}, \"secs\": {elapsed:.6}, \"parallel\": {parallel}, \"per_sec\": {:.1}}}",
        tally.conns,
        tally.errors,
        tally.conns as f64 / elapsed
    );
    Ok(())
}

/// One client loop keeping `parallel` connections in flight until `deadline`.
fn transactions(addr: SocketAddr, deadline: Instant, parallel: usize) -> Result<Tally, String> {
    let epoll = new_epoll()?;
    let mut slots: Vec<Option<Conn>> = (0..parallel).map(|_| None).collect();
    let mut tally = Tally::default();
    for slot in 0..parallel {
        open(&epoll, addr, &mut slots, slot, &mut tally);
    }
    let mut events = vec![EpollEvent::empty(); parallel.max(1)];
    while Instant::now() < deadline {
        let n = match epoll.wait(&mut events, TICK_MS) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("epoll_wait: {e}")),
        };
        for ev in &events[..n] {
            let slot = ev.data() as usize;
            if let Some(done) = advance(&epoll, &mut slots, slot) {
                match done {
                    Ok(()) => tally.conns += 1,
                    Err(()) => tally.errors += 1,
                }
                open(&epoll, addr, &mut slots, slot, &mut tally);
            }
        }
        replace_stalled(&epoll, addr, &mut slots, &mut tally);
    }
    Ok(tally)
}

/// Starts a fresh connection in `slot`; a failure to start is an error and
/// the slot is tried again at the next stall check.
fn open(
    epoll: &Epoll,
    addr: SocketAddr,
    slots: &mut [Option<Conn>],
    slot: usize,
    tally: &mut Tally,
) {
    slots[slot] = None;
    match start_connect(addr) {
        Ok(fd) => {
            let interest = EpollEvent::new(EpollFlags::EPOLLOUT, slot as u64);
            if epoll.add(&fd, interest).is_ok() {
                slots[slot] = Some(Conn {
                    phase: Phase::Connecting(fd),
                    started: Instant::now(),
                });
                return;
            }
            tally.errors += 1;
        }
        Err(_) => tally.errors += 1,
    }
}

fn start_connect(addr: SocketAddr) -> nix::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket(family, SockType::Stream, flags, None)?;
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(fd),
        Err(e) => Err(e),
    }
}

/// What a connection does next.
enum Step {
    Wait(Phase),
    Done,
    Failed,
}

/// Moves the connection in `slot` on after an event: Some(Ok) when its
/// transaction is complete, Some(Err) when it failed, None while under way.
fn advance(epoll: &Epoll, slots: &mut [Option<Conn>], slot: usize) -> Option<Result<(), ()>> {
    let conn = slots[slot].take()?;
    let next = match conn.phase {
        Phase::Connecting(fd) => send_request(epoll, fd, slot),
        Phase::Request(stream) => read_response(stream),
        Phase::Closing(stream) => read_eof(stream),
    };
    match next {
        Step::Wait(phase) => {
            slots[slot] = Some(Conn {
                phase,
                started: conn.started,
            });
            None
        }
        Step::Done => Some(Ok(())),
        Step::Failed => Some(Err(())),
    }
}

/// Connected (or refused): sends the request and waits for the answer.
fn send_request(epoll: &Epoll, fd: OwnedFd, slot: usize) -> Step {
    if !matches!(getsockopt(&fd, sockopt::SocketError), Ok(0)) {
        return Step::Failed;
    }
    let mut stream = TcpStream::from(fd);
    let sent = stream.set_nodelay(true).is_ok() && matches!(stream.write(&[1]), Ok(1));
    if !sent || epoll.modify(&stream, &mut readable(slot as u64)).is_err() {
        return Step::Failed;
    }
    Step::Wait(Phase::Request(stream))
}

fn read_response(mut stream: TcpStream) -> Step {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => Step::Wait(Phase::Request(stream)),
        // The FIN often came with the answer: no need to wait for it.
        Ok(1) => read_eof(stream),
        _ => Step::Failed,
    }
}

/// Waits for the server's FIN so that it, not we, holds TIME_WAIT.
fn read_eof(mut stream: TcpStream) -> Step {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => Step::Wait(Phase::Closing(stream)),
        Ok(0) => Step::Done,
        _ => Step::Failed,
    }
}

/// Replaces connections that got no answer within STALL, and retries
/// slots whose connection could not be started.
fn replace_stalled(epoll: &Epoll, addr: SocketAddr, slots: &mut [Option<Conn>], tally: &mut Tally) {
    for slot in 0..slots.len() {
        let stalled = match &slots[slot] {
            Some(conn) => conn.started.elapsed() > STALL,
            None => true,
        };
        if stalled {
            if slots[slot].is_some() {
                tally.errors += 1;
            }
            open(epoll, addr, slots, slot, tally);
        }
    }
}

// --- slots ----------------------------------------------------------------------

/// Items by slot number (the epoll token), free slots reused.
struct Slots<T> {
    items: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    /// The slot the next insert takes.
    fn next_slot(&self) -> usize {
        self.free.last().copied().unwrap_or(self.items.len())
    }

    fn insert(&mut self, item: T) -> usize {
        match self.free.pop() {
            Some(slot) => {
                self.items[slot] = Some(item);
                slot
            }
            None => {
                self.items.push(Some(item));
                self.items.len() - 1
            }
        }
    }

    fn get_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.items.get_mut(slot)?.as_mut()
    }

    fn remove(&mut self, slot: usize) {
        if let Some(item) = self.items.get_mut(slot) {
            if item.take().is_some() {
                self.free.push(slot);
            }
        }
    }
}
