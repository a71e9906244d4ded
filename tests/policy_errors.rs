//! Every validation error kind: reported with its kind, line and column, and a
//! message that names the value and what is allowed.
use std::collections::HashSet;
use std::path::Path;

use segfw::policy::compile::{compile_with_limits, Limits};
use segfw::policy::{check_bytes, check_file, check_str, PolicyErrorKind as Kind, PolicyErrors};

/// Lines 1-4: version and two segments; rules start on line 5.
const HEAD: &str = "version = 1\n[segments]\nweb = [\"10.0.1.0/24\"]\ndb = [\"10.0.2.0/24\"]\n";

struct Case {
    name: &'static str,
    src: String,
    kind: Kind,
    line: usize,
    column: usize,
    /// Text the message must contain.
    says: &'static str,
}

fn case(
    name: &'static str,
    src: &str,
    kind: Kind,
    line: usize,
    column: usize,
    says: &'static str,
) -> Case {
    Case {
        name,
        src: src.to_string(),
        kind,
        line,
        column,
        says,
    }
}

/// HEAD plus one rule made of `body` lines (the rule header is line 5).
fn rule(body: &str) -> String {
    format!("{HEAD}[[rules]]\n{body}")
}

fn cases() -> Vec<Case> {
    vec![
        case("syntax", "version = 1\n[defaults]\naction = \"deny\n", Kind::Syntax, 3, 15, "TOML syntax error: invalid basic string"),
        case("unknown top-level key", "version = 1\nsegmnets = {}\n", Kind::UnknownKey, 2, 1, "did you mean \"segments\""),
        case(
            "unknown rule key",
            &rule("from = \"web\"\nto = \"db\"\nacton = \"allow\"\naction = \"allow\"\n"),
            Kind::UnknownKey,
            8,
            1,
            "unknown key \"acton\"",
        ),
        case("missing version", "[segments]\nweb = [\"10.0.1.0/24\"]\n", Kind::MissingKey, 1, 1, "version"),
        case(
            "missing action",
            &rule("from = \"web\"\nto = \"db\"\n"),
            Kind::MissingKey,
            5,
            1,
            "missing key \"action\"",
        ),
        case(
            "wrong type",
            &rule("from = \"web\"\nto = \"db\"\naction = \"allow\"\nlog = \"yes\"\n"),
            Kind::WrongType,
            9,
            7,
            "expected true or false, found a string (\"yes\")",
        ),
        case("unsupported version", "version = 2\n", Kind::UnsupportedVersion, 1, 11, "version = 2"),
        case(
            "unknown rule action",
            &rule("from = \"web\"\nto = \"db\"\naction = \"permit\"\n"),
            Kind::UnknownAction,
            8,
            10,
            "allowed: allow, deny",
        ),
        case(
            "unknown default action",
            "version = 1\n[defaults]\naction = \"drop\"\n",
            Kind::UnknownAction,
            3,
            10,
            "unknown action \"drop\"",
        ),
        case("unknown mode", "version = 1\n[defaults]\nmode = \"strict\"\n", Kind::UnknownMode, 3, 8, "allowed: enforce, audit"),
        case(
            "unknown proto name",
            &rule("from = \"web\"\nto = \"db\"\nproto = \"tpc\"\naction = \"allow\"\n"),
            Kind::UnknownProto,
            8,
            9,
            "unknown protocol \"tpc\"",
        ),
        case(
            "proto number above 255",
            &rule("from = \"web\"\nto = \"db\"\nproto = 256\naction = \"allow\"\n"),
            Kind::UnknownProto,
            8,
            9,
            "0-255",
        ),
        case(
            "conntrack too small",
            "version = 1\n[conntrack]\nmax_entries = 100\n",
            Kind::OutOfRange,
            3,
            15,
            "1024 to 16777216",
        ),
        case(
            "negative event rate",
            "version = 1\n[defaults]\nevents_per_second = -1\n",
            Kind::OutOfRange,
            3,
            21,
            "out of range",
        ),
        case(
            "udp failsafe",
            "version = 1\n[defaults]\nfailsafe = [\"tcp/22\", \"udp/53\"]\n",
            Kind::BadFailsafe,
            3,
            23,
            "\"udp/53\"",
        ),
        case(
            "segment name with a space",
            "version = 1\n[segments]\n\"web tier\" = [\"10.0.1.0/24\"]\n",
            Kind::BadName,
            3,
            1,
            "A-Z a-z 0-9 _ . -",
        ),
        case(
            "rule name too long",
            &rule(&format!("name = \"{}\"\nfrom = \"web\"\nto = \"db\"\naction = \"allow\"\n", "x".repeat(64))),
            Kind::BadName,
            6,
            8,
            "1-63 characters",
        ),
        case(
            "segment named world",
            "version = 1\n[segments]\nworld = [\"10.0.0.0/8\"]\n",
            Kind::ReservedName,
            3,
            1,
            "implicit segment",
        ),
        case(
            "bad cidr",
            "version = 1\n[segments]\nweb = [\"10.0.1.0/24\", \"10.0.300.0/24\"]\n",
            Kind::BadCidr,
            3,
            23,
            "\"10.0.300.0/24\" is not an address or CIDR",
        ),
        case(
            "prefix too long",
            "version = 1\n[segments]\nweb = [\"10.0.0.0/33\"]\n",
            Kind::PrefixTooLong,
            3,
            8,
            "at most /32",
        ),
        case(
            "ipv6 prefix too long",
            "version = 1\n[segments]\nweb = [\"fd00::/129\"]\n",
            Kind::PrefixTooLong,
            3,
            8,
            "at most /128",
        ),
        case(
            "host bits set",
            "version = 1\n[segments]\nweb = [\"10.0.1.5/24\"]\n",
            Kind::HostBitsSet,
            3,
            8,
            "did you mean \"10.0.1.0/24\"?",
        ),
        case(
            "inline cidr with host bits",
            &rule("from = \"10.9.9.9/16\"\nto = \"db\"\naction = \"allow\"\n"),
            Kind::HostBitsSet,
            6,
            8,
            "did you mean \"10.9.0.0/16\"?",
        ),
        case(
            "same cidr in two segments",
            "version = 1\n[segments]\nweb = [\"10.0.1.0/24\"]\ndb = [\"10.0.2.0/24\", \"10.0.1.0/24\"]\n",
            Kind::DuplicateCidr,
            4,
            22,
            "already in segment \"web\" (line 3)",
        ),
        case(
            "same cidr as ipv4-mapped ipv6",
            "version = 1\n[segments]\nweb = [\"10.0.1.0/24\"]\ndb = [\"::ffff:10.0.1.0/120\"]\n",
            Kind::DuplicateCidr,
            4,
            7,
            "already in segment \"web\"",
        ),
        case(
            "router_advertisements: unknown segment",
            &format!("{HEAD}[defaults]\nrouter_advertisements = [\"fe80::1\", \"webb\"]\n"),
            Kind::UnknownSegment,
            6,
            37,
            "defaults.router_advertisements: unknown segment \"webb\"; did you mean \"web\"?",
        ),
        case(
            "router_advertisements: bad address",
            &format!("{HEAD}[defaults]\nrouter_advertisements = [\"fe80::1::2\"]\n"),
            Kind::BadCidr,
            6,
            26,
            "\"fe80::1::2\" is not an address or CIDR",
        ),
        case(
            "router_advertisements: ipv4 source",
            &format!("{HEAD}[defaults]\nrouter_advertisements = [\"10.0.0.1\"]\n"),
            Kind::RouterSourceNotIpv6,
            6,
            26,
            "\"10.0.0.1\" is IPv4",
        ),
        case(
            "router_advertisements: segment without ipv6",
            &format!("{HEAD}[defaults]\nrouter_advertisements = [\"db\"]\n"),
            Kind::RouterSourceNotIpv6,
            6,
            26,
            "segment \"db\" has no IPv6 CIDR",
        ),
        case(
            "router_advertisements: not a list",
            &format!("{HEAD}[defaults]\nrouter_advertisements = \"fe80::1\"\n"),
            Kind::WrongType,
            6,
            25,
            "defaults.router_advertisements: expected a list",
        ),
        case(
            "unknown segment",
            &rule("from = \"web\"\nto = \"dbb\"\naction = \"allow\"\n"),
            Kind::UnknownSegment,
            7,
            6,
            "did you mean \"db\"?",
        ),
        case(
            "empty from",
            &rule("from = []\nto = \"db\"\naction = \"allow\"\n"),
            Kind::EmptyList,
            6,
            8,
            "empty list",
        ),
        case(
            "empty to",
            &rule("from = \"web\"\nto = \"\"\naction = \"allow\"\n"),
            Kind::EmptyList,
            7,
            6,
            "empty name",
        ),
        case(
            "port 0",
            &rule("from = \"web\"\nto = \"db\"\nproto = \"tcp\"\nports = [443, 0]\naction = \"allow\"\n"),
            Kind::BadPort,
            9,
            15,
            "port 0 is out of range",
        ),
        case(
            "port above 65535",
            &rule("from = \"web\"\nto = \"db\"\nproto = \"udp\"\nports = [\"1000-65536\"]\naction = \"allow\"\n"),
            Kind::BadPort,
            9,
            10,
            "port 65536 is out of range",
        ),
        case(
            "reversed range",
            &rule("from = \"web\"\nto = \"db\"\nproto = \"tcp\"\nports = [\"6100-6000\"]\naction = \"allow\"\n"),
            Kind::ReversedRange,
            9,
            10,
            "did you mean \"6000-6100\"?",
        ),
        case(
            "ports on icmp",
            &rule("from = \"web\"\nto = \"db\"\nproto = \"icmp\"\nports = [80]\naction = \"allow\"\n"),
            Kind::PortsNotAllowed,
            9,
            1,
            "proto is icmp",
        ),
        case(
            "ports on any",
            &rule("from = \"web\"\nto = \"db\"\nports = [80]\naction = \"allow\"\n"),
            Kind::PortsNotAllowed,
            8,
            1,
            "proto is any",
        ),
        case(
            "icmp_types on tcp",
            &rule("from = \"web\"\nto = \"db\"\nproto = \"tcp\"\nicmp_types = [\"echo-request\"]\naction = \"allow\"\n"),
            Kind::IcmpTypesNotAllowed,
            9,
            1,
            "proto is tcp",
        ),
        case(
            "icmpv6 name on icmp",
            &rule("from = \"web\"\nto = \"db\"\nproto = \"icmp\"\nicmp_types = [\"packet-too-big\"]\naction = \"allow\"\n"),
            Kind::UnknownIcmpType,
            9,
            15,
            "it is an icmpv6 type",
        ),
        case(
            "icmp type above 255",
            &rule("from = \"web\"\nto = \"db\"\nproto = \"icmpv6\"\nicmp_types = [128, 300]\naction = \"allow\"\n"),
            Kind::UnknownIcmpType,
            9,
            20,
            "ICMP type 300",
        ),
        case(
            "duplicate rule names",
            &format!(
                "{HEAD}[[rules]]\nname = \"x\"\nfrom = \"web\"\nto = \"db\"\naction = \"allow\"\n[[rules]]\nname = \"x\"\nfrom = \"db\"\nto = \"web\"\naction = \"deny\"\n"
            ),
            Kind::DuplicateRuleName,
            11,
            8,
            "already used by rule 1 (line 6)",
        ),
        case(
            "name clashing with a default name",
            &format!(
                "{HEAD}[[rules]]\nname = \"rule-2\"\nfrom = \"web\"\nto = \"db\"\naction = \"allow\"\n[[rules]]\nfrom = \"db\"\nto = \"web\"\naction = \"deny\"\n"
            ),
            Kind::DuplicateRuleName,
            10,
            1,
            "\"rule-2\" is already used by rule 1",
        ),
        case(
            "too many segment pairs",
            &huge_cross_product(6000),
            Kind::CapacityExceeded,
            1,
            1,
            "combinations",
        ),
    ]
}

