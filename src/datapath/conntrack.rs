//! Tracked flows, decoded from the conntrack map for `conntrack list`.
use std::collections::HashMap;
use std::net::IpAddr;

use super::clock::datapath_clock_ns;
use serde::Serialize;

use super::maps::{open_conntrack, open_flow_cache, Maps};
use super::pins::{PinDir, PinLock};
use super::Result;
use crate::policy::image::unmapped;
use crate::policy::view::{proto_name, rule_label, rule_names};
use crate::skel::types::{segfw_ct_flags, segfw_ct_key, segfw_ct_state, segfw_ct_value};

/// One tracked flow, oriented from its originator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub proto: String,
    pub state: String,
    /// "ingress" or "egress": where its first packet was seen.
    pub direction: String,
    pub age_s: u64,
    pub idle_s: u64,
    pub rule_id: u32,
    pub rule: String,
    pub generation: u32,
    /// Passed only because of audit mode.
    pub audited: bool,
}

/// Every tracked flow, oldest first.
pub fn list(pins: &PinDir) -> Result<Vec<Flow>> {
    let conntrack = open_conntrack(pins)?;
    let names = match Maps::open(pins)?.live_policy() {
        Ok((_, meta)) => rule_names(&meta),
        Err(_) => HashMap::new(),
    };
    let now = datapath_clock_ns();
    let mut flows: Vec<Flow> = conntrack
        .entries::<segfw_ct_key, segfw_ct_value>()?
        .iter()
        .map(|(key, value)| flow(key, value, now, &names))
        .collect();
    flows.sort_by(|a, b| b.age_s.cmp(&a.age_s).then(a.src.cmp(&b.src)));
    Ok(flows)
}

/// Deletes every tracked flow; returns how many there were. New packets of
/// those flows are decided by the policy again.
pub fn flush(pins: &PinDir, _lock: &PinLock) -> Result<usize> {
    let flushed = open_conntrack(pins)?.clear()?;
    // Each CPU's flow cache may still hold a flushed flow: forget it too.
    open_flow_cache(pins)?.zero_percpu(&[0])?;
    Ok(flushed)
}

fn flow(
    key: &segfw_ct_key,
    value: &segfw_ct_value,
    now: u64,
    names: &HashMap<u32, String>,
) -> Flow {
    let lo = (unmapped(key.lo_addr), u16::from_be(key.lo_port));
    let hi = (unmapped(key.hi_addr), u16::from_be(key.hi_port));
    let orig_is_lo = has(value.flags, segfw_ct_flags::SEGFW_CT_ORIG_IS_LO);
    let ((src, sport), (dst, dport)) = if orig_is_lo { (lo, hi) } else { (hi, lo) };
    Flow {
        src,
        sport,
        dst,
        dport,
        proto: proto_name(u16::from(key.proto)),
        state: state_name(value.state).to_string(),
        direction: if has(value.flags, segfw_ct_flags::SEGFW_CT_ORIG_INGRESS) {
            "ingress".to_string()
        } else {
            "egress".to_string()
        },
        age_s: now.saturating_sub(value.created_ns) / 1_000_000_000,
        idle_s: now.saturating_sub(value.last_seen_ns) / 1_000_000_000,
        rule_id: value.rule_id,
        rule: rule_label(value.rule_id, names),
        generation: value.generation,
        audited: has(value.flags, segfw_ct_flags::SEGFW_CT_AUDITED),
    }
}

fn has(flags: u8, flag: segfw_ct_flags) -> bool {
    u32::from(flags) & flag.0 != 0
}

/// Name of an enum segfw_ct_state value.
pub fn state_name(state: segfw_ct_state) -> &'static str {
    match state {
        segfw_ct_state::SEGFW_CT_SYN_SENT => "syn_sent",
        segfw_ct_state::SEGFW_CT_SYN_RECV => "syn_recv",
        segfw_ct_state::SEGFW_CT_ESTABLISHED => "established",
        segfw_ct_state::SEGFW_CT_FIN_WAIT => "fin_wait",
        segfw_ct_state::SEGFW_CT_CLOSING => "closing",
        segfw_ct_state::SEGFW_CT_CLOSED => "closed",
        segfw_ct_state::SEGFW_CT_OPEN => "open",
        _ => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_is_oriented_from_its_originator() {
        let key = segfw_ct_key {
            lo_addr: std::net::Ipv4Addr::new(10, 0, 0, 1)
                .to_ipv6_mapped()
                .octets(),
            hi_addr: "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            lo_port: 5432u16.to_be(),
            hi_port: 40000u16.to_be(),
            proto: 6,
            reserved: [0; 3],
        };
        let value = segfw_ct_value {
            created_ns: 1_000_000_000,
            last_seen_ns: 4_000_000_000,
            rule_id: 7,
            generation: 2,
            state: segfw_ct_state::SEGFW_CT_ESTABLISHED,
            flags: segfw_ct_flags::SEGFW_CT_ORIG_INGRESS.0 as u8,
            ..Default::default()
        };
        let names = HashMap::from([(7, "web-to-db".to_string())]);
        let f = flow(&key, &value, 5_000_000_000, &names);
        assert_eq!(f.src, "fd00::2".parse::<IpAddr>().unwrap());
        assert_eq!((f.sport, f.dport), (40000, 5432));
        assert_eq!(f.dst, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((f.age_s, f.idle_s), (4, 1));
        assert_eq!(
            (f.state.as_str(), f.rule.as_str()),
            ("established", "web-to-db")
        );
        assert_eq!(f.direction, "ingress");
    }
}
