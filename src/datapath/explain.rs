//! `explain`: runs a synthetic packet with BPF_PROG_TEST_RUN through the
//! LOADED explain program (progs/explain), which the attached programs were
//! loaded with and whose maps it shares. It decides as they do for a real
//! packet but changes nothing (no conntrack entry, counter or event). The
//! direction goes in, and the answer comes back, in words of the
//! __sk_buff's cb (enum segfw_explain_cb of bpf/segfw_shared.h): the answer
//! belongs to this one call, so concurrent explains cannot mix theirs up, as
//! they could through a shared map.
use std::mem::{offset_of, size_of};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

use libbpf_rs::ProgramHandle;
use serde::Serialize;

use super::maps::Maps;
use super::names::live_rule_names;
use super::names::reason_name;
use super::pins::PinDir;
use super::{DatapathError, Direction};
use crate::policy::model::proto;
use crate::policy::view::{proto_name, rule_label};
use crate::skel::types::{__sk_buff, segfw_explain_cb};
/// Source port of a probe when --src names none: an ephemeral port.
pub const DEFAULT_SPORT: u16 = 40000;
/// Echo id of ICMP echo probes.
const ECHO_ID: u16 = 0x5e6f;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;

/// A probe that cannot be built: the user's to fix (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "{text:?} is not an address (expected IP or IP:PORT, e.g. 10.0.1.5:8080 or [fd00::5]:8080)"
    )]
    BadEndpoint { text: String },
    #[error("{text:?}: port 0 is not a valid port (1-65535)")]
    PortZero { text: String },
    #[error(
        "--src {src} and --dst {dst} are of different address families; give two IPv4 or two IPv6 addresses"
    )]
    MixedFamilies { src: IpAddr, dst: IpAddr },
    #[error("{proto} is an {wanted} protocol but the addresses are {family}; use {hint}")]
    WrongIcmpFamily {
        proto: String,
        wanted: &'static str,
        family: &'static str,
        hint: &'static str,
    },
    #[error("{proto} has no ports; remove the :PORT from --{side}")]
    PortWithoutPorts { proto: String, side: &'static str },
    #[error("{proto} needs a destination port: --dst IP:PORT")]
    MissingPort { proto: String },
    #[error("--icmp-type applies to icmp and icmpv6 only, not {proto}")]
    IcmpTypeWithoutIcmp { proto: String },
}

/// Failures of `explain` itself: the datapath, not the probe.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    #[error("run {} on a synthetic packet (BPF_PROG_TEST_RUN)", .path.display())]
    TestRun {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is missing (removed by hand?): the attached programs keep enforcing, but explain \
         needs it; run `segfw uninstall`, then attach again",
        .path.display()
    )]
    ProgramMissing { path: std::path::PathBuf },
    #[error("{} gave no answer for the {direction} probe", .path.display())]
    NoAnswer {
        path: std::path::PathBuf,
        direction: Direction,
    },
}

/// One synthetic packet: a TCP SYN, UDP datagram, SCTP packet, ICMP(v6)
/// message or bare IP packet of another protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub proto: u8,
    /// ICMP type for icmp/icmpv6 (echo-request unless asked otherwise).
    pub icmp_type: Option<u8>,
    pub direction: Direction,
}

/// "IP" or "IP:PORT" ("[v6]:PORT" for IPv6).
pub fn parse_endpoint(text: &str) -> Result<(IpAddr, Option<u16>), ProbeError> {
    let bad = || ProbeError::BadEndpoint {
        text: text.to_string(),
    };
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok((addr, None));
    }
    let socket: SocketAddr = text.parse().map_err(|_| bad())?;
    if socket.port() == 0 {
        return Err(ProbeError::PortZero {
            text: text.to_string(),
        });
    }
    Ok((socket.ip(), Some(socket.port())))
}

