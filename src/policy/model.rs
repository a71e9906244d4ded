//! The validated policy: what a TOML file means, with names resolved and
//! every value in range. Built by `validate`, compiled by `compile`.
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::skel::types::{segfw_action, segfw_ra_mode, segfw_value_flags};

use super::image::{self, RuntimeSettings};

/// The 96-bit prefix of IPv4-mapped IPv6 addresses (::ffff:0:0/96).
const V4_MAPPED_PREFIX: u128 = 0xffff_u128 << 32;

/// An address prefix in the datapath's address space: IPv6, with IPv4 as
/// IPv4-mapped IPv6 (10.0.0.0/8 is ::ffff:10.0.0.0/104). Host bits are clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: u128,
    len: u8,
}

impl Prefix {
    /// `addr/len` with len counted in addr's own family; None if len is
    /// too long for it. Host bits are cleared.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let mapped_len = match addr {
            IpAddr::V4(_) if len <= 32 => 96 + len,
            IpAddr::V6(_) if len <= 128 => len,
            _ => return None,
        };
        let mapped = u128::from_be_bytes(image::mapped_v6(addr));
        Some(Self {
            addr: mapped & mask(mapped_len),
            len: mapped_len,
        })
    }

    /// The first address, as a u128 in the mapped space.
    pub fn bits(&self) -> u128 {
        self.addr
    }

    /// Prefix length in the mapped space (IPv4 /24 is 120).
    pub fn mapped_len(&self) -> u8 {
        self.len
    }

    /// The last address, as a u128 in the mapped space.
    pub fn last(&self) -> u128 {
        self.addr | !mask(self.len)
    }

    /// Whether this is an IPv4 prefix (inside ::ffff:0:0/96).
    pub fn is_v4(&self) -> bool {
        self.len >= 96 && (self.addr >> 32) == V4_MAPPED_PREFIX >> 32
    }

    /// The network address in its own family, and the length in it.
    pub fn network(&self) -> (IpAddr, u8) {
        if self.is_v4() {
            (IpAddr::V4(Ipv4Addr::from(self.addr as u32)), self.len - 96)
        } else {
            (IpAddr::V6(Ipv6Addr::from(self.addr)), self.len)
        }
    }

    /// Whether `addr` (as the datapath sees it) is inside.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.contains_bits(addr_bits(addr))
    }

    pub(crate) fn contains_bits(&self, bits: u128) -> bool {
        bits & mask(self.len) == self.addr
    }

    /// Whether `other` is inside this prefix (or equal to it).
    pub fn covers(&self, other: &Prefix) -> bool {
        other.len >= self.len && self.contains_bits(other.addr)
    }

    /// The trie key of this prefix.
    pub fn segment_key(&self) -> crate::skel::types::segfw_policy_key {
        image::segment_key(IpAddr::V6(Ipv6Addr::from(self.addr)), self.len)
    }
}

/// `10.0.1.0/24`, `fd00::/64`: IPv4 prefixes print as IPv4.
impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (addr, len) = self.network();
        write!(f, "{addr}/{len}")
    }
}

/// An address as a u128 in the mapped space (IPv4 as ::ffff:a.b.c.d).
pub fn addr_bits(addr: IpAddr) -> u128 {
    u128::from_be_bytes(image::mapped_v6(addr))
}

/// The netmask of a prefix length in the 128-bit space.
fn mask(len: u8) -> u128 {
    match len {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n)),
    }
}

/// An inclusive range of destination ports (or ICMP types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    /// Every port: what a rule without ports covers.
    pub const ALL: PortRange = PortRange {
        lo: 0,
        hi: u16::MAX,
    };

    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }
}

