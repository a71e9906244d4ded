//! Large policies are mostly `[[rules]]` tables. Parsing one as a single
//! TOML document holds toml's whole token stream and parse tree at once
//! (about 40 bytes of memory per byte of text) on one CPU. Instead, the text
//! is split at lines that are exactly `[[rules]]` into a head and a few
//! pieces, each a TOML document of its own; the pieces are parsed on every
//! CPU, their spans moved to where they are in the file, and their rules
//! joined. The tree is the same as the whole document's.
//!
//! Whenever a split could change the meaning (multi-line strings, a key
//! defined by two pieces, `rules` in the head) or any piece fails to parse,
//! this gives up and the caller parses the whole document, which then gives
//! the same tree or the right error.

use super::raw::{parse_whole, Key, Node, Raw, Span, SyntaxError};

/// Smaller policies parse whole: splitting would not pay.
const MIN_BYTES: usize = 1 << 20;
/// Pieces after the head; more pieces than CPUs keeps peak memory low.
const PIECES: usize = 16;
const RULES: &str = "rules";
const HEADER: &str = "[[rules]]";

/// A document's root entries.
type Entries = Vec<(Key, Node)>;

/// Parses TOML text into the root table's entries: large policies in
/// pieces, on every CPU, others (and any a split could change) whole. The
/// result is the same.
pub(crate) fn parse(src: &str) -> Result<Entries, SyntaxError> {
    match parse_in_pieces(src) {
        Some(entries) => Ok(entries),
        None => parse_whole(src),
    }
}

/// The root entries of `src`, parsed in pieces; None to parse it whole.
fn parse_in_pieces(src: &str) -> Option<Entries> {
    if src.len() < MIN_BYTES || src.contains("\"\"\"") || src.contains("'''") {
        return None;
    }
    let bounds = piece_bounds(src)?;
    let pieces: Vec<(usize, &str)> = bounds
        .windows(2)
        .map(|w| (w[0], &src[w[0]..w[1]]))
        .collect();
    let parsed = parse_all(&pieces)?;
    join(parsed)
}

/// Byte offsets where pieces start (0 for the head, then one `[[rules]]`
/// line in every len/PIECES), and the end of the text.
fn piece_bounds(src: &str) -> Option<Vec<usize>> {
    let mut headers = Vec::new();
    let mut at = 0;
    for line in src.split_inclusive('\n') {
        if line.trim_end() == HEADER {
            headers.push(at);
        }
        at += line.len();
    }
    if headers.len() < PIECES {
        return None;
    }
    let mut bounds = vec![0];
    bounds.extend((0..PIECES).map(|i| headers[i * headers.len() / PIECES]));
    bounds.push(src.len());
    Some(bounds)
}

/// Every piece's root entries with file spans, in piece order (None if one
/// fails), parsed on every CPU.
fn parse_all(pieces: &[(usize, &str)]) -> Option<Vec<Entries>> {
    crate::parallel::map(pieces, |&(offset, text)| {
        let mut entries = parse_whole(text).ok()?;
        for (key, node) in entries.iter_mut() {
            shift_key(key, offset);
            shift(node, offset);
        }
        Some(entries)
    })
    .into_iter()
    .collect()
}

/// The head's entries, then each piece's: every key once, except `rules`,
/// whose arrays (one per piece, none in the head) are concatenated.
fn join(parsed: Vec<Entries>) -> Option<Entries> {
    let mut pieces = parsed.into_iter();
    let mut root = pieces.next()?;
    if root.iter().any(|(key, _)| key.name == RULES) {
        return None;
    }
    let mut rules: Option<(Key, Option<Span>, Vec<Node>)> = None;
    for piece in pieces {
        for (key, node) in piece {
            if key.name != RULES {
                if root.iter().any(|(k, _)| k.name == key.name) {
                    return None;
                }
                root.push((key, node));
                continue;
            }
            let Raw::Array(tables) = node.value else {
                return None;
            };
            match &mut rules {
                None => rules = Some((key, node.span, tables)),
                Some((_, _, all)) => all.extend(tables),
            }
        }
    }
    let (key, span, tables) = rules?;
    root.push((
        key,
        Node {
            span,
            value: Raw::Array(tables),
        },
    ));
    root.sort_by_key(|(key, _)| key.span.as_ref().map(|span| span.start));
    Some(root)
}

fn shift_span(span: &mut Option<Span>, offset: usize) {
    if let Some(span) = span {
        *span = span.start + offset..span.end + offset;
    }
}

fn shift_key(key: &mut Key, offset: usize) {
    shift_span(&mut key.span, offset);
}

fn shift(node: &mut Node, offset: usize) {
    shift_span(&mut node.span, offset);
    match &mut node.value {
        Raw::Array(items) => items.iter_mut().for_each(|item| shift(item, offset)),
        Raw::Table(entries) => entries.iter_mut().for_each(|(key, value)| {
            shift_key(key, offset);
            shift(value, offset);
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    /// A policy over MIN_BYTES with what a split must keep: comments,
    /// inline tables and arrays over lines, a sub-table of a rule, a table
    /// after the rules, and headers with spaces or comments (not split at).
    fn big_policy() -> String {
        let mut src = String::from(
            "version = 1 # head\n[defaults]\naction = \"deny\"\n[segments]\nweb = [\"10.0.0.0/24\",\n  \"fd00::/64\"]\n",
        );
        let mut i = 0;
        while src.len() < MIN_BYTES + 4096 {
            let header = match i % 50 {
                7 => "[[ rules ]]",
                8 => "[[rules]] # eight",
                _ => HEADER,
            };
            let _ = write!(
                src,
                "{header}\nname = \"r{i}\"\nfrom = \"web\"\nto = [\"10.1.{}.0/24\"]\nproto = \"tcp\"\nports = [{}, \"7000-7010\"]\n",
                i % 256,
                1 + i % 60000
            );
            if i % 97 == 0 {
                src.push_str("[rules.extra]\nnote = { a = 1, b = [2, 3] }\n");
            }
            i += 1;
        }
        src.push_str("[conntrack]\nmax_entries = 65536\n");
        src
    }

    #[test]
    fn pieces_give_the_tree_of_the_whole_document() {
        let src = big_policy();
        let whole = parse_whole(&src).expect("valid TOML");
        let pieces = parse_in_pieces(&src).expect("split into pieces");
        assert_eq!(format!("{pieces:?}"), format!("{whole:?}"));
    }

    #[test]
    fn a_key_of_two_pieces_falls_back_to_the_whole_document() {
        let mut src = big_policy();
        let middle = src[src.len() / 2..].find("\n[[rules]]\n").unwrap() + src.len() / 2;
        src.insert_str(middle + 1, "[defaults]\nmode = \"audit\"\n");
        assert!(parse_in_pieces(&src).is_none());
        assert!(
            parse_whole(&src).is_err(),
            "[defaults] twice is a TOML error"
        );
    }

    #[test]
    fn multi_line_strings_and_small_files_are_not_split() {
        let src = big_policy();
        assert!(parse_in_pieces(&format!("x = \"\"\"\n[[rules]]\n\"\"\"\n{src}")).is_none());
        assert!(parse_in_pieces("version = 1\n[[rules]]\nfrom = \"*\"\n").is_none());
    }
}
