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

// The pod tests' containerd harness and the host helpers it uses (tests/common/host.rs);
// tests/common/mod.rs itself holds test-only parts an example cannot build.
#[path = "../tests/common/cri.rs"]
#[allow(dead_code)]
mod cri;
#[path = "../tests/common/host.rs"]
mod host;

use std::io::BufRead;
use std::time::Instant;

use cri::{pod_uid, Containerd, Network, PodSpec, Qos};
use host::cgroup2_mount;

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
