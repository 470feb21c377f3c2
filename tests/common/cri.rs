//! A real containerd for the pod tests, driven through the CRI API as kubelet drives it:
//! Debian's containerd with a config, root, state and socket of its own in a temporary
//! directory, two images built here (a pause image and the workload of
//! tests/pods/workload.c, both static binaries FROM scratch, written as OCI archives by
//! tests/pods/ociimage.py and imported with ctr), and pods whose cgroups follow kubelet's
//! cgroupfs layout under a prefix of the run's own:
//! `/tcptools-test-PID-TAG/kubepods[/besteffort|/burstable]/pod<uid>/<container id>`. A
//! pod runs on the host network, or in a network namespace of its own with loopback only
//! (tests/pods/cni-loopback is the only CNI plugin). No kubelet: the harness sends the CRI
//! calls kubelet would, with kubelet's metadata, labels and namespace options.
//!
//! Dropping the [`Containerd`] removes every pod and container, ends containerd and any shim
//! started for its socket, unmounts what is mounted under its directory, removes the cgroup
//! prefix in the v2 hierarchy and in every v1 controller, the shims' sockets and CNI's
//! cached results, and the directory; also when the test panics. [`Footprint::leftovers`]
//! says what, if anything, is left.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tonic::transport::{Channel, Endpoint};

use super::host::{cgroup_of_pid, mounts_of_type, remove_cgroup_tree, run_in_netns, sh, TempDir};

/// The longest any one CRI call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long containerd may take to serve its socket and report the runtime ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The CRI namespace of containerd, where `ctr` must import images for the CRI to see them.
const K8S_NAMESPACE: &str = "k8s.io";
/// Where containerd 1.6's shims put their sockets (`s/<hash>`), whatever the config says.
const SHIM_RUN_DIR: &str = "/run/containerd";
/// Where CNI keeps what its plugins answered, `NETWORK-SANDBOX-IFNAME` (libcni's default).
const CNI_RESULTS: &str = "/var/lib/cni/results";

/// A pod's QoS class: which kubepods directory holds its cgroup (kubelet's cgroupfs layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qos {
    BestEffort,
    Burstable,
    Guaranteed,
}

impl Qos {
    /// The pod cgroup's parent below the prefix: `/kubepods/besteffort`, ... `/kubepods`.
    fn parent(self) -> &'static str {
        match self {
            Qos::BestEffort => "/kubepods/besteffort",
            Qos::Burstable => "/kubepods/burstable",
            Qos::Guaranteed => "/kubepods",
        }
    }
}

/// A pod's network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// hostNetwork: the node's (the test's) namespace.
    Node,
    /// One of the pod's own, made by containerd, with loopback only (up, 127.0.0.1 and
    /// ::1): tests/pods/cni-loopback is the only CNI plugin. See [`Pod::netns`].
    Pod,
}

/// What kubelet knows of a pod when it asks for its sandbox.
#[derive(Clone, Debug)]
pub struct PodSpec<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// The pod's uid, with dashes (see [`pod_uid`]).
    pub uid: &'a str,
    pub qos: Qos,
    pub network: Network,
}

/// A pod uid (UUID form) unique to this process and `n`.
pub fn pod_uid(n: u32) -> String {
    format!(
        "{:08x}-7c9e-4d0b-8a3f-{:012x}",
        std::process::id(),
        u64::from(n)
    )
}

/// What a [`Containerd`] leaves on the machine while it runs, to check after its drop.
#[derive(Clone, Debug)]
pub struct Footprint {
    /// The temporary directory (config, root, state, socket, logs, images).
    pub dir: PathBuf,
    /// The gRPC socket.
    pub socket: PathBuf,
    /// The cgroup prefix, from each hierarchy's root: `/tcptools-test-PID-TAG`.
    pub prefix: String,
    /// [`SHIM_RUN_DIR`] did not exist before: the shims of this run made it.
    pub made_run_dir: bool,
}

