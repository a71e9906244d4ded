//! A reference model of the datapath's verdict for one packet on an EMPTY
//! conntrack (stateless), written from bpf/parse.h, bpf/segfw.bpf.c and
//! bpf/policy.h, check by check in the C's order, so that the fuzz test
//! can compare it with the real explain program (progs/explain).
//!
//! It models BPF_PROG_TEST_RUN frames: the whole frame is linear
//! (data_end is its end, skb->len its length) and gso_segs is 0. Explain
//! never remembers first fragments, so every later fragment is an orphan.
#![allow(dead_code)]
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use segfw::policy::decode::{decode_entry, Entry};
use segfw::policy::eval::{Flow, ImageIndex};
use segfw::policy::image::{self, PolicyImage};
use segfw::policy::model::{Action, Prefix};
use segfw::skel::types::{segfw_key_kind, segfw_limits, segfw_reason as R, segfw_value_flags};

pub const RULE_FAILSAFE: u32 = segfw_limits::SEGFW_RULE_FAILSAFE.0;
const MAX_EXT_HDRS: usize = segfw_limits::SEGFW_MAX_EXT_HDRS.0 as usize;
const ND_HOP_LIMIT: u8 = segfw_limits::SEGFW_ND_HOP_LIMIT.0 as u8;
const PULL_LEN: usize = 256;

/// What the datapath answers for a packet: pass, reason, rule id (None
/// when no rule is accounted, i.e. cb[3] = 0xffffffff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub pass: bool,
    pub reason: u32,
    pub rule_id: Option<u32>,
}

impl Verdict {
    fn only(reason: R) -> Self {
        Verdict {
            pass: reason.0 < R::SEGFW_REASON_FIRST_DROP.0,
            reason: reason.0.into(),
            rule_id: None,
        }
    }

    fn ruled(reason: R, rule_id: u32) -> Self {
        Verdict {
            rule_id: Some(rule_id),
            ..Self::only(reason)
        }
    }
}

/// The policy as the model sees it: the compiled image's trie (for the
/// decision, through segfw::policy::eval), its config flags and each
/// rule's flags.
pub struct ModelPolicy {
    index: ImageIndex,
    config_flags: Option<u8>,
    rule_flags: HashMap<u32, u8>,
    /// RA_SOURCE prefixes: where router advertisements may come from.
    ra_sources: Vec<Prefix>,
}

impl ModelPolicy {
    pub fn new(image: &PolicyImage) -> Self {
        let index = ImageIndex::new(image);
        let config_flags = index.lookup(&image::config_key()).map(|c| c.flags);
        let rule_flags = image
            .trie
            .iter()
            .filter(|(k, _)| k.kind == segfw_key_kind::SEGFW_KIND_RULE)
            .map(|(_, v)| (v.id, v.flags))
            .collect();
        let ra_sources = image
            .trie
            .iter()
            .filter_map(|(k, v)| match decode_entry(k, v) {
                Entry::RaSource { prefix } => Some(prefix),
                _ => None,
            })
            .collect();
        ModelPolicy {
            index,
            config_flags,
            rule_flags,
            ra_sources,
        }
    }

    /// router_msg_reason() of bpf/policy.h: hop limit 255 and a listed source.
    fn router_msg(&self, pkt: &Parsed) -> Verdict {
        let Some(config_flags) = self.config_flags else {
            return Verdict::only(R::SEGFW_PASS_NO_POLICY);
        };
        let src = IpAddr::V6(Ipv6Addr::from(pkt.src));
        if pkt.hop_limit == ND_HOP_LIMIT && self.ra_sources.iter().any(|p| p.contains(src)) {
            return Verdict::only(R::SEGFW_PASS_ND);
        }
        if config_flags & segfw_value_flags::SEGFW_FLAG_AUDIT.0 as u8 != 0 {
            return Verdict::only(R::SEGFW_PASS_AUDIT);
        }
        Verdict::only(R::SEGFW_DROP_ROUTER_MSG)
    }

