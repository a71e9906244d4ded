//! `[defaults] router_advertisements`: the IPv6 sources router
//! advertisements and redirects may come from. Checked after `[segments]`,
//! since it may name segments (by their CIDRs).
use super::super::errors::{Collector, PolicyErrorKind as Kind};
use super::super::model::{Prefix, RouterAdvertisements};
use super::fields::{Table, Value};
use super::segments::{check_cidr, Segments};
use super::values;

const LABEL: &str = "defaults.router_advertisements";
const EXPECTED: &str =
    "a list of IPv6 addresses, CIDRs or segment names ([] refuses all; leave the key out for any link-local source)";

/// The setting in `[defaults]`; the default when the key is absent or invalid.
pub(crate) fn check(
    c: &mut Collector,
    defaults: &Table,
    segments: &Segments,
) -> RouterAdvertisements {
    let Some(field) = defaults.get("router_advertisements") else {
        return RouterAdvertisements::LinkLocal;
    };
    let Some(items) = field.value.array(c, LABEL, EXPECTED) else {
        return RouterAdvertisements::LinkLocal;
    };
    let mut prefixes = Vec::new();
    for item in &items {
        prefixes.extend(source(c, item, segments));
    }
    prefixes.sort_unstable();
    prefixes.dedup();
    RouterAdvertisements::Listed(prefixes)
}

/// One item's IPv6 prefixes; empty (error recorded) if invalid.
fn source(c: &mut Collector, item: &Value, segments: &Segments) -> Vec<Prefix> {
    let Some(text) = item.str(c, LABEL, "strings: IPv6 addresses, CIDRs or segment names") else {
        return Vec::new();
    };
    if values::looks_like_cidr(text) {
        let Some(prefix) = check_cidr(c, LABEL, item) else {
            return Vec::new();
        };
        if prefix.is_v4() {
            c.error(
                Kind::RouterSourceNotIpv6,
                &item.span,
                format!("{LABEL}: \"{text}\" is IPv4; router advertisements and redirects are ICMPv6, so list IPv6 sources (e.g. \"fe80::1\")"),
            );
            return Vec::new();
        }
        return vec![prefix];
    }
    let Some(index) = segments.find(text) else {
        unknown_segment(c, item, text, segments);
        return Vec::new();
    };
    let segment = &segments.list[index];
    let v6: Vec<Prefix> = segment
        .prefixes
        .iter()
        .copied()
        .filter(|p| !p.is_v4())
        .collect();
    if v6.is_empty() && !segment.prefixes.is_empty() {
        c.error(
            Kind::RouterSourceNotIpv6,
            &item.span,
            format!("{LABEL}: segment \"{text}\" has no IPv6 CIDR, so no router advertisement could come from it; add one to the segment or list the router's IPv6 address"),
        );
    }
    v6
}

fn unknown_segment(c: &mut Collector, item: &Value, text: &str, segments: &Segments) {
    let hint = values::closest(text, segments.names())
        .map(|n| format!("did you mean \"{n}\"? "))
        .unwrap_or_default();
    let defined: Vec<&str> = segments.names().take(10).collect();
    let defined = if defined.is_empty() {
        "none".to_string()
    } else {
        defined.join(", ")
    };
    c.error(
        Kind::UnknownSegment,
        &item.span,
        format!("{LABEL}: unknown segment \"{text}\"; {hint}defined: {defined}"),
    );
}
