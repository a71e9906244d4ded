//! A small decoder of verdict events (struct segfw_event) for the log of
//! `segfw run`: one line per event. (`segfw events` has its own output
//! formats; this one only needs to be a readable log line.)
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use crate::datapath::decode::{proto_name, rule_label};
use crate::datapath::stats::reason_name;
use crate::datapath::status::rfc3339_utc;
use crate::skel::types::{segfw_action, segfw_direction, segfw_event, segfw_event_kind};

/// Interface names by index, looked up once each.
#[derive(Debug, Default)]
pub struct IfNames(HashMap<u32, String>);

impl IfNames {
    pub fn name(&mut self, ifindex: u32) -> &str {
        self.0.entry(ifindex).or_insert_with(|| {
            nix::net::if_::if_indextoname(ifindex)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|_| format!("if{ifindex}"))
        })
    }
}

/// `2024-05-01T12:00:00.123Z deny ingress sfw0 tcp 10.0.0.2:40001 ->
/// 10.0.0.1:8081 rule #0 (default) drop_default`; ICMP without ports.
/// `wall_ms` is the event's time on the wall clock.
pub fn format_event(
    ev: &segfw_event,
    wall_ms: u64,
    iface: &str,
    rule_names: &HashMap<u32, String>,
) -> String {
    let kind = match segfw_event_kind(u32::from(ev.kind)) {
        segfw_event_kind::SEGFW_EVENT_DENY => "deny",
        segfw_event_kind::SEGFW_EVENT_LOG => "log",
        segfw_event_kind::SEGFW_EVENT_AUDIT => "audit",
        _ => "event",
    };
    let verdict = if u32::from(ev.verdict) == segfw_action::SEGFW_ACTION_ALLOW.0 {
        "allow"
    } else {
        "drop"
    };
    let direction = if u32::from(ev.direction) == segfw_direction::SEGFW_DIR_INGRESS.0 {
        "ingress"
    } else {
        "egress"
    };
    let (src, dst) = (addr(ev.src), addr(ev.dst));
    let ports = !matches!(ev.proto, 1 | 58);
    let endpoint = |a: IpAddr, port: u16| match (a, ports) {
        (_, false) => a.to_string(),
        (IpAddr::V4(_), true) => format!("{a}:{port}"),
        (IpAddr::V6(_), true) => format!("[{a}]:{port}"),
    };
    format!(
        "{} {kind} {verdict} {direction} {iface} {} {} -> {} rule #{} {} {}",
        rfc3339_utc(wall_ms),
        proto_name(u16::from(ev.proto)),
        endpoint(src, u16::from_be(ev.sport)),
        endpoint(dst, u16::from_be(ev.dport)),
        ev.rule_id,
        rule_label(ev.rule_id, rule_names),
        reason_name(u32::from(ev.reason)),
    )
}

/// The datapath stores IPv4 as IPv4-mapped IPv6; show it as IPv4.
fn addr(bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// Wall-clock milliseconds of a datapath timestamp (CLOCK_MONOTONIC_COARSE
/// ns), given both clocks now.
pub fn wall_ms_of(ts_ns: u64, mono_now_ns: u64, wall_now_ms: u64) -> u64 {
    wall_now_ms.saturating_sub(mono_now_ns.saturating_sub(ts_ns) / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skel::types::segfw_reason;

    #[test]
    fn deny_line_names_everything() {
        let ev = segfw_event {
            src: std::net::Ipv4Addr::new(10, 0, 0, 2)
                .to_ipv6_mapped()
                .octets(),
            dst: std::net::Ipv4Addr::new(10, 0, 0, 1)
                .to_ipv6_mapped()
                .octets(),
            sport: 40001u16.to_be(),
            dport: 8081u16.to_be(),
            proto: 6,
            kind: segfw_event_kind::SEGFW_EVENT_DENY.0 as u8,
            reason: segfw_reason::SEGFW_DROP_POLICY.0 as u8,
            rule_id: 3,
            ..Default::default()
        };
        let names = HashMap::from([(3, "no-db".to_string())]);
        assert_eq!(
            format_event(&ev, 0, "eth0", &names),
            "1970-01-01T00:00:00.000Z deny drop ingress eth0 tcp 10.0.0.2:40001 -> \
             10.0.0.1:8081 rule #3 no-db drop_policy"
        );
    }

    #[test]
    fn icmpv6_log_line_has_no_ports() {
        let ev = segfw_event {
            src: "fd00::2".parse::<Ipv6Addr>().unwrap().octets(),
            dst: "fd00::1".parse::<Ipv6Addr>().unwrap().octets(),
            proto: 58,
            kind: segfw_event_kind::SEGFW_EVENT_LOG.0 as u8,
            verdict: segfw_action::SEGFW_ACTION_ALLOW.0 as u8,
            direction: segfw_direction::SEGFW_DIR_EGRESS.0 as u8,
            reason: segfw_reason::SEGFW_PASS_ALLOWED.0 as u8,
            ..Default::default()
        };
        let line = format_event(&ev, 1_000, "eth0", &HashMap::new());
        assert!(
            line.ends_with(
                "log allow egress eth0 icmpv6 fd00::2 -> fd00::1 rule #0 (default) pass_allowed"
            ),
            "{line}"
        );
    }

    #[test]
    fn monotonic_to_wall() {
        assert_eq!(wall_ms_of(5_000_000_000, 7_000_000_000, 100_000), 98_000);
        assert_eq!(wall_ms_of(9_000_000_000, 7_000_000_000, 100_000), 100_000);
    }
}
