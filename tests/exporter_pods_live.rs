//! tcptools-exporter's `--group-by pod` and `container` with real runtimes naming the
//! cgroups (needs root): a containerd of the test's own (tests/common/cri.rs) driven through
//! the CRI as kubelet drives it, scraped by a real Prometheus, its pods counted exactly
//! across a container restart; `--max-groups` below the number of pods; and a podman
//! system service found through DOCKER_HOST, its container's name in `container=` and in
//! tcpstates `--container`'s JSON. Ports 44700-44799 are this file's.
//!
//! The pods' traffic runs in each pod's own network namespace (a server and a client
//! container on 127.0.0.1), so what a pod counts is exactly its workload's, whatever else
//! the machine does; every namespace, pod and container name holds the test's pid.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use common::cri::{pod_uid, Container, Containerd, EchoListener, Network, Pod, PodSpec, Qos};
use common::web::{parse_samples, scrape, Exporter, Labels, Prometheus, TempDir};
use common::{
    bpftool_json, cgroup2_mount, map_named, mounts_of_type, transitions_of, wait_for_bpf_links,
    Netns, Tool,
};

const WAIT: Duration = Duration::from_secs(30);
const TCPSTATES: &str = env!("CARGO_BIN_EXE_tcpstates");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// State changes counted, by (old_state, new_state).
type Transitions = BTreeMap<(String, String), f64>;

/// The state changes of `n` complete connections made by a client and, with `server`,
/// accepted by a listener that served them all and closed: transitions_of's model.
fn model(n: usize, server: bool) -> Transitions {
    transitions_of(n, true, usize::from(server))
        .into_iter()
        .map(|(t, count)| {
            let (old, new) = t.split_once(" -> ").expect("OLD -> NEW");
            ((old.to_owned(), new.to_owned()), count as f64)
        })
        .collect()
}

fn plus(a: &Transitions, b: &Transitions) -> Transitions {
    let mut sum = a.clone();
    for (k, v) in b {
        *sum.entry(k.clone()).or_insert(0.0) += v;
    }
    sum
}

fn total(t: &Transitions) -> f64 {
    t.values().sum()
}

/// `workload server 127.0.0.1 PORT CONNS hold`.
fn server_args(port: u16, conns: usize) -> Vec<String> {
    let args = ["server", "127.0.0.1", &port.to_string(), &conns.to_string()];
    [&args[..], &["hold"]].concat().map_owned()
}

/// `workload client 127.0.0.1 PORT CONNS 2 hold`.
fn client_args(port: u16, conns: usize) -> Vec<String> {
    let args = ["client", "127.0.0.1", &port.to_string(), &conns.to_string()];
    [&args[..], &["2", "hold"]].concat().map_owned()
}

trait MapOwned {
    fn map_owned(self) -> Vec<String>;
}

impl MapOwned for Vec<&str> {
    fn map_owned(self) -> Vec<String> {
        self.into_iter().map(str::to_owned).collect()
    }
}

fn start<'p>(pod: &'p Pod<'p>, name: &str, args: &[String]) -> Container<'p> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pod.start_container(name, &args)
}

/// Waits until process `pid` has a TCP socket listening on `port` in its network namespace
/// (`/proc/PID/net/tcp`, state 0A).
fn wait_listening(pid: u32, port: u16) {
    let local = format!(":{port:04X}");
    let deadline = Instant::now() + WAIT;
    loop {
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
        let listening = table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[1].ends_with(&local) && fields[3] == "0A"
        });
        if listening {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port} (pid {pid})"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the workload in `container` printed that its `conns` connections are done.
