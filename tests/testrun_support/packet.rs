//! Crafted frames for BPF_PROG_TEST_RUN: Ethernet, VLAN, IPv4 (options,
//! fragments), IPv6 (extension headers), TCP/UDP/SCTP/ICMP/ICMPv6.
#![allow(dead_code)]
use std::net::IpAddr;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;
pub const SCTP: u8 = 132;

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const URG: u8 = 0x20;

/// One packet to build; `Pkt::tcp(..)` etc. then adjust fields, then `build()`.
#[derive(Debug, Clone)]
pub struct Pkt {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub l4: Vec<u8>,
    pub vlans: usize,
    pub ipv4_options: usize, // bytes of options (multiple of 4)
    pub ipv4_id: u16,
    pub frag_offset: u16, // in 8-byte units
    pub more_fragments: bool,
    pub ipv6_ext: Vec<u8>, // extension header protocol numbers, in order
    pub ipv6_frag_id: u32,
    /// IPv4 TTL / IPv6 hop limit.
    pub hop_limit: u8,
    pub payload: Vec<u8>,
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn tcp_header(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    h[14..16].copy_from_slice(&64240u16.to_be_bytes());
    h
}

fn ports_header(sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut h = vec![0u8; len];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h
}

pub fn icmp_header(ty: u8, code: u8, id: u16) -> Vec<u8> {
    let mut h = vec![ty, code, 0, 0, 0, 0, 0, 1];
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h
}

impl Pkt {
    fn new(src: &str, dst: &str, proto: u8, l4: Vec<u8>) -> Self {
        Pkt {
            src: ip(src),
            dst: ip(dst),
            proto,
            l4,
            vlans: 0,
            ipv4_options: 0,
            ipv4_id: 0x1234,
            frag_offset: 0,
            more_fragments: false,
            ipv6_ext: vec![],
            ipv6_frag_id: 0xabcd,
            hop_limit: 64,
            payload: vec![0x61; 16],
        }
    }

    pub fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> Self {
        Self::new(src, dst, TCP, tcp_header(sport, dport, flags))
    }

    pub fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Self {
        let mut p = Self::new(src, dst, UDP, ports_header(sport, dport, 8));
        let len = (8 + p.payload.len()) as u16;
        p.l4[4..6].copy_from_slice(&len.to_be_bytes());
        p
    }

    pub fn sctp(src: &str, sport: u16, dst: &str, dport: u16) -> Self {
        Self::new(src, dst, SCTP, ports_header(sport, dport, 12))
    }

    /// ICMP (IPv4) or ICMPv6, by the address family.
    pub fn icmp(src: &str, dst: &str, ty: u8, id: u16) -> Self {
        let proto = if ip(src).is_ipv4() { ICMP } else { ICMPV6 };
        Self::new(src, dst, proto, icmp_header(ty, 0, id))
    }

    /// Any other protocol, with no L4 header parsed.
    pub fn raw(src: &str, dst: &str, proto: u8) -> Self {
        Self::new(src, dst, proto, vec![])
    }

    /// An ICMP error quoting `inner` (its IP header and first L4 bytes).
    pub fn icmp_error(src: &str, dst: &str, ty: u8, inner: &Pkt) -> Self {
        let quoted = inner.ip_packet();
        let proto = if ip(src).is_ipv4() { ICMP } else { ICMPV6 };
        let mut p = Self::new(src, dst, proto, icmp_header(ty, 0, 0));
        p.l4[4..8].copy_from_slice(&[0; 4]);
        let keep = quoted.len().min(inner.l3_header_len() + 8);
        p.payload = quoted[..keep].to_vec();
        p
    }

    pub fn with_vlans(mut self, n: usize) -> Self {
        self.vlans = n;
        self
    }

    pub fn with_ipv4_options(mut self, bytes: usize) -> Self {
        self.ipv4_options = bytes;
        self
    }

    pub fn with_ext(mut self, ext: &[u8]) -> Self {
        self.ipv6_ext = ext.to_vec();
        self
    }

    pub fn with_hop_limit(mut self, hops: u8) -> Self {
        self.hop_limit = hops;
        self
    }