impl Probe {
    /// Checks that the parts make one packet: same address family, ports
    /// only (and a destination port always) on tcp/udp/sctp, an ICMP
    /// protocol of the addresses' family.
    pub fn new(
        (src, sport): (IpAddr, Option<u16>),
        (dst, dport): (IpAddr, Option<u16>),
        proto_number: u8,
        icmp_type: Option<u8>,
        direction: Direction,
    ) -> Result<Self, ProbeError> {
        let name = proto_name(u16::from(proto_number));
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(ProbeError::MixedFamilies { src, dst });
        }
        let family = if src.is_ipv4() { "IPv4" } else { "IPv6" };
        match proto_number {
            proto::ICMP if src.is_ipv6() => {
                return Err(ProbeError::WrongIcmpFamily {
                    proto: name,
                    wanted: "IPv4",
                    family,
                    hint: "--proto icmpv6",
                })
            }
            proto::ICMPV6 if src.is_ipv4() => {
                return Err(ProbeError::WrongIcmpFamily {
                    proto: name,
                    wanted: "IPv6",
                    family,
                    hint: "--proto icmp",
                })
            }
            _ => {}
        }
        let has_ports = crate::policy::model::has_ports(proto_number);
        if !has_ports {
            if sport.is_some() {
                return Err(ProbeError::PortWithoutPorts {
                    proto: name,
                    side: "src",
                });
            }
            if dport.is_some() {
                return Err(ProbeError::PortWithoutPorts {
                    proto: name,
                    side: "dst",
                });
            }
        }
        let is_icmp = crate::policy::model::is_icmp(proto_number);
        if icmp_type.is_some() && !is_icmp {
            return Err(ProbeError::IcmpTypeWithoutIcmp { proto: name });
        }
        let dport = match dport {
            Some(port) => port,
            None if has_ports => return Err(ProbeError::MissingPort { proto: name }),
            None => 0,
        };
        let icmp_type = is_icmp.then(|| {
            icmp_type.unwrap_or(if proto_number == proto::ICMP {
                ICMP_ECHO_REQUEST
            } else {
                ICMPV6_ECHO_REQUEST
            })
        });
        Ok(Probe {
            src,
            sport: if has_ports {
                sport.unwrap_or(DEFAULT_SPORT)
            } else {
                0
            },
            dst,
            dport,
            proto: proto_number,
            icmp_type,
            direction,
        })
    }

    /// The Ethernet frame: Ethernet + IPv4/IPv6 + the L4 header.
    pub fn frame(&self) -> Vec<u8> {
        let l4 = self.l4();
        let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                frame.extend_from_slice(&0x0800u16.to_be_bytes());
                let mut ip = [0u8; 20];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
                ip[6] = 0x40; // don't fragment
                ip[8] = 64;
                ip[9] = self.proto;
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                frame.extend_from_slice(&ip);
            }
            (s, d) => {
                frame.extend_from_slice(&0x86ddu16.to_be_bytes());
                let mut ip = [0u8; 40];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
                ip[6] = self.proto;
                // 255: what an on-link router advertisement carries (RFC
                // 4861); nothing else looks at the hop limit
                ip[7] = 255;
                ip[8..24].copy_from_slice(&crate::policy::image::mapped_v6(s));
                ip[24..40].copy_from_slice(&crate::policy::image::mapped_v6(d));
                frame.extend_from_slice(&ip);
            }
        }
        frame.extend_from_slice(&l4);
        frame
    }

    /// The L4 header and a few payload bytes.
    fn l4(&self) -> Vec<u8> {
        let ports = |len: usize| {
            let mut h = vec![0u8; len];
            h[0..2].copy_from_slice(&self.sport.to_be_bytes());
            h[2..4].copy_from_slice(&self.dport.to_be_bytes());
            h
        };
        match self.proto {
            proto::TCP => {
                let mut h = ports(20);
                h[12] = 5 << 4; // data offset: 20 bytes
                h[13] = 0x02; // SYN
                h[14..16].copy_from_slice(&64240u16.to_be_bytes());
                h
            }
            proto::UDP => {
                let mut h = ports(8);
                h.extend_from_slice(b"segfw-explain");
                let len = h.len() as u16;
                h[4..6].copy_from_slice(&len.to_be_bytes());
                h
            }
            proto::SCTP => ports(12),
            proto::ICMP | proto::ICMPV6 => {
                let mut h = vec![self.icmp_type.unwrap_or(0), 0, 0, 0, 0, 0, 0, 1];
                h[4..6].copy_from_slice(&ECHO_ID.to_be_bytes());
                h.extend_from_slice(b"segfw-explain");
                h
            }
            _ => b"segfw-explain".to_vec(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Drop,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Drop => "drop",
        }
    }
}

/// What the loaded program would do with the probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub verdict: Verdict,
    /// Rule id that decided, 0 for the default action; None when no rule
    /// was consulted (e.g. a malformed packet or no policy).
    pub rule_id: Option<u32>,
    pub rule: Option<String>,
    /// Name from enum segfw_reason ("pass_allowed", "drop_policy", ...).
    pub reason: String,
    pub reason_code: u32,
    /// The flow is tracked: its verdict came from conntrack.
    pub conntrack_hit: bool,
    /// The policy generation the probe was decided against (0: none).
    pub generation: u32,
    pub direction: Direction,
    pub proto: String,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub icmp_type: Option<u8>,
}

/// The id of the pinned explain program; None if its pin is gone.
pub fn pinned_explain_id(pins: &PinDir) -> Result<Option<u32>, DatapathError> {
    let path = pins.explain_prog();
    if !path.exists() {
        return Ok(None);
    }
    let prog = ProgramHandle::from_pinned_path(&path)
        .map_err(|source| DatapathError::open_pinned(path, source))?;
    Ok(Some(prog.id()))
}

