//! Decodes a policy trie and its names (live maps, or a compiled image)
//! back into a readable policy, and compares two such views.
//!
//! Both `policy show` (live maps) and `policy diff` (live vs a file's
//! image) go through the same decoder, so a diff compares like with like.
//! Single entries are decoded by decode.rs's `decode_entry`;
//! this module reassembles them into segments and rules.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::decode::{decode_entry, meta_text, Entry, RuleEntry};
use super::image::{MetaEntry, TrieEntry, PROTO_ANY, SEG_ANY, SEG_WORLD};
use super::model::{self, PortRange, Prefix};
use crate::skel::types::{segfw_key_kind, segfw_limits, segfw_ra_mode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

impl From<model::Action> for Action {
    fn from(action: model::Action) -> Self {
        match action {
            model::Action::Allow => Action::Allow,
            model::Action::Deny => Action::Deny,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Audit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Defaults {
    pub action: Action,
    pub mode: Mode,
    pub router_advertisements: RouterAdvertisements,
}

/// Which `[defaults] router_advertisements` is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaMode {
    /// The default: any link-local source (fe80::/10).
    LinkLocal,
    /// `[]`: refused from every source.
    None,
    /// Only from `sources`.
    Listed,
}

/// Router advertisements and redirects: from which sources they pass
/// (always only with hop limit 255).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterAdvertisements {
    pub mode: RaMode,
    /// The prefixes the datapath holds ("fe80::/10" for the default).
    pub sources: Vec<String>,
}

impl RouterAdvertisements {
    /// One line: "link-local (fe80::/10)", "none", or the sources.
    pub fn summary(&self) -> String {
        match self.mode {
            RaMode::LinkLocal => "any link-local source (default)".to_string(),
            RaMode::None => "none (all refused)".to_string(),
            RaMode::Listed => format!("only from {}", self.sources.join(", ")),
        }
    }

    /// The `[defaults]` line a policy file needs for this setting (None for
    /// the default, which is the key left out).
    pub fn toml_line(&self) -> Option<String> {
        let quoted: Vec<String> = self.sources.iter().map(|s| format!("\"{s}\"")).collect();
        match self.mode {
            RaMode::LinkLocal => None,
            RaMode::None | RaMode::Listed => {
                Some(format!("router_advertisements = [{}]", quoted.join(", ")))
            }
        }
    }
}

fn ra_mode(raw: segfw_ra_mode) -> RaMode {
    match raw {
        segfw_ra_mode::SEGFW_RA_NONE => RaMode::None,
        segfw_ra_mode::SEGFW_RA_LISTED => RaMode::Listed,
        _ => RaMode::LinkLocal,
    }
}

/// One rule as the trie holds it, reassembled from its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleView {
    pub id: u32,
    pub name: String,
    pub action: Action,
    pub log: bool,
    pub audit: bool,
    /// Segment names, "*" (any) or "world" (addresses in no segment).
    pub from: Vec<String>,
    pub to: Vec<String>,
    /// "tcp", "udp", "icmp", "icmpv6", "sctp", "any", or a number.
    pub proto: Vec<String>,
    /// Destination ports and ranges ("80", "6000-6100"); empty = all.
    pub ports: Vec<String>,
    /// ICMP types and ranges for icmp/icmpv6; empty = all.
    pub icmp_types: Vec<String>,
    /// Trie entries that carry this rule.
    pub entries: usize,
}

/// A whole policy, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyView {
    /// 0: no policy applied.
    pub generation: u32,
    pub sha256: Option<String>,
    pub source: Option<String>,
    pub defaults: Defaults,
    /// Segment name -> CIDRs.
    pub segments: BTreeMap<String, Vec<String>>,
    pub rules: Vec<RuleView>,
    /// "tcp/22": inbound ports never blocked.
    pub failsafe: Vec<String>,
    pub trie_entries: usize,
}

