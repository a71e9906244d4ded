//! Parsers for the policy's scalar values: CIDRs, ports, protocols, ICMP
//! types, failsafe entries and names. Each says what is allowed on failure.
use std::net::IpAddr;

use super::super::errors::PolicyErrorKind as Kind;
use super::super::model::{proto, Action, Mode, PortRange, Prefix, Proto};

/// A value's problem: its kind and a message naming the value.
pub(crate) type Problem = (Kind, String);

/// Longest segment or rule name, so that it fits the meta map's text.
pub const MAX_NAME_LEN: usize = 63;

/// `a.b.c.d/n`, `x::/n`, or a bare address (a host prefix).
pub(crate) fn parse_cidr(text: &str) -> Result<Prefix, Problem> {
    let (addr_text, len_text) = match text.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (text, None),
    };
    let addr: IpAddr = addr_text.parse().map_err(|_| not_a_cidr(text))?;
    let max_len: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len_text {
        None => max_len,
        Some(digits) => parse_prefix_len(text, digits, addr, max_len)?,
    };
    let prefix = Prefix::new(addr, len).ok_or_else(|| not_a_cidr(text))?;
    let (network, _) = prefix.network();
    if super::super::model::addr_bits(addr) != prefix.bits() {
        return Err((
            Kind::HostBitsSet,
            format!("\"{text}\" has host bits set after /{len}; did you mean \"{network}/{len}\"?"),
        ));
    }
    Ok(prefix)
}

fn parse_prefix_len(text: &str, digits: &str, addr: IpAddr, max_len: u8) -> Result<u8, Problem> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_cidr(text));
    }
    match digits.parse::<u8>() {
        Ok(len) if len <= max_len => Ok(len),
        _ => {
            let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
            Err((
                Kind::PrefixTooLong,
                format!("\"{text}\": prefix /{digits} is longer than an {family} address (at most /{max_len})"),
            ))
        }
    }
}

fn not_a_cidr(text: &str) -> Problem {
    (
        Kind::BadCidr,
        format!("\"{text}\" is not an address or CIDR (expected e.g. \"10.0.1.0/24\" or \"fd00:1::/64\")"),
    )
}

/// Whether a from/to item is meant as an address rather than a segment name.
pub(crate) fn looks_like_cidr(text: &str) -> bool {
    text.contains('/') || text.contains(':') || text.parse::<IpAddr>().is_ok()
}

const PORT_HINT: &str = "ports are 1-65535, as numbers or \"first-last\" strings";

/// One `ports` item given as a number.
pub(crate) fn port_number(n: i64) -> Result<PortRange, Problem> {
    let port = check_port(n, &n.to_string())?;
    Ok(PortRange { lo: port, hi: port })
}

/// One `ports` item given as a string: `"8080"` or `"6000-6100"`.
pub(crate) fn port_string(text: &str) -> Result<PortRange, Problem> {
    let bad = || {
        (
            Kind::BadPort,
            format!("\"{text}\" is not a port or port range; {PORT_HINT}"),
        )
    };
    let (lo_text, hi_text) = text.split_once('-').unwrap_or((text, text));
    let lo = parse_digits(lo_text.trim()).ok_or_else(bad)?;
    let hi = parse_digits(hi_text.trim()).ok_or_else(bad)?;
    let lo = check_port(lo, lo_text.trim())?;
    let hi = check_port(hi, hi_text.trim())?;
    if lo > hi {
        return Err((
            Kind::ReversedRange,
            format!("port range \"{text}\" is reversed; did you mean \"{hi}-{lo}\"?"),
        ));
    }
    Ok(PortRange { lo, hi })
}

/// Decimal digits only (no sign), saturating so huge numbers stay huge.
fn parse_digits(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<i64>().unwrap_or(i64::MAX))
}

fn check_port(n: i64, shown: &str) -> Result<u16, Problem> {
    match u16::try_from(n) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err((
            Kind::BadPort,
            format!("port {shown} is out of range; {PORT_HINT}"),
        )),
    }
}

const PROTO_HINT: &str = "allowed: tcp, udp, icmp, icmpv6, sctp, any, or a protocol number 0-255";

