//! The container image (Containerfile, `make image`): built with podman from the static
//! release build, then run as an operator would, with CAP_BPF and CAP_PERFMON only, the
//! kernel's BTF and the cgroup v2 mount read-only, and scraped while traffic runs (needs
//! root, podman and runc, and the static build that `make test` makes first).
//!
//! podman keeps this test's images in a storage directory of its own (vfs driver, removed
//! afterwards), so nothing lands in /var/lib/containers. runc, not Debian's default crun:
//! crun refuses hosts whose cgroup v2 mount has controllers while v1 is in use ("cgroups
//! in hybrid mode not supported"), as here. The ulimits are explicit because podman's
//! default (nofile 1048576) is above the hard limit of a root without CAP_SYS_RESOURCE.
//! The seccomp profile is podman's own, widened by contrib/podman/seccomp-bpf.py: Debian
//! 12's allows bpf() and perf_event_open() only to CAP_SYS_ADMIN (the exporter then fails
//! with "Couldn't load trivial BPF program" and EPERM).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::elf::{machine, Machine, MACHINES};
use common::web::{parse_samples, raw_get};
use common::{cgroup2_mount, cgroup_of_pid, connection, mounts_of_type, remove_cgroup_tree, Netns};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SERVER_PORT: u16 = 46201;
const REFUSED_PORT: u16 = 46202;
const CONNECTIONS: usize = 6;

/// podman with this test's own storage; the container, the directories and the parent
/// cgroups podman made (`libpod_parent` in each hierarchy) go on drop.
struct Podman {
    dir: PathBuf,
    container: String,
    parent_cgroups: Vec<PathBuf>,
}

/// podman's parent cgroup in every mounted hierarchy (v1 controllers and v2).
fn libpod_parents() -> Vec<PathBuf> {
    let mut hierarchies = mounts_of_type("cgroup");
    hierarchies.extend(mounts_of_type("cgroup2"));
    hierarchies
        .into_iter()
        .map(|h| h.join("libpod_parent"))
        .collect()
}

impl Podman {
    /// `tag` tells this file's tests apart (they run in parallel in one process).
    fn new(tag: &str) -> Podman {
        let name = format!("tcpt-image-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create podman dir");
        Podman {
            container: name,
            dir,
            // Only those this test makes are removed: another podman may use them.
            parent_cgroups: libpod_parents()
                .into_iter()
                .filter(|p| !p.exists())
                .collect(),
        }
    }

    /// podman's options for this storage (UTF-8 paths: `make image-manifest` takes them as
    /// one PODMAN word list).
    fn options(&self) -> Vec<String> {
        let path = |p: PathBuf| p.to_str().expect("UTF-8 path").to_owned();
        let mut options = vec!["--root".to_owned(), path(self.dir.join("storage"))];
        options.extend(["--runroot".to_owned(), path(self.dir.join("run"))]);
        options.extend(["--storage-driver", "vfs", "--runtime", "runc"].map(str::to_owned));
        options
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("podman")
            .args(self.options())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman (apt-get install podman): {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn must(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args);
        assert!(ok, "podman {args:?} failed:\n{stdout}{stderr}");
        stdout
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-f", "-t", "2", &self.container]);
        let _ = self.run(&["rmi", "-a", "-f"]);
        let _ = std::fs::remove_dir_all(&self.dir);
        for cgroup in self.parent_cgroups.iter().filter(|c| c.exists()) {
            remove_cgroup_tree(cgroup);
        }
    }
}

/// GET /metrics from inside `ns`, once it answers (at most 30 s).
fn scrape(ns: &Netns, port: u16) -> String {
    ns.run("image-scrape", move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, body)) = raw_get(port, "/metrics", Duration::from_secs(5)) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "the container never served /metrics"
            );
            thread::sleep(Duration::from_millis(200));
        }
    })
}

/// Sample lines as (name, labels) -> value.
fn samples(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    parse_samples(text)
        .into_iter()
        .map(|(name, labels, v)| ((name, labels), v))
        .collect()
}

fn value(
    all: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.get(&(name.to_owned(), labels)).copied()
}