/// Decodes trie entries and names. An empty trie decodes to generation 0
/// with the datapath's no-policy behaviour (allow, enforce).
pub fn decode(trie: &[TrieEntry], meta: &[MetaEntry]) -> PolicyView {
    let names = Names::new(meta);
    let mut view = PolicyView {
        generation: 0,
        // The set's record says (datapath::sets::live_view); a checked
        // file's are in its CheckedPolicy.
        sha256: None,
        source: None,
        defaults: Defaults {
            action: Action::Allow,
            mode: Mode::Enforce,
            router_advertisements: RouterAdvertisements {
                mode: RaMode::LinkLocal,
                sources: Vec::new(),
            },
        },
        segments: BTreeMap::new(),
        rules: Vec::new(),
        failsafe: Vec::new(),
        trie_entries: trie.len(),
    };
    let mut classes: BTreeMap<u32, BTreeSet<Prefix>> = BTreeMap::new();
    let mut rules: BTreeMap<u32, RuleParts> = BTreeMap::new();
    let mut failsafe = BTreeSet::new();
    let mut ra_sources = BTreeSet::new();
    for (key, value) in trie {
        match decode_entry(key, value) {
            Entry::Config {
                generation,
                default_action,
                audit,
                ra_mode: mode,
                ..
            } => {
                view.generation = generation;
                view.defaults.action = default_action.into();
                view.defaults.mode = if audit { Mode::Audit } else { Mode::Enforce };
                view.defaults.router_advertisements.mode = ra_mode(mode);
            }
            Entry::Segment { prefix, class } => {
                classes.entry(class).or_default().insert(prefix);
            }
            Entry::Rule(rule) => rules
                .entry(rule.rule_id)
                .or_insert_with(|| RuleParts::new(rule.action.into()))
                .add(&rule),
            Entry::Failsafe { port } => {
                failsafe.insert(port);
            }
            Entry::RaSource { prefix } => {
                ra_sources.insert(prefix);
            }
            Entry::Unknown { .. } => {}
        }
    }
    let labels = SegmentLabels::new(&classes, &names);
    view.segments = labels.segments();
    view.rules = rules
        .into_iter()
        .map(|(id, parts)| parts.finish(id, &names, &labels))
        .collect();
    // FAILSAFE entries are inbound TCP ports (bpf/segfw_shared.h).
    view.failsafe = failsafe
        .into_iter()
        .map(|port| format!("tcp/{port}"))
        .collect();
    view.defaults.router_advertisements.sources =
        ra_sources.iter().map(Prefix::to_string).collect();
    view
}

/// Names from meta: (kind, id) -> text.
struct Names(HashMap<(u32, u32), String>);

impl Names {
    fn new(meta: &[MetaEntry]) -> Self {
        Names(
            meta.iter()
                .map(|(k, v)| ((k.kind.0, k.id), meta_text(v)))
                .collect(),
        )
    }

    fn get(&self, kind: segfw_key_kind, id: u32) -> Option<&str> {
        self.0.get(&(kind.0, id)).map(String::as_str)
    }
}

/// Rule id -> name, from a set's meta entries.
pub fn rule_names(meta: &[MetaEntry]) -> HashMap<u32, String> {
    meta.iter()
        .filter(|(k, _)| k.kind == segfw_key_kind::SEGFW_KIND_RULE)
        .map(|(k, v)| (k.id, meta_text(v)))
        .collect()
}

/// How a rule id reads in conntrack and stats output.
pub fn rule_label(id: u32, names: &HashMap<u32, String>) -> String {
    match id {
        RULE_DEFAULT => "(default)".to_string(),
        RULE_FAILSAFE => "(failsafe)".to_string(),
        _ => names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("rule-{id}")),
    }
}

/// Rule id of "no rule matched" and of the implicit failsafe rule.
pub const RULE_DEFAULT: u32 = segfw_limits::SEGFW_RULE_DEFAULT.0;
pub const RULE_FAILSAFE: u32 = segfw_limits::SEGFW_RULE_FAILSAFE.0;

/// How segment (prefix-class) ids read in rules and the segment list.
struct SegmentLabels {
    /// class id -> segment name, or the class's CIDRs if it has no name
    /// (an inline CIDR in a rule).
    labels: HashMap<u32, String>,
    named: BTreeMap<String, BTreeSet<Prefix>>,
}

