//! TCP_CRR-style connection rate: each transaction is a fresh connection
//! (connect, 1-byte request, 1-byte response, close). The server closes
//! first, so TIME_WAIT stays on the server and the client can reuse ports.
//! Used by `scripts/bench/netbench.py` for new connections per second.
//!
//! With one connection at a time the rate is bound by wakeup latency, not
//! by CPU, so a filter's cost hardly shows; PARALLEL clients (and as many
//! server threads) keep the CPUs busy, so the rate measures CPU per
//! connection, filter included.
//!
//!   crr server ADDR:PORT [THREADS]        accept loops, run until killed
//!   crr client ADDR:PORT SECS [PARALLEL]  prints one JSON line: conns, errors, secs, per_sec
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["server", addr] => parse(addr).and_then(|a| server(a, 1)),
        ["server", addr, threads] => {
            count(threads, "THREADS").and_then(|t| parse(addr).and_then(|a| server(a, t)))
        }
        ["client", addr, secs] => client_args(addr, secs, "1"),
        ["client", addr, secs, parallel] => client_args(addr, secs, parallel),
        _ => Err(
            "usage: crr server ADDR:PORT [THREADS] | crr client ADDR:PORT SECS [PARALLEL]".into(),
        ),
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
    let parallel = count(parallel, "PARALLEL")?;
    parse(addr).and_then(|a| client(a, Duration::from_secs_f64(secs), parallel))
}

fn count(text: &str, what: &str) -> Result<usize, String> {
    match text.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{what} {text}: expected a positive integer")),
    }
}

fn parse(addr: &str) -> Result<SocketAddr, String> {
    addr.parse().map_err(|e| format!("address {addr}: {e}"))
}

fn server(addr: SocketAddr, threads: usize) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| serve(&listener));
        }
    });
    Ok(())
}

fn serve(listener: &TcpListener) {
    let mut byte = [0u8; 1];
    loop {
        let Ok((mut conn, _)) = listener.accept() else {
            continue;
        };
        let _ = conn.set_nodelay(true);
        if conn.read_exact(&mut byte).is_ok() {
            let _ = conn.write_all(&byte);
        }
    }
}

fn client(addr: SocketAddr, secs: Duration, parallel: usize) -> Result<(), String> {
    let start = Instant::now();
    let (conns, errors) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..parallel)
            .map(|_| scope.spawn(move || transactions(addr, start, secs)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("client thread panicked"))
            .fold((0u64, 0u64), |(c, e), (wc, we)| (c + wc, e + we))
    });
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{{\"conns\": {conns}, \"errors\": {errors}, \"secs\": {elapsed:.6}, \"parallel\": {parallel}, \"per_sec\": {:.1}}}",
        conns as f64 / elapsed
    );
    Ok(())
}

/// One client's loop until `secs` after `start`: (connections, errors).
fn transactions(addr: SocketAddr, start: Instant, secs: Duration) -> (u64, u64) {
    let (mut conns, mut errors) = (0u64, 0u64);
    let mut byte = [1u8; 1];
    while start.elapsed() < secs {
        if transaction(addr, &mut byte).is_ok() {
            conns += 1;
        } else {
            errors += 1;
        }
    }
    (conns, errors)
}

fn transaction(addr: SocketAddr, byte: &mut [u8; 1]) -> std::io::Result<()> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.write_all(byte)?;
    conn.read_exact(byte)?;
    // Wait for the server's FIN so that it, not we, holds TIME_WAIT.
    let mut rest = [0u8; 1];
    match conn.read(&mut rest)? {
        0 => Ok(()),
        _ => Err(std::io::Error::other("unexpected data")),
    }
}
