//! `[segments]`: name -> CIDR list. A prefix belongs to one segment only.
use std::collections::HashMap;

use super::super::errors::{Collector, PolicyErrorKind as Kind};
use super::super::model::{Prefix, Segment};
use super::super::raw::Span;
use super::fields::{Field, Value};
use super::{report, values};

/// The defined segments, findable by name.
#[derive(Debug, Default)]
pub(crate) struct Segments {
    pub(crate) list: Vec<Segment>,
    by_name: HashMap<String, usize>,
}

impl Segments {
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|s| s.name.as_str())
    }
}

/// Where a prefix was first defined, to report duplicates.
struct FirstUse {
    segment: usize,
    span: Span,
}

/// `segments.web`, formatted only if an error is reported.
#[derive(Clone, Copy)]
struct SegmentLabel<'a>(&'a str);

impl std::fmt::Display for SegmentLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "segments.{}", self.0)
    }
}

pub(crate) fn check(c: &mut Collector, field: Option<Field>) -> Segments {
    let mut segments = Segments::default();
    let Some(table) = field.and_then(|f| f.value.table(c, "segments")) else {
        return segments;
    };
    let mut first_use: HashMap<Prefix, FirstUse> = HashMap::new();
    for (name, field) in table.fields() {
        if let Err(problem) = values::segment_name(name) {
            let reserved = problem.0 == Kind::ReservedName;
            report(c, "segments", &field.key_span, problem);
            if reserved {
                // `world` stays the implicit segment for the rules.
                continue;
            }
        }
        // Registered even when invalid, so rules naming it get no second error.
        let index = segments.list.len();
        segments.by_name.insert(name.to_string(), index);
        let label = SegmentLabel(name);
        let mut prefixes = Vec::new();
        for item in field.value.one_or_many() {
            let Some(prefix) = check_cidr(c, label, &item) else {
                continue;
            };
            if let Some(first) = first_use.get(&prefix) {
                let owner = &segments
                    .list
                    .get(first.segment)
                    .map_or(name, |s| s.name.as_str());
                let message = if first.segment == index {
                    format!("{prefix} is listed twice in segment \"{name}\"")
                } else {
                    format!(
                        "{prefix} is already in segment \"{owner}\" (line {}); a prefix belongs to one segment",
                        c.at(&first.span).0
                    )
                };
                c.error(
                    Kind::DuplicateCidr,
                    &item.span,
                    format!("{label}: {message}"),
                );
                continue;
            }
            let span = item.span.clone();
            first_use.insert(
                prefix,
                FirstUse {
                    segment: index,
                    span,
                },
            );
            prefixes.push(prefix);
        }
        segments.list.push(Segment {
            name: name.to_string(),
            prefixes,
        });
    }
    segments
}

/// A CIDR string item of `label`; None (error recorded) if invalid.
pub(crate) fn check_cidr(
    c: &mut Collector,
    label: impl std::fmt::Display + Copy,
    item: &Value,
) -> Option<Prefix> {
    let text = item.str(c, label, "CIDR strings like \"10.0.1.0/24\"")?;
    match values::parse_cidr(text) {
        Ok(prefix) => Some(prefix),
        Err(problem) => {
            report(c, label, &item.span, problem);
            None
        }
    }
}