    pub fn with_payload(mut self, n: usize) -> Self {
        self.payload = vec![0x62; n];
        self
    }

    /// Fragment fields: offset in 8-byte units, more-fragments flag.
    pub fn fragment(mut self, offset: u16, more: bool) -> Self {
        self.frag_offset = offset;
        self.more_fragments = more;
        self
    }

    fn l3_header_len(&self) -> usize {
        match self.src {
            IpAddr::V4(_) => 20 + self.ipv4_options,
            IpAddr::V6(_) => 40 + self.ext_bytes(),
        }
    }

    fn ext_bytes(&self) -> usize {
        self.ipv6_ext.len() * 8 + usize::from(self.is_v6_fragment()) * 8
    }

    fn is_v6_fragment(&self) -> bool {
        self.src.is_ipv6() && (self.frag_offset != 0 || self.more_fragments)
    }

    /// L4 bytes as carried: a later fragment carries payload only.
    fn l4_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.frag_offset == 0 {
            out.extend_from_slice(&self.l4);
        }
        out.extend_from_slice(&self.payload);
        out
    }

    /// The IP packet (no Ethernet).
    pub fn ip_packet(&self) -> Vec<u8> {
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.ipv4(s.octets(), d.octets()),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.ipv6(s.octets(), d.octets()),
            _ => panic!("mixed address families in a test packet"),
        }
    }

    fn ipv4(&self, s: [u8; 4], d: [u8; 4]) -> Vec<u8> {
        let body = self.l4_bytes();
        let hlen = 20 + self.ipv4_options;
        let mut h = vec![0u8; hlen];
        h[0] = 0x40 | (hlen / 4) as u8;
        h[2..4].copy_from_slice(&((hlen + body.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&self.ipv4_id.to_be_bytes());
        let frag = self.frag_offset | if self.more_fragments { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        h[8] = self.hop_limit;
        h[9] = self.proto;
        h[12..16].copy_from_slice(&s);
        h[16..20].copy_from_slice(&d);
        for b in h.iter_mut().skip(20) {
            *b = 1; // NOP options
        }
        h.extend_from_slice(&body);
        h
    }

    fn ipv6(&self, s: [u8; 16], d: [u8; 16]) -> Vec<u8> {
        let body = self.l4_bytes();
        let mut chain: Vec<u8> = self.ipv6_ext.clone();
        if self.is_v6_fragment() {
            chain.push(44);
        }
        let mut ext = Vec::new();
        for (i, &hdr) in chain.iter().enumerate() {
            let next = chain.get(i + 1).copied().unwrap_or(self.proto);
            let mut e = vec![0u8; 8];
            e[0] = next;
            match hdr {
                44 => {
                    let fo = (self.frag_offset << 3) | u16::from(self.more_fragments);
                    e[2..4].copy_from_slice(&fo.to_be_bytes());
                    e[4..8].copy_from_slice(&self.ipv6_frag_id.to_be_bytes());
                }
                51 => e[1] = 0, // AH: (0 + 2) * 4 = 8 bytes
                _ => e[1] = 0,  // (0 + 1) * 8 = 8 bytes
            }
            ext.extend_from_slice(&e);
        }
        let first = chain.first().copied().unwrap_or(self.proto);
        let mut h = vec![0u8; 40];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&((ext.len() + body.len()) as u16).to_be_bytes());
        h[6] = first;
        h[7] = self.hop_limit;
        h[8..24].copy_from_slice(&s);
        h[24..40].copy_from_slice(&d);
        h.extend_from_slice(&ext);
        h.extend_from_slice(&body);
        h
    }

    /// The Ethernet frame, with VLAN tags if asked.
    pub fn build(&self) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        for _ in 0..self.vlans {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        }
        let ethertype: u16 = if self.src.is_ipv4() { 0x0800 } else { 0x86dd };
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&self.ip_packet());
        f
    }
}

/// A frame of another ethertype (ARP).
pub fn arp_frame() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
    f.extend_from_slice(&[0u8; 28]);
    f
}
