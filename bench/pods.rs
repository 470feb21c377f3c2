//! `make bench`'s pods (bench/pods.py): a containerd of the bench's own, started as the pod
//! tests start theirs (tests/common/cri.rs: Debian's containerd, the pause image built from
//! tests/pods/pause.c, kubelet's cgroupfs layout under a prefix of its own), with N
//! host-network pods of the pause container only, run through the CRI as kubelet would.
//!
//! Usage: pods N [NAMESPACE]. Prints one JSON line: the CRI endpoint, the v2 hierarchy's
//! mount, and per pod its namespace, name, uid, cgroup directory (from the hierarchy's
//! root) and the seconds its RunPodSandbox took. Then holds the pods until stdin closes (or
//! a line is read), removes them and containerd (the drop), and prints a second JSON line
//! with the seconds that took.

// The pod tests' containerd harness, with the few helpers of tests/common/mod.rs and web.rs
// it uses beside it (those files also hold test-only parts an example cannot build, such as
// CARGO_BIN_EXE_ paths).
#[path = "../tests/common/cri.rs"]
#[allow(dead_code)]
mod cri;

use std::fs::File;
use std::io::BufRead;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use cri::{pod_uid, Containerd, Network, PodSpec, Qos};

/// tests/common/web.rs' TempDir: `tcpt-TAG-PID` under the temporary directory.
mod web {
    use std::path::PathBuf;

    pub struct TempDir {
        pub path: PathBuf,
    }

    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            let path = std::env::temp_dir().join(format!("tcpt-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path)
                .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
            TempDir { path }
        }

        pub fn file(&self, name: &str) -> String {
            self.path
                .join(name)
                .to_str()
                .expect("UTF-8 path")
                .to_owned()
        }

        pub fn write(&self, name: &str, text: &str) -> String {
            let path = self.file(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {path}: {e}"));
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// tests/common/mod.rs' helpers that cri.rs calls.

fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {out:?}");
}

#[allow(dead_code)]
fn run_in_netns<T: Send + 'static>(
    path: &str,
    comm: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let path = path.to_owned();
    thread::Builder::new()
        .name(comm.to_owned())
        .spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .expect("spawn a thread")
        .join()
        .expect("thread panicked")
}

fn mounts_of_type(fstype: &str) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/mounts")
        .expect("read /proc/mounts")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&fstype)).then(|| PathBuf::from(f[1]))
        })
        .collect()
}

fn cgroup2_mount() -> PathBuf {
    mounts_of_type("cgroup2")
        .into_iter()
        .next()
        .expect("no cgroup2 line in /proc/mounts")
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
    let root_procs = cgroup2_mount().join("cgroup.procs");
    for _ in 0..100 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines() {
            let _ = std::fs::write(&root_procs, pid);
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
    eprintln!("could not remove cgroup {}", dir.display());
}

#[allow(dead_code)]
fn cgroup_of_pid(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .expect("read /proc/PID/cgroup")
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a 0:: line in /proc/PID/cgroup")
        .to_owned()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let count: u32 = args
        .next()
        .and_then(|n| n.parse().ok())
        .expect("usage: pods N [NAMESPACE]");
    let namespace = args.next().unwrap_or_else(|| "tcpt-bench".to_owned());

    let t0 = Instant::now();
    let containerd = Containerd::start("bench");
    let start_s = t0.elapsed().as_secs_f64();

    let uids: Vec<String> = (0..count).map(pod_uid).collect();
    let names: Vec<String> = (0..count).map(|i| format!("pod-{i:03}")).collect();
    let mut pods = Vec::new();
    let mut listed = Vec::new();
    let t1 = Instant::now();
    for (uid, name) in uids.iter().zip(&names) {
        let spec = PodSpec {
            namespace: &namespace,
            name,
            uid,
            qos: Qos::BestEffort,
            network: Network::Node,
        };
        let t = Instant::now();
        let pod = containerd.run_pod(&spec);
        listed.push(serde_json::json!({
            "namespace": namespace,
            "name": name,
            "uid": uid,
            "dir": pod.cgroup_parent(),
            "id": pod.id(),
            "run_s": t.elapsed().as_secs_f64(),
        }));
        pods.push(pod);
    }
    let run_total_s = t1.elapsed().as_secs_f64();
    let line = serde_json::json!({
        "endpoint": containerd.endpoint(),
        "prefix": containerd.prefix(),
        "cgroup2": cgroup2_mount(),
        "start_s": start_s,
        "run_total_s": run_total_s,
        "pods": listed,
    });
    println!("{line}");

    let mut buf = String::new();
    let _ = std::io::stdin().lock().read_line(&mut buf);
    let t2 = Instant::now();
    drop(pods);
    drop(containerd);
    println!(
        "{}",
        serde_json::json!({ "teardown_s": t2.elapsed().as_secs_f64() })
    );
}
