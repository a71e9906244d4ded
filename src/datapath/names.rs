//! Names the reports print for what the datapath counts by number: drop and
//! pass reasons, and the rules of the live policy. A leaf that events,
//! stats and metrics share.
use std::collections::HashMap;

use super::maps::Maps;
use super::DatapathError;
use crate::policy::view::rule_names;
use crate::skel::types::segfw_reason;

/// "drop_policy" for SEGFW_DROP_POLICY, and so on; unknown codes by number.
/// Takes the code as reason_stats indexes it (a u32 key).
pub fn reason_name(code: u32) -> String {
    let Ok(byte) = u8::try_from(code) else {
        return format!("reason_{code}");
    };
    let name = match segfw_reason(byte) {
        segfw_reason::SEGFW_REASON_NONE => "none",
        segfw_reason::SEGFW_PASS_ALLOWED => "pass_allowed",
        segfw_reason::SEGFW_PASS_ESTABLISHED => "pass_established",
        segfw_reason::SEGFW_PASS_RELATED => "pass_related",
        segfw_reason::SEGFW_PASS_NON_IP => "pass_non_ip",
        segfw_reason::SEGFW_PASS_ND => "pass_nd",
        segfw_reason::SEGFW_PASS_FAILSAFE => "pass_failsafe",
        segfw_reason::SEGFW_PASS_AUDIT => "pass_audit",
        segfw_reason::SEGFW_PASS_NO_POLICY => "pass_no_policy",
        segfw_reason::SEGFW_PASS_PICKUP => "pass_pickup",
        segfw_reason::SEGFW_PASS_FRAG_LATE_FIRST => "pass_frag_late_first",
        segfw_reason::SEGFW_DROP_POLICY => "drop_policy",
        segfw_reason::SEGFW_DROP_DEFAULT => "drop_default",
        segfw_reason::SEGFW_DROP_REVOKED => "drop_revoked",
        segfw_reason::SEGFW_DROP_TRUNCATED => "drop_truncated",
        segfw_reason::SEGFW_DROP_BAD_IPV4 => "drop_bad_ipv4",
        segfw_reason::SEGFW_DROP_BAD_IPV6 => "drop_bad_ipv6",
        segfw_reason::SEGFW_DROP_EXT_HDR_LIMIT => "drop_ext_hdr_limit",
        segfw_reason::SEGFW_DROP_NO_NEXT_HDR => "drop_no_next_hdr",
        segfw_reason::SEGFW_DROP_VLAN_DEPTH => "drop_vlan_depth",
        segfw_reason::SEGFW_DROP_L4_TRUNCATED => "drop_l4_truncated",
        segfw_reason::SEGFW_DROP_TCP_FLAGS => "drop_tcp_flags",
        segfw_reason::SEGFW_DROP_TCP_DOFF => "drop_tcp_doff",
        segfw_reason::SEGFW_DROP_FRAG_ORPHAN => "drop_frag_orphan",
        segfw_reason::SEGFW_DROP_FRAG_TINY => "drop_frag_tiny",
        segfw_reason::SEGFW_DROP_ICMP_NO_FLOW => "drop_icmp_no_flow",
        segfw_reason::SEGFW_DROP_ICMP_INNER => "drop_icmp_inner",
        segfw_reason::SEGFW_DROP_CT_FULL => "drop_ct_full",
        segfw_reason::SEGFW_DROP_ROUTER_MSG => "drop_router_msg",
        _ => return format!("reason_{code}"),
    };
    name.to_string()
}

/// Rule id -> name of the live policy (empty before the first apply).
pub fn live_rule_names(maps: &Maps) -> Result<HashMap<u32, String>, DatapathError> {
    match maps.active_set()? {
        Some(set) => Ok(rule_names(&maps.meta[set].entries()?)),
        None => Ok(HashMap::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_follow_the_header() {
        assert_eq!(
            reason_name(segfw_reason::SEGFW_DROP_POLICY.0.into()),
            "drop_policy"
        );
        assert_eq!(
            reason_name(segfw_reason::SEGFW_PASS_ESTABLISHED.0.into()),
            "pass_established"
        );
        assert_eq!(reason_name(60), "reason_60");
        assert_eq!(reason_name(300), "reason_300");
    }
}
