//! Compiles the BPF programs into libbpf skeletons in OUT_DIR:
//! bpf/segfw.bpf.c (the datapath) and bpf/empty.bpf.c (the benchmark floor).
use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

fn build_skeleton(src: &str, out: &str) {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR must be set by cargo"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("CARGO_CFG_TARGET_ARCH must be set");
    // Debian keeps asm/types.h under the multiarch include dir.
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    SkeletonBuilder::new()
        .source(src)
        .clang_args(["-O2", "-g", "-Wall", "-Werror", "-Ibpf", multiarch.as_str()])
        .build_and_generate(out_dir.join(out))
        .unwrap_or_else(|e| {
            panic!("compile {src} (needs clang and libelf-dev: run `make deps`): {e:#}")
        });
}

fn main() {
    build_skeleton("bpf/segfw.bpf.c", "segfw.skel.rs");
    build_skeleton("bpf/empty.bpf.c", "empty.skel.rs");
    println!("cargo:rerun-if-changed=bpf");
}