    /// decide() of bpf/policy.h, then new_flow()'s explain answer.
    fn new_flow(&self, pkt: &Parsed, ingress: bool) -> Verdict {
        let Some(config_flags) = self.config_flags else {
            return Verdict::only(R::SEGFW_PASS_NO_POLICY);
        };
        if ingress
            && pkt.proto == 6
            && self
                .index
                .lookup(&image::failsafe_key(pkt.policy_port))
                .is_some()
        {
            return Verdict::ruled(R::SEGFW_PASS_FAILSAFE, RULE_FAILSAFE);
        }
        let flow = Flow {
            src: plain(pkt.src),
            dst: plain(pkt.dst),
            proto: pkt.proto,
            port: pkt.policy_port,
        };
        let d = self.index.evaluate(&flow);
        if d.action == Action::Allow {
            return Verdict::ruled(allowed_reason(pkt), d.rule_id);
        }
        let audit = segfw_value_flags::SEGFW_FLAG_AUDIT.0 as u8;
        let rule_flags = if d.rule_id == 0 {
            0
        } else {
            self.rule_flags.get(&d.rule_id).copied().unwrap_or(0)
        };
        if config_flags & audit != 0 || rule_flags & audit != 0 {
            return Verdict::ruled(R::SEGFW_PASS_AUDIT, d.rule_id);
        }
        let reason = if d.rule_id == 0 {
            R::SEGFW_DROP_DEFAULT
        } else {
            R::SEGFW_DROP_POLICY
        };
        Verdict::ruled(reason, d.rule_id)
    }
}