fn wait_done(container: &Container, conns: usize) {
    let role = if container.name().starts_with("server") {
        "server"
    } else {
        "client"
    };
    let line = format!("workload: {role} {conns} connections");
    let deadline = Instant::now() + WAIT;
    while !container.log().contains(&line) {
        assert!(
            Instant::now() < deadline,
            "{} never printed {line:?}; its log:\n{}",
            container.name(),
            container.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A server container for `conns` connections on `port`, then a client container making
/// them (both in the pod's network namespace, both holding afterwards): once both say
/// they are done.
fn traffic<'p>(pod: &'p Pod<'p>, port: u16, conns: usize) -> (Container<'p>, Container<'p>) {
    let server = start(pod, "server", &server_args(port, conns));
    wait_listening(server.pid(), port);
    let client = start(pod, "client", &client_args(port, conns));
    wait_done(&client, conns);
    wait_done(&server, conns);
    (server, client)
}

/// The cgroup v2 id (the directory's inode) of a cgroup path from the hierarchy's root.
fn cgroup_id_of(path: &str) -> u64 {
    let dir = cgroup2_mount().join(path.trim_start_matches('/'));
    std::fs::metadata(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .ino()
}

/// The cgroup v2 id of a running container's process.
fn cgroup_id(container: &Container) -> u64 {
    cgroup_id_of(&container.cgroup_dir())
}

/// The groups (cgroup ids) the exporter's kernel maps hold counters for now.
fn kernel_groups(exporter_pid: u32) -> BTreeSet<u64> {
    let map = map_named(exporter_pid, "group_counters");
    let dump = bpftool_json(&["map", "dump", "id", &map.to_string()]);
    let entries = dump.as_array().cloned().unwrap_or_default();
    entries
        .iter()
        .map(|entry| {
            let key: Vec<u8> = entry["key"]
                .as_array()
                .expect("raw key bytes")
                .iter()
                .filter_map(|b| b.as_str())
                .filter_map(|b| u8::from_str_radix(b.trim_start_matches("0x"), 16).ok())
                .collect();
            u64::from_le_bytes(key[..8].try_into().expect("a u64 group"))
        })
        .collect()
}

fn pod_spec<'a>(namespace: &'a str, name: &'a str, uid: &'a str) -> PodSpec<'a> {
    PodSpec {
        namespace,
        name,
        uid,
        qos: Qos::BestEffort,
        network: Network::Pod,
    }
}

/// Prometheus' state changes of one pod, summed by (old_state, new_state); zeros left out.
fn pod_transitions(prometheus: &Prometheus, namespace: &str, pod: &str) -> Transitions {
    let query = format!(
        "sum by (old_state, new_state) \
         (tcp_state_transitions_total{{namespace=\"{namespace}\",pod=\"{pod}\"}})"
    );
    prometheus
        .query(&query)
        .into_iter()
        .filter(|(_, v)| *v != 0.0)
        .map(|(l, v)| ((l["old_state"].clone(), l["new_state"].clone()), v))
        .collect()
}

/// Each pod of `namespace` and its state changes, summed, as Prometheus has them.
fn pod_totals(prometheus: &Prometheus, namespace: &str) -> BTreeMap<String, f64> {
    let query = format!(
        "sum by (namespace, pod) (tcp_state_transitions_total{{namespace=\"{namespace}\"}})"
    );
    prometheus
        .query(&query)
        .into_iter()
        .map(|(l, v)| (l["pod"].clone(), v))
        .collect()
}

/// The label sets of the series of one pod (without their values).
fn series_of(prometheus: &Prometheus, namespace: &str, pod: &str) -> BTreeSet<Labels> {
    let query = format!("tcp_state_transitions_total{{namespace=\"{namespace}\",pod=\"{pod}\"}}");
    prometheus
        .query(&query)
        .into_iter()
        .map(|(l, _)| l)
        .collect()
}

/// Two pods of one namespace, each a server and a client container in its own network
/// namespace, through a real Prometheus: exact state changes per pod; then pod a's
/// containers restart with more connections, and its one series (same labels) grows by
/// exactly their changes, never down, also once the old cgroups are gone. The kernel
/// counts pod a in its pod's cgroup throughout, never in its containers'.
#[test]
fn pods_are_counted_exactly_through_prometheus() {
    const PORT: u16 = 44701;
    const EXPORTER_PORT: u16 = 44790;
    const PROMETHEUS_PORT: u16 = 44791;
    let (n, m, k) = (4, 6, 3);
    let containerd = Containerd::start("expprom");
    let footprint = containerd.footprint();
    let namespace = format!("tcpt-prom-{}", std::process::id());
    {
        let ns = Netns::new("exppodprom");
        let endpoint = containerd.endpoint();
        let args = ["--group-by", "pod", "--runtime-endpoint", endpoint.as_str()];
        let exporter = Exporter::start(&ns, EXPORTER_PORT, &args);
        let job = format!(
            "  - job_name: pods\n    honor_labels: true\n    static_configs:\n      \
             - targets: ['127.0.0.1:{EXPORTER_PORT}']\n"
        );
        let prometheus = Prometheus::start(&ns, PROMETHEUS_PORT, &job);
        prometheus.wait_until(WAIT, "the exporter up", || {
            prometheus.value("up{job=\"pods\"}") == Some(1.0)
        });

        let (uid_a, uid_b) = (pod_uid(701), pod_uid(702));
        let pod_a = containerd.run_pod(&pod_spec(&namespace, "a", &uid_a));
        let pod_b = containerd.run_pod(&pod_spec(&namespace, "b", &uid_b));
        let (server_a, client_a) = traffic(&pod_a, PORT, n);
        let (_server_b, _client_b) = traffic(&pod_b, PORT, m);

        let (want_a, want_b) = (model(n, true), model(m, true));
        prometheus.wait_until(WAIT, "pod a's and b's exact changes", || {
            pod_transitions(&prometheus, &namespace, "a") == want_a
                && pod_transitions(&prometheus, &namespace, "b") == want_b
        });
        let totals = BTreeMap::from([
            ("a".to_owned(), total(&want_a)),
            ("b".to_owned(), total(&want_b)),
        ]);
        assert_eq!(pod_totals(&prometheus, &namespace), totals);
        assert_eq!(prometheus.value("tcptools_exporter_runtime_up"), Some(1.0));
        let series_a = series_of(&prometheus, &namespace, "a");

        // Both containers of pod a restart (new cgroups, attempt 1) with k connections.
        let old = [cgroup_id(&server_a), cgroup_id(&client_a)];
        let old_dirs = [server_a.cgroup_dir(), client_a.cgroup_dir()];
        let pod_cgroup = cgroup_id_of(pod_a.cgroup_parent());
        for dir in &old_dirs {
            assert_eq!(
                Path::new(dir).parent(),
                Some(Path::new(pod_a.cgroup_parent()))
            );
        }
        let in_kernel = kernel_groups(exporter.pid());
        assert!(
            in_kernel.contains(&pod_cgroup),
            "{pod_cgroup} {in_kernel:?}"
        );
        assert!(old.iter().all(|id| !in_kernel.contains(id)), "{old:?}");
        let server_a = pod_a.restart_with(server_a, server_args(PORT, k));
        assert_eq!(server_a.attempt(), 1);
        wait_listening(server_a.pid(), PORT);
        let client_a = pod_a.restart_with(client_a, client_args(PORT, k));
        wait_done(&client_a, k);
        wait_done(&server_a, k);

        let want_a = plus(&want_a, &model(k, true));
        let mut last = 0.0;
        let mut never_down = || {
            let now = pod_totals(&prometheus, &namespace);
            let a = now.get("a").copied().unwrap_or(0.0);
            assert!(a >= last, "pod a went down from {last} to {a}");
            assert_eq!(now.get("b"), Some(&total(&want_b)), "{now:?}");
            last = a;
        };
        prometheus.wait_until(WAIT, "pod a's changes after the restart", || {
            never_down();
            pod_transitions(&prometheus, &namespace, "a") == want_a
        });
        // The old cgroups are gone; the pod's cgroup, which counted them, stays.
        let gone = |dir: &String| !cgroup2_mount().join(dir.trim_start_matches('/')).exists();
        assert!(old_dirs.iter().all(gone), "{old_dirs:?}");
        let in_kernel = kernel_groups(exporter.pid());
        assert!(
            in_kernel.contains(&pod_cgroup),
            "{pod_cgroup} {in_kernel:?}"
        );
        assert!(old.iter().all(|id| !in_kernel.contains(id)), "{old:?}");
        thread::sleep(Duration::from_secs(3));
        never_down();
        assert_eq!(pod_transitions(&prometheus, &namespace, "a"), want_a);
        assert_eq!(pod_transitions(&prometheus, &namespace, "b"), want_b);
        assert_eq!(series_of(&prometheus, &namespace, "a"), series_a);
        let resets =
            format!("sum(resets(tcp_state_transitions_total{{namespace=\"{namespace}\"}}[10m]))");
        assert_eq!(prometheus.value(&resets), Some(0.0));
        drop(prometheus);
        let done = exporter.stop();
        assert!(done.status.success(), "{:?} {}", done.status, done.stderr);
    }
    drop(containerd);
    let left = footprint.leftovers();
    assert!(left.is_empty(), "left after the drop: {left:#?}");
}

/// The value of each series of `name` in an exposition, by the values of `labels`.
fn by_labels(text: &str, name: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let mut out = BTreeMap::new();
    for (n, l, v) in parse_samples(text) {
        if n == name && v != 0.0 {
            let key = labels
                .iter()
                .map(|k| l.get(*k).cloned().unwrap_or_default())
                .collect();
            *out.entry(key).or_insert(0.0) += v;
        }
    }
    out
}

/// State changes by pod: (namespace, pod) -> (old_state, new_state) -> count.
fn pods_in(text: &str) -> BTreeMap<(String, String), Transitions> {
    let labels = ["namespace", "pod", "old_state", "new_state"];
    let mut out: BTreeMap<(String, String), Transitions> = BTreeMap::new();
    for (k, v) in by_labels(text, "tcp_state_transitions_total", &labels) {
        let pod = (k[0].clone(), k[1].clone());
        out.entry(pod)
            .or_default()
            .insert((k[2].clone(), k[3].clone()), v);
    }
    out
}

fn value(text: &str, name: &str, label: (&str, &str)) -> f64 {
    let found: Vec<f64> = parse_samples(text)
        .into_iter()
        .filter(|(n, l, _)| n == name && l.get(label.0).map(String::as_str) == Some(label.1))
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {label:?}\n{text}");
    found[0]
}

/// Three pods, two labels: the exporter counts only connections to the pods' port (`-D`,
/// so only the clients' sockets), and its first scrape comes once all three are done, so
/// the two busiest pods get labels and the third is "other", all exact.
#[test]
fn more_pods_than_max_groups_gives_other() {
    const PORT: u16 = 44711;
    const EXPORTER_PORT: u16 = 44792;
    let containerd = Containerd::start("expmax");
    let footprint = containerd.footprint();
    let namespace = format!("tcpt-max-{}", std::process::id());
    {
        let ns = Netns::new("exppodmax");
        let endpoint = containerd.endpoint();
        let port = PORT.to_string();
        let args = [
            "--group-by",
            "pod",
            "--runtime-endpoint",
            endpoint.as_str(),
            "--max-groups",
            "2",
            "-D",
            port.as_str(),
        ];
        let exporter = Exporter::start(&ns, EXPORTER_PORT, &args);
        let pods = [("x", 5), ("y", 3), ("z", 2)];
        let uids: Vec<String> = (0..pods.len() as u32).map(|i| pod_uid(711 + i)).collect();
        let specs: Vec<PodSpec> = pods
            .iter()
            .zip(&uids)
            .map(|((name, _), uid)| pod_spec(&namespace, name, uid))
            .collect();
        let running: Vec<Pod> = specs.iter().map(|s| containerd.run_pod(s)).collect();
        let mut containers = Vec::new();
        for (pod, (_, conns)) in running.iter().zip(pods) {
            containers.push(traffic(pod, PORT, conns));
        }

        let want: BTreeMap<(String, String), Transitions> = [
            ((namespace.clone(), "x".to_owned()), model(5, false)),
            ((namespace.clone(), "y".to_owned()), model(3, false)),
            (("other".to_owned(), "other".to_owned()), model(2, false)),
        ]
        .into();
        let deadline = Instant::now() + WAIT;
        let text = loop {
            let text = scrape(&ns, EXPORTER_PORT, WAIT);
            if pods_in(&text) == want {
                break text;
            }
            assert!(Instant::now() < deadline, "{:#?}\n{text}", pods_in(&text));
            thread::sleep(Duration::from_millis(200));
        };
        let groups = "tcptools_exporter_groups";
        assert_eq!(value(&text, groups, ("kind", "labeled")), 2.0, "{text}");
        assert_eq!(value(&text, groups, ("kind", "other")), 1.0, "{text}");
        assert!(!text.contains("pod=\"z\""), "{text}");
        // Scrapes later, the same.
        thread::sleep(Duration::from_secs(2));
        let text = scrape(&ns, EXPORTER_PORT, WAIT);
        assert_eq!(pods_in(&text), want, "{text}");
        drop(containers);
        let done = exporter.stop();
        assert!(done.status.success(), "{:?} {}", done.status, done.stderr);
    }
    drop(containerd);
    let left = footprint.leftovers();
    assert!(left.is_empty(), "left after the drop: {left:#?}");
}

/// podman's parent cgroup (cgroupfs manager) in every mounted hierarchy.
fn libpod_parents() -> Vec<PathBuf> {
    let mut hierarchies = mounts_of_type("cgroup2");
    hierarchies.extend(mounts_of_type("cgroup"));
    hierarchies
        .into_iter()
        .map(|h| h.join("libpod_parent"))
        .collect()
}

/// Removes the empty directories of a cgroup tree, deepest first; one with processes (or
/// above one) stays.
fn remove_empty_cgroups(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_cgroups(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// A podman system service with storage, run directory and socket of its own in a
/// temporary directory (vfs, runc, cgroupfs). Dropping it removes the container, the
/// images, the service, the directory, and the `libpod_parent` cgroups it made (when empty).
struct Podman {
    dir: TempDir,
    service: Option<Child>,
    made_parents: Vec<PathBuf>,
    containers: Vec<String>,
}

impl Podman {
    fn start(tag: &str) -> Podman {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the podman test needs root (run `sudo make test`)"
        );
        let dir = TempDir::new(tag);
        let made_parents = libpod_parents()
            .into_iter()
            .filter(|p| !p.exists())
            .collect();
        let mut podman = Podman {
            dir,
            service: None,
            made_parents,
            containers: Vec::new(),
        };
        let url = format!("unix://{}", podman.socket().display());
        let log = std::fs::File::create(podman.dir.file("service.log")).expect("create the log");
        let service = podman
            .command()
            .args(["system", "service", "--time=0", &url])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log's handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run podman (apt-get install podman): {e}"));
        podman.service = Some(service);
        let deadline = Instant::now() + WAIT;
        while UnixStream::connect(podman.socket()).is_err() {
            let ended = podman
                .service
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten());
            assert!(
                ended.is_none(),
                "podman system service ended: {ended:?}\n{}",
                podman.log()
            );
            assert!(
                Instant::now() < deadline,
                "no podman socket\n{}",
                podman.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        podman
    }

    fn socket(&self) -> PathBuf {
        self.dir.path.join("podman.sock")
    }

    /// DOCKER_HOST's value for the service.
    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.file("service.log")).unwrap_or_default()
    }

    /// podman with this run's storage, run directory and temporary directory.
    fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command
            .args(["--root", &self.dir.file("storage")])
            .args(["--runroot", &self.dir.file("run")])
            .args(["--tmpdir", &self.dir.file("tmp")])
            .args(["--storage-driver", "vfs", "--runtime", "runc"])
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
        command
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    fn must(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "podman {args:?} failed:\n{text}");
        text
    }

    /// Builds a FROM-scratch image of the static workload (tests/pods/workload.c) as `image`.
    fn build_workload(&self, image: &str) {
        let context = self.dir.path.join("context");
        std::fs::create_dir_all(&context).expect("create the build context");
        let binary = context.join("workload");
        let source = Path::new(ROOT).join("tests/pods/workload.c");
        let out = Command::new("gcc")
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(&binary)
            .arg(&source)
            .output()
            .expect("run gcc");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(
            context.join("Containerfile"),
            "FROM scratch\nCOPY workload /workload\nENTRYPOINT [\"/workload\"]\n",
        )
        .expect("write the Containerfile");
        let context = context.to_str().expect("UTF-8 path");
        self.must(&["build", "-q", "-t", image, context]);
    }

    /// `podman run -d --name NAME` of `image` with `args`, on the node's network.
    fn run_container(&mut self, name: &str, image: &str, args: &[&str]) {
        self.containers.push(name.to_owned());
        let mut all = vec!["run", "-d", "--name", name, "--network", "host"];
        all.extend([
            "--ulimit",
            "nofile=4096:4096",
            "--ulimit",
            "nproc=32768:32768",
        ]);
        all.push(image);
        all.extend_from_slice(args);
        self.must(&all);
    }

    /// Processes whose command line names the directory (the service, conmon, runc).
    fn processes(dir: &Path) -> Vec<String> {
        let dir = dir.to_str().expect("UTF-8 path").to_owned();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| {
                let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
                cmd.contains(&dir).then(|| format!("{pid}: {cmd}"))
            })
            .collect()
    }

    /// What is left of a dropped service: processes, mounts, the directory, cgroups.
    fn leftovers(dir: &Path, made_parents: &[PathBuf]) -> Vec<String> {
        let mut left = Podman::processes(dir);
        let prefix = format!("{}/", dir.display());
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        left.extend(
            mounts
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter(|m| m.starts_with(&prefix))
                .map(|m| format!("mount {m}")),
        );
        if dir.exists() {
            left.push(format!("directory {}", dir.display()));
        }
        left.extend(
            made_parents
                .iter()
                .filter(|p| p.exists())
                .map(|p| format!("cgroup {}", p.display())),
        );
        left
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = self.run(&["rm", "-f", "-t", "0", name]);
        }
        let _ = self.run(&["rmi", "-a", "-f"]);
        if let Some(mut service) = self.service.take() {
            let _ = kill(Pid::from_raw(service.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while service.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = service.kill();
            let _ = service.wait();
        }
        let prefix = format!("{}/", self.dir.path.display());
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        ours.reverse();
        for mount in ours {
            let _ = Command::new("umount").args(["-l", mount]).output();
        }
        for parent in &self.made_parents {
            remove_empty_cgroups(parent);
        }
        // The TempDir field removes the directory after this.
    }
}

