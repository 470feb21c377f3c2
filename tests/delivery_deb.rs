//! The Debian package (`make deb`): built from the static release build, checked with
//! lintian, installed for real with apt-get, its tcpstates run on live traffic, its man page
//! and unit checked, then purged: nothing it installed may be left (needs root and the
//! static build, which `make test` makes first).
//!
//! The package owns /usr/sbin and /usr/share paths, `make install` /usr/local ones, so the
//! two cannot collide; a tcptools *package* already installed is refused, not replaced.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::elf::{machine, Machine};
use common::{connection, Netns, Tool};
use nix::sys::signal::Signal;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SERVER_PORT: u16 = 46101;
const HEADER: &str = "SKADDR           PID     COMM       LADDR           LPORT RADDR           RPORT OLDSTATE    -> NEWSTATE    MS";

struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(program: &str, args: &[&str]) -> Ran {
    let out = Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn must(program: &str, args: &[&str]) -> String {
    let done = run(program, args);
    assert!(
        done.ok,
        "{program} {args:?} failed:\n{}{}",
        done.stdout, done.stderr
    );
    done.stdout
}

fn package_installed(name: &str) -> bool {
    run("dpkg-query", &["-W", "-f", "${Status}", name])
        .stdout
        .contains("install ok installed")
}

/// Purges the package on drop, so a failing test leaves nothing installed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if package_installed("tcptools") {
            let _ = run("apt-get", &["purge", "-y", "-q", "tcptools"]);
        }
    }
}

/// Builds the .deb with `make deb-files` (no cargo) from the static build and docs made
/// in-process, for `ARCH=...` among `args`; returns its path.
fn build_deb(docs: &Path, args: &[&str]) -> PathBuf {
    let docs = format!("DOCS={}", docs.display());
    let mut all = vec!["-C", ROOT, "--no-print-directory", "deb-files", &docs];
    all.extend_from_slice(args);
    let out = must("make", &all);
    let deb = out.lines().last().expect("mkdeb prints the .deb's path");
    Path::new(ROOT).join(deb)
}

/// Only the C library family as dependencies (dpkg-shlibdeps' Depends).
fn assert_libc_only_depends(control: &str) {
    let depends = control
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .expect("Depends");
    for dep in depends.split(", ") {
        assert!(
            dep.starts_with("libc6 (>= ") || dep.starts_with("libgcc-s1 (>= "),
            "{depends}"
        );
    }
}

/// lintian: no errors, no warnings (overrides are explained in the file and contrib/README.md).
fn assert_lintian_clean(deb: &str) {
    let lint = run("lintian", &["--pedantic", "-I", deb]);
    eprintln!("lintian {deb}:\n{}", lint.stdout);
    for line in lint.stdout.lines() {
        assert!(
            !line.starts_with("E:") && !line.starts_with("W:"),
            "lintian: {line}"
        );
    }
}

/// What exists at each path the package ships, before it is installed: a file's bytes,
/// or that it is a directory.
#[derive(Debug, PartialEq)]
enum Before {
    Absent,
    Dir,
    File(Vec<u8>),
}

fn snapshot(path: &str) -> Before {
    match fs::symlink_metadata(path) {
        Err(_) => Before::Absent,
        Ok(m) if m.is_dir() => Before::Dir,
        Ok(_) => Before::File(fs::read(path).unwrap_or_default()),
    }
}