impl SegmentLabels {
    fn new(classes: &BTreeMap<u32, BTreeSet<Prefix>>, names: &Names) -> Self {
        let mut labels = HashMap::new();
        let mut named: BTreeMap<String, BTreeSet<Prefix>> = BTreeMap::new();
        for (id, cidrs) in classes {
            let cidr_text = || {
                cidrs
                    .iter()
                    .map(Prefix::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            match names.get(segfw_key_kind::SEGFW_KIND_SEGMENT, *id) {
                // The compiler may name an inline CIDR's class by the CIDR.
                Some(name) if name != cidr_text() => {
                    named.entry(name.to_string()).or_default().extend(cidrs);
                    labels.insert(*id, name.to_string());
                }
                _ => {
                    labels.insert(*id, cidr_text());
                }
            }
        }
        SegmentLabels { labels, named }
    }

    fn label(&self, id: u32) -> String {
        match id {
            SEG_ANY => "*".to_string(),
            SEG_WORLD => "world".to_string(),
            _ => self
                .labels
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("#{id}")),
        }
    }

    fn segments(&self) -> BTreeMap<String, Vec<String>> {
        self.named
            .iter()
            .map(|(name, cidrs)| (name.clone(), cidrs.iter().map(Prefix::to_string).collect()))
            .collect()
    }
}

/// The entries of one rule id, accumulated.
struct RuleParts {
    action: Action,
    log: bool,
    audit: bool,
    src: BTreeSet<u32>,
    dst: BTreeSet<u32>,
    protos: BTreeSet<u16>,
    ports: Vec<PortRange>,
    icmp_types: Vec<PortRange>,
    entries: usize,
}

impl RuleParts {
    fn new(action: Action) -> Self {
        RuleParts {
            action,
            log: false,
            audit: false,
            src: BTreeSet::new(),
            dst: BTreeSet::new(),
            protos: BTreeSet::new(),
            ports: Vec::new(),
            icmp_types: Vec::new(),
            entries: 0,
        }
    }

    fn add(&mut self, rule: &RuleEntry) {
        let (proto, range) = (rule.proto, rule.ports);
        self.src.insert(rule.src);
        self.dst.insert(rule.dst);
        self.protos.insert(proto);
        self.log |= rule.log;
        self.audit |= rule.audit;
        self.entries += 1;
        // ICMP types live in the low byte of the port field.
        if is_icmp(proto) {
            self.icmp_types.push(PortRange {
                lo: range.lo,
                hi: range.hi.min(255),
            });
        } else {
            self.ports.push(range);
        }
    }