/// Runs `probe` through the pinned explain program, in the probe's direction.
pub fn explain(pins: &PinDir, probe: &Probe) -> Result<Explanation, ExplainError> {
    super::abi::require_compatible(pins)?;
    let path = pins.explain_prog();
    if !path.exists() {
        return Err(ExplainError::ProgramMissing { path });
    }
    let prog = ProgramHandle::from_pinned_path(&path)
        .map_err(|source| DatapathError::open_pinned(path.clone(), source))?;
    let maps = Maps::open(pins)?;
    let generation = maps.runtime()?.generation;

    let ctx = run_explain(&prog, &probe.frame(), probe.direction)
        .map_err(|source| ExplainError::TestRun {
            path: path.clone(),
            source,
        })?
        .1
        .ok_or(ExplainError::NoAnswer {
            path,
            direction: probe.direction,
        })?;
    let answer = ctx.verdict;
    let reason_code = answer >> 8;
    let rule_id = Some(ctx.rule).filter(|id| *id != segfw_explain_cb::SEGFW_EXPLAIN_NO_RULE.0);
    let rule = match rule_id {
        Some(id) => Some(rule_label(id, &live_rule_names(&maps)?)),
        None => None,
    };
    Ok(Explanation {
        verdict: if answer & 1 == 1 {
            Verdict::Pass
        } else {
            Verdict::Drop
        },
        rule_id,
        rule,
        reason: reason_name(reason_code),
        reason_code,
        conntrack_hit: ctx.ct_hit == 1,
        generation,
        direction: probe.direction,
        proto: proto_name(u16::from(probe.proto)),
        src: probe.src,
        sport: probe.sport,
        dst: probe.dst,
        dport: probe.dport,
        icmp_type: probe.icmp_type,
    })
}

/// The explain program's answer words (enum segfw_explain_cb), raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExplainWords {
    /// pass | reason << 8.
    pub verdict: u32,
    /// The rule id, or SEGFW_EXPLAIN_NO_RULE.
    pub rule: u32,
    /// 1 if conntrack held the flow.
    pub ct_hit: u32,
}

/// Byte offset of one cb word in a struct __sk_buff.
fn cb_at(word: segfw_explain_cb) -> usize {
    offset_of!(__sk_buff, cb) + size_of::<u32>() * word.0 as usize
}

/// Runs `frame` through the explain program `prog` as a packet of
/// `direction`: the return code and the answer, None if it gave none. The
/// tests' harness runs the skeleton's program through this too.
pub fn run_explain(
    prog: &impl AsFd,
    frame: &[u8],
    direction: Direction,
) -> std::io::Result<(u32, Option<ExplainWords>)> {
    let dir = direction.raw();
    let mut ctx_in = vec![0u8; size_of::<__sk_buff>()];
    let put = |ctx: &mut [u8], word, value: u32| {
        let at = cb_at(word);
        ctx[at..at + 4].copy_from_slice(&value.to_ne_bytes());
    };
    put(
        &mut ctx_in,
        segfw_explain_cb::SEGFW_EXPLAIN_CB_DIR,
        dir.0.into(),
    );
    // No program answer encodes as u32::MAX (reason << 8 never does).
    put(
        &mut ctx_in,
        segfw_explain_cb::SEGFW_EXPLAIN_CB_VERDICT,
        u32::MAX,
    );
    let mut ctx = vec![0u8; ctx_in.len()];
    let rc = test_run(prog, frame, &ctx_in, &mut ctx)?;
    let get = |word| {
        let at = cb_at(word);
        u32::from_ne_bytes(ctx[at..at + 4].try_into().expect("a cb word"))
    };
    let verdict = get(segfw_explain_cb::SEGFW_EXPLAIN_CB_VERDICT);
    let words = (verdict != u32::MAX).then(|| ExplainWords {
        verdict,
        rule: get(segfw_explain_cb::SEGFW_EXPLAIN_CB_RULE),
        ct_hit: get(segfw_explain_cb::SEGFW_EXPLAIN_CB_CT_HIT),
    });
    Ok((rc, words))
}