/// Sorts `ranges` and merges overlapping and adjacent ones to the front;
/// returns how many remain (the compiler merges a rule's ports, the
/// policy view the ports it reads back).
pub fn merge_ranges(ranges: &mut [PortRange]) -> usize {
    ranges.sort_unstable();
    let mut merged = 0;
    for i in 0..ranges.len() {
        let range = ranges[i];
        if merged > 0 && u32::from(range.lo) <= u32::from(ranges[merged - 1].hi) + 1 {
            let last = &mut ranges[merged - 1];
            last.hi = last.hi.max(range.hi);
        } else {
            ranges[merged] = range;
            merged += 1;
        }
    }
    merged
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// IP protocol numbers the language knows by name.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;

    /// The one table of protocol names: the policy file, `policy show`,
    /// events, conntrack and explain all spell protocols from it.
    pub const NAMES: [(&str, u8); 5] = [
        ("tcp", TCP),
        ("udp", UDP),
        ("icmp", ICMP),
        ("icmpv6", ICMPV6),
        ("sctp", SCTP),
    ];

    /// The name of protocol `number`, if the language has one.
    pub fn name(number: u8) -> Option<&'static str> {
        NAMES
            .iter()
            .find(|(_, n)| *n == number)
            .map(|(name, _)| *name)
    }

    /// The protocol number called `name`.
    pub fn number(name: &str) -> Option<u8> {
        NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, number)| *number)
    }
}

/// A rule's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Any,
    Number(u8),
}

impl Proto {
    /// A protocol by name ("any" or one of [`proto::NAMES`]).
    pub fn from_name(name: &str) -> Option<Proto> {
        match name {
            "any" => Some(Proto::Any),
            _ => proto::number(name).map(Proto::Number),
        }
    }

    /// The value of the rule key's proto field.
    pub fn key_value(self) -> u16 {
        match self {
            Proto::Any => image::PROTO_ANY,
            Proto::Number(n) => u16::from(n),
        }
    }

    /// Protocols whose rules may list destination ports.
    pub fn has_ports(self) -> bool {
        matches!(self, Proto::Number(n) if has_ports(n))
    }

    /// Protocols whose rules may list ICMP types.
    pub fn is_icmp(self) -> bool {
        matches!(self, Proto::Number(n) if is_icmp(n))
    }

    pub fn matches(self, proto: u8) -> bool {
        match self {
            Proto::Any => true,
            Proto::Number(n) => n == proto,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proto::Any => f.write_str("any"),
            Proto::Number(n) => match proto::name(*n) {
                Some(name) => f.write_str(name),
                None => write!(f, "{n}"),
            },
        }
    }
}

/// tcp, udp, sctp: the datapath keys their flows by destination port.
pub fn has_ports(proto: u8) -> bool {
    matches!(proto, proto::TCP | proto::UDP | proto::SCTP)
}

/// icmp, icmpv6: the datapath keys their flows by ICMP type.
pub fn is_icmp(proto: u8) -> bool {
    matches!(proto, proto::ICMP | proto::ICMPV6)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    /// The SEGFW_ACTION_* value.
    pub fn raw(self) -> segfw_action {
        match self {
            Action::Allow => segfw_action::SEGFW_ACTION_ALLOW,
            Action::Deny => segfw_action::SEGFW_ACTION_DENY,
        }
    }

    /// From a SEGFW_ACTION_* value; anything but allow denies, as in the datapath.
    pub fn from_raw(raw: segfw_action) -> Self {
        if raw == segfw_action::SEGFW_ACTION_ALLOW {
            Action::Allow
        } else {
            Action::Deny
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        })
    }
}

/// A segment a rule names: a defined one (index into `Policy::segments`)
/// or the implicit `world`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SegmentRef {
    World,
    Named(usize),
}

/// A rule's `from` or `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    /// `"*"`: every address.
    Any,
    /// Addresses of these segments, or inside these inline CIDRs.
    Set {
        segments: Vec<SegmentRef>,
        cidrs: Vec<Prefix>,
    },
}

impl Endpoints {
    /// Whether an address whose segment is `segment` is matched.
    pub fn matches(&self, addr: IpAddr, segment: SegmentRef) -> bool {
        match self {
            Endpoints::Any => true,
            Endpoints::Set { segments, cidrs } => {
                segments.contains(&segment) || cidrs.iter().any(|c| c.contains(addr))
            }
        }
    }
}

