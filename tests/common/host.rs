//! What the tests' harnesses need of the host: commands, mounts, cgroups, network
//! namespaces and temporary directories. Shared by tests/common and the bench's pods
//! example (bench/pods.rs), which includes tests/common/cri.rs.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

/// Runs a command and panics with its output unless it succeeds.
pub fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` on a thread named `comm` that has entered the network namespace at `path`
/// (`/run/netns/NAME`, `/proc/PID/ns/net`).
pub fn run_in_netns<T: Send + 'static>(
    path: &str,
    comm: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let path = path.to_owned();
    thread::Builder::new()
        .name(comm.to_owned())
        .spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
            f()
        })
        .expect("spawn traffic thread")
        .join()
        .expect("traffic thread panicked")
}

/// Where the cgroup v2 hierarchy is mounted, from /proc/mounts (on hybrid systems such as
/// Debian's it is /sys/fs/cgroup/unified). Fails the test when there is none.
pub fn cgroup2_mount() -> std::path::PathBuf {
    mounts_of_type("cgroup2")
        .into_iter()
        .next()
        .expect("no cgroup2 line in /proc/mounts: the container tests need cgroup v2")
}

/// The mount points of the filesystems of type `fstype` in /proc/mounts.
pub fn mounts_of_type(fstype: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_to_string("/proc/mounts")
        .expect("read /proc/mounts")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&fstype)).then(|| std::path::PathBuf::from(f[1]))
        })
        .collect()
}

/// Empties and removes a cgroup directory and everything below it, deepest first; bounded.
pub fn remove_cgroup_tree(dir: &std::path::Path) {
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
            // EBUSY while exiting tasks still count as members.
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
    eprintln!("could not remove cgroup {}", dir.display());
}

/// The line `0::PATH` of /proc/PID/cgroup: the process's cgroup v2 path.
pub fn cgroup_of_pid(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .expect("read /proc/PID/cgroup")
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a 0:: line in /proc/PID/cgroup")
        .to_owned()
}

/// A directory of this test's own, `tcpt-TAG-PID` under the temporary directory; removed
/// on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("tcpt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    /// `name` inside the directory, as a string for command lines.
    pub fn file(&self, name: &str) -> String {
        self.path
            .join(name)
            .to_str()
            .expect("UTF-8 path")
            .to_owned()
    }

    /// Writes `text` to `name` in the directory; its path.
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
