//! Compiles every `bpf/*.bpf.c` into a libbpf-rs skeleton `$OUT_DIR/NAME.skel.rs`.
//!
//! `CLANG` names the compiler (default `clang`); `BPF_CFLAGS` adds flags.

use std::env;
use std::fs;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("set by cargo");
    let bpf_dir = manifest.join("bpf");
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
    println!("cargo:rerun-if-changed={}", vmlinux_dir.display());
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=BPF_CFLAGS");

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

    let mut sources: Vec<PathBuf> = fs::read_dir(&bpf_dir)
        .expect("bpf/ is readable")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    sources.sort();
    for path in &sources {
        println!("cargo:rerun-if-changed={}", path.display());
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".bpf.c"))
        else {
            continue;
        };
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