/// A 1-based position in the policy file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    pub prefixes: Vec<Prefix>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 1-based position among the rules: the id the datapath reports.
    pub id: u32,
    /// The given name, or `rule-<id>`.
    pub name: String,
    /// Where its `[[rules]]` table starts.
    pub at: Location,
    pub from: Endpoints,
    pub to: Endpoints,
    pub proto: Proto,
    /// Destination ports (tcp/udp/sctp); empty: every port.
    pub ports: Vec<PortRange>,
    /// ICMP types (icmp/icmpv6); empty: every type.
    pub icmp_types: Vec<u8>,
    pub action: Action,
    pub log: bool,
    pub audit: bool,
}

impl Rule {
    /// The ranges of the rule key's port field this rule covers: destination
    /// ports, or ICMP types, or everything.
    pub fn port_ranges(&self) -> Vec<PortRange> {
        let mut out = Vec::new();
        self.extend_port_ranges(&mut out);
        out
    }

    /// [`Rule::port_ranges`], appended to `out` (no allocation of its own).
    pub fn extend_port_ranges(&self, out: &mut Vec<PortRange>) {
        if !self.ports.is_empty() {
            out.extend_from_slice(&self.ports);
        } else if !self.icmp_types.is_empty() {
            let types = self.icmp_types.iter().map(|&t| u16::from(t));
            out.extend(types.map(|t| PortRange { lo: t, hi: t }));
        } else {
            out.push(PortRange::ALL);
        }
    }

    /// Whether a flow's policy port (dport or ICMP type) is covered.
    pub fn matches_port(&self, port: u16) -> bool {
        if !self.ports.is_empty() {
            self.ports.iter().any(|r| r.contains(port))
        } else if !self.icmp_types.is_empty() {
            self.icmp_types.iter().any(|&t| u16::from(t) == port)
        } else {
            true
        }
    }

    /// SEGFW_FLAG_* bits of its trie entries.
    pub fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.log {
            flags |= segfw_value_flags::SEGFW_FLAG_LOG.0;
        }
        if self.audit {
            flags |= segfw_value_flags::SEGFW_FLAG_AUDIT.0;
        }
        flags as u8
    }
}

/// `[defaults] router_advertisements`: the sources ICMPv6 router
/// advertisements (134) and redirects (137) pass from, always with hop
/// limit 255 (RFC 4861).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RouterAdvertisements {
    /// Key absent: any link-local source (fe80::/10).
    #[default]
    LinkLocal,
    /// These IPv6 prefixes (listed addresses and CIDRs, and the IPv6 CIDRs
    /// of listed segments), sorted and unique; empty (`[]`): none.
    Listed(Vec<Prefix>),
}

impl RouterAdvertisements {
    /// fe80::/10, the sources of the default.
    pub fn link_local() -> Prefix {
        Prefix::new(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10)
            .expect("/10 fits IPv6")
    }

    /// The prefixes the datapath lets them come from.
    pub fn sources(&self) -> Vec<Prefix> {
        match self {
            RouterAdvertisements::LinkLocal => vec![Self::link_local()],
            RouterAdvertisements::Listed(prefixes) => prefixes.clone(),
        }
    }

