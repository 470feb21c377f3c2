//! Compiles every `bpf/*.bpf.c` (the tools) and `bench/bpf/*.bpf.c` (the benchmarks' lab
//! programs) into a libbpf-rs skeleton `$OUT_DIR/NAME.skel.rs`. The library includes the
//! tools' skeletons; the bench examples include the lab's themselves.
//!
//! `CLANG` names the compiler (default `clang`); `BPF_CFLAGS` adds flags.
//!
//! It also sets what tcptools_exporter_build_info reports: `TCPTOOLS_REVISION` (the git
//! commit when built from a git checkout, else "unknown"), `TCPTOOLS_RUSTC_VERSION` (`rustc
//! -V`'s version) and `TCPTOOLS_TARGET` (the target triple).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

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

    build_info(&manifest);

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

/// The build's facts for tcptools_exporter_build_info.
fn build_info(manifest: &Path) {
    println!("cargo:rustc-env=TCPTOOLS_REVISION={}", revision(manifest));
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    // `rustc 1.88.0 (6b00bc388 2025-06-23)`: the version is the second word.
    let version = output(Command::new(rustc).arg("-V"));
    let version = version.as_deref().and_then(|v| v.split_whitespace().nth(1));
    println!(
        "cargo:rustc-env=TCPTOOLS_RUSTC_VERSION={}",
        version.unwrap_or("unknown")
    );
    let target = env::var("TARGET").expect("set by cargo");
    println!("cargo:rustc-env=TCPTOOLS_TARGET={target}");
}

/// The commit checked out, if `manifest` is the top of a git work tree; a new commit or
/// checkout reruns the build.
fn revision(manifest: &Path) -> String {
    let git = |args: &[&str]| output(Command::new("git").arg("-C").arg(manifest).args(args));
    let top = git(&["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    if top.and_then(|t| t.canonicalize().ok()) != manifest.canonicalize().ok() {
        return "unknown".to_owned();
    }
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref());
    for name in watched {
        // A path that does not exist would rerun every build.
        let path = git(&["rev-parse", "--git-path", name]).map(|p| manifest.join(p));
        if let Some(path) = path.filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
}

/// A command's standard output, trimmed, if it ran and succeeded.
fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}