impl Footprint {
    /// What is left: processes (containerd of this config, shims of this socket), cgroup
    /// directories of the prefix in any hierarchy, mounts under the directory, the
    /// directory itself. Empty when everything was removed.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .processes()
            .into_iter()
            .map(|(pid, cmd)| format!("process {pid}: {cmd}"))
            .collect();
        left.extend(
            self.cgroup_dirs()
                .iter()
                .map(|d| format!("cgroup {}", d.display())),
        );
        left.extend(self.mounts().iter().map(|m| format!("mount {m}")));
        left.extend(
            self.cni_results()
                .iter()
                .map(|f| format!("CNI result {}", f.display())),
        );
        if self.dir.exists() {
            left.push(format!("directory {}", self.dir.display()));
        }
        // Another test's containerd may still use it.
        if self.made_run_dir && Path::new(SHIM_RUN_DIR).exists() && !containerd_runs() {
            left.push(format!("directory {SHIM_RUN_DIR}"));
        }
        left
    }

    /// containerd started with a config in the directory, and shims serving its socket.
    pub fn processes(&self) -> Vec<(i32, String)> {
        let dir = self.dir.to_str().expect("UTF-8 directory");
        let socket = self.socket.to_str().expect("UTF-8 socket path");
        processes()
            .into_iter()
            .filter(|(_, argv)| {
                let arg = |key: &str, ours: &dyn Fn(&str) -> bool| {
                    argv.windows(2).any(|w| w[0] == key && ours(&w[1]))
                };
                arg("--config", &|v| v.starts_with(&format!("{dir}/")))
                    || arg("-address", &|v| v == socket)
            })
            .map(|(pid, argv)| (pid, argv.join(" ")))
            .collect()
    }

    /// The prefix's directory in every cgroup hierarchy (v2 and each v1 controller) where
    /// it exists.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        cgroup_roots()
            .into_iter()
            .map(|root| root.join(self.prefix.trim_start_matches('/')))
            .filter(|d| d.exists())
            .collect()
    }

    /// The name of the run's CNI network list: the prefix's name, `tcptools-test-PID-TAG`.
    pub fn cni_network(&self) -> &str {
        self.prefix.trim_start_matches('/')
    }

    /// CNI's cached results for the run's network (the pods of [`Network::Pod`]).
    pub fn cni_results(&self) -> Vec<PathBuf> {
        let ours = format!("{}-", self.cni_network());
        files_in(Path::new(CNI_RESULTS))
            .into_iter()
            .filter(|f| {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.starts_with(&ours)
            })
            .collect()
    }

    /// Mount points under the directory, in /proc/mounts' order.
    pub fn mounts(&self) -> Vec<String> {
        let dir = format!("{}/", self.dir.display());
        std::fs::read_to_string("/proc/mounts")
            .expect("read /proc/mounts")
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&dir))
            .map(str::to_owned)
            .collect()
    }
}

/// The entries of a directory (none when it cannot be read).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Whether any containerd or containerd shim runs on the machine.
fn containerd_runs() -> bool {
    processes().iter().any(|(_, argv)| {
        argv.first()
            .is_some_and(|a| a.rsplit('/').next().unwrap_or("").starts_with("containerd"))
    })
}

/// Every process's pid and argv, from /proc.
fn processes() -> Vec<(i32, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, argv))
        })
        .collect()
}

/// The mount points of every cgroup hierarchy, v2 and v1, from /proc/mounts.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let mut roots = mounts_of_type("cgroup2");
    roots.extend(mounts_of_type("cgroup"));
    roots
}

/// The CRI clients, on a tokio runtime of the harness's own (the tests are synchronous).
struct Clients {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Clients {
    /// Connects to the CRI over the unix socket at `socket`.
    fn connect(socket: &Path) -> anyhow::Result<Clients> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let path = socket.to_owned();
        let channel = rt.block_on(
            // The URI is a placeholder: the connector dials the socket.
            Endpoint::try_from("http://[::]:50051")?.connect_with_connector(tower::service_fn(
                move |_| {
                    let p = path.clone();
                    async move {
                        tokio::net::UnixStream::connect(p)
                            .await
                            .map(hyper_util::rt::TokioIo::new)
                    }
                },
            )),
        )?;
        Ok(Clients {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// Runs one call, bounded by CALL_TIMEOUT; its answer or what went wrong.
    fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, String> {
        // The timer must be made inside the runtime.
        let bounded = async { tokio::time::timeout(CALL_TIMEOUT, fut).await };
        match self.rt.block_on(bounded) {
            Ok(Ok(answer)) => Ok(answer.into_inner()),
            Ok(Err(status)) => Err(format!("{what}: {status}")),
            Err(_) => Err(format!("{what}: no answer within {CALL_TIMEOUT:?}")),
        }
    }
}

/// A containerd of the test's own, with the test images imported; see the module's doc.
pub struct Containerd {
    dir: TempDir,
    footprint: Footprint,
    pause_image: String,
    workload_image: String,
    child: Option<Child>,
    clients: Option<Clients>,
}

impl Containerd {
    /// Builds the images, starts containerd and imports them. `tag` names the run (the
    /// directory, the cgroup prefix, the image tags). Fails the test when any step fails.
    pub fn start(tag: &str) -> Containerd {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the pod tests need root (run `sudo make test`)"
        );
        let dir = TempDir::new(&format!("cri-{tag}"));
        let pid = std::process::id();
        let footprint = Footprint {
            socket: dir.path.join("containerd.sock"),
            dir: dir.path.clone(),
            prefix: format!("/tcptools-test-{pid}-{tag}"),
            made_run_dir: !Path::new(SHIM_RUN_DIR).exists(),
        };
        let mut containerd = Containerd {
            pause_image: format!("localhost/tcptools-test-pause:{tag}-{pid}"),
            workload_image: format!("localhost/tcptools-test-workload:{tag}-{pid}"),
            dir,
            footprint,
            child: None,
            clients: None,
        };
        containerd.remove_stale();
        let archives = containerd.build_images();
        let snapshotter = containerd.launch();
        containerd.connect();
        for archive in archives {
            containerd.import(&archive, snapshotter);
        }
        containerd.check_images();
        containerd
    }

    /// The gRPC socket, for the tools' `--runtime-endpoint`.
    pub fn socket(&self) -> &Path {
        &self.footprint.socket
    }

    /// `unix:///PATH` of the socket (crictl's form).
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.footprint.socket.display())
    }