fn census(objects: &[Value]) -> Transitions {
    let mut counts = Transitions::new();
    for o in objects {
        let key = (
            o["oldstate"].as_str().unwrap_or_default().to_owned(),
            o["newstate"].as_str().unwrap_or_default().to_owned(),
        );
        *counts.entry(key).or_insert(0.0) += 1.0;
    }
    counts
}

/// A podman container found through DOCKER_HOST: the exporter's `container=` series and
/// tcpstates `--container`'s JSON both count exactly the state changes of the client run
/// in it (`podman exec`), with the container's name and no namespace or pod.
#[test]
fn podman_container_label() {
    const EXPORTER_PORT: u16 = 44793;
    const CONNS: usize = 5;
    let pid = std::process::id();
    let name = format!("tcpt-web-{pid}");
    let image = format!("localhost/tcpt-web:{pid}");
    let (dir, made_parents);
    {
        let mut podman = Podman::start("podman-web");
        (dir, made_parents) = (podman.dir.path.clone(), podman.made_parents.clone());
        podman.build_workload(&image);
        podman.run_container(&name, &image, &["wait"]);
        let docker_host = podman.docker_host();
        let env = [("DOCKER_HOST", docker_host.as_str())];
        let listener = EchoListener::start();
        let port = listener.port().to_string();

        let ns = Netns::new("exppodman");
        let args = [
            "--group-by",
            "container",
            "--runtime-endpoint",
            "auto",
            "-D",
            port.as_str(),
        ];
        let exporter = Exporter::start_env(&ns, EXPORTER_PORT, &args, &env);
        let tcpstates_args = ["--json", "--container", name.as_str(), "-D", port.as_str()];
        let mut tcpstates = Tool::start(TCPSTATES, &tcpstates_args, &env, 0);
        assert!(
            wait_for_bpf_links(tcpstates.pid(), 1),
            "tcpstates did not attach"
        );

        let conns = CONNS.to_string();
        let client = ["client", "127.0.0.1", port.as_str(), conns.as_str(), "2"];
        let out = podman.must(&[&["exec", name.as_str(), "/workload"][..], &client[..]].concat());
        assert!(
            out.contains(&format!("workload: client {CONNS} connections")),
            "{out}"
        );
        assert_eq!(listener.served_after(CONNS, WAIT), CONNS);

        let want = model(CONNS, false);
        let labels = ["namespace", "pod", "container", "old_state", "new_state"];
        let named: BTreeMap<Vec<String>, f64> = want
            .iter()
            .map(|((old, new), v)| {
                let key = ["", "", name.as_str(), old.as_str(), new.as_str()];
                (key.map(str::to_owned).to_vec(), *v)
            })
            .collect();
        let deadline = Instant::now() + WAIT;
        loop {
            let text = scrape(&ns, EXPORTER_PORT, WAIT);
            let got = by_labels(&text, "tcp_state_transitions_total", &labels);
            if got == named {
                let up = by_labels(&text, "tcptools_exporter_runtime_up", &[]);
                assert_eq!(up, BTreeMap::from([(vec![], 1.0)]), "{text}");
                break;
            }
            assert!(Instant::now() < deadline, "{got:#?}\n{text}");
            thread::sleep(Duration::from_millis(200));
        }

        let count = total(&want) as usize;
        tcpstates.wait_for_count(WAIT, count, |l| l.starts_with('{'));
        thread::sleep(Duration::from_millis(500));
        let done = tcpstates.stop_with(Signal::SIGINT);
        assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
        let objects: Vec<Value> = done
            .stdout
            .iter()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        assert_eq!(census(&objects), want, "{objects:#?}");
        for o in &objects {
            assert_eq!(o["container"], name.as_str(), "{o}");
            assert!(
                o.get("pod").is_none() && o.get("namespace").is_none(),
                "{o}"
            );
        }
        let done = exporter.stop();
        assert!(done.status.success(), "{:?} {}", done.status, done.stderr);
    }
    let left = Podman::leftovers(&dir, &made_parents);
    assert!(left.is_empty(), "left after the drop: {left:#?}");
}

