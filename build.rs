//! Compiles bpf/segfw.bpf.c into a libbpf skeleton (OUT_DIR/segfw.skel.rs).
use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "bpf/segfw.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR must be set by cargo"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("CARGO_CFG_TARGET_ARCH must be set");
    // Debian keeps asm/types.h under the multiarch include dir.
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args(["-O2", "-g", "-Wall", "-Werror", "-Ibpf", multiarch.as_str()])
        .build_and_generate(out.join("segfw.skel.rs"))
        .expect("compile bpf/segfw.bpf.c (needs clang and libelf-dev: run `make deps`)");
    println!("cargo:rerun-if-changed=bpf");
}
