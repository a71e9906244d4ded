//! Typed access to the raw TOML tree. A value of the wrong type is recorded
//! as an error and read as absent, so validation goes on with the rest.
use std::fmt::Display;

use super::super::errors::{Collector, PolicyErrorKind as Kind};
use super::super::raw::{Key, Node, Raw, Span};
use super::values::closest;

/// A value and the span to report it at.
#[derive(Debug, Clone)]
pub(crate) struct Value<'a> {
    pub(crate) raw: &'a Raw,
    pub(crate) span: Span,
}

/// A key of a table and its value.
#[derive(Debug, Clone)]
pub(crate) struct Field<'a> {
    pub(crate) key_span: Span,
    pub(crate) value: Value<'a>,
}

/// A table, with the span of its header (for "missing key" errors).
#[derive(Debug, Clone)]
pub(crate) struct Table<'a> {
    entries: &'a [(Key, Node)],
    pub(crate) span: Span,
}

impl<'a> Value<'a> {
    /// `node`, reported at its own span or else at `fallback` (toml gives
    /// implicit tables no span).
    pub(crate) fn of(node: &'a Node, fallback: &Span) -> Self {
        Self {
            raw: &node.value,
            span: node.span.clone().unwrap_or_else(|| fallback.clone()),
        }
    }

    fn wrong_type(&self, c: &mut Collector, label: impl Display, expected: &str) {
        let found = match self.raw {
            Raw::String(s) => format!("a string (\"{s}\")"),
            Raw::Integer(n) => format!("an integer ({n})"),
            Raw::Boolean(b) => format!("a boolean ({b})"),
            Raw::Float(x) => format!("a float ({x})"),
            Raw::Datetime(d) => format!("a datetime ({d})"),
            other => other.type_name().to_string(),
        };
        c.error(
            Kind::WrongType,
            &self.span,
            format!("{label}: expected {expected}, found {found}"),
        );
    }

    pub(crate) fn str(
        &self,
        c: &mut Collector,
        label: impl Display,
        expected: &str,
    ) -> Option<&'a str> {
        match self.raw {
            Raw::String(s) => Some(s),
            _ => {
                self.wrong_type(c, label, expected);
                None
            }
        }
    }

    pub(crate) fn int(
        &self,
        c: &mut Collector,
        label: impl Display,
        expected: &str,
    ) -> Option<i64> {
        match self.raw {
            Raw::Integer(n) => Some(*n),
            _ => {
                self.wrong_type(c, label, expected);
                None
            }
        }
    }

    pub(crate) fn bool(&self, c: &mut Collector, label: impl Display) -> Option<bool> {
        match self.raw {
            Raw::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(c, label, "true or false");
                None
            }
        }
    }

    pub(crate) fn array(
        &self,
        c: &mut Collector,
        label: impl Display,
        expected: &str,
    ) -> Option<Vec<Value<'a>>> {
        match self.raw {
            Raw::Array(items) => Some(items.iter().map(|n| Value::of(n, &self.span)).collect()),
            _ => {
                self.wrong_type(c, label, expected);
                None
            }
        }
    }

    /// The items of an array, or the value itself as a list of one (for
    /// keys that accept `x` as well as `[x, y]`).
    pub(crate) fn one_or_many(&self) -> Vec<Value<'a>> {
        match self.raw {
            Raw::Array(items) => items.iter().map(|n| Value::of(n, &self.span)).collect(),
            _ => vec![self.clone()],
        }
    }

    pub(crate) fn table(&self, c: &mut Collector, label: impl Display) -> Option<Table<'a>> {
        match self.raw {
            Raw::Table(entries) => Some(Table {
                entries,
                span: self.span.clone(),
            }),
            _ => {
                self.wrong_type(c, label, "a table");
                None
            }
        }
    }
}

impl<'a> Table<'a> {
    /// The document root.
    pub(crate) fn root(entries: &'a [(Key, Node)]) -> Self {
        Self {
            entries,
            span: 0..0,
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<Field<'a>> {
        self.fields().find(|(key, _)| *key == name).map(|(_, f)| f)
    }

    /// Every key in file order.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&'a str, Field<'a>)> + '_ {
        self.entries.iter().map(|(key, node)| {
            let key_span = key.span.clone().unwrap_or_else(|| self.span.clone());
            let value = Value::of(node, &key_span);
            (key.name.as_str(), Field { key_span, value })
        })
    }

    /// Records an error for each key not in `allowed`, with a typo hint.
    pub(crate) fn reject_unknown(&self, c: &mut Collector, label: impl Display, allowed: &[&str]) {
        for (key, field) in self.fields().filter(|(k, _)| !allowed.contains(k)) {
            let hint = closest(key, allowed.iter().copied())
                .map(|k| format!("did you mean \"{k}\"? "))
                .unwrap_or_default();
            c.error(
                Kind::UnknownKey,
                &field.key_span,
                format!(
                    "unknown key \"{key}\" in {label}; {hint}allowed: {}",
                    allowed.join(", ")
                ),
            );
        }
    }

    /// Records a missing required key, reported at the table's header.
    pub(crate) fn missing(&self, c: &mut Collector, label: impl Display, key: &str, what: &str) {
        c.error(
            Kind::MissingKey,
            &self.span,
            format!("{label}: missing key \"{key}\" ({what})"),
        );
    }
}
