//! Inputs kept from fuzzing (`make fuzz`), replayed through the same
//! checks as the cargo-fuzz targets: tests/fuzz_regressions/<target>/*.
//! A crash found by `make fuzz` is copied here so it stays fixed.
#[path = "fuzz_support/checks.rs"]
mod checks;

use std::path::Path;

#[test]
fn kept_fuzz_inputs_still_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut replayed = 0;
    for (target, check) in checks::TARGETS {
        let dir = root.join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for file in files.iter().filter(|f| f.is_file()) {
            let data = std::fs::read(file)
                .unwrap_or_else(|e| panic!("read fuzz input {}: {e}", file.display()));
            eprintln!("{target}: {}", file.display());
            check(&data);
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} kept fuzz inputs");
}

/// Each check on a few fixed inputs, so the targets' code is exercised
/// even with no kept inputs.
#[test]
fn checks_accept_simple_inputs() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/three-tier.toml");
    let policy = std::fs::read(&example).unwrap_or_default();
    for (_, check) in checks::TARGETS {
        check(b"");
        check(&[0xff; 200]);
        check(b"version = 1\n[defaults]\naction = \"deny\"\n");
        check(&policy);
    }
    let src = checks::policy_toml(&[7; 256]);
    assert!(
        src.contains("[[rules]]"),
        "generated policy has rules:\n{src}"
    );
}

/// The structured generator mostly writes policies that compile, so the
/// `policy_compile` target reaches the compiler and the trie-vs-rules
/// comparison, not only validation errors.
#[test]
fn generated_policies_often_compile() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut compiled = 0;
    let total = 300;
    for _ in 0..total {
        let input: Vec<u8> = (0..48)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let src = checks::policy_toml(&input);
        match segfw::policy::check_str(&src, Path::new("gen.toml")) {
            Ok(_) => {
                compiled += 1;
                checks::policy_compile(&input);
            }
            Err(e) if std::env::var_os("SEGFW_SHOW_GEN").is_some() => eprintln!("{e}"),
            Err(_) => {}
        }
    }
    eprintln!("{compiled} of {total} generated policies compile");
    assert!(
        compiled * 10 >= total,
        "only {compiled} of {total} generated policies compile"
    );
}