    /// The cgroup prefix from each hierarchy's root: `/tcptools-test-PID-TAG`.
    pub fn prefix(&self) -> &str {
        &self.footprint.prefix
    }

    /// What to check for after the drop.
    pub fn footprint(&self) -> Footprint {
        self.footprint.clone()
    }

    /// The image the containers run (tests/pods/workload.c as its entrypoint).
    pub fn workload_image(&self) -> &str {
        &self.workload_image
    }

    /// The last `lines` lines of containerd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Fails the test with `what` and the tail of containerd's log.
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- containerd log ({}), last lines ---\n{}",
            self.log_path().display(),
            self.log_tail(40)
        )
    }

    /// Every pod sandbox, as ListPodSandbox answers.
    pub fn list_pods(&self) -> Vec<cri::PodSandbox> {
        let mut client = self.clients().runtime.clone();
        let request = cri::ListPodSandboxRequest::default();
        let answer = self.call("ListPodSandbox", client.list_pod_sandbox(request));
        answer.items
    }

    /// Every container, as ListContainers answers.
    pub fn list_containers(&self) -> Vec<cri::Container> {
        let mut client = self.clients().runtime.clone();
        let request = cri::ListContainersRequest::default();
        let answer = self.call("ListContainers", client.list_containers(request));
        answer.containers
    }

    /// Runs a pod sandbox, as kubelet would for `spec`.
    pub fn run_pod(&self, spec: &PodSpec) -> Pod<'_> {
        let config = self.sandbox_config(spec);
        std::fs::create_dir_all(&config.log_directory)
            .unwrap_or_else(|e| panic!("create {}: {e}", config.log_directory));
        let mut client = self.clients().runtime.clone();
        let request = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        };
        let id = self
            .call("RunPodSandbox", client.run_pod_sandbox(request))
            .pod_sandbox_id;
        Pod {
            containerd: self,
            id,
            network: spec.network,
            config,
        }
    }

    fn sandbox_config(&self, spec: &PodSpec) -> cri::PodSandboxConfig {
        let labels = pod_labels(spec.namespace, spec.name, spec.uid);
        let log_directory = self
            .dir
            .path
            .join("pods")
            .join(format!("{}_{}_{}", spec.namespace, spec.name, spec.uid));
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: spec.name.to_owned(),
                uid: spec.uid.to_owned(),
                namespace: spec.namespace.to_owned(),
                attempt: 0,
            }),
            log_directory: log_directory.to_str().expect("UTF-8 path").to_owned(),
            labels,
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("{}{}/pod{}", self.prefix(), spec.qos.parent(), spec.uid),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces(spec.network)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The pid in containerd's verbose status of `id` (`info`'s JSON `pid`).
    fn pid_in(&self, info: &HashMap<String, String>, id: &str) -> u32 {
        let json: serde_json::Value = info
            .get("info")
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or_default();
        match json["pid"].as_u64() {
            Some(pid) if pid > 0 => pid as u32,
            _ => self.fail(&format!("no pid in the verbose status of {id}: {info:?}")),
        }
    }

    fn clients(&self) -> &Clients {
        self.clients
            .as_ref()
            .expect("containerd's CRI is connected")
    }

    /// One CRI call; fails the test (with containerd's log) when it fails.
    fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        self.clients()
            .call(what, fut)
            .unwrap_or_else(|e| self.fail(&e))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path.join("containerd.log")
    }

    fn file(&self, name: &str) -> String {
        self.dir.file(name)
    }
}