/// One rule from `n` host CIDRs to `n` others. A CIDR a rule names is a
/// class of its own (a segment's prefixes would share one), so this is
/// n * n (source class, destination class) pairs.
fn huge_cross_product(n: u32) -> String {
    let hosts = |base: u32| -> String {
        (0..n)
            .map(|i| format!("\"{}/32\"", std::net::Ipv4Addr::from(base + i)))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "version = 1\n[[rules]]\nfrom = [{}]\nto = [{}]\naction = \"allow\"\n",
        hosts(0x0a00_0000),
        hosts(0x0b00_0000)
    )
}

fn errors_of(src: &str) -> PolicyErrors {
    match check_str(src, Path::new("t.toml")) {
        Ok(_) => panic!("expected errors, the policy passed:\n{src}"),
        Err(errors) => errors,
    }
}

#[test]
fn every_error_kind_is_reported_at_its_line_and_column() {
    let mut failures = Vec::new();
    for case in cases() {
        let errors = errors_of(&case.src);
        let found = errors.errors.iter().find(|e| e.kind == case.kind);
        match found {
            Some(e)
                if (e.line, e.column) == (case.line, case.column)
                    && e.message.contains(case.says) => {}
            _ => failures.push(format!(
                "{}: expected {:?} at {}:{} saying {:?}, got:\n{errors}",
                case.name, case.kind, case.line, case.column, case.says
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_error_kind_has_a_test() {
    let mut tested: HashSet<Kind> = cases().iter().map(|c| c.kind).collect();
    // Tested below, outside the table (they need bytes, files or limits).
    tested.extend([Kind::NotUtf8, Kind::FileTooLarge]);
    let untested: Vec<_> = Kind::ALL.iter().filter(|k| !tested.contains(k)).collect();
    assert!(
        untested.is_empty(),
        "error kinds without a test: {untested:?}"
    );
}

#[test]
fn not_utf8_is_reported_at_the_bad_byte() {
    let errors = check_bytes(b"version = 1\n# caf\xe9\n", Path::new("t.toml")).unwrap_err();
    let e = &errors.errors[0];
    assert_eq!(
        (e.kind, e.line, e.column),
        (Kind::NotUtf8, 2, 6),
        "{errors}"
    );
    assert!(e.message.contains("0xe9"), "{errors}");
}

#[test]
fn huge_files_are_refused_before_reading() {
    let file = tempfile::NamedTempFile::new().unwrap();
    // Sparse: costs no disk, and is refused by size alone.
    file.as_file()
        .set_len(segfw::policy::MAX_POLICY_BYTES + 1)
        .unwrap();
    let err = check_file(file.path()).unwrap_err();
    let errors = err
        .downcast_ref::<PolicyErrors>()
        .expect("a PolicyErrors (exit 2)");
    let e = &errors.errors[0];
    assert_eq!(
        (e.kind, e.line, e.column),
        (Kind::FileTooLarge, 1, 1),
        "{errors}"
    );
    assert!(e.message.contains("64 MiB"), "{errors}");
    assert_eq!(segfw::exit_code(&err), 2);
}

#[test]
fn a_missing_file_is_a_usage_error_naming_it() {
    let err = check_file(Path::new("/nonexistent/p.toml")).unwrap_err();
    assert!(
        format!("{err:#}").contains("/nonexistent/p.toml"),
        "{err:#}"
    );
    assert_eq!(segfw::exit_code(&err), 2);
}

#[test]
fn all_errors_of_a_file_are_reported_in_order() {
    let src = "\
version = 1
[defaults]
action = \"alow\"
mode = \"enforcing\"
[segments]
web = [\"10.0.1.5/24\"]
db = [\"10.0.2.0/33\"]
[[rules]]
from = \"webb\"
to = \"db\"
proto = \"icmp\"
ports = [0]
action = \"maybe\"
";
    let errors = errors_of(src);
    let got: Vec<(Kind, usize, usize)> = errors
        .errors
        .iter()
        .map(|e| (e.kind, e.line, e.column))
        .collect();
    let expected = vec![
        (Kind::UnknownAction, 3, 10),
        (Kind::UnknownMode, 4, 8),
        (Kind::HostBitsSet, 6, 8),
        (Kind::PrefixTooLong, 7, 7),
        (Kind::UnknownSegment, 9, 8),
        (Kind::PortsNotAllowed, 12, 1),
        (Kind::BadPort, 12, 10),
        (Kind::UnknownAction, 13, 10),
    ];
    assert_eq!(got, expected, "{errors}");
    // Display: a header, then one file:line:col line per error.
    let text = errors.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + expected.len(), "{text}");
    assert!(
        lines[1].starts_with("t.toml:3:10: defaults.action: unknown action \"alow\""),
        "{text}"
    );
}

#[test]
fn rules_over_the_limit_are_refused_at_the_first_extra_rule() {
    let src = format!(
        "{HEAD}[[rules]]\nfrom = \"web\"\nto = \"db\"\naction = \"allow\"\n[[rules]]\nfrom = \"db\"\nto = \"web\"\naction = \"allow\"\n"
    );
    let model = segfw::policy::parse_str(&src, Path::new("t.toml")).unwrap();
    let limits = Limits {
        max_rules: 1,
        ..Limits::default()
    };
    let e = compile_with_limits(&model, &limits).unwrap_err();
    assert_eq!(
        (e.kind, e.line, e.column),
        (Kind::CapacityExceeded, 9, 1),
        "{e}"
    );
    assert!(
        e.message.contains("2 rules") && e.message.contains("at most 1"),
        "{e}"
    );
}

#[test]
fn prefix_and_entry_limits_are_checked() {
    let src = rule("from = \"10.9.0.0/16\"\nto = \"db\"\nproto = \"tcp\"\nports = [1, 3, 5, 7]\naction = \"allow\"\n");
    let model = segfw::policy::parse_str(&src, Path::new("t.toml")).unwrap();
    let few_classes = Limits {
        max_classes: 2,
        ..Limits::default()
    };
    let e = compile_with_limits(&model, &few_classes).unwrap_err();
    assert_eq!(e.kind, Kind::CapacityExceeded);
    assert!(e.message.contains("3 distinct prefixes"), "{e}");
    // CONFIG + 3 SEGMENT + 4 RULE + 1 FAILSAFE + 1 RA_SOURCE (fe80::/10) = 10 entries.
    let image = compile_with_limits(
        &model,
        &Limits {
            max_entries: 10,
            ..Limits::default()
        },
    )
    .unwrap();
    assert_eq!(image.trie.len(), 10);
    let e = compile_with_limits(
        &model,
        &Limits {
            max_entries: 9,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.kind, Kind::CapacityExceeded);
    assert!(e.message.contains("at most 9"), "{e}");
}

/// A policy large enough that its rules are checked on several threads:
/// errors on either side of the split, and a name reused across it, are all
/// reported at their lines, the duplicate naming the first use.
#[test]
fn errors_of_a_large_policy_are_found_on_every_thread() {
    const RULES: usize = 40_000;
    let mut src = String::from("version = 1\n[segments]\nweb = [\"10.0.1.0/24\"]\n");
    // Three lines of head, then five per rule: rule i's [[rules]] line.
    let line_of = |i: usize| 3 + 5 * (i - 1) + 1;
    for i in 1..=RULES {
        let name = match i {
            5 | 38_000 => "twice".to_string(),
            _ => format!("r{i}"),
        };
        let from = if i == 3 || i == 39_000 { "webb" } else { "web" };
        src.push_str(&format!(
            "[[rules]]\nname = \"{name}\"\nfrom = \"{from}\"\nto = \"*\"\naction = \"allow\"\n"
        ));
    }
    let errors = errors_of(&src);
    let got: Vec<(Kind, usize)> = errors.errors.iter().map(|e| (e.kind, e.line)).collect();
    assert_eq!(
        got,
        [
            (Kind::UnknownSegment, line_of(3) + 2),
            (Kind::DuplicateRuleName, line_of(38_000) + 1),
            (Kind::UnknownSegment, line_of(39_000) + 2),
        ],
        "{errors}"
    );
    assert!(
        errors.errors[1].message.contains("already used by rule 5"),
        "{errors}"
    );
}
