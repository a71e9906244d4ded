//! `[[rules]]`: each rule's endpoints, protocol, ports/ICMP types, action.
use std::collections::HashMap;
use std::fmt;

use super::super::errors::{Collector, PolicyErrorKind as Kind};
use super::super::model::{Action, Endpoints, Location, PortRange, Proto, Rule, SegmentRef};
use super::super::raw::{Raw, Span};
use super::fields::{Table, Value};
use super::segments::{check_cidr, Segments};
use super::{report, values};

const RULE_KEYS: &[&str] = &[
    "name",
    "from",
    "to",
    "proto",
    "ports",
    "icmp_types",
    "action",
    "log",
    "audit",
];
const ENDPOINTS_HINT: &str = "a segment name, a list of names, a CIDR, or \"*\"";
/// How many segment names an "unknown segment" error lists.
const NAMES_SHOWN: usize = 10;

/// `rule 3` or `rule 3 "web-to-db"`: formatted only if an error is reported
/// (validation of a big policy would otherwise spend its time on labels).
#[derive(Debug, Clone, Copy)]
struct RuleLabel<'a> {
    id: u32,
    name: Option<&'a str>,
}

impl fmt::Display for RuleLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(name) => write!(f, "rule {} \"{name}\"", self.id),
            None => write!(f, "rule {}", self.id),
        }
    }
}

/// `rule 3 "web-to-db": ports`.
#[derive(Debug, Clone, Copy)]
struct FieldLabel<'a> {
    rule: RuleLabel<'a>,
    key: &'a str,
}

impl fmt::Display for FieldLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.key)
    }
}