#[test]
fn deb_installs_runs_and_purges_cleanly() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the package test needs root (run `sudo make test`)"
    );
    assert!(
        !package_installed("tcptools"),
        "a tcptools package is installed already: this test would replace and purge it"
    );
    let release = Path::new(ROOT).join("target/static/release/tcpstates");
    assert!(
        release.exists(),
        "no static build: run `make release` (make test runs it first)"
    );
    let docs = std::env::temp_dir().join(format!("tcpt-deb-docs-{}", std::process::id()));
    tcptools::docs::generate(&docs).expect("generate docs");
    let deb = build_deb(&docs, &[]);
    let first = fs::read(&deb).expect("read .deb");
    let again = build_deb(&docs, &[]);
    let _ = fs::remove_dir_all(&docs);
    assert_eq!(deb, again);
    assert!(
        first == fs::read(&again).expect("read .deb"),
        "two builds differ"
    );
    let deb_str = deb.to_str().expect("UTF-8 path").to_owned();
    let version = env!("CARGO_PKG_VERSION");
    let arch = must("dpkg", &["--print-architecture"]);
    assert!(
        deb_str.ends_with(&format!("tcptools_{version}-1_{}.deb", arch.trim())),
        "{deb_str}"
    );

    assert_libc_only_depends(&must("dpkg-deb", &["-f", &deb_str]));
    assert_lintian_clean(&deb_str);

    // Contents: root-owned, the layout of `make install` under /usr plus the package's own.
    let listing = must("dpkg-deb", &["-c", &deb_str]);
    let mut shipped = Vec::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[1], "root/root", "{line}");
        let path = f[5].trim_start_matches('.').trim_end_matches('/');
        if !path.is_empty() {
            shipped.push(path.to_owned());
        }
    }
    for tool in ["tcpstates", "tcprtt", "tcpconnlat", "tcptools-exporter"] {
        for path in [
            format!("/usr/sbin/{tool}"),
            format!("/usr/share/man/man8/{tool}.8.gz"),
            format!("/usr/share/bash-completion/completions/{tool}"),
            format!("/usr/share/zsh/site-functions/_{tool}"),
            format!("/usr/share/fish/vendor_completions.d/{tool}.fish"),
        ] {
            assert!(shipped.contains(&path), "{path} not in the package");
        }
    }
    for path in [
        "/usr/lib/systemd/system/tcptools-exporter.service",
        "/etc/default/tcptools-exporter",
        "/usr/share/doc/tcptools/copyright",
        "/usr/share/doc/tcptools/changelog.Debian.gz",
    ] {
        assert!(shipped.iter().any(|p| p == path), "{path}");
    }
    let before: BTreeMap<String, Before> =
        shipped.iter().map(|p| (p.clone(), snapshot(p))).collect();
    let peer_installed = package_installed("libbpf-tools");

    // Install for real.
    let installed = Installed;
    must("apt-get", &["install", "-y", "-q", &deb_str]);
    let owned: Vec<String> = must("dpkg", &["-L", "tcptools"])
        .lines()
        .filter(|l| l.starts_with('/') && *l != "/.")
        .map(str::to_owned)
        .collect();
    let mut owned_sorted = owned.clone();
    owned_sorted.sort();
    let mut shipped_sorted = shipped.clone();
    shipped_sorted.sort();
    assert_eq!(owned_sorted, shipped_sorted, "dpkg -L vs the package");
    let diversions = must("dpkg-divert", &["--list", "tcptools"]);
    assert_eq!(diversions.lines().count(), 3, "{diversions}");
    if peer_installed {
        // Debian's libbpf-tools keeps its tools, renamed.
        assert!(Path::new("/usr/sbin/tcpstates.libbpf-tools").exists());
    }

    // The installed tcpstates on live traffic: the client's five changes, exactly.
    let ns = Netns::new("deb");
    let port = SERVER_PORT.to_string();
    let mut tool = Tool::start("/usr/sbin/tcpstates", &["-D", &port], &[], 1);
    assert_eq!(tool.lines(), [HEADER]);
    let client_port = ns
        .run("tcpst-deb", move || {
            connection(SocketAddr::from(([127, 0, 0, 1], SERVER_PORT)), 1)
        })
        .port();
    tool.wait_for_count(Duration::from_secs(10), 5, |l| l.contains(&port));
    let done = tool.stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    let changes: Vec<String> = done.stdout[1..]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 11, "{l}");
            assert_eq!(
                (f[3], f[5], f[6]),
                ("127.0.0.1", "127.0.0.1", port.as_str())
            );
            let lport = if f[9] == "SYN_SENT" { 0 } else { client_port };
            assert_eq!(f[4], lport.to_string(), "{l}");
            format!("{} -> {}", f[7], f[9])
        })
        .collect();
    assert_eq!(
        changes,
        [
            "CLOSE -> SYN_SENT",
            "SYN_SENT -> ESTABLISHED",
            "ESTABLISHED -> FIN_WAIT1",
            "FIN_WAIT1 -> FIN_WAIT2",
            "FIN_WAIT2 -> CLOSE"
        ]
    );
    drop(ns);

    // man finds the page (and, should `make install` have put one in /usr/local too, this one).
    let pages = must("man", &["-a", "-w", "tcpstates"]);
    assert!(
        pages
            .lines()
            .any(|l| l == "/usr/share/man/man8/tcpstates.8.gz"),
        "{pages}"
    );
    let page = must("man", &["-P", "cat", "8", "tcptools-exporter"]);
    assert!(page.contains("CAP_BPF"), "{page}");

    // The unit: valid for systemd, pointing at /usr/sbin, not enabled.
    let unit = "/usr/lib/systemd/system/tcptools-exporter.service";
    let verify = run("systemd-analyze", &["verify", unit]);
    assert!(verify.ok, "{}{}", verify.stdout, verify.stderr);
    assert!(
        !verify.stderr.contains("tcptools-exporter"),
        "{}",
        verify.stderr
    );
    let text = fs::read_to_string(unit).expect("unit");
    assert!(text.contains("\nEnvironmentFile=-/etc/default/tcptools-exporter\n"));
    assert!(text.contains("\nExecStart=/usr/sbin/tcptools-exporter $ARGS\n"));
    // Its arguments: a conffile the unit reads, whose listen address the exporter takes.
    let conffiles = must("dpkg-query", &["-W", "-f=${Conffiles}", "tcptools"]);
    assert!(
        conffiles.contains("/etc/default/tcptools-exporter "),
        "{conffiles}"
    );
    let default = fs::read_to_string("/etc/default/tcptools-exporter").expect("default");
    assert!(
        default.contains("\nARGS=\"--web.listen-address 127.0.0.1:10187\"\n"),
        "{default}"
    );
    assert!(!text.contains("/usr/local"), "{text}");
    let enabled = must(
        "find",
        &["/etc/systemd/system", "-name", "tcptools-exporter*"],
    );
    assert!(enabled.is_empty(), "enabled: {enabled}");

    // Purge: every path is as it was before the install, diversions undone.
    must("apt-get", &["purge", "-y", "-q", "tcptools"]);
    drop(installed);
    assert!(!package_installed("tcptools"));
    assert!(must("dpkg-divert", &["--list", "tcptools"]).is_empty());
    for (path, was) in &before {
        let now = snapshot(path);
        match was {
            // A shared directory (/usr/share/man/man8) stays; its own are gone.
            Before::Dir => assert!(matches!(now, Before::Dir | Before::Absent), "{path}"),
            _ => assert_eq!(&now, was, "{path} after purge"),
        }
    }
    assert!(!Path::new("/usr/share/doc/tcptools").exists());
    if peer_installed {
        let verify = run("dpkg", &["--verify", "libbpf-tools"]);
        assert!(
            verify.ok && verify.stdout.is_empty(),
            "libbpf-tools after purge: {}",
            verify.stdout
        );
    }
}