/// A pod whose client container makes its connections and exits, and is removed (its
/// cgroup with it), before the exporter's first scrape: the kernel counts by the pod's
/// cgroup (the parent of the socket's), so the pod's series has exactly the client's
/// changes, and nothing of it goes to the series with empty names (`-D`: only the
/// client's sockets are counted).
#[test]
fn a_container_that_ends_before_a_scrape_counts_under_its_pod() {
    const PORT: u16 = 44721;
    const EXPORTER_PORT: u16 = 44794;
    const CONNS: usize = 4;
    let containerd = Containerd::start("expshort");
    let footprint = containerd.footprint();
    let namespace = format!("tcpt-short-{}", std::process::id());
    {
        let ns = Netns::new("exppodshort");
        let endpoint = containerd.endpoint();
        let port = PORT.to_string();
        let args = [
            "--group-by",
            "pod",
            "--runtime-endpoint",
            endpoint.as_str(),
            "-D",
            port.as_str(),
        ];
        let exporter = Exporter::start(&ns, EXPORTER_PORT, &args);
        let uid = pod_uid(721);
        let pod = containerd.run_pod(&pod_spec(&namespace, "job", &uid));
        let server = start(&pod, "server", &server_args(PORT, CONNS));
        wait_listening(server.pid(), PORT);
        let args = [
            "client",
            "127.0.0.1",
            port.as_str(),
            &CONNS.to_string(),
            "2",
        ];
        let client = start(&pod, "client", &args.map(str::to_owned));
        let client_dir = cgroup2_mount()
            .join(pod.cgroup_parent().trim_start_matches('/'))
            .join(client.id());
        assert_eq!(client.wait_exit(WAIT), 0, "{}", client.log());
        wait_done(&server, CONNS);
        client.remove();
        assert!(!client_dir.exists(), "{} is left", client_dir.display());

        let want = BTreeMap::from([((namespace.clone(), "job".to_owned()), model(CONNS, false))]);
        let deadline = Instant::now() + WAIT;
        let text = loop {
            let text = scrape(&ns, EXPORTER_PORT, WAIT);
            if pods_in(&text) == want {
                break text;
            }
            assert!(Instant::now() < deadline, "{:#?}\n{text}", pods_in(&text));
            thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(
            value(&text, "tcptools_exporter_groups", ("kind", "labeled")),
            1.0,
            "{text}"
        );
        // Scrapes later, the same: nothing moved to other series.
        thread::sleep(Duration::from_secs(2));
        let text = scrape(&ns, EXPORTER_PORT, WAIT);
        assert_eq!(pods_in(&text), want, "{text}");
        drop(server);
        let done = exporter.stop();
        assert!(done.status.success(), "{:?} {}", done.status, done.stderr);
    }
    drop(containerd);
    let left = footprint.leftovers();
    assert!(left.is_empty(), "left after the drop: {left:#?}");
}