impl<'a> RuleLabel<'a> {
    fn field(self, key: &'a str) -> FieldLabel<'a> {
        FieldLabel { rule: self, key }
    }
}

pub(crate) fn check(
    c: &mut Collector,
    field: Option<super::fields::Field>,
    segments: &Segments,
) -> Vec<Rule> {
    let Some(field) = field else {
        return Vec::new();
    };
    let Some(items) = field
        .value
        .array(c, "rules", "an array of tables ([[rules]])")
    else {
        return Vec::new();
    };
    let mut rules = Vec::new();
    let mut first_use: HashMap<String, (u32, usize)> = HashMap::new();
    for checked in check_each(c, &items, segments).into_iter().flatten() {
        let Checked {
            id,
            name,
            name_span,
            line,
            rule,
        } = checked;
        if let Some(&(first, first_line)) = first_use.get(&name) {
            c.error(
                Kind::DuplicateRuleName,
                &name_span,
                format!("rule {id}: name \"{name}\" is already used by rule {first} (line {first_line}); rule names must be unique"),
            );
        } else {
            first_use.insert(name, (id, line));
        }
        rules.extend(rule);
    }
    rules
}

/// What checking one `[[rules]]` table found; None if it is not a table.
struct Checked {
    id: u32,
    name: String,
    name_span: Span,
    line: usize,
    rule: Option<Rule>,
}

/// Rules per thread below which checking stays on one thread.
const RULES_PER_THREAD: usize = 8192;

/// Checks every table on its own, in order: split over the CPUs for large
/// policies (each thread reports into its own collector; errors are sorted
/// by position when reported, so the order they are found in is lost anyway).
fn check_each(c: &mut Collector, items: &[Value], segments: &Segments) -> Vec<Option<Checked>> {
    let threads = crate::parallel::cpus()
        .min(items.len() / RULES_PER_THREAD)
        .max(1);
    if threads == 1 {
        return check_range(c, items, 0, segments);
    }
    let per_thread = items.len().div_ceil(threads);
    let slices: Vec<(usize, &[Value])> = (0..)
        .step_by(per_thread)
        .zip(items.chunks(per_thread))
        .collect();
    let base: &Collector = c;
    let results = crate::parallel::map(&slices, |&(first, slice)| {
        let mut own = base.fork();
        let checked = check_range(&mut own, slice, first, segments);
        (own, checked)
    });
    let mut all = Vec::with_capacity(items.len());
    for (own, checked) in results {
        c.errors.extend(own.errors);
        all.extend(checked);
    }
    all
}

/// Checks `items`, the tables from index `first` of the rules array.
fn check_range(
    c: &mut Collector,
    items: &[Value],
    first: usize,
    segments: &Segments,
) -> Vec<Option<Checked>> {
    (first..)
        .zip(items)
        .map(|(index, item)| {
            let id = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let table = item.table(c, RuleLabel { id, name: None })?;
            let (name, name_span, named) = rule_name(c, id, &table);
            let line = c.at(&name_span).0;
            let rule = check_rule(c, id, (name.clone(), named), &table, segments);
            Some(Checked {
                id,
                name,
                name_span,
                line,
                rule,
            })
        })
        .collect()
}

/// The rule's name (given, or `rule-<id>`), where to report it, and whether
/// it was given.
fn rule_name(c: &mut Collector, id: u32, table: &Table) -> (String, Span, bool) {
    let default = (format!("rule-{id}"), table.span.clone(), false);
    let Some(field) = table.get("name") else {
        return default;
    };
    let label = RuleLabel { id, name: None }.field("name");
    let Some(text) = field.value.str(c, label, "a string") else {
        return default;
    };
    if let Err(problem) = values::name(text) {
        report(c, label, &field.value.span, problem);
        return default;
    }
    (text.to_string(), field.value.span, true)
}

fn check_rule(
    c: &mut Collector,
    id: u32,
    (name, named): (String, bool),
    table: &Table,
    segments: &Segments,
) -> Option<Rule> {
    let label = RuleLabel {
        id,
        name: named.then_some(name.as_str()),
    };
    table.reject_unknown(c, label, RULE_KEYS);
    let from = endpoints(c, table, "from", label, segments);
    let to = endpoints(c, table, "to", label, segments);
    let proto = proto(c, table, label);
    let ports = ports(c, table, label, proto);
    let icmp_types = icmp_types(c, table, label, proto);
    let action = action(c, table, label);
    let log = flag(c, table, label, "log");
    let audit = flag(c, table, label, "audit");
    let (line, column) = c.at(&table.span);
    Some(Rule {
        id,
        name,
        at: Location { line, column },
        from: from?,
        to: to?,
        proto: proto?,
        ports: ports?,
        icmp_types: icmp_types?,
        action: action?,
        log: log?,
        audit: audit?,
    })
}

fn endpoints(
    c: &mut Collector,
    table: &Table,
    key: &str,
    label: RuleLabel,
    segments: &Segments,
) -> Option<Endpoints> {
    let Some(field) = table.get(key) else {
        table.missing(c, label, key, ENDPOINTS_HINT);
        return None;
    };
    let label = label.field(key);
    let items = field.value.one_or_many();
    if items.is_empty() {
        c.error(
            Kind::EmptyList,
            &field.value.span,
            format!("{label}: empty list matches nothing; give {ENDPOINTS_HINT}"),
        );
        return None;
    }
    let (mut any, mut valid) = (false, true);
    let (mut named, mut cidrs) = (Vec::new(), Vec::new());
    for item in &items {
        match endpoint(c, label, item, segments) {
            Some(Endpoint::Any) => any = true,
            Some(Endpoint::Segment(segment)) => named.push(segment),
            Some(Endpoint::Cidr(prefix)) => cidrs.push(prefix),
            None => valid = false,
        }
    }
    if !valid {
        return None;
    }
    if any {
        return Some(Endpoints::Any);
    }
    named.sort_unstable();
    named.dedup();
    cidrs.sort_unstable();
    cidrs.dedup();
    Some(Endpoints::Set {
        segments: named,
        cidrs,
    })
}

enum Endpoint {
    Any,
    Segment(SegmentRef),
    Cidr(super::super::model::Prefix),
}

fn endpoint(
    c: &mut Collector,
    label: FieldLabel,
    item: &Value,
    segments: &Segments,
) -> Option<Endpoint> {
    let text = item.str(c, label, ENDPOINTS_HINT)?;
    if text.is_empty() {
        c.error(
            Kind::EmptyList,
            &item.span,
            format!("{label}: empty name; give {ENDPOINTS_HINT}"),
        );
        return None;
    }
    if text == "*" {
        return Some(Endpoint::Any);
    }
    if values::looks_like_cidr(text) {
        return check_cidr(c, label, item).map(Endpoint::Cidr);
    }
    if text == "world" {
        return Some(Endpoint::Segment(SegmentRef::World));
    }
    if let Some(index) = segments.find(text) {
        return Some(Endpoint::Segment(SegmentRef::Named(index)));
    }
    let hint = values::closest(text, segments.names())
        .map(|n| format!("did you mean \"{n}\"? "))
        .unwrap_or_default();
    let mut known: Vec<&str> = segments.names().take(NAMES_SHOWN).collect();
    if segments.list.len() > NAMES_SHOWN {
        known.push("...");
    }
    known.push("world");
    c.error(
        Kind::UnknownSegment,
        &item.span,
        format!(
            "{label}: unknown segment \"{text}\"; {hint}defined: {}",
            known.join(", ")
        ),
    );
    None
}

/// The rule's protocol; absent means any.
fn proto(c: &mut Collector, table: &Table, label: RuleLabel) -> Option<Proto> {
    let Some(field) = table.get("proto") else {
        return Some(Proto::Any);
    };
    let label = label.field("proto");
    let parsed = match field.value.raw {
        Raw::String(text) => values::proto_from_name(text),
        Raw::Integer(n) => values::proto_number(*n),
        _ => {
            field.value.str(c, label, "a protocol name or number 0-255");
            return None;
        }
    };
    parsed
        .map_err(|problem| report(c, label, &field.value.span, problem))
        .ok()
}

fn ports(
    c: &mut Collector,
    table: &Table,
    label: RuleLabel,
    proto: Option<Proto>,
) -> Option<Vec<PortRange>> {
    let Some(field) = table.get("ports") else {
        return Some(Vec::new());
    };
    let label = label.field("ports");
    let items = field.value.one_or_many();
    let mut valid = !items.is_empty();
    if items.is_empty() {
        c.error(
            Kind::EmptyList,
            &field.value.span,
            format!("{label}: empty list matches nothing; omit `ports` to match every port"),
        );
    }
    let mut ranges = Vec::new();
    for item in &items {
        let parsed = match item.raw {
            Raw::Integer(n) => values::port_number(*n),
            Raw::String(text) => values::port_string(text),
            _ => {
                item.str(c, label, "port numbers or \"first-last\" strings");
                valid = false;
                continue;
            }
        };
        match parsed {
            Ok(range) => ranges.push(range),
            Err(problem) => {
                report(c, label, &item.span, problem);
                valid = false;
            }
        }
    }
    if let Some(proto) = proto.filter(|p| !p.has_ports()) {
        let hint = if proto.is_icmp() {
            "; use icmp_types for ICMP"
        } else {
            "; set proto to one of them"
        };
        c.error(
            Kind::PortsNotAllowed,
            &field.key_span,
            format!("{label}: only tcp, udp and sctp rules have ports, but proto is {proto}{hint}"),
        );
        valid = false;
    }
    ranges.sort_unstable();
    ranges.dedup();
    valid.then_some(ranges)
}

fn icmp_types(
    c: &mut Collector,
    table: &Table,
    label: RuleLabel,
    proto: Option<Proto>,
) -> Option<Vec<u8>> {
    let Some(field) = table.get("icmp_types") else {
        return Some(Vec::new());
    };
    let label = label.field("icmp_types");
    let items = field.value.one_or_many();
    if items.is_empty() {
        c.error(
            Kind::EmptyList,
            &field.value.span,
            format!("{label}: empty list matches nothing; omit `icmp_types` to match every type"),
        );
        return None;
    }
    let family = match proto {
        Some(p @ Proto::Number(n)) if p.is_icmp() => n,
        Some(other) => {
            c.error(
                Kind::IcmpTypesNotAllowed,
                &field.key_span,
                format!(
                    "{label}: only icmp and icmpv6 rules have icmp_types, but proto is {other}"
                ),
            );
            return None;
        }
        None => return None,
    };
    let mut types = Vec::new();
    let mut valid = true;
    for item in &items {
        let parsed = match item.raw {
            Raw::Integer(n) => values::icmp_type_number(*n),
            Raw::String(text) => values::icmp_type_name(family, text),
            _ => {
                item.str(c, label, "ICMP type names or numbers 0-255");
                valid = false;
                continue;
            }
        };
        match parsed {
            Ok(t) => types.push(t),
            Err(problem) => {
                report(c, label, &item.span, problem);
                valid = false;
            }
        }
    }
    types.sort_unstable();
    types.dedup();
    valid.then_some(types)
}

fn action(c: &mut Collector, table: &Table, label: RuleLabel) -> Option<Action> {
    let Some(field) = table.get("action") else {
        table.missing(c, label, "action", "\"allow\" or \"deny\"");
        return None;
    };
    let label = label.field("action");
    let text = field.value.str(c, label, "\"allow\" or \"deny\"")?;
    values::action(text)
        .map_err(|problem| report(c, label, &field.value.span, problem))
        .ok()
}

fn flag(c: &mut Collector, table: &Table, label: RuleLabel, key: &str) -> Option<bool> {
    match table.get(key) {
        None => Some(false),
        Some(field) => field.value.bool(c, label.field(key)),
    }
}