    fn finish(self, id: u32, names: &Names, labels: &SegmentLabels) -> RuleView {
        let label_all = |ids: &BTreeSet<u32>| -> Vec<String> {
            let set: BTreeSet<String> = ids.iter().map(|id| labels.label(*id)).collect();
            set.into_iter().collect()
        };
        RuleView {
            id,
            name: names
                .get(segfw_key_kind::SEGFW_KIND_RULE, id)
                .map_or_else(|| format!("rule-{id}"), str::to_string),
            action: self.action,
            log: self.log,
            audit: self.audit,
            from: label_all(&self.src),
            to: label_all(&self.dst),
            proto: self.protos.iter().map(|p| proto_name(*p)).collect(),
            ports: ranges_text(self.ports, 65535),
            icmp_types: ranges_text(self.icmp_types, 255),
            entries: self.entries,
        }
    }
}

fn is_icmp(proto: u16) -> bool {
    u8::try_from(proto).is_ok_and(model::is_icmp)
}

/// A key's protocol number as the policy file spells it
/// ([`model::proto::NAMES`]; PROTO_ANY is "any").
pub fn proto_name(proto: u16) -> String {
    match (proto, u8::try_from(proto)) {
        (PROTO_ANY, _) => model::Proto::Any.to_string(),
        (_, Ok(number)) => model::Proto::Number(number).to_string(),
        (other, Err(_)) => other.to_string(),
    }
}

/// Merged ranges as text; the full range `0..=max` reads as "all" (empty).
fn ranges_text(mut ranges: Vec<PortRange>, max: u16) -> Vec<String> {
    let merged = model::merge_ranges(&mut ranges);
    ranges.truncate(merged);
    if ranges == [PortRange { lo: 0, hi: max }] {
        return Vec::new();
    }
    ranges.iter().map(PortRange::to_string).collect()
}

/// What differs between two policies; rule and segment ids are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyDiff {
    /// "action: deny -> allow", "mode: enforce -> audit".
    pub defaults: Vec<String>,
    pub failsafe_added: Vec<String>,
    pub failsafe_removed: Vec<String>,
    pub segments_added: Vec<String>,
    pub segments_removed: Vec<String>,
    pub segments_changed: Vec<SegmentChange>,
    pub rules_added: Vec<String>,
    pub rules_removed: Vec<String>,
    pub rules_changed: Vec<RuleChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentChange {
    pub name: String,
    pub cidrs_added: Vec<String>,
    pub cidrs_removed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleChange {
    pub name: String,
    /// "action: allow -> deny", "ports: [80] -> [80, 443]".
    pub changes: Vec<String>,
}

impl PolicyDiff {
    pub fn is_empty(&self) -> bool {
        *self == PolicyDiff::default()
    }
}

/// Changes that turn `old` into `new`.
pub fn diff(old: &PolicyView, new: &PolicyView) -> PolicyDiff {
    let mut out = PolicyDiff::default();
    if old.defaults.action != new.defaults.action {
        out.defaults
            .push(change("action", &old.defaults.action, &new.defaults.action));
    }
    if old.defaults.mode != new.defaults.mode {
        out.defaults
            .push(change("mode", &old.defaults.mode, &new.defaults.mode));
    }
    let (old_ra, new_ra) = (
        &old.defaults.router_advertisements,
        &new.defaults.router_advertisements,
    );
    if old_ra != new_ra {
        out.defaults.push(format!(
            "router_advertisements: {} -> {}",
            old_ra.summary(),
            new_ra.summary()
        ));
    }
    (out.failsafe_added, out.failsafe_removed) = set_diff(&old.failsafe, &new.failsafe);
    diff_segments(old, new, &mut out);
    diff_rules(old, new, &mut out);
    out
}

fn diff_segments(old: &PolicyView, new: &PolicyView, out: &mut PolicyDiff) {
    for (name, cidrs) in &new.segments {
        match old.segments.get(name) {
            None => out.segments_added.push(name.clone()),
            Some(before) if before != cidrs => {
                let (cidrs_added, cidrs_removed) = set_diff(before, cidrs);
                out.segments_changed.push(SegmentChange {
                    name: name.clone(),
                    cidrs_added,
                    cidrs_removed,
                });
            }
            Some(_) => {}
        }
    }
    out.segments_removed = old
        .segments
        .keys()
        .filter(|name| !new.segments.contains_key(*name))
        .cloned()
        .collect();
}

fn diff_rules(old: &PolicyView, new: &PolicyView, out: &mut PolicyDiff) {
    let before: BTreeMap<&str, &RuleView> =
        old.rules.iter().map(|r| (r.name.as_str(), r)).collect();
    let after: BTreeMap<&str, &RuleView> = new.rules.iter().map(|r| (r.name.as_str(), r)).collect();
    for (name, rule) in &after {
        match before.get(name) {
            None => out.rules_added.push(name.to_string()),
            Some(old_rule) => {
                let changes = rule_changes(old_rule, rule);
                if !changes.is_empty() {
                    out.rules_changed.push(RuleChange {
                        name: name.to_string(),
                        changes,
                    });
                }
            }
        }
    }
    out.rules_removed = before
        .keys()
        .filter(|name| !after.contains_key(*name))
        .map(|name| name.to_string())
        .collect();
}

fn rule_changes(old: &RuleView, new: &RuleView) -> Vec<String> {
    let mut changes = Vec::new();
    let mut compare = |field: &str, a: String, b: String| {
        if a != b {
            changes.push(format!("{field}: {a} -> {b}"));
        }
    };
    compare("action", json(&old.action), json(&new.action));
    compare("log", old.log.to_string(), new.log.to_string());
    compare("audit", old.audit.to_string(), new.audit.to_string());
    compare("from", list(&old.from), list(&new.from));
    compare("to", list(&old.to), list(&new.to));
    compare("proto", list(&old.proto), list(&new.proto));
    compare("ports", list(&old.ports), list(&new.ports));
    compare("icmp_types", list(&old.icmp_types), list(&new.icmp_types));
    changes
}

fn change<T: Serialize>(field: &str, old: &T, new: &T) -> String {
    format!("{field}: {} -> {}", json(old), json(new))
}

/// A unit enum's serde name ("allow"), used so text and JSON agree.
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// (in new but not old, in old but not new).
fn set_diff(old: &[String], new: &[String]) -> (Vec<String>, Vec<String>) {
    let old: BTreeSet<&String> = old.iter().collect();
    let new: BTreeSet<&String> = new.iter().collect();
    (
        new.difference(&old).map(|s| s.to_string()).collect(),
        old.difference(&new).map(|s| s.to_string()).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::image::{config_key, failsafe_key, meta_entry, rule_key, segment_key};
    use crate::skel::types::{segfw_action, segfw_policy_value};
    use std::net::IpAddr;

    fn value(id: u32, action: segfw_action, flags: u8) -> segfw_policy_value {
        segfw_policy_value {
            id,
            action,
            flags,
            ..Default::default()
        }
    }

    const ALLOW: segfw_action = segfw_action::SEGFW_ACTION_ALLOW;
    const DENY: segfw_action = segfw_action::SEGFW_ACTION_DENY;

    /// web (10.0.1.0/24, fd00:1::/64) -> db (10.0.2.10/32): tcp 5432 and
    /// 6000-6015 (one /12 prefix), allow; default deny, failsafe tcp/22.
    fn sample() -> (Vec<TrieEntry>, Vec<MetaEntry>) {
        let web4: IpAddr = "10.0.1.0".parse().unwrap();
        let web6: IpAddr = "fd00:1::".parse().unwrap();
        let db: IpAddr = "10.0.2.10".parse().unwrap();
        let trie = vec![
            (config_key(), value(3, DENY, 0)),
            (segment_key(web4, 24), value(1, DENY, 0)),
            (segment_key(web6, 64), value(2, DENY, 0)),
            (segment_key(db, 32), value(3, DENY, 0)),
            (rule_key(1, 3, 6, 5432, 16), value(7, ALLOW, 1)),
            (rule_key(2, 3, 6, 5432, 16), value(7, ALLOW, 1)),
            (rule_key(1, 3, 6, 6000, 12), value(7, ALLOW, 1)),
            (rule_key(SEG_ANY, 3, PROTO_ANY, 0, 0), value(8, DENY, 0)),
            (failsafe_key(22), value(RULE_FAILSAFE, ALLOW, 0)),
        ];
        let seg = segfw_key_kind::SEGFW_KIND_SEGMENT;
        let rule = segfw_key_kind::SEGFW_KIND_RULE;
        let meta = vec![
            meta_entry(seg, 1, "web"),
            meta_entry(seg, 2, "web"),
            meta_entry(seg, 3, "db"),
            meta_entry(rule, 7, "web-to-db"),
            meta_entry(rule, 8, "nobody-else"),
        ];
        (trie, meta)
    }

    #[test]
    fn decodes_defaults_segments_rules_and_failsafe() {
        let (trie, meta) = sample();
        let view = decode(&trie, &meta);
        assert_eq!(view.generation, 3);
        assert_eq!(view.sha256, None, "the set's record holds it, not meta");
        assert_eq!(view.defaults.action, Action::Deny);
        assert_eq!(view.defaults.mode, Mode::Enforce);
        assert_eq!(view.segments["web"], ["10.0.1.0/24", "fd00:1::/64"]);
        assert_eq!(view.segments["db"], ["10.0.2.10/32"]);
        assert_eq!(view.failsafe, ["tcp/22"]);
        let rule = &view.rules[0];
        assert_eq!((rule.id, rule.name.as_str()), (7, "web-to-db"));
        assert_eq!(rule.action, Action::Allow);
        assert!(rule.log && !rule.audit);
        assert_eq!(rule.from, ["web"]);
        assert_eq!(rule.to, ["db"]);
        assert_eq!(rule.proto, ["tcp"]);
        assert_eq!(rule.ports, ["5432", "6000-6015"]);
        let deny = &view.rules[1];
        assert_eq!(deny.from, ["*"]);
        assert_eq!(deny.proto, ["any"]);
        assert!(deny.ports.is_empty(), "port prefix /0 means all ports");
    }

    #[test]
    fn diff_of_equal_policies_is_empty_and_ignores_generation() {
        let (mut trie, meta) = sample();
        let old = decode(&trie, &meta);
        trie[0].1.id = 9;
        assert!(diff(&old, &decode(&trie, &meta)).is_empty());
    }

    #[test]
    fn diff_names_what_changed() {
        let (trie, meta) = sample();
        let old = decode(&trie, &meta);
        let mut new = old.clone();
        new.defaults.action = Action::Allow;
        new.rules[0].ports.push("8080".into());
        new.rules.remove(1);
        new.segments
            .insert("cache".into(), vec!["10.0.3.0/24".into()]);
        let d = diff(&old, &new);
        assert_eq!(d.defaults, ["action: deny -> allow"]);
        assert_eq!(d.rules_removed, ["nobody-else"]);
        assert_eq!(d.segments_added, ["cache"]);
        assert_eq!(d.rules_changed[0].name, "web-to-db");
        assert_eq!(
            d.rules_changed[0].changes,
            ["ports: [5432, 6000-6015] -> [5432, 6000-6015, 8080]"]
        );
    }

    #[test]
    fn ranges_merge_and_full_range_is_all() {
        let r = |lo, hi| PortRange { lo, hi };
        let merged = ranges_text(vec![r(80, 80), r(81, 81), r(443, 443)], 65535);
        assert_eq!(merged, ["80-81", "443"]);
        assert!(ranges_text(vec![r(0, 32767), r(32768, 65535)], 65535).is_empty());
    }

    /// The router_advertisements setting of a compiled policy file.
    fn ra_view(defaults: &str) -> RouterAdvertisements {
        let src = format!(
            "version = 1\n[defaults]\n{defaults}\n[segments]\nrouters = [\"fd00:9::/64\", \"10.9.0.0/24\"]\n"
        );
        let checked = crate::policy::check_str(&src, std::path::Path::new("t.toml")).unwrap();
        decode(&checked.image.trie, &checked.image.meta)
            .defaults
            .router_advertisements
    }

    #[test]
    fn router_advertisements_decode_to_what_a_file_says() {
        let default = ra_view("");
        assert_eq!(default.mode, RaMode::LinkLocal);
        assert_eq!(default.sources, ["fe80::/10"]);
        assert_eq!(default.toml_line(), None, "the default is the key left out");
        let none = ra_view("router_advertisements = []");
        assert_eq!((none.mode, none.sources.len()), (RaMode::None, 0));
        let listed = ra_view("router_advertisements = [\"routers\", \"fe80::1\"]");
        assert_eq!(listed.mode, RaMode::Listed);
        assert_eq!(listed.sources, ["fd00:9::/64", "fe80::1/128"]);
        // What toml_line prints reads back as the same setting.
        for view in [&none, &listed] {
            let line = view.toml_line().expect("a non-default setting has a line");
            assert_eq!(&ra_view(&line), view, "{line}");
        }
        let (old, new) = (ra_view(""), ra_view("router_advertisements = []"));
        let mut old_view = PolicyView {
            generation: 1,
            sha256: None,
            source: None,
            defaults: Defaults {
                action: Action::Deny,
                mode: Mode::Enforce,
                router_advertisements: old,
            },
            segments: BTreeMap::new(),
            rules: Vec::new(),
            failsafe: Vec::new(),
            trie_entries: 0,
        };
        let mut new_view = old_view.clone();
        new_view.defaults.router_advertisements = new;
        let d = diff(&old_view, &new_view);
        assert_eq!(
            d.defaults,
            ["router_advertisements: any link-local source (default) -> none (all refused)"]
        );
        old_view.defaults.router_advertisements = new_view.defaults.router_advertisements.clone();
        assert!(diff(&old_view, &new_view).is_empty());
    }
}
