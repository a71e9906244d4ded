//! Policy errors: every problem found in one file, each with its position.
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// What is wrong; one variant per kind of mistake, so tests can match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyErrorKind {
    /// The file is not valid TOML.
    Syntax,
    /// The file is not UTF-8.
    NotUtf8,
    /// The file is larger than [`MAX_POLICY_BYTES`](super::MAX_POLICY_BYTES).
    FileTooLarge,
    /// A key the policy language does not have.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value of the wrong TOML type (string where a number is expected...).
    WrongType,
    /// `version` is not 1.
    UnsupportedVersion,
    /// `action` is not allow or deny.
    UnknownAction,
    /// `mode` is not enforce or audit.
    UnknownMode,
    /// `proto` is not a known protocol name or a number 0-255.
    UnknownProto,
    /// A number outside its allowed range (conntrack sizes, timeouts, rates).
    OutOfRange,
    /// A `defaults.failsafe` entry that is not `tcp/PORT`.
    BadFailsafe,
    /// A segment or rule name with bad characters or too long.
    BadName,
    /// A segment named `world` (the implicit segment of unmatched addresses).
    ReservedName,
    /// Not an address or CIDR.
    BadCidr,
    /// Prefix length longer than the address (/33 on IPv4, /129 on IPv6).
    PrefixTooLong,
    /// Bits set after the prefix length (10.0.1.5/24).
    HostBitsSet,
    /// The same prefix in two segments (or twice in one).
    DuplicateCidr,
    /// `from`/`to` (or `defaults.router_advertisements`) names a segment
    /// that is not defined.
    UnknownSegment,
    /// `defaults.router_advertisements` lists an IPv4 source, or a segment
    /// with no IPv6 CIDR.
    RouterSourceNotIpv6,
    /// An empty `from`, `to`, `ports` or `icmp_types`.
    EmptyList,
    /// A port that is 0, above 65535 or not a number/range.
    BadPort,
    /// A port range whose start is above its end.
    ReversedRange,
    /// `ports` on a protocol without ports (icmp, any, ...).
    PortsNotAllowed,
    /// `icmp_types` on a protocol other than icmp/icmpv6.
    IcmpTypesNotAllowed,
    /// An ICMP type name unknown for the rule's family, or a number above 255.
    UnknownIcmpType,
    /// Two rules with the same name.
    DuplicateRuleName,
    /// The policy does not fit the datapath's maps.
    CapacityExceeded,
}

impl PolicyErrorKind {
    /// Every kind (tests check that each is exercised).
    pub const ALL: &'static [PolicyErrorKind] = &[
        Self::Syntax,
        Self::NotUtf8,
        Self::FileTooLarge,
        Self::UnknownKey,
        Self::MissingKey,
        Self::WrongType,
        Self::UnsupportedVersion,
        Self::UnknownAction,
        Self::UnknownMode,
        Self::UnknownProto,
        Self::OutOfRange,
        Self::BadFailsafe,
        Self::BadName,
        Self::ReservedName,
        Self::BadCidr,
        Self::PrefixTooLong,
        Self::HostBitsSet,
        Self::DuplicateCidr,
        Self::UnknownSegment,
        Self::RouterSourceNotIpv6,
        Self::EmptyList,
        Self::BadPort,
        Self::ReversedRange,
        Self::PortsNotAllowed,
        Self::IcmpTypesNotAllowed,
        Self::UnknownIcmpType,
        Self::DuplicateRuleName,
        Self::CapacityExceeded,
    ];
}

/// One problem, at a 1-based line and column of the policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub kind: PolicyErrorKind,
    pub line: usize,
    pub column: usize,
    /// Names the offending key or value and says what is allowed.
    pub message: String,
}

impl PolicyError {
    /// An error about the file as a whole (reported at 1:1).
    pub fn whole_file(kind: PolicyErrorKind, message: String) -> Self {
        Self {
            kind,
            line: 1,
            column: 1,
            message,
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// All errors found in one policy file: nothing of it may be applied.
#[derive(Debug, Clone)]
pub struct PolicyErrors {
    pub file: PathBuf,
    /// Sorted by position.
    pub errors: Vec<PolicyError>,
}

impl PolicyErrors {
    /// The errors of `file`, sorted by position (stable for equal positions).
    pub fn new(file: PathBuf, mut errors: Vec<PolicyError>) -> Self {
        errors.sort_by_key(|e| (e.line, e.column));
        Self { file, errors }
    }

    /// Whether any error has this kind.
    pub fn has(&self, kind: PolicyErrorKind) -> bool {
        self.errors.iter().any(|e| e.kind == kind)
    }
}

/// A header line (it follows "segfw: " when printed by main), then one
/// `file:line:col: message` line per error, as compilers print them.
impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        let plural = if n == 1 { "" } else { "s" };
        write!(
            f,
            "invalid policy {}: {n} error{plural}",
            self.file.display()
        )?;
        for e in &self.errors {
            write!(f, "\n{}:{e}", self.file.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// Maps byte offsets of the source to 1-based line and column (in characters).
#[derive(Clone)]
pub(crate) struct LineIndex<'s> {
    src: &'s str,
    line_starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { src, line_starts }
    }

    /// Line and column of byte `offset` (clamped to the source).
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .src
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, column + 1)
    }
}

/// Collects errors while a policy is validated.
pub(crate) struct Collector<'s> {
    index: LineIndex<'s>,
    pub(crate) errors: Vec<PolicyError>,
}

impl<'s> Collector<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        Self {
            index: LineIndex::new(src),
            errors: Vec::new(),
        }
    }

    /// A collector of its own over the same source, for another thread;
    /// its errors are appended to this one's by the caller.
    pub(crate) fn fork(&self) -> Self {
        Self {
            index: self.index.clone(),
            errors: Vec::new(),
        }
    }

    pub(crate) fn at(&self, span: &Range<usize>) -> (usize, usize) {
        self.index.position(span.start)
    }

    pub(crate) fn error(&mut self, kind: PolicyErrorKind, span: &Range<usize>, message: String) {
        let (line, column) = self.at(span);
        self.errors.push(PolicyError {
            kind,
            line,
            column,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let index = LineIndex::new("ab\nü = 1\n");
        assert_eq!(index.position(0), (1, 1));
        assert_eq!(index.position(1), (1, 2));
        assert_eq!(index.position(3), (2, 1));
        // 'ü' is two bytes but one column.
        assert_eq!(index.position(6), (2, 3));
        assert_eq!(index.position(100), (3, 1));
    }
}