#[test]
fn image_runs_with_two_capabilities_and_counts_traffic() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the image test needs root (run `sudo make test`)"
    );
    assert!(
        Path::new(ROOT)
            .join("target/static/release/tcptools-exporter")
            .exists(),
        "no static build: run `make release` (make test runs it first)"
    );
    let podman = Podman::new("run");
    let context = podman.dir.join("context");
    let done = Command::new("make")
        .args(["-C", ROOT, "--no-print-directory", "image-context"])
        .arg(format!("IMAGE_CONTEXT={}", context.display()))
        .output()
        .expect("run make");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );

    let image = format!("localhost/tcptools-test:{}", std::process::id());
    let containerfile = Path::new(ROOT).join("Containerfile");
    let version = format!("VERSION={}", env!("CARGO_PKG_VERSION"));
    podman.must(&[
        "build",
        "-q",
        "-f",
        containerfile.to_str().expect("UTF-8"),
        "--build-arg",
        &version,
        "--build-arg",
        "REVISION=0123456789abcdef",
        "--build-arg",
        "SOURCE=https://example.invalid/tcptools",
        "-t",
        &image,
        context.to_str().expect("UTF-8"),
    ]);
    let config = podman.must(&["image", "inspect", "-f", "{{json .Config}}", &image]);
    let config: serde_json::Value = serde_json::from_str(&config).expect("image config");
    // The OCI labels of what it was built from, as `make image` passes them.
    let labels = &config["Labels"];
    for (key, value) in [
        ("version", env!("CARGO_PKG_VERSION")),
        ("revision", "0123456789abcdef"),
        ("source", "https://example.invalid/tcptools"),
    ] {
        let key = format!("org.opencontainers.image.{key}");
        assert_eq!(labels[&key], value, "{key}: {labels}");
    }
    let make = fs::read_to_string(Path::new(ROOT).join("Makefile")).expect("Makefile");
    assert!(
        make.contains("$(PODMAN) build -f Containerfile $(IMAGE_ARGS)"),
        "make image passes the labels' build arguments"
    );
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/sbin/tcptools-exporter"])
    );
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["--listen", "0.0.0.0:10187"])
    );
    // One layer, the binaries and the C library they load: nothing else.
    let layers = podman.must(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &image]);
    assert_eq!(layers.trim(), "1");

    // The container joins this test's network namespace, so its 0.0.0.0:10187 is private.
    let ns = Netns::new("image");
    let cgroup2 = cgroup2_mount();
    let cgroup2 = cgroup2.to_str().expect("UTF-8 mount");
    let seccomp = podman.dir.join("seccomp.json");
    let done = Command::new("python3")
        .arg(Path::new(ROOT).join("contrib/podman/seccomp-bpf.py"))
        .arg(&seccomp)
        .output()
        .expect("run seccomp-bpf.py");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let seccomp = format!("seccomp={}", seccomp.display());
    let ports = format!("{SERVER_PORT},{REFUSED_PORT}");
    let netns = format!("ns:/run/netns/{}", ns.name);
    let cgroup_mount = format!("{cgroup2}:{cgroup2}:ro");
    podman.must(&[
        "run",
        "-d",
        "--name",
        &podman.container,
        "--network",
        &netns,
        "--cap-drop",
        "ALL",
        "--cap-add",
        "BPF",
        "--cap-add",
        "PERFMON",
        "--read-only",
        "--security-opt",
        "no-new-privileges",
        "--security-opt",
        &seccomp,
        "-v",
        "/sys/kernel/btf:/sys/kernel/btf:ro",
        "-v",
        &cgroup_mount,
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=32768:32768",
        &image,
        "--listen",
        "0.0.0.0:10187",
        "-D",
        &ports,
        "--group-by",
        "cgroup",
    ]);
    thread::sleep(Duration::from_millis(500));
    let (_, _, logs) = podman.run(&["logs", &podman.container]);
    assert!(!logs.contains("failed"), "{logs}");
    let first = scrape(&ns, 10187);
    assert!(
        first.contains("tcptools_exporter_attach_info{hook=\"tp_btf\""),
        "{first}"
    );

    // Its only capabilities are the two asked for.
    let pid = podman.must(&["inspect", "-f", "{{.State.Pid}}", &podman.container]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).expect("status");
    let cap_bpf_perfmon = format!("{:016x}", (1u64 << 38) | (1u64 << 39));
    for field in ["CapEff", "CapPrm", "CapBnd"] {
        let line = status.lines().find(|l| l.starts_with(field)).expect(field);
        assert!(line.ends_with(&cap_bpf_perfmon), "{line}");
    }

    ns.run("image-traffic", || {
        for _ in 0..CONNECTIONS {
            connection(SocketAddr::from(([127, 0, 0, 1], SERVER_PORT)), 2);
        }
        let refused = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], REFUSED_PORT)));
        assert!(refused.is_err(), "nothing listens on {REFUSED_PORT}");
    });

    // The traffic ran in this process's cgroup: every count carries its path.
    let me = cgroup_of_pid(std::process::id());
    let n = CONNECTIONS as f64;
    let expected = [
        (
            "tcp_connect_attempts_total",
            vec![("outcome", "established")],
            n,
        ),
        (
            "tcp_connect_attempts_total",
            vec![("outcome", "refused")],
            1.0,
        ),
        (
            "tcp_connect_latency_seconds_count",
            vec![("outcome", "established")],
            n,
        ),
        (
            "tcp_state_transitions_total",
            vec![("old_state", "SYN_SENT"), ("new_state", "ESTABLISHED")],
            n,
        ),
        (
            "tcp_state_transitions_total",
            vec![("old_state", "FIN_WAIT2"), ("new_state", "CLOSE")],
            n,
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text;
    loop {
        text = scrape(&ns, 10187);
        let all = samples(&text);
        let counts: Vec<Option<f64>> = expected
            .iter()
            .map(|(name, labels, _)| {
                let mut labels = labels.clone();
                labels.extend([("family", "ipv4"), ("cgroup", me.as_str())]);
                value(&all, name, &labels)
            })
            .collect();
        if expected
            .iter()
            .zip(&counts)
            .all(|((_, _, want), got)| *got == Some(*want))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "counts {counts:?} for {expected:?} in:\n{text}"
        );
        thread::sleep(Duration::from_millis(300));
    }
    let all = samples(&text);
    assert_eq!(
        value(&all, "tcptools_exporter_events_skipped_total", &[]),
        Some(0.0)
    );

    // SIGTERM (podman stop) ends it with exit 0.
    podman.must(&["stop", "-t", "10", &podman.container]);
    let code = podman.must(&["inspect", "-f", "{{.State.ExitCode}}", &podman.container]);
    let logs = podman.run(&["logs", &podman.container]);
    assert_eq!(code.trim(), "0", "{logs:?}");
    assert!(
        logs.1
            .contains("Serving metrics on http://0.0.0.0:10187/metrics"),
        "{logs:?}"
    );
}