/// The datapath stores IPv4 as IPv4-mapped IPv6; segments are looked up
/// by those bytes, so either form gives the same class.
fn plain(addr: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(addr);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frag {
    None,
    First,
    Later,
}

/// struct packet, as far as the verdict needs it.
#[derive(Debug, Clone)]
struct Parsed {
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    policy_port: u16,
    frag: Frag,
    is_icmp_error: bool,
    is_nd: bool,
    /// A router advertisement or redirect (134, 137).
    is_router: bool,
    is_v6: bool,
    hop_limit: u8,
    tcp_flags: u8,
    l3_off: usize,
    l4_off: usize,
    l3_len: usize,
}

fn be16(f: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([f[off], f[off + 1]])
}

fn mapped(f: &[u8], off: usize) -> [u8; 16] {
    Ipv4Addr::new(f[off], f[off + 1], f[off + 2], f[off + 3])
        .to_ipv6_mapped()
        .octets()
}

fn addr16(f: &[u8], off: usize) -> [u8; 16] {
    f[off..off + 16].try_into().expect("16 address bytes")
}

/// The kernel's tcp_valid_flags table (nf_conntrack_proto_tcp.c), indexed
/// by FIN|SYN|RST|ACK|URG (PSH, ECE, CWR masked off).
pub fn tcp_flags_valid(flags: u8) -> bool {
    use super::packet::{ACK, FIN, RST, SYN, URG};
    let valid = [
        SYN,
        SYN | URG,
        SYN | ACK,
        RST,
        RST | ACK,
        FIN | ACK,
        FIN | ACK | URG,
        ACK,
        ACK | URG,
    ];
    valid.contains(&(flags & (FIN | SYN | RST | ACK | URG)))
}

fn icmp_is_error(ty: u8) -> bool {
    matches!(ty, 3 | 4 | 5 | 11 | 12)
}

/// parse_l2: Ethernet with up to two VLAN tags -> (l3 offset, ethertype).
fn parse_l2(f: &[u8]) -> Result<(usize, u16), R> {
    if f.len() < 14 {
        return Err(R::SEGFW_DROP_TRUNCATED);
    }
    let mut proto = be16(f, 12);
    let mut off = 14;
    for i in 0..3 {
        if proto != 0x8100 && proto != 0x88a8 {
            break;
        }
        if i == 2 {
            return Err(R::SEGFW_DROP_VLAN_DEPTH);
        }
        if off + 4 > f.len() {
            return Err(R::SEGFW_DROP_TRUNCATED);
        }
        proto = be16(f, off + 2);
        off += 4;
    }
    Ok((off, proto))
}

fn empty_packet(l3_off: usize) -> Parsed {
    Parsed {
        src: [0; 16],
        dst: [0; 16],
        proto: 0,
        policy_port: 0,
        frag: Frag::None,
        is_icmp_error: false,
        is_nd: false,
        is_router: false,
        is_v6: false,
        hop_limit: 0,
        tcp_flags: 0,
        l3_off,
        l4_off: 0,
        l3_len: 0,
    }
}

fn parse_ipv4(f: &[u8], l3: usize) -> Result<Parsed, R> {
    if l3 > 64 || l3 + 20 > f.len() {
        return Err(R::SEGFW_DROP_TRUNCATED);
    }
    let version = f[l3] >> 4;
    let hlen = usize::from(f[l3] & 0x0f) * 4;
    if version != 4 || hlen < 20 {
        return Err(R::SEGFW_DROP_BAD_IPV4);
    }
    if l3 + hlen > f.len() {
        return Err(R::SEGFW_DROP_BAD_IPV4);
    }
    let tot_len = usize::from(be16(f, l3 + 2));
    if tot_len < hlen || tot_len > f.len() - l3 {
        return Err(R::SEGFW_DROP_BAD_IPV4);
    }
    let mut pkt = empty_packet(l3);
    pkt.src = mapped(f, l3 + 12);
    pkt.dst = mapped(f, l3 + 16);
    pkt.proto = f[l3 + 9];
    pkt.l4_off = l3 + hlen;
    pkt.l3_len = tot_len;
    let frag_off = be16(f, l3 + 6);
    if frag_off & 0x1fff != 0 {
        pkt.frag = Frag::Later;
        if pkt.proto == 6 && frag_off & 0x1fff == 1 {
            return Err(R::SEGFW_DROP_FRAG_TINY);
        }
    } else if frag_off & 0x2000 != 0 {
        pkt.frag = Frag::First;
    }
    Ok(pkt)
}

fn parse_ipv6(f: &[u8], l3: usize) -> Result<Parsed, R> {
    if l3 > 64 || l3 + 40 > f.len() {
        return Err(R::SEGFW_DROP_TRUNCATED);
    }
    if f[l3] >> 4 != 6 {
        return Err(R::SEGFW_DROP_BAD_IPV6);
    }
    let payload = usize::from(be16(f, l3 + 4));
    if payload + 40 > f.len() - l3 {
        return Err(R::SEGFW_DROP_BAD_IPV6);
    }
    let mut pkt = empty_packet(l3);
    pkt.is_v6 = true;
    pkt.hop_limit = f[l3 + 7];
    pkt.src = addr16(f, l3 + 8);
    pkt.dst = addr16(f, l3 + 24);
    pkt.l3_len = payload + 40;
    let mut nexthdr = f[l3 + 6];
    let mut off = l3 + 40;
    let mut walked_all = true;
    for _ in 0..MAX_EXT_HDRS {
        match nexthdr {
            59 => return Err(R::SEGFW_DROP_NO_NEXT_HDR),
            // what Linux's ipv6_ext_hdr() skips; not ESP, not MH (135)
            0 | 43 | 60 => {
                if off + 2 > f.len() {
                    return Err(R::SEGFW_DROP_TRUNCATED);
                }
                nexthdr = f[off];
                off += (usize::from(f[off + 1]) + 1) * 8;
            }
            51 => {
                if off + 2 > f.len() {
                    return Err(R::SEGFW_DROP_TRUNCATED);
                }
                nexthdr = f[off];
                off += (usize::from(f[off + 1]) + 2) * 4;
            }
            44 => {
                if off + 8 > f.len() {
                    return Err(R::SEGFW_DROP_TRUNCATED);
                }
                let fo = be16(f, off + 2);
                if fo & 0xfff8 != 0 {
                    pkt.frag = Frag::Later;
                } else if fo & 1 != 0 {
                    pkt.frag = Frag::First;
                }
                nexthdr = f[off];
                off += 8;
            }
            _ => {
                walked_all = false;
                break;
            }
        }
        if off > PULL_LEN {
            return Err(R::SEGFW_DROP_TRUNCATED);
        }
    }
    if walked_all {
        if nexthdr == 59 {
            return Err(R::SEGFW_DROP_NO_NEXT_HDR);
        }
        if matches!(nexthdr, 0 | 43 | 60 | 51 | 44) {
            return Err(R::SEGFW_DROP_EXT_HDR_LIMIT);
        }
    }
    pkt.proto = nexthdr;
    pkt.l4_off = off;
    Ok(pkt)
}

/// parse_inner_ports: only the bounds matter (conntrack is empty, so an
/// error about a non-echo ICMP type, which the C refuses here as
/// icmp_no_flow, ends as icmp_no_flow in related() all the same).
fn inner_ports(f: &[u8], l4: usize, proto: u8) -> Result<(), R> {
    let need = match proto {
        6 | 17 | 132 => 4,
        1 | 58 => 8,
        // other protocols: nothing read, nothing checked
        _ => return Ok(()),
    };
    if l4 + need > f.len() {
        return Err(R::SEGFW_DROP_ICMP_INNER);
    }
    Ok(())
}

fn icmp4_inner(f: &[u8], inner: usize, pkt: &mut Parsed) -> Result<(), R> {
    if inner + 20 > f.len() {
        return Err(R::SEGFW_DROP_ICMP_INNER);
    }
    let ihl = usize::from(f[inner] & 0x0f);
    if f[inner] >> 4 != 4 || ihl < 5 {
        return Err(R::SEGFW_DROP_ICMP_INNER);
    }
    pkt.is_icmp_error = true;
    inner_ports(f, inner + ihl * 4, f[inner + 9])
}

fn icmp6_inner(f: &[u8], inner: usize, pkt: &mut Parsed) -> Result<(), R> {
    if inner + 40 > f.len() {
        return Err(R::SEGFW_DROP_ICMP_INNER);
    }
    if f[inner] >> 4 != 6 {
        return Err(R::SEGFW_DROP_ICMP_INNER);
    }
    pkt.is_icmp_error = true;
    inner_ports(f, inner + 40, f[inner + 6])
}

/// parse_l4: bounds against both the frame and the IP length.
fn parse_l4(f: &[u8], pkt: &mut Parsed) -> Result<(), R> {
    let l4 = pkt.l4_off;
    let l3_end = pkt.l3_off + pkt.l3_len;
    let short = if pkt.frag == Frag::First {
        R::SEGFW_DROP_FRAG_TINY
    } else {
        R::SEGFW_DROP_L4_TRUNCATED
    };
    if l4 > 0xffff {
        return Err(R::SEGFW_DROP_L4_TRUNCATED);
    }
    let fits = |n: usize| l4 + n <= f.len() && l4 + n <= l3_end;
    match pkt.proto {
        6 => {
            if !fits(20) {
                return Err(short);
            }
            let doff = usize::from(f[l4 + 12] >> 4) * 4;
            if doff < 20 || l4 + doff > l3_end {
                return Err(R::SEGFW_DROP_TCP_DOFF);
            }
            if !tcp_flags_valid(f[l4 + 13]) {
                return Err(R::SEGFW_DROP_TCP_FLAGS);
            }
            pkt.tcp_flags = f[l4 + 13];
            pkt.policy_port = be16(f, l4 + 2);
        }
        17 | 132 => {
            if !fits(if pkt.proto == 17 { 8 } else { 12 }) {
                return Err(short);
            }
            pkt.policy_port = be16(f, l4 + 2);
        }
        // ICMP is parsed only in IPv4 and ICMPv6 only in IPv6; across
        // families they are plain protocol numbers.
        1 if !pkt.is_v6 => {
            if !fits(8) {
                return Err(short);
            }
            let ty = f[l4];
            pkt.policy_port = u16::from(ty);
            if icmp_is_error(ty) && pkt.frag == Frag::None {
                return icmp4_inner(f, l4 + 8, pkt);
            }
        }
        58 if pkt.is_v6 => {
            if !fits(8) {
                return Err(short);
            }
            let ty = f[l4];
            pkt.policy_port = u16::from(ty);
            if (133..=137).contains(&ty) {
                pkt.is_nd = true;
                pkt.is_router = ty == 134 || ty == 137;
                return Ok(());
            }
            if (1..=4).contains(&ty) && pkt.frag == Frag::None {
                return icmp6_inner(f, l4 + 8, pkt);
            }
        }
        _ => {}
    }
    Ok(())
}

/// An allowed TCP packet past its SYN, with no entry, is a pickup (new_flow
/// in segfw.bpf.c); a later fragment or a RST is just passed.
fn allowed_reason(pkt: &Parsed) -> R {
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;
    let pure_syn = pkt.tcp_flags & (SYN | ACK) == SYN;
    if pkt.proto == 6 && pkt.frag != Frag::Later && !pure_syn && pkt.tcp_flags & RST == 0 {
        R::SEGFW_PASS_PICKUP
    } else {
        R::SEGFW_PASS_ALLOWED
    }
}

/// The datapath's explain answer for `frame` on an empty conntrack.
pub fn verdict(policy: &ModelPolicy, ingress: bool, f: &[u8]) -> Verdict {
    let (l3, eth_proto) = match parse_l2(f) {
        Ok(v) => v,
        Err(r) => return Verdict::only(r),
    };
    let parsed = match eth_proto {
        0x0800 => parse_ipv4(f, l3),
        0x86dd => parse_ipv6(f, l3),
        _ => return Verdict::only(R::SEGFW_PASS_NON_IP),
    };
    let mut pkt = match parsed {
        Ok(p) => p,
        Err(r) => return Verdict::only(r),
    };
    if pkt.frag == Frag::Later {
        // explain never remembers a first fragment
        return Verdict::only(R::SEGFW_DROP_FRAG_ORPHAN);
    }
    if let Err(r) = parse_l4(f, &mut pkt) {
        return Verdict::only(r);
    }
    if pkt.is_router {
        return policy.router_msg(&pkt);
    }
    if pkt.is_nd {
        return Verdict::only(R::SEGFW_PASS_ND);
    }
    if pkt.is_icmp_error {
        // related(): no tracked flow on an empty conntrack
        return Verdict::only(R::SEGFW_DROP_ICMP_NO_FLOW);
    }
    policy.new_flow(&pkt, ingress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_table_matches_the_kernel() {
        assert!(tcp_flags_valid(0x02));
        assert!(tcp_flags_valid(0x02 | 0x08 | 0x40 | 0x80));
        assert!(!tcp_flags_valid(0x03));
        assert!(!tcp_flags_valid(0));
    }
}