    /// The SEGFW_RA_* value recorded in the CONFIG entry.
    pub fn mode(&self) -> segfw_ra_mode {
        match self {
            RouterAdvertisements::LinkLocal => segfw_ra_mode::SEGFW_RA_LINK_LOCAL,
            RouterAdvertisements::Listed(p) if p.is_empty() => segfw_ra_mode::SEGFW_RA_NONE,
            RouterAdvertisements::Listed(_) => segfw_ra_mode::SEGFW_RA_LISTED,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub action: Action,
    pub mode: Mode,
    /// Local TCP ports always reachable inbound; sorted, unique.
    pub failsafe_tcp: Vec<u16>,
    /// Per-CPU event budget; 0 = unlimited.
    pub events_per_second: u32,
    pub router_advertisements: RouterAdvertisements,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            action: Action::Deny,
            mode: Mode::Enforce,
            failsafe_tcp: vec![22],
            events_per_second: 1000,
            router_advertisements: RouterAdvertisements::LinkLocal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConntrackSettings {
    pub max_entries: u32,
    pub tcp_timeout_s: u32,
    pub udp_timeout_s: u32,
    pub icmp_timeout_s: u32,
    pub other_timeout_s: u32,
}

impl Default for ConntrackSettings {
    fn default() -> Self {
        Self {
            max_entries: 262_144,
            tcp_timeout_s: 3600,
            udp_timeout_s: 60,
            icmp_timeout_s: 30,
            other_timeout_s: 60,
        }
    }
}

/// A whole validated policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub defaults: Defaults,
    pub conntrack: ConntrackSettings,
    /// In file order.
    pub segments: Vec<Segment>,
    /// In file order: `rules[i].id == i + 1`.
    pub rules: Vec<Rule>,
}

impl Policy {
    /// The segment of an address: the one with the longest prefix containing
    /// it, else `world`. (Linear: this is the reference, not the datapath.)
    pub fn segment_of(&self, addr: IpAddr) -> SegmentRef {
        let bits = addr_bits(addr);
        let mut best: Option<(u8, usize)> = None;
        for (index, segment) in self.segments.iter().enumerate() {
            for prefix in segment.prefixes.iter().filter(|p| p.contains_bits(bits)) {
                if best.is_none_or(|(len, _)| prefix.mapped_len() > len) {
                    best = Some((prefix.mapped_len(), index));
                }
            }
        }
        best.map_or(SegmentRef::World, |(_, index)| SegmentRef::Named(index))
    }

    /// The name of a segment reference.
    pub fn segment_name(&self, segment: SegmentRef) -> &str {
        match segment {
            SegmentRef::World => "world",
            SegmentRef::Named(index) => &self.segments[index].name,
        }
    }

    /// What the `runtime` map and conntrack sizing get from this policy.
    pub fn runtime_settings(&self) -> RuntimeSettings {
        RuntimeSettings {
            conntrack_max_entries: self.conntrack.max_entries,
            tcp_timeout_s: self.conntrack.tcp_timeout_s,
            udp_timeout_s: self.conntrack.udp_timeout_s,
            icmp_timeout_s: self.conntrack.icmp_timeout_s,
            other_timeout_s: self.conntrack.other_timeout_s,
            events_per_sec: self.defaults.events_per_second,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(addr: &str, len: u8) -> Prefix {
        Prefix::new(addr.parse().unwrap(), len).unwrap()
    }

    #[test]
    fn ipv4_prefixes_live_in_the_mapped_space() {
        let v4 = p("10.0.0.0", 8);
        assert_eq!(v4.mapped_len(), 104);
        assert_eq!(v4, p("::ffff:10.0.0.0", 104));
        assert_eq!(v4.to_string(), "10.0.0.0/8");
        assert!(v4.contains("10.1.2.3".parse().unwrap()));
        assert!(v4.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!v4.contains("11.0.0.0".parse().unwrap()));
        assert_eq!(p("fd00::1", 64).to_string(), "fd00::/64");
        assert!(Prefix::new("10.0.0.0".parse().unwrap(), 33).is_none());
    }

    #[test]
    fn covers_is_prefix_inclusion() {
        assert!(p("10.0.0.0", 8).covers(&p("10.1.0.0", 16)));
        assert!(p("10.0.0.0", 8).covers(&p("10.0.0.0", 8)));
        assert!(!p("10.1.0.0", 16).covers(&p("10.0.0.0", 8)));
        assert!(p("::", 0).covers(&p("10.0.0.0", 8)));
    }
}
