//! `segfw policy check`: exit codes and output, run as a user would.
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn segfw_check(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_segfw"))
        .args(["policy", "check"])
        .arg(file)
        // Any pin dir: check must not touch it.
        .env("SEGFW_PIN_DIR", "/nonexistent/segfw-test")
        .output()
        .expect("run segfw")
}

fn policy_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_valid_policy_prints_a_summary_and_exits_0() {
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/lab.toml");
    let out = segfw_check(&lab);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("lab.toml: ok — 3 segments (6 prefixes), 5 rules,"),
        "unexpected summary: {stdout}"
    );
    assert!(
        stdout.contains("default deny, mode enforce, failsafe off"),
        "{stdout}"
    );
}

#[test]
fn an_invalid_policy_prints_every_error_with_its_position_and_exits_2() {
    let file = policy_file(
        "version = 1\n[segments]\nweb = [\"10.0.1.5/24\"]\n[[rules]]\nfrom = \"web\"\nto = \"dbb\"\naction = \"allow\"\n",
    );
    let out = segfw_check(file.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout for an invalid policy"
    );
    let path = file.path().display().to_string();
    let host_bits = format!("{path}:3:8: segments.web: \"10.0.1.5/24\" has host bits set");
    let unknown = format!("{path}:6:6: rule 1: to: unknown segment \"dbb\"");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with(&host_bits)),
        "missing {host_bits:?} in:\n{stderr}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&unknown)),
        "missing {unknown:?} in:\n{stderr}"
    );
}

#[test]
fn a_missing_file_is_named_and_exits_2() {
    let out = segfw_check(Path::new("/nonexistent/policy.toml"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("/nonexistent/policy.toml"), "{stderr}");
}

#[test]
fn every_example_policy_passes_the_cli() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = segfw_check(&path);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
        }
    }
}
