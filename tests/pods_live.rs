//! The pod tests' harness (tests/common/cri.rs) against a real containerd driven through
//! the CRI as kubelet drives it: two pods in two namespaces, QoS classes and network modes
//! (the host's, the pod's own), their containers' cgroups in kubelet's cgroupfs layout, the
//! CRI's lists, the workload's connections to a listener of the test's, a restart, and
//! nothing left after the drop.
//! Needs root; ports are free ones picked at run time (host network).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::cri::{
    cgroup_roots, pod_uid, Container, Containerd, EchoListener, Footprint, Network, Pod, PodSpec,
    Qos,
};
use common::inode_of;

const WAIT: Duration = Duration::from_secs(30);

/// `client 127.0.0.1 PORT CONNS 2 hold`: CONNS connections of 2 round trips, then it stays.
fn client_args(port: u16, conns: usize, hold: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "client",
        "127.0.0.1",
        &port.to_string(),
        &conns.to_string(),
        "2",
    ]
    .map(str::to_owned)
    .to_vec();
    if hold {
        args.push("hold".to_owned());
    }
    args
}

fn start_client<'p>(pod: &'p Pod<'p>, name: &str, args: &[String]) -> Container<'p> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pod.start_container(name, &args)
}

fn expected_labels(spec: &PodSpec, container: Option<&str>) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        ("io.kubernetes.pod.name".to_owned(), spec.name.to_owned()),
        (
            "io.kubernetes.pod.namespace".to_owned(),
            spec.namespace.to_owned(),
        ),
        ("io.kubernetes.pod.uid".to_owned(), spec.uid.to_owned()),
    ]);
    if let Some(name) = container {
        labels.insert("io.kubernetes.container.name".to_owned(), name.to_owned());
    }
    labels
}

/// ListPodSandbox shows the pod, ready, with kubelet's metadata and labels.
fn check_listed_pod(containerd: &Containerd, pod: &Pod, spec: &PodSpec) {
    let pods = containerd.list_pods();
    let listed = pods
        .iter()
        .find(|p| p.id == pod.id())
        .unwrap_or_else(|| panic!("pod {} not in ListPodSandbox: {pods:?}", pod.id()));
    let meta = listed.metadata.as_ref().expect("listed pod metadata");
    assert_eq!(
        (
            meta.name.as_str(),
            meta.namespace.as_str(),
            meta.uid.as_str(),
            meta.attempt
        ),
        (spec.name, spec.namespace, spec.uid, 0)
    );
    assert_eq!(listed.labels, expected_labels(spec, None));
    assert_eq!(
        listed.state,
        k8s_cri::v1::PodSandboxState::SandboxReady as i32
    );
}

/// ListContainers shows the container in its pod, running, with its metadata and labels.
fn check_listed_container(
    containerd: &Containerd,
    container: &Container,
    pod: &Pod,
    spec: &PodSpec,
) {
    let all = containerd.list_containers();
    let listed = all
        .iter()
        .find(|c| c.id == container.id())
        .unwrap_or_else(|| {
            panic!(
                "container {} not in ListContainers: {all:?}",
                container.id()
            )
        });
    let meta = listed.metadata.as_ref().expect("listed container metadata");
    assert_eq!(
        (meta.name.as_str(), meta.attempt),
        (container.name(), container.attempt())
    );
    assert_eq!(listed.pod_sandbox_id, pod.id());
    assert_eq!(listed.labels, expected_labels(spec, Some(container.name())));
    assert_eq!(
        listed.state,
        k8s_cri::v1::ContainerState::ContainerRunning as i32
    );
}

/// The container's process is in `<pod cgroup>/<container id>` of the v2 hierarchy.
fn check_cgroup(container: &Container, pod_dir: &str) {
    assert_eq!(
        container.cgroup_dir(),
        format!("{pod_dir}/{}", container.id()),
        "cgroup of container {} (pid {})",
        container.name(),
        container.pid()
    );
}

#[test]
fn pods_run_in_kubelets_cgroups_and_leave_nothing() {
    let footprint: Footprint;
    {
        let containerd = Containerd::start("smoke");
        footprint = containerd.footprint();
        run_pods(&containerd);
    }
    let left = footprint.leftovers();
    assert!(left.is_empty(), "left after the drop: {left:#?}");
}

