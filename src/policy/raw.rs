//! The policy file as a loosely typed TOML tree with byte spans on every key
//! and value, so that validation can report all errors, each at its place.
//!
//! serde stops at the first type error, so the file is read into this tree
//! (any TOML is accepted) and `validate` checks each field itself.
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

pub(crate) type Span = Range<usize>;

/// The names of the serde protocol by which toml hands out spans (the same
/// constants `toml::Spanned` uses; serde_spanned keeps them stable).
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];
/// toml passes datetimes as a map with this single key.
const DATETIME_FIELD: &str = "$__toml_private_datetime";

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

/// Parses TOML text into the root table's entries.
pub(crate) fn parse(src: &str) -> Result<Vec<(Key, Node)>, SyntaxError> {
    match toml::from_str::<Node>(src) {
        Ok(Node {
            value: Raw::Table(entries),
            ..
        }) => Ok(entries),
        Ok(_) => Err(("a policy file must be a TOML table".into(), None)),
        Err(e) => {
            let lines: Vec<&str> = e.message().lines().map(str::trim).collect();
            Err((lines.join("; "), e.span()))
        }
    }
}

/// A key met in a map: one of toml's protocol fields (told apart without
/// allocating: there is one per value), or a key of a real table.
enum MapKey {
    SpanStart,
    SpanEnd,
    SpanValue,
    Datetime,
    Table(Key),
}

impl MapKey {
    fn plain(name: &str) -> Self {
        match name {
            SPANNED_START => MapKey::SpanStart,
            SPANNED_END => MapKey::SpanEnd,
            SPANNED_VALUE => MapKey::SpanValue,
            DATETIME_FIELD => MapKey::Datetime,
            other => MapKey::Table(Key {
                name: other.to_string(),
                span: None,
            }),
        }
    }
}

impl<'de> Deserialize<'de> for MapKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Asking for a span gets table keys with theirs; protocol fields
        // come as plain strings.
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, MapKeyVisitor)
    }
}

struct MapKeyVisitor;

impl<'de> Visitor<'de> for MapKeyVisitor {
    type Value = MapKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<MapKey, E> {
        Ok(MapKey::plain(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MapKey, A::Error> {
        let (span, name) = read_spanned::<A, String>(&mut map)?;
        Ok(MapKey::Table(Key {
            name,
            span: Some(span),
        }))
    }
}

/// Reads the three entries (start, end, value) of toml's span protocol.
fn read_spanned<'de, A, T>(map: &mut A) -> Result<(Span, T), A::Error>
where
    A: MapAccess<'de>,
    T: Deserialize<'de>,
{
    let (mut start, mut end, mut value) = (None, None, None);
    while let Some(field) = map.next_key::<MapKey>()? {
        match field {
            MapKey::SpanStart => start = Some(map.next_value::<usize>()?),
            MapKey::SpanEnd => end = Some(map.next_value::<usize>()?),
            MapKey::SpanValue => value = Some(map.next_value::<T>()?),
            _ => return Err(de::Error::custom("unexpected field in a spanned value")),
        }
    }
    match (start, end, value) {
        (Some(start), Some(end), Some(value)) => Ok((start..end, value)),
        _ => Err(de::Error::custom("incomplete spanned value")),
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor)
    }
}

/// A value read without asking for its span: the inside of the span wrapper
/// (asking again there would wrap it again, forever).
struct Unspanned(Node);

impl<'de> Deserialize<'de> for Unspanned {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor).map(Unspanned)
    }
}

/// Accepts a spanned value, or any plain TOML value (no span).
struct NodeVisitor;

impl NodeVisitor {
    fn plain(value: Raw) -> Node {
        Node { span: None, value }
    }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Self::plain(Raw::Boolean(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Self::plain(Raw::Integer(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(|v| Self::plain(Raw::Integer(v)))
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Self::plain(Raw::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Self::plain(Raw::String(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Self::plain(Raw::String(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Self::plain(Raw::Array(items)))
    }

    /// A map is one of: toml's span wrapper around a value, a datetime, or
    /// a table. The first key tells which.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let first = match map.next_key::<MapKey>()? {
            None => return Ok(Self::plain(Raw::Table(Vec::new()))),
            Some(MapKey::SpanStart) => return read_span_wrapper(map),
            Some(MapKey::Datetime) => {
                let text = map.next_value::<String>()?;
                return Ok(Self::plain(Raw::Datetime(text)));
            }
            Some(MapKey::Table(key)) => key,
            Some(MapKey::SpanEnd | MapKey::SpanValue) => {
                return Err(de::Error::custom("malformed spanned value"))
            }
        };
        let mut entries = vec![(first, map.next_value::<Node>()?)];
        while let Some(key) = map.next_key::<MapKey>()? {
            let MapKey::Table(key) = key else {
                return Err(de::Error::custom("toml field inside a table"));
            };
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        // toml hands keys out in an order of its own (0.9: sorted by name);
        // validation walks them, and reports errors, in file order.
        entries.sort_by_key(|(key, _)| key.span.as_ref().map(|span| span.start));
        Ok(Self::plain(Raw::Table(entries)))
    }
}

/// The rest of the span wrapper, after its first key (start) was read.
fn read_span_wrapper<'de, A: MapAccess<'de>>(mut map: A) -> Result<Node, A::Error> {
    let start = map.next_value::<usize>()?;
    let (mut end, mut value) = (None, None);
    while let Some(field) = map.next_key::<MapKey>()? {
        match field {
            MapKey::SpanEnd => end = Some(map.next_value::<usize>()?),
            MapKey::SpanValue => value = Some(map.next_value::<Unspanned>()?.0),
            _ => return Err(de::Error::custom("unexpected field in a spanned value")),
        }
    }
    match (end, value) {
        (Some(end), Some(inner)) => Ok(Node {
            span: Some(start..end),
            value: inner.value,
        }),
        _ => Err(de::Error::custom("incomplete spanned value")),
    }
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
        let root = parse(src).unwrap();
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
        let (msg, span) = parse("a = \n").unwrap_err();
        assert!(!msg.is_empty());
        assert!(span.is_some());
    }
}