/// The arm64 package (`make deb ARCH=arm64`) from the cross build that `make test` makes
/// first: Architecture arm64, the four binaries aarch64 ELF, Depends computed from the arm64
/// C library's symbols, lintian clean. It cannot be installed on this machine; the kernel
/// matrix runs the arm64 binaries in qemu.
#[test]
fn arm64_deb_carries_aarch64_binaries_and_is_lintian_clean() {
    let release = Path::new(ROOT).join("target/static-arm64/release/tcpstates");
    assert!(
        release.exists(),
        "no arm64 build: run `make release ARCH=arm64` (make test runs it first)"
    );
    let docs = std::env::temp_dir().join(format!("tcpt-deb-arm64-docs-{}", std::process::id()));
    tcptools::docs::generate(&docs).expect("generate docs");
    let deb = build_deb(&docs, &["ARCH=arm64"]);
    let _ = fs::remove_dir_all(&docs);
    let deb_str = deb.to_str().expect("UTF-8 path").to_owned();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        deb_str.ends_with(&format!("tcptools_{version}-1_arm64.deb")),
        "{deb_str}"
    );
    let control = must("dpkg-deb", &["-f", &deb_str]);
    assert!(control.contains("\nArchitecture: arm64\n"), "{control}");
    assert_libc_only_depends(&control);

    let root = std::env::temp_dir().join(format!("tcpt-deb-arm64-{}", std::process::id()));
    must("dpkg-deb", &["-x", &deb_str, root.to_str().expect("UTF-8")]);
    let machines: Vec<Machine> = ["tcpstates", "tcprtt", "tcpconnlat", "tcptools-exporter"]
        .iter()
        .map(|tool| machine(&root.join("usr/sbin").join(tool)))
        .collect();
    let _ = fs::remove_dir_all(&root);
    assert_eq!(machines, [Machine::Aarch64; 4]);
    assert_lintian_clean(&deb_str);
}