/// The protocol a rule names ("tcp", "any", ...).
pub(crate) fn proto_from_name(text: &str) -> Result<Proto, Problem> {
    Proto::from_name(text).ok_or_else(|| {
        (
            Kind::UnknownProto,
            format!("unknown protocol \"{text}\"; {PROTO_HINT}"),
        )
    })
}

pub(crate) fn proto_number(n: i64) -> Result<Proto, Problem> {
    u8::try_from(n).map(Proto::Number).map_err(|_| {
        (
            Kind::UnknownProto,
            format!("protocol number {n} is out of range; {PROTO_HINT}"),
        )
    })
}

pub(crate) fn action(text: &str) -> Result<Action, Problem> {
    match text {
        "allow" => Ok(Action::Allow),
        "deny" => Ok(Action::Deny),
        _ => Err((
            Kind::UnknownAction,
            format!("unknown action \"{text}\"; allowed: allow, deny"),
        )),
    }
}

pub(crate) fn mode(text: &str) -> Result<Mode, Problem> {
    match text {
        "enforce" => Ok(Mode::Enforce),
        "audit" => Ok(Mode::Audit),
        _ => Err((
            Kind::UnknownMode,
            format!("unknown mode \"{text}\"; allowed: enforce, audit"),
        )),
    }
}

/// ICMPv4 type names (RFC 792 and successors).
const ICMP_TYPES: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("address-mask-request", 17),
    ("address-mask-reply", 18),
];

/// ICMPv6 type names (RFC 4443, 4861, 2710).
const ICMPV6_TYPES: &[(&str, u8)] = &[
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("multicast-listener-query", 130),
    ("multicast-listener-report", 131),
    ("multicast-listener-done", 132),
    ("router-solicitation", 133),
    ("router-advertisement", 134),
    ("neighbor-solicitation", 135),
    ("neighbor-advertisement", 136),
    ("redirect", 137),
];