fn run_pods(containerd: &Containerd) {
    let prefix = containerd.prefix().to_owned();
    let (uid_a, uid_b) = (pod_uid(1), pod_uid(2));
    let front = PodSpec {
        namespace: "tcpt-front",
        name: "web",
        uid: &uid_a,
        qos: Qos::BestEffort,
        network: Network::Node,
    };
    let back = PodSpec {
        namespace: "tcpt-back",
        name: "db",
        uid: &uid_b,
        qos: Qos::Guaranteed,
        network: Network::Pod,
    };
    let pod_a = containerd.run_pod(&front);
    let pod_b = containerd.run_pod(&back);
    // The host-network pod reaches the test's loopback; the other one only its own.
    let (listen_a, listen_b) = (
        EchoListener::start(),
        EchoListener::start_in(&pod_b.netns()),
    );
    let dir_a = format!("{prefix}/kubepods/besteffort/pod{uid_a}");
    let dir_b = format!("{prefix}/kubepods/pod{uid_b}");
    let client_a = check_client(containerd, (&pod_a, &front, &dir_a), &listen_a, 5);
    let client_b = check_client(containerd, (&pod_b, &back, &dir_b), &listen_b, 7);
    let test_netns = inode_of("/proc/self/ns/net");
    assert_eq!(netns_of(client_a.pid()), test_netns);
    assert_ne!(netns_of(client_b.pid()), test_netns);
    assert_eq!(netns_of(client_b.pid()), inode_of(&pod_b.netns()));
    // runc's cgroupfs driver on a hybrid host: the prefix in v2 and in every v1 hierarchy.
    assert_eq!(
        containerd.footprint().cgroup_dirs().len(),
        cgroup_roots().len()
    );
    check_restart(containerd, (&pod_a, &front, &dir_a), client_a, &listen_a);

    let once = start_client(&pod_b, "once", &client_args(listen_b.port(), 3, false));
    assert_eq!(once.wait_exit(WAIT), 0, "log: {}", once.log());
    assert_eq!(listen_b.served_after(7 + 3, WAIT), 7 + 3);
    assert!(
        once.log().contains("workload: client 3 connections"),
        "{}",
        once.log()
    );
}

fn netns_of(pid: u32) -> u64 {
    inode_of(&format!("/proc/{pid}/ns/net"))
}

/// A pod, its spec, and the cgroup kubelet's layout gives it.
type PodCase<'a> = (&'a Pod<'a>, &'a PodSpec<'a>, &'a str);

/// A container making `conns` connections to `listener`, then holding: its cgroup, the
/// connections served, and the CRI's lists.
fn check_client<'a>(
    containerd: &Containerd,
    (pod, spec, dir): PodCase<'a>,
    listener: &EchoListener,
    conns: usize,
) -> Container<'a> {
    assert_eq!(pod.cgroup_parent(), dir);
    let client = start_client(pod, "client", &client_args(listener.port(), conns, true));
    check_cgroup(&client, dir);
    let served = listener.served_after(conns, WAIT);
    assert_eq!(served, conns, "log: {}", client.log());
    check_listed_pod(containerd, pod, spec);
    check_listed_container(containerd, &client, pod, spec);
    client
}

/// A restart: a new id, attempt 1, a new cgroup directory in the same pod, the same
/// connections again.
fn check_restart(
    containerd: &Containerd,
    (pod, spec, dir): PodCase,
    client: Container,
    listener: &EchoListener,
) {
    let served = listener.served_after(0, WAIT);
    let (old_id, old_dir) = (client.id().to_owned(), client.cgroup_dir());
    let restarted = pod.restart(client);
    assert_ne!(restarted.id(), old_id);
    assert_eq!(restarted.attempt(), 1);
    check_cgroup(&restarted, dir);
    assert_ne!(restarted.cgroup_dir(), old_dir);
    let again = listener.served_after(2 * served, WAIT);
    assert_eq!(again, 2 * served, "log: {}", restarted.log());
    check_listed_container(containerd, &restarted, pod, spec);
}
