//! Messages read well: no string of src/ (errors, warnings, hints) and no
//! help text of the CLI has a run of spaces inside a sentence, as a line
//! continuation without `\` or a reflowed literal leaves behind. Table rows
//! (format strings with a width, such as `{:<16}`) align with spaces on
//! purpose and are left out.
use std::fs;
use std::path::Path;

use clap::CommandFactory;

#[test]
fn no_string_in_src_has_a_run_of_spaces_inside_a_sentence() {
    let mut found = Vec::new();
    let mut files = Vec::new();
    collect_rs(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut files,
    );
    for file in files {
        let text = fs::read_to_string(&file).expect("read a source file");
        // Unit tests hold fixtures, not messages.
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        for (line, literal) in string_literals(code) {
            if !is_table_row(&literal) && has_inner_space_run(&literal) {
                found.push(format!("{}:{line}: {literal}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "expected no runs of spaces inside messages, found:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_help_text_has_a_run_of_spaces() {
    let mut found = Vec::new();
    visit(&segfw::cli::Cli::command(), "segfw", &mut found);
    assert!(
        found.is_empty(),
        "expected help texts without runs of spaces, found:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checks_see_a_run_of_spaces() {
    assert!(has_inner_space_run("the runtime              map"));
    assert!(has_inner_space_run("run `segfw  uninstall`"));
    assert!(!has_inner_space_run("verdict:   pass"));
    assert!(is_table_row("{:<6} {:>7}  {:<7}"));
    let literals = string_literals("let a = \"x  y\"; // \"not  this\"\nlet b = 'c';");
    assert_eq!(literals, vec![(1, "x  y".to_string())]);
}

fn visit(cmd: &clap::Command, path: &str, found: &mut Vec<String>) {
    let texts = [cmd.get_about(), cmd.get_long_about()];
    for text in texts.into_iter().flatten() {
        check_help(&format!("{path}: about"), &text.to_string(), found);
    }
    for arg in cmd.get_arguments() {
        for text in [arg.get_help(), arg.get_long_help()].into_iter().flatten() {
            check_help(
                &format!("{path} --{}", arg.get_id()),
                &text.to_string(),
                found,
            );
        }
    }
    for sub in cmd.get_subcommands() {
        visit(sub, &format!("{path} {}", sub.get_name()), found);
    }
}

fn check_help(what: &str, text: &str, found: &mut Vec<String>) {
    if text.lines().any(|line| line.trim().contains("  ")) {
        found.push(format!("{what}: {text:?}"));
    }
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("read src/ entry").path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Ordinary string literals of `code` (not raw strings, not comments), as
/// (line, text between the quotes).
fn string_literals(code: &str) -> Vec<(usize, String)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = code[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            // A char literal such as '"' must not open a string.
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 3,
            b'\'' if bytes.get(i + 1) == Some(&b'\\') && bytes.get(i + 3) == Some(&b'\'') => i += 4,
            b'"' => {
                let raw = i > 0 && (bytes[i - 1] == b'r' || bytes[i - 1] == b'#');
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' && !raw { 2 } else { 1 };
                }
                if !raw {
                    let line = code[..i].matches('\n').count() + 1;
                    out.push((line, code[i + 1..j.min(bytes.len())].to_string()));
                }
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Two or more spaces between words, as in "runtime    map".
fn has_inner_space_run(text: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || "`'.,;)".contains(c);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' && i > 0 && word(chars[i - 1]) {
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            let after = chars
                .get(j)
                .is_some_and(|c| c.is_alphanumeric() || "`(".contains(*c));
            if j - i >= 2 && after {
                return true;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    false
}

/// A format string that aligns columns with widths.
fn is_table_row(text: &str) -> bool {
    text.contains("{:<") || text.contains("{:>")
}