/// The labels kubelet puts on a pod's sandbox, and (with the container's name) on its
/// containers.
fn pod_labels(namespace: &str, name: &str, uid: &str) -> HashMap<String, String> {
    HashMap::from([
        ("io.kubernetes.pod.name".to_owned(), name.to_owned()),
        (
            "io.kubernetes.pod.namespace".to_owned(),
            namespace.to_owned(),
        ),
        ("io.kubernetes.pod.uid".to_owned(), uid.to_owned()),
    ])
}

/// The node's network namespace or the pod's; each container its own PID namespace and
/// the pod's IPC namespace (kubelet's defaults).
fn namespaces(network: Network) -> cri::NamespaceOption {
    let network = match network {
        Network::Node => cri::NamespaceMode::Node,
        Network::Pod => cri::NamespaceMode::Pod,
    };
    cri::NamespaceOption {
        network: network as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// Starting: images, config, process, clients.
impl Containerd {
    /// Removes what an earlier run of this process id and tag left (a killed test).
    fn remove_stale(&self) {
        for root in cgroup_roots() {
            let dir = root.join(self.prefix().trim_start_matches('/'));
            if dir.exists() {
                remove_cgroup_tree(&dir);
            }
        }
    }

    /// Compiles the pause and workload binaries (gcc -static) and writes the two image
    /// archives; their paths.
    fn build_images(&self) -> Vec<String> {
        let pods = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pods");
        let pause = self.compile(&pods.join("pause.c"), "pause");
        let workload = self.compile(&pods.join("workload.c"), "workload");
        let script = pods.join("ociimage.py");
        let pause_tar = self.file("pause.tar");
        let workload_tar = self.file("workload.tar");
        let images = [
            (&pause_tar, &self.pause_image, "/pause", vec![&pause]),
            (
                &workload_tar,
                &self.workload_image,
                "/workload",
                vec![&workload, &pause],
            ),
        ];
        for (out, image, entrypoint, files) in images {
            let mut args = vec![script.to_str().expect("UTF-8 path"), out, image, entrypoint];
            args.extend(files.iter().map(|f| f.as_str()));
            self.run("python3", &args);
        }
        vec![pause_tar, workload_tar]
    }

    /// `gcc -static -O2` of `source` into the directory; the binary's path.
    fn compile(&self, source: &Path, name: &str) -> String {
        let out = self.file(name);
        let src = source.to_str().expect("UTF-8 path");
        self.run("gcc", &["-static", "-O2", "-Wall", "-o", &out, src]);
        out
    }

    /// Runs a command to its end; fails the test (with containerd's log) unless it succeeds.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if !out.status.success() {
            self.fail(&format!(
                "{program} {args:?}: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes the config, starts containerd and waits for its socket; the snapshotter.
    fn launch(&mut self) -> &'static str {
        let snapshotter = if self.overlay_works() {
            "overlayfs"
        } else {
            "native"
        };
        for sub in ["cni/bin", "cni/conf", "pods"] {
            std::fs::create_dir_all(self.dir.path.join(sub)).expect("create a directory");
        }
        self.install_cni();
        let config = self.dir.write("config.toml", &self.config(snapshotter));
        let log = File::create(self.log_path()).expect("create containerd's log");
        let child = Command::new("containerd")
            .args(["--config", &config])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log's handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start containerd: {e}"));
        self.child = Some(child);
        self.wait_for_socket();
        snapshotter
    }

    /// tests/pods/cni-loopback as the `loopback` plugin (containerd's own loopback network)
    /// and a network list that names it: pods of [`Network::Pod`] get a namespace with
    /// loopback only.
    fn install_cni(&self) {
        let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pods/cni-loopback");
        std::fs::copy(&plugin, self.dir.path.join("cni/bin/loopback"))
            .unwrap_or_else(|e| panic!("copy {}: {e}", plugin.display()));
        let list = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": self.footprint.cni_network(),
            "plugins": [{"type": "loopback"}],
        });
        self.dir
            .write("cni/conf/10-tcpt.conflist", &list.to_string());
    }

    /// Whether an overlay mount works in the directory (else the native snapshotter).
    fn overlay_works(&self) -> bool {
        let base = self.dir.path.join("overlay-probe");
        for sub in ["lower", "upper", "work", "merged"] {
            std::fs::create_dir_all(base.join(sub)).expect("create the overlay probe");
        }
        let p = |sub: &str| base.join(sub).to_str().expect("UTF-8 path").to_owned();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            p("lower"),
            p("upper"),
            p("work")
        );
        let mounted = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options, &p("merged")])
            .output()
            .is_ok_and(|o| o.status.success());
        if mounted {
            sh("umount", &[&p("merged")]);
        }
        let _ = std::fs::remove_dir_all(&base);
        mounted
    }

    /// containerd's config: everything under the directory, no TCP listener but the CRI's
    /// streaming server on 127.0.0.1 (an ephemeral port; 1.6 cannot turn it off).
    fn config(&self, snapshotter: &str) -> String {
        let d = self.dir.path.to_str().expect("UTF-8 path");
        format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "{d}/runc-v1"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{snapshotter}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
"#,
            pause = self.pause_image,
        )
    }

    /// Waits (bounded) until containerd accepts connections on its socket.
    fn wait_for_socket(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = status {
                self.fail(&format!("containerd ended before serving: {status}"));
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "containerd's socket not served within {START_TIMEOUT:?}"
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Connects the CRI clients and waits (bounded) until the runtime reports ready.
    fn connect(&mut self) {
        let clients =
            Clients::connect(self.socket()).unwrap_or_else(|e| self.fail(&format!("{e:#}")));
        self.clients = Some(clients);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut client = self.clients().runtime.clone();
            let status = self.call("Status", client.status(cri::StatusRequest::default()));
            let ready = status.status.is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.r#type == "RuntimeReady" && c.status)
            });
            if ready {
                return;
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "the CRI runtime not ready within {START_TIMEOUT:?}"
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ctr images import` into the CRI's namespace, unpacked for `snapshotter`.
    fn import(&self, archive: &str, snapshotter: &str) {
        let socket = self.socket().to_str().expect("UTF-8 path");
        self.run(
            "ctr",
            &[
                "-a",
                socket,
                "-n",
                K8S_NAMESPACE,
                "images",
                "import",
                "--snapshotter",
                snapshotter,
                archive,
            ],
        );
    }

    /// The CRI's image service knows both images.
    fn check_images(&self) {
        for image in [&self.pause_image, &self.workload_image] {
            let mut client = self.clients().images.clone();
            let request = cri::ImageStatusRequest {
                image: Some(image_spec(image)),
                verbose: false,
            };
            let answer = self.call("ImageStatus", client.image_status(request));
            if answer.image.is_none() {
                self.fail(&format!("the CRI does not see the imported image {image}"));
            }
        }
    }
}

fn image_spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    }
}

/// A pod sandbox; its containers are created with [`Pod::start_container`].
pub struct Pod<'c> {
    containerd: &'c Containerd,
    id: String,
    network: Network,
    config: cri::PodSandboxConfig,
}

impl<'c> Pod<'c> {
    /// The sandbox's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pod's cgroup from each hierarchy's root (the sandbox's `cgroup_parent`):
    /// `PREFIX/kubepods/besteffort/pod<uid>`, ...
    pub fn cgroup_parent(&self) -> &str {
        &self.linux().cgroup_parent
    }

    /// The pid of the sandbox's pause process (PodSandboxStatus' verbose `info`).
    pub fn pid(&self) -> u32 {
        let mut client = self.containerd.clients().runtime.clone();
        let request = cri::PodSandboxStatusRequest {
            pod_sandbox_id: self.id.clone(),
            verbose: true,
        };
        let answer = self
            .containerd
            .call("PodSandboxStatus", client.pod_sandbox_status(request));
        self.containerd.pid_in(&answer.info, &self.id)
    }

    /// The pod's network namespace, `/proc/PID/ns/net` of its pause process (the node's
    /// with [`Network::Node`]); for [`run_in_netns`] and [`EchoListener::start_in`].
    pub fn netns(&self) -> String {
        format!("/proc/{}/ns/net", self.pid())
    }

    pub fn metadata(&self) -> &cri::PodSandboxMetadata {
        self.config.metadata.as_ref().expect("sandbox metadata")
    }

    /// Creates and starts container `name` running the workload image with `args`
    /// (tests/pods/workload.c's arguments, as a pod spec's `args`), attempt 0.
    pub fn start_container(&self, name: &str, args: &[&str]) -> Container<'_> {
        let args = args.iter().map(|a| (*a).to_owned()).collect();
        self.create_and_start(name, args, 0)
    }

    /// A container's restart as kubelet does it: stops and removes `old`, then creates and
    /// starts one with the same name and arguments and the next attempt number.
    pub fn restart(&self, old: Container<'_>) -> Container<'_> {
        let args = old.args.clone();
        self.restart_with(old, args)
    }

    /// A restart as [`Pod::restart`], the new container running with `args` (a pod spec
    /// changed between the two attempts, as a rollout of new arguments does).
    pub fn restart_with(&self, old: Container<'_>, args: Vec<String>) -> Container<'_> {
        let (name, attempt) = (old.name.clone(), old.attempt);
        old.remove();
        self.create_and_start(&name, args, attempt + 1)
    }

    /// StopPodSandbox: stops its containers and the sandbox.
    pub fn stop(&self) {
        let mut client = self.containerd.clients().runtime.clone();
        let request = cri::StopPodSandboxRequest {
            pod_sandbox_id: self.id.clone(),
        };
        self.containerd
            .call("StopPodSandbox", client.stop_pod_sandbox(request));
    }

    /// Stops the sandbox, then RemovePodSandbox (which removes its containers).
    pub fn remove(self) {
        self.stop();
        let mut client = self.containerd.clients().runtime.clone();
        let request = cri::RemovePodSandboxRequest {
            pod_sandbox_id: self.id.clone(),
        };
        self.containerd
            .call("RemovePodSandbox", client.remove_pod_sandbox(request));
    }

    fn linux(&self) -> &cri::LinuxPodSandboxConfig {
        self.config.linux.as_ref().expect("sandbox linux config")
    }

    fn create_and_start(&self, name: &str, args: Vec<String>, attempt: u32) -> Container<'_> {
        let config = self.container_config(name, args.clone(), attempt);
        let log_dir = Path::new(&self.config.log_directory).join(name);
        std::fs::create_dir_all(&log_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", log_dir.display()));
        let mut client = self.containerd.clients().runtime.clone();
        let request = cri::CreateContainerRequest {
            pod_sandbox_id: self.id.clone(),
            config: Some(config),
            sandbox_config: Some(self.config.clone()),
        };
        let id = self
            .containerd
            .call("CreateContainer", client.create_container(request))
            .container_id;
        let request = cri::StartContainerRequest {
            container_id: id.clone(),
        };
        self.containerd
            .call("StartContainer", client.start_container(request));
        let mut container = Container {
            pod: self,
            id,
            name: name.to_owned(),
            args,
            attempt,
            pid: 0,
        };
        container.pid = container.status_pid();
        container
    }

    /// The container config kubelet would send: metadata, the pod's labels and the
    /// container name label, the restart count annotation, a log path, the pod's namespaces.
    fn container_config(
        &self,
        name: &str,
        args: Vec<String>,
        attempt: u32,
    ) -> cri::ContainerConfig {
        let pod = self.metadata();
        let mut labels = pod_labels(&pod.namespace, &pod.name, &pod.uid);
        labels.insert("io.kubernetes.container.name".to_owned(), name.to_owned());
        let annotations = HashMap::from([(
            "io.kubernetes.container.restartCount".to_owned(),
            attempt.to_string(),
        )]);
        cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.to_owned(),
                attempt,
            }),
            image: Some(image_spec(self.containerd.workload_image())),
            args,
            labels,
            annotations,
            log_path: format!("{name}/{attempt}.log"),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces(self.network)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// A container of a [`Pod`].
pub struct Container<'p> {
    pod: &'p Pod<'p>,
    id: String,
    name: String,
    args: Vec<String>,
    attempt: u32,
    pid: u32,
}

impl Container<'_> {
    /// The container's full id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Its process's pid (as the runtime reported it when it started).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its process's cgroup v2 path from the hierarchy's root, from /proc/PID/cgroup's
    /// `0::` line (the process must still run).
    pub fn cgroup_dir(&self) -> String {
        cgroup_of_pid(self.pid)
    }

    /// Starts the traffic of a workload started with `gated`: waits (at most 10 s) until
    /// its SIGUSR1 handler is set (SigCgt in /proc/PID/status), then sends SIGUSR1.
    pub fn open_gate(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let usr1 = 1u64 << (Signal::SIGUSR1 as i32 - 1);
        loop {
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
            let caught = status
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok());
            if caught.is_some_and(|mask| mask & usr1 != 0) {
                break;
            }
            if Instant::now() > deadline {
                self.containerd().fail(&format!(
                    "container {} (pid {}) never caught SIGUSR1: started without gated?",
                    self.name, self.pid
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
        kill(Pid::from_raw(self.pid as i32), Signal::SIGUSR1)
            .unwrap_or_else(|e| panic!("SIGUSR1 to container {}: {e}", self.name));
    }

    /// What it wrote to stdout and stderr, from its CRI log file (CRI log lines).
    pub fn log(&self) -> String {
        let path = Path::new(&self.pod.config.log_directory)
            .join(&self.name)
            .join(format!("{}.log", self.attempt));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// ContainerStatus of this container.
    pub fn status(&self) -> cri::ContainerStatus {
        self.status_verbose(false).0
    }

    /// Waits (at most `timeout`) for the container to exit; its exit code. Fails the test
    /// when it is still running then.
    pub fn wait_exit(&self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status();
            if status.state == cri::ContainerState::ContainerExited as i32 {
                return status.exit_code;
            }
            if Instant::now() > deadline {
                self.containerd().fail(&format!(
                    "container {} ({}) still runs after {timeout:?}; its log:\n{}",
                    self.name,
                    self.id,
                    self.log()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// StopContainer: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&self, grace: Duration) {
        let mut client = self.containerd().clients().runtime.clone();
        let request = cri::StopContainerRequest {
            container_id: self.id.clone(),
            timeout: grace.as_secs() as i64,
        };
        self.containerd()
            .call("StopContainer", client.stop_container(request));
    }

    /// Stops it (2 s grace) and removes it (RemoveContainer).
    pub fn remove(self) {
        self.stop(Duration::from_secs(2));
        let mut client = self.containerd().clients().runtime.clone();
        let request = cri::RemoveContainerRequest {
            container_id: self.id.clone(),
        };
        self.containerd()
            .call("RemoveContainer", client.remove_container(request));
    }

    fn containerd(&self) -> &Containerd {
        self.pod.containerd
    }

    /// The status, and with `verbose` containerd's info (JSON) about the container.
    fn status_verbose(&self, verbose: bool) -> (cri::ContainerStatus, HashMap<String, String>) {
        let mut client = self.containerd().clients().runtime.clone();
        let request = cri::ContainerStatusRequest {
            container_id: self.id.clone(),
            verbose,
        };
        let answer = self
            .containerd()
            .call("ContainerStatus", client.container_status(request));
        let status = answer
            .status
            .unwrap_or_else(|| self.containerd().fail("ContainerStatus without a status"));
        (status, answer.info)
    }

    fn status_pid(&self) -> u32 {
        let (_, info) = self.status_verbose(true);
        self.containerd().pid_in(&info, &self.id)
    }
}

/// Cleaning up: pods and containers, processes, mounts, cgroups, the directory.
impl Containerd {
    /// Stops and removes every sandbox and container through the CRI (best effort).
    fn remove_everything(&self) {
        let Some(clients) = self.clients.as_ref() else {
            return;
        };
        let mut client = clients.runtime.clone();
        let request = cri::ListPodSandboxRequest::default();
        let pods = clients
            .call("ListPodSandbox", client.list_pod_sandbox(request))
            .map(|a| a.items)
            .unwrap_or_default();
        for pod in pods {
            let id = pod.id;
            let stop = cri::StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            };
            let remove = cri::RemovePodSandboxRequest { pod_sandbox_id: id };
            report(clients.call("StopPodSandbox", client.stop_pod_sandbox(stop)));
            report(clients.call("RemovePodSandbox", client.remove_pod_sandbox(remove)));
        }
        let request = cri::ListContainersRequest::default();
        let containers = clients
            .call("ListContainers", client.list_containers(request))
            .map(|a| a.containers)
            .unwrap_or_default();
        for container in containers {
            let remove = cri::RemoveContainerRequest {
                container_id: container.id,
            };
            report(clients.call("RemoveContainer", client.remove_container(remove)));
        }
    }

    /// SIGTERM to containerd, SIGKILL after 10 s.
    fn stop_daemon(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!("containerd did not end on SIGTERM within 10 s; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Files made outside the directory for the run's pods and containers: the shims'
    /// sockets and CNI's cached results of the run's sandboxes (containerd's own loopback
    /// network's too). Removed by a clean stop; a failed one may leave them.
    fn files_outside(&self) -> Vec<PathBuf> {
        let sandboxes = files_in(
            &self
                .dir
                .path
                .join("root/io.containerd.grpc.v1.cri/sandboxes"),
        );
        let ids: Vec<String> = sandboxes
            .iter()
            .filter_map(|s| Some(format!("-{}-", s.file_name()?.to_str()?)))
            .collect();
        let mut files: Vec<PathBuf> = files_in(Path::new(CNI_RESULTS))
            .into_iter()
            .filter(|f| {
                let name = f.to_str().unwrap_or("");
                ids.iter().any(|id| name.contains(id.as_str()))
            })
            .collect();
        files.extend(self.shim_sockets());
        files
    }

    /// The shims' socket files (/run/containerd/s/...), from the `address` file in each
    /// task bundle.
    fn shim_sockets(&self) -> Vec<PathBuf> {
        let tasks = self.dir.path.join("state/io.containerd.runtime.v2.task");
        files_in(&tasks.join(K8S_NAMESPACE))
            .into_iter()
            .filter_map(|bundle| std::fs::read_to_string(bundle.join("address")).ok())
            .filter_map(|a| a.trim().strip_prefix("unix://").map(PathBuf::from))
            .collect()
    }

    /// SIGKILL to shims still serving our socket and to every process in the cgroup
    /// prefix; waits (bounded) until they are gone.
    fn kill_leftover_processes(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut pids: Vec<i32> = self.footprint.processes().iter().map(|p| p.0).collect();
            pids.extend(self.cgroup_pids());
            if pids.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                eprintln!("processes of the pod tests outlived SIGKILL: {pids:?}");
                return;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pids in the cgroup prefix's v2 tree.
    fn cgroup_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for root in mounts_of_type("cgroup2") {
            collect_pids(&root.join(self.prefix().trim_start_matches('/')), &mut pids);
        }
        pids
    }

    /// Unmounts everything under the directory, deepest (latest) first.
    fn unmount_all(&self) {
        for _ in 0..3 {
            let mounts = self.footprint.mounts();
            if mounts.is_empty() {
                return;
            }
            for mount in mounts.iter().rev() {
                let _ = Command::new("umount").args(["-l", mount]).output();
            }
        }
        eprintln!("still mounted: {:?}", self.footprint.mounts());
    }
}

impl Containerd {
    /// Removes SHIM_RUN_DIR if it is empty and no containerd or shim runs (a concurrent
    /// test's shims may be about to use it); the last run of concurrent ones removes it,
    /// whichever made it.
    fn remove_run_dir(&self) {
        if !containerd_runs() {
            let _ = std::fs::remove_dir(Path::new(SHIM_RUN_DIR).join("s"));
            let _ = std::fs::remove_dir(SHIM_RUN_DIR);
        }
    }
}

fn collect_pids(dir: &Path, pids: &mut Vec<i32>) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&entry.path(), pids);
            }
        }
    }
}

/// Prints a failed cleanup call (a drop must not panic).
fn report<T>(result: Result<T, String>) {
    if let Err(e) = result {
        eprintln!("pod test cleanup: {e}");
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.remove_everything();
        self.clients = None;
        self.stop_daemon();
        let outside = self.files_outside();
        self.kill_leftover_processes();
        self.unmount_all();
        for dir in self.footprint.cgroup_dirs() {
            remove_cgroup_tree(&dir);
        }
        for file in outside {
            let _ = std::fs::remove_file(file);
        }
        self.remove_run_dir();
        // The TempDir field removes the directory after this.
    }
}

/// A listener the test holds on 127.0.0.1 (a free port): it accepts connections one at a
/// time, echoes every byte until EOF, closes, and counts the connections so served.
pub struct EchoListener {
    port: u16,
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EchoListener {
    /// Listens in the test's network namespace.
    pub fn start() -> EchoListener {
        EchoListener::serve(TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
    }

    /// Listens in the network namespace at `netns` (a pod's: [`Pod::netns`]).
    pub fn start_in(netns: &str) -> EchoListener {
        let listener = run_in_netns(netns, "tcpt-listen", || {
            TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
        });
        EchoListener::serve(listener)
    }

    fn serve(listener: TcpListener) -> EchoListener {
        listener
            .set_nonblocking(true)
            .expect("make the listener non-blocking");
        let port = listener.local_addr().expect("listener address").port();
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (served.clone(), stop.clone());
        let thread = thread::spawn(move || serve_echo(&listener, &s, &st));
        EchoListener {
            port,
            served,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits (at most `timeout`) until `n` connections were served, then 200 ms more for
    /// any extra one; the count.
    pub fn served_after(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        while self.served.load(Ordering::SeqCst) < n && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(Duration::from_millis(200));
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for EchoListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_echo(listener: &TcpListener, served: &AtomicUsize, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if echo(stream).is_ok() {
                    served.fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Echoes every byte until EOF (reads bounded by 10 s), then closes.
fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = [0u8; 512];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}
