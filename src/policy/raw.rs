//! The policy file as a loosely typed TOML tree with byte spans on every key
//! and value, so that validation can report all errors, each at its place.
//!
//! serde stops at the first type error, so the file is read into this tree
//! (any TOML is accepted) and `validate` checks each field itself.
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub(crate) type Span = Range<usize>;

/// A key of a table.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) span: Option<Span>,
}

/// A value with its span (None where toml has none, e.g. implicit tables).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) span: Option<Span>,
    pub(crate) value: Raw,
}

#[derive(Debug, Clone)]
pub(crate) enum Raw {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<(Key, Node)>),
}

impl Raw {
    /// The TOML type name, for "expected X, found Y" messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Raw::String(_) => "a string",
            Raw::Integer(_) => "an integer",
            Raw::Float(_) => "a float",
            Raw::Boolean(_) => "a boolean",
            Raw::Datetime(_) => "a datetime",
            Raw::Array(_) => "an array",
            Raw::Table(_) => "a table",
        }
    }
}

/// A TOML syntax error: toml's message and where it is.
pub(crate) type SyntaxError = (String, Option<Span>);

/// Parses TOML text as one document.
pub(crate) fn parse_whole(src: &str) -> Result<Vec<(Key, Node)>, SyntaxError> {
    let root = DeTable::parse(src).map_err(|e| {
        let lines: Vec<&str> = e.message().lines().map(str::trim).collect();
        (lines.join("; "), e.span())
    })?;
    match node(Spanned::new(root.span(), DeValue::Table(root.into_inner())))?.value {
        Raw::Table(entries) => Ok(entries),
        _ => Err(("a policy file must be a TOML table".into(), None)),
    }
}

/// Converts toml's parse tree, consuming it (so its memory is reused for
/// ours). Reading it directly is faster than through serde's data model and
/// toml's span-wrapper protocol.
fn node(value: Spanned<DeValue<'_>>) -> Result<Node, SyntaxError> {
    let span = value.span();
    let out_of_range = |what: &str| (format!("{what} out of range"), Some(span.clone()));
    let value = match value.into_inner() {
        DeValue::String(s) => Raw::String(s.into_owned()),
        DeValue::Integer(i) => Raw::Integer(
            i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| out_of_range("integer"))?,
        ),
        DeValue::Float(f) => Raw::Float(f.as_str().parse().map_err(|_| out_of_range("float"))?),
        DeValue::Boolean(b) => Raw::Boolean(b),
        DeValue::Datetime(d) => Raw::Datetime(d.to_string()),
        DeValue::Array(items) => Raw::Array(items.into_iter().map(node).collect::<Result<_, _>>()?),
        DeValue::Table(table) => {
            let mut entries = table
                .into_iter()
                .map(|(key, value)| {
                    let key = Key {
                        span: Some(key.span()),
                        name: key.into_inner().into_owned(),
                    };
                    Ok((key, node(value)?))
                })
                .collect::<Result<Vec<_>, SyntaxError>>()?;
            // toml hands keys out sorted by name; validation walks them,
            // and reports errors, in file order.
            entries.sort_by_key(|(key, _)| key.span.as_ref().map(|span| span.start));
            Raw::Table(entries)
        }
    };
    Ok(Node {
        span: Some(span),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spanned_text<'a>(src: &'a str, node: &Node) -> &'a str {
        &src[node.span.clone().expect("value should have a span")]
    }

    #[test]
    fn keeps_spans_of_keys_and_values() {
        let src = "a = 1\n[t]\nb = [\"x\", 2]\n[[r]]\nc = true\nd = 1979-05-27\n";
        let root = parse_whole(src).unwrap();
        assert_eq!(root[0].0.name, "a");
        assert_eq!(&src[root[0].0.span.clone().unwrap()], "a");
        assert_eq!(spanned_text(src, &root[0].1), "1");
        let Raw::Table(t) = &root[1].1.value else {
            panic!("t should be a table")
        };
        assert_eq!(spanned_text(src, &t[0].1), "[\"x\", 2]");
        let Raw::Array(items) = &t[0].1.value else {
            panic!("b should be an array")
        };
        assert_eq!(spanned_text(src, &items[1]), "2");
        let Raw::Array(rs) = &root[2].1.value else {
            panic!("r should be an array of tables")
        };
        let Raw::Table(r0) = &rs[0].value else {
            panic!("r[0] should be a table")
        };
        assert!(matches!(r0[1].1.value, Raw::Datetime(_)));
        assert_eq!(&src[r0[1].0.span.clone().unwrap()], "d");
    }

    #[test]
    fn syntax_errors_have_a_span() {
        let (msg, span) = parse_whole("a = \n").unwrap_err();
        assert!(!msg.is_empty());
        assert!(span.is_some());
    }
}