/// `make image`'s manifest list (`make image-manifest`, no cargo, from the two static builds
/// `make test` makes first): one image for linux/amd64 and one for linux/arm64, each with the
/// four binaries and the C library files of its own architecture.
#[test]
fn image_is_a_manifest_list_of_amd64_and_arm64() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the image test needs root (run `sudo make test`)"
    );
    let podman = Podman::new("manifest");
    let image = format!("localhost/tcptools-manifest-test:{}", std::process::id());
    let context = podman.dir.join("context");
    let done = Command::new("make")
        .args(["-C", ROOT, "--no-print-directory", "image-manifest"])
        .arg(format!("IMAGE={image}"))
        .arg(format!("IMAGE_CONTEXT={}", context.display()))
        .arg(format!("PODMAN=podman {}", podman.options().join(" ")))
        .output()
        .expect("run make");
    assert!(
        done.status.success(),
        "make image-manifest: {}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );

    let list = podman.must(&["manifest", "inspect", &image]);
    let list: serde_json::Value = serde_json::from_str(&list).expect("manifest list");
    let entries = list["manifests"].as_array().expect("manifests");
    let platforms: Vec<(&str, &str)> = entries
        .iter()
        .map(|m| {
            let p = &m["platform"];
            (
                p["os"].as_str().expect("os"),
                p["architecture"].as_str().expect("arch"),
            )
        })
        .collect();
    assert_eq!(platforms, [("linux", "amd64"), ("linux", "arm64")]);

    for (entry, (arch, want)) in entries.iter().zip(MACHINES) {
        let instance = format!("{image}@{}", entry["digest"].as_str().expect("digest"));
        let config = podman.must(&["image", "inspect", "-f", "{{.Architecture}}", &instance]);
        assert_eq!(config.trim(), arch);
        let mount = PathBuf::from(podman.must(&["image", "mount", &instance]).trim());
        // Every file is the binaries or the C library: ELF, of this image's machine.
        let files: BTreeMap<PathBuf, Machine> = regular_files(&mount)
            .into_iter()
            .map(|f| {
                (
                    f.strip_prefix(&mount).expect("under").to_owned(),
                    machine(&f),
                )
            })
            .collect();
        podman.must(&["image", "unmount", &instance]);
        let (interpreter, libc) = match want {
            Machine::X86_64 => (
                "lib64/ld-linux-x86-64.so.2",
                "lib/x86_64-linux-gnu/libc.so.6",
            ),
            _ => (
                "lib/ld-linux-aarch64.so.1",
                "lib/aarch64-linux-gnu/libc.so.6",
            ),
        };
        let tools = ["tcpstates", "tcprtt", "tcpconnlat", "tcptools-exporter"];
        let needed = tools.map(|t| format!("usr/sbin/{t}"));
        for file in needed.iter().map(String::as_str).chain([interpreter, libc]) {
            assert!(
                files.contains_key(Path::new(file)),
                "{arch}: {file} in {files:?}"
            );
        }
        assert!(files.values().all(|m| *m == want), "{arch}: {files:?}");
    }
}

/// The regular files under `dir`, recursively.
fn regular_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        let kind = fs::symlink_metadata(&path).expect("metadata").file_type();
        if kind.is_dir() {
            files.extend(regular_files(&path));
        } else if kind.is_file() {
            files.push(path);
        }
    }
    files
}