/// BPF_PROG_TEST_RUN of `frame` with `ctx_in` (a struct __sk_buff) as the
/// context; the context after the run lands in `ctx_out`. Returns the
/// program's return code. libbpf-rs 0.27 has test_run on skeleton programs
/// only, not on a ProgramHandle opened from a pin; this one serves both.
fn test_run(
    prog: &impl AsFd,
    frame: &[u8],
    ctx_in: &[u8],
    ctx_out: &mut [u8],
) -> std::io::Result<u32> {
    let mut opts = libbpf_sys::bpf_test_run_opts {
        sz: size_of::<libbpf_sys::bpf_test_run_opts>() as _,
        data_in: frame.as_ptr().cast(),
        data_size_in: frame.len() as u32,
        ctx_in: ctx_in.as_ptr().cast(),
        ctx_size_in: ctx_in.len() as u32,
        ctx_out: ctx_out.as_mut_ptr().cast(),
        ctx_size_out: ctx_out.len() as u32,
        repeat: 1,
        ..Default::default()
    };
    // SAFETY: `prog` keeps the program fd open for the call; data_in and
    // ctx_in point at frame.len() and ctx_in.len() readable bytes, ctx_out
    // at ctx_out.len() writable bytes, and the kernel writes at most
    // ctx_size_out bytes there. data_out is NULL: no packet is written back.
    // The kernel keeps none of these pointers after the call returns.
    let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog.as_fd().as_raw_fd(), &mut opts) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(-rc));
    }
    Ok(opts.retval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(text: &str) -> (IpAddr, Option<u16>) {
        parse_endpoint(text).unwrap()
    }

    #[test]
    fn endpoints_with_and_without_ports() {
        assert_eq!(ep("10.0.0.1"), ("10.0.0.1".parse().unwrap(), None));
        assert_eq!(ep("10.0.0.1:80"), ("10.0.0.1".parse().unwrap(), Some(80)));
        assert_eq!(ep("fd00::1"), ("fd00::1".parse().unwrap(), None));
        assert_eq!(ep("[fd00::1]:443"), ("fd00::1".parse().unwrap(), Some(443)));
        assert!(matches!(
            parse_endpoint("10.0.0.1:70000"),
            Err(ProbeError::BadEndpoint { .. })
        ));
        assert!(matches!(
            parse_endpoint("10.0.0.1:0"),
            Err(ProbeError::PortZero { .. })
        ));
        assert!(parse_endpoint("web").is_err());
        assert!(parse_endpoint("10.0.0.256").is_err());
    }

    #[test]
    fn probes_are_checked() {
        let v4 = ep("10.0.0.1");
        let v6 = ep("fd00::1");
        let with_port = ep("10.0.0.2:80");
        let dir = Direction::Ingress;
        assert!(matches!(
            Probe::new(v4, ep("fd00::2:80"), proto::UDP, None, dir),
            Err(ProbeError::MixedFamilies { .. })
        ));
        assert!(matches!(
            Probe::new(v6, ep("fd00::2"), proto::ICMP, None, dir),
            Err(ProbeError::WrongIcmpFamily { .. })
        ));
        assert!(matches!(
            Probe::new(v4, with_port, proto::ICMP, None, dir),
            Err(ProbeError::PortWithoutPorts { side: "dst", .. })
        ));
        assert!(matches!(
            Probe::new(v4, ep("10.0.0.2"), proto::TCP, None, dir),
            Err(ProbeError::MissingPort { .. })
        ));
        assert!(matches!(
            Probe::new(v4, with_port, proto::TCP, Some(8), dir),
            Err(ProbeError::IcmpTypeWithoutIcmp { .. })
        ));
        let tcp = Probe::new(v4, with_port, proto::TCP, None, dir).unwrap();
        assert_eq!((tcp.sport, tcp.dport), (DEFAULT_SPORT, 80));
        let ping = Probe::new(v6, ep("fd00::2"), proto::ICMPV6, None, dir).unwrap();
        assert_eq!(ping.icmp_type, Some(ICMPV6_ECHO_REQUEST));
    }

    #[test]
    fn frames_carry_the_probe() {
        let dir = Direction::Egress;
        let tcp = Probe::new(
            ep("10.0.0.1:1234"),
            ep("10.0.0.2:80"),
            proto::TCP,
            None,
            dir,
        )
        .unwrap()
        .frame();
        assert_eq!(tcp.len(), 14 + 20 + 20);
        assert_eq!(&tcp[12..14], &[0x08, 0x00]);
        assert_eq!(tcp[14 + 9], proto::TCP);
        assert_eq!(&tcp[34..38], &[0x04, 0xd2, 0x00, 0x50]);
        assert_eq!(tcp[34 + 13], 0x02, "a SYN");
        let ping = Probe::new(ep("fd00::1"), ep("fd00::2"), proto::ICMPV6, None, dir)
            .unwrap()
            .frame();
        assert_eq!(&ping[12..14], &[0x86, 0xdd]);
        assert_eq!(ping[14 + 6], proto::ICMPV6);
        assert_eq!(ping[54], ICMPV6_ECHO_REQUEST);
        let payload = u16::from_be_bytes([ping[18], ping[19]]) as usize;
        assert_eq!(ping.len(), 54 + payload);
    }
}