fn icmp_table(proto: u8) -> (&'static str, &'static [(&'static str, u8)]) {
    if proto == proto::ICMPV6 {
        ("icmpv6", ICMPV6_TYPES)
    } else {
        ("icmp", ICMP_TYPES)
    }
}

/// An ICMP type name of `proto`'s family (icmp or icmpv6).
pub(crate) fn icmp_type_name(proto: u8, name: &str) -> Result<u8, Problem> {
    let (family, table) = icmp_table(proto);
    if let Some(&(_, number)) = table.iter().find(|(n, _)| *n == name) {
        return Ok(number);
    }
    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    let (other, other_table) = icmp_table(if proto == proto::ICMPV6 {
        proto::ICMP
    } else {
        proto::ICMPV6
    });
    let note = if other_table.iter().any(|(n, _)| *n == name) {
        format!(" (it is an {other} type)")
    } else {
        String::new()
    };
    Err((
        Kind::UnknownIcmpType,
        format!(
            "unknown {family} type \"{name}\"{note}; allowed: {}, or a number 0-255",
            names.join(", ")
        ),
    ))
}

pub(crate) fn icmp_type_number(n: i64) -> Result<u8, Problem> {
    u8::try_from(n).map_err(|_| {
        (
            Kind::UnknownIcmpType,
            format!("ICMP type {n} is out of range; allowed: a type name or a number 0-255"),
        )
    })
}

/// A `defaults.failsafe` entry: `tcp/PORT`.
pub(crate) fn failsafe(text: &str) -> Result<u16, Problem> {
    let bad = |why: &str| {
        (
            Kind::BadFailsafe,
            format!("failsafe entry \"{text}\" {why}; expected \"tcp/PORT\" with PORT 1-65535, e.g. \"tcp/22\""),
        )
    };
    let Some((proto, port)) = text.split_once('/') else {
        return Err(bad("is not PROTO/PORT"));
    };
    if proto != "tcp" {
        return Err(bad("is not tcp (only inbound TCP ports can be failsafe)"));
    }
    match parse_digits(port).map(u16::try_from) {
        Some(Ok(port)) if port != 0 => Ok(port),
        _ => Err(bad("has no valid port")),
    }
}

/// Segment and rule names: 1-63 bytes of [A-Za-z0-9_.-].
pub(crate) fn name(text: &str) -> Result<(), Problem> {
    let charset_ok = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if text.is_empty() || text.len() > MAX_NAME_LEN || !charset_ok {
        return Err((
            Kind::BadName,
            format!(
                "bad name \"{text}\"; names are 1-{MAX_NAME_LEN} characters of A-Z a-z 0-9 _ . -"
            ),
        ));
    }
    Ok(())
}

/// A segment name: a name that cannot be mistaken for an address or `world`.
pub(crate) fn segment_name(text: &str) -> Result<(), Problem> {
    name(text)?;
    if text == "world" {
        return Err((
            Kind::ReservedName,
            "\"world\" is the implicit segment of addresses in no segment; it cannot be defined (rules may name it)".into(),
        ));
    }
    if looks_like_cidr(text) {
        return Err((
            Kind::BadName,
            format!("segment name \"{text}\" looks like an address; rules would read it as a CIDR"),
        ));
    }
    Ok(())
}

/// The candidate closest to `word` by edit distance, if close enough to be a typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("10.0.1.0/24").unwrap().to_string(),
            "10.0.1.0/24"
        );
        assert_eq!(parse_cidr("10.0.1.7").unwrap().to_string(), "10.0.1.7/32");
        assert_eq!(parse_cidr("fd00::/8").unwrap().to_string(), "fd00::/8");
        assert_eq!(parse_cidr("10.0.1.5/24").unwrap_err().0, Kind::HostBitsSet);
        assert!(parse_cidr("10.0.1.5/24")
            .unwrap_err()
            .1
            .contains("did you mean \"10.0.1.0/24\""));
        assert_eq!(
            parse_cidr("10.0.0.0/33").unwrap_err().0,
            Kind::PrefixTooLong
        );
        assert_eq!(parse_cidr("fd00::/129").unwrap_err().0, Kind::PrefixTooLong);
        assert_eq!(
            parse_cidr("10.0.0.0/999").unwrap_err().0,
            Kind::PrefixTooLong
        );
        assert_eq!(parse_cidr("10.0.0.256/32").unwrap_err().0, Kind::BadCidr);
        assert_eq!(parse_cidr("10.0.0.0/x").unwrap_err().0, Kind::BadCidr);
        assert_eq!(parse_cidr("10.0.0.0/-1").unwrap_err().0, Kind::BadCidr);
    }

    #[test]
    fn ports() {
        assert_eq!(
            port_string("6000-6100").unwrap(),
            PortRange { lo: 6000, hi: 6100 }
        );
        assert_eq!(port_string("80").unwrap(), PortRange { lo: 80, hi: 80 });
        assert_eq!(port_string("6100-6000").unwrap_err().0, Kind::ReversedRange);
        assert_eq!(port_string("0-10").unwrap_err().0, Kind::BadPort);
        assert_eq!(port_string("1-65536").unwrap_err().0, Kind::BadPort);
        assert_eq!(port_string("http").unwrap_err().0, Kind::BadPort);
        assert_eq!(
            port_string("99999999999999999999").unwrap_err().0,
            Kind::BadPort
        );
        assert_eq!(port_number(0).unwrap_err().0, Kind::BadPort);
        assert_eq!(port_number(65536).unwrap_err().0, Kind::BadPort);
    }

    #[test]
    fn icmp_names_depend_on_the_family() {
        assert_eq!(icmp_type_name(proto::ICMP, "echo-request").unwrap(), 8);
        assert_eq!(icmp_type_name(proto::ICMPV6, "echo-request").unwrap(), 128);
        let (kind, msg) = icmp_type_name(proto::ICMP, "packet-too-big").unwrap_err();
        assert_eq!(kind, Kind::UnknownIcmpType);
        assert!(msg.contains("icmpv6 type"), "{msg}");
    }

    #[test]
    fn failsafe_is_tcp_only() {
        assert_eq!(failsafe("tcp/22").unwrap(), 22);
        assert_eq!(failsafe("udp/53").unwrap_err().0, Kind::BadFailsafe);
        assert_eq!(failsafe("tcp/0").unwrap_err().0, Kind::BadFailsafe);
        assert_eq!(failsafe("22").unwrap_err().0, Kind::BadFailsafe);
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("prts", ["proto", "ports", "from"]), Some("ports"));
        assert_eq!(closest("actoin", ["action", "audit"]), Some("action"));
        assert_eq!(closest("xyz", ["proto", "ports"]), None);
    }
}
