//! TCP_CRR-style connection rate: each transaction is a fresh connection
//! (connect, 1-byte request, 1-byte response, close). The server closes
//! first, so TIME_WAIT stays on the server and the client can reuse ports.
//! Used by `scripts/bench/netbench.py` for new connections per second.
//!
//!   crr server ADDR:PORT          accept loop, runs until killed
//!   crr client ADDR:PORT SECS     prints one JSON line: conns, errors, secs, per_sec
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["server", addr] => parse(addr).and_then(server),
        ["client", addr, secs] => parse(addr).and_then(|a| {
            let secs: f64 = secs.parse().map_err(|e| format!("SECS {secs}: {e}"))?;
            client(a, Duration::from_secs_f64(secs))
        }),
        _ => Err("usage: crr server ADDR:PORT | crr client ADDR:PORT SECS".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crr: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(addr: &str) -> Result<SocketAddr, String> {
    addr.parse().map_err(|e| format!("address {addr}: {e}"))
}

fn server(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
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

fn client(addr: SocketAddr, secs: Duration) -> Result<(), String> {
    let start = Instant::now();
    let (mut conns, mut errors) = (0u64, 0u64);
    let mut byte = [1u8; 1];
    while start.elapsed() < secs {
        if transaction(addr, &mut byte).is_ok() {
            conns += 1;
        } else {
            errors += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{{\"conns\": {conns}, \"errors\": {errors}, \"secs\": {elapsed:.6}, \"per_sec\": {:.1}}}",
        conns as f64 / elapsed
    );
    Ok(())
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
