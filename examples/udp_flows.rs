//! UDP packets per second over many flows (one socket, so one source port,
//! per flow, sent round-robin). Used by `scripts/bench/netbench.py`.
//!
//!   udp_flows sink ADDR:PORT             counts datagrams from the first one
//!                                        until 500 ms without any; prints
//!                                        one JSON line: packets, secs, per_sec
//!   udp_flows send SRC_ADDR DST:PORT FLOWS SECS
//!                                        prints one JSON line: sent, errors, per_sec
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::sys::socket::{setsockopt, sockopt};

const PAYLOAD: [u8; 18] = *b"segfw-bench-udp-18";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["sink", addr] => parse(addr).and_then(sink),
        ["send", src, dst, flows, secs] => (|| {
            let src: IpAddr = src.parse().map_err(|e| format!("SRC_ADDR {src}: {e}"))?;
            let flows: usize = flows.parse().map_err(|e| format!("FLOWS {flows}: {e}"))?;
            let secs: f64 = secs.parse().map_err(|e| format!("SECS {secs}: {e}"))?;
            send(src, parse(dst)?, flows, Duration::from_secs_f64(secs))
        })(),
        _ => Err(
            "usage: udp_flows sink ADDR:PORT | udp_flows send SRC_ADDR DST:PORT FLOWS SECS".into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp_flows: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(addr: &str) -> Result<SocketAddr, String> {
    addr.parse().map_err(|e| format!("address {addr}: {e}"))
}

fn sink(addr: SocketAddr) -> Result<(), String> {
    let sock = UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    // A deep queue, so that bursts are not lost while the sink is descheduled.
    let _ = setsockopt(&sock.as_fd(), sockopt::RcvBufForce, &(16 << 20));
    let mut buf = [0u8; 2048];
    sock.recv(&mut buf).map_err(|e| format!("recv: {e}"))?;
    let first = Instant::now();
    let mut last = first;
    let mut packets = 1u64;
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    while sock.recv(&mut buf).is_ok() {
        packets += 1;
        // Reading the clock per packet costs ~20 ns; keep it exact.
        last = Instant::now();
    }
    let secs = last.duration_since(first).as_secs_f64().max(1e-9);
    println!(
        "{{\"packets\": {packets}, \"secs\": {secs:.6}, \"per_sec\": {:.1}}}",
        packets as f64 / secs
    );
    Ok(())
}

fn send(src: IpAddr, dst: SocketAddr, flows: usize, secs: Duration) -> Result<(), String> {
    let socks: Vec<UdpSocket> = (0..flows.max(1))
        .map(|_| {
            let s = UdpSocket::bind(SocketAddr::new(src, 0)).map_err(|e| format!("bind: {e}"))?;
            s.connect(dst).map_err(|e| format!("connect {dst}: {e}"))?;
            Ok(s)
        })
        .collect::<Result<_, String>>()?;
    let start = Instant::now();
    let (mut sent, mut errors) = (0u64, 0u64);
    'outer: loop {
        for s in &socks {
            match s.send(&PAYLOAD) {
                Ok(_) => sent += 1,
                Err(_) => errors += 1,
            }
        }
        if start.elapsed() >= secs {
            break 'outer;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{{\"sent\": {sent}, \"errors\": {errors}, \"secs\": {elapsed:.6}, \"per_sec\": {:.1}}}",
        sent as f64 / elapsed
    );
    Ok(())
}
