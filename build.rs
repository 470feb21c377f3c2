//! Compiles every `bpf/*.bpf.c` (the tools) and `bench/bpf/*.bpf.c` (the benchmarks' lab
//! programs) into a libbpf-rs skeleton `$OUT_DIR/NAME.skel.rs`. The library includes the
//! tools' skeletons; the bench examples include the lab's themselves.
//!
//! `CLANG` names the compiler (default `clang`); `BPF_CFLAGS` adds flags.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("set by cargo");
    let bpf_dir = manifest.join("bpf");
    let lab_dir = manifest.join("bench").join("bpf");
    let vmlinux_dir = manifest.join("vmlinux").join(&arch);
    let target_arch = match arch.as_str() {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        "riscv64" => "riscv",
        "powerpc64" => "powerpc",
        "s390x" => "s390",
        other => other,
    };

    println!("cargo:rerun-if-changed={}", bpf_dir.display());
    println!("cargo:rerun-if-changed={}", lab_dir.display());
    println!("cargo:rerun-if-changed={}", vmlinux_dir.display());
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=BPF_CFLAGS");

    // The lab's sources include the tools' headers, so both folders build with bpf/ on the
    // include path.
    let mut clang_args = vec![
        format!("-I{}", bpf_dir.display()),
        format!("-I{}", vmlinux_dir.display()),
        format!("-D__TARGET_ARCH_{target_arch}"),
        "-O2".to_owned(),
        "-g".to_owned(),
        "-Wall".to_owned(),
    ];
    if let Ok(extra) = env::var("BPF_CFLAGS") {
        clang_args.extend(extra.split_whitespace().map(str::to_owned));
    }

    let mut sources = bpf_sources(&bpf_dir);
    sources.extend(bpf_sources(&lab_dir));
    let mut names = Vec::new();
    for (name, path) in &sources {
        // Both folders write into one OUT_DIR: a lab program named as a tool would replace
        // the tool's skeleton.
        assert!(
            !names.contains(name),
            "two BPF sources named {name}.bpf.c (bpf/ and bench/bpf/ share one skeleton folder)"
        );
        names.push(name.clone());
        let skel = out_dir.join(format!("{name}.skel.rs"));
        let mut builder = SkeletonBuilder::new();
        builder.source(path).clang_args(&clang_args);
        if let Some(clang) = env::var_os("CLANG") {
            builder.clang(clang);
        }
        if let Err(err) = builder.build_and_generate(&skel) {
            panic!("compiling {}: {err:#}", path.display());
        }
    }
}

/// The `NAME.bpf.c` files of `dir`, as (NAME, path), sorted; every file of `dir` (headers
/// too) reruns the build when it changes.
fn bpf_sources(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut sources: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter_map(|path| {
            println!("cargo:rerun-if-changed={}", path.display());
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".bpf.c")?
                .to_owned();
            Some((name, path))
        })
        .collect();
    sources.sort();
    sources
}
