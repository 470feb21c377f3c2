//! contrib/kubernetes/: every manifest against the Kubernetes API schemas (PyPI's
//! kubernetes-validate, strict: unknown fields are errors), the ServiceMonitor against
//! prometheus-operator's CRD schema (tests/delivery/servicemonitor.py), and the security
//! settings contrib/README.md promises. No root; `make deps` installs the validators in target/venv.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn venv_bin(name: &str) -> PathBuf {
    let bin = Path::new(ROOT).join("target/venv/bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `make deps` (it installs the validators from PyPI)",
        bin.display()
    );
    bin
}

fn manifests() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(Path::new(ROOT).join("contrib/kubernetes"))
        .expect("contrib/kubernetes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    found.sort();
    found
}

/// (success, stdout + stderr)
fn run(program: &Path, args: &[&Path]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn kubernetes_validate(files: &[&Path]) -> (bool, String) {
    let bin = venv_bin("kubernetes-validate");
    let mut args: Vec<&Path> = vec![Path::new("--strict")];
    args.extend_from_slice(files);
    run(&bin, &args)
}

fn servicemonitor_validate(files: &[&Path]) -> (bool, String) {
    let script = Path::new(ROOT).join("tests/delivery/servicemonitor.py");
    let mut args: Vec<&Path> = vec![&script];
    args.extend_from_slice(files);
    run(&venv_bin("python"), &args)
}

#[test]
fn every_manifest_is_valid() {
    let files = manifests();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "daemonset.yaml",
        "namespace.yaml",
        "networkpolicy.yaml",
        "service.yaml",
        "servicemonitor.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for file in &files {
        let (ok, out) = kubernetes_validate(&[file]);
        let name = file.display();
        if name.to_string().ends_with("servicemonitor.yaml") {
            // A custom resource: kubernetes-validate has no schema for it, says so, and
            // servicemonitor.py checks it instead.
            assert!(
                out.contains("Couldn't find schema for kind ServiceMonitor"),
                "{out}"
            );
            let (ok, out) = servicemonitor_validate(&[file]);
            assert!(ok, "{name}: {out}");
            assert!(
                out.contains("ServiceMonitor tcptools-exporter valid"),
                "{out}"
            );
        } else {
            assert!(ok && out.contains("passed for resource"), "{name}: {out}");
            assert!(
                !out.contains("WARN") && !out.contains("ERROR"),
                "{name}: {out}"
            );
        }
    }
}

/// The validators do reject: a misspelt field in each kind of manifest fails.
#[test]
fn validators_reject_unknown_fields() {
    let tmp = std::env::temp_dir().join(format!("tcpt-k8s-{}", std::process::id()));
    fs::create_dir_all(&tmp).expect("temp dir");
    let daemonset = fs::read_to_string(Path::new(ROOT).join("contrib/kubernetes/daemonset.yaml"))
        .expect("daemonset.yaml")
        .replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:");
    let bad_ds = tmp.join("daemonset.yaml");
    fs::write(&bad_ds, daemonset).expect("write");
    let monitor =
        fs::read_to_string(Path::new(ROOT).join("contrib/kubernetes/servicemonitor.yaml"))
            .expect("servicemonitor.yaml")
            .replace("scrapeTimeout:", "scrapeTimout:");
    let bad_sm = tmp.join("servicemonitor.yaml");
    fs::write(&bad_sm, monitor).expect("write");
    let (ds_ok, ds_out) = kubernetes_validate(&[&bad_ds]);
    let (sm_ok, sm_out) = servicemonitor_validate(&[&bad_sm]);
    let _ = fs::remove_dir_all(&tmp);
    assert!(
        !ds_ok && ds_out.contains("readOnlyRootFileSystem"),
        "{ds_out}"
    );
    assert!(!sm_ok && sm_out.contains("scrapeTimout"), "{sm_out}");
}

/// The smallest grant contrib/README.md describes: two capabilities, nothing from the host but
/// BTF, the cgroup tree and the CRI socket (for pod names), all read-only.
#[test]
fn daemonset_asks_for_no_more_than_it_needs() {
    let text = fs::read_to_string(Path::new(ROOT).join("contrib/kubernetes/daemonset.yaml"))
        .expect("daemonset.yaml");
    let spec: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for needed in [
        "drop: [\"ALL\"]",
        "add: [\"BPF\", \"PERFMON\"]",
        "allowPrivilegeEscalation: false",
        "readOnlyRootFilesystem: true",
        "privileged: false",
        "automountServiceAccountToken: false",
        "type: RuntimeDefault # allows bpf() and perf_event_open() to CAP_BPF/CAP_PERFMON",
    ] {
        assert!(spec.contains(&needed), "{needed}");
    }
    for absent in ["hostNetwork", "hostPID", "hostIPC", "privileged: true"] {
        assert!(!spec.iter().any(|l| l.contains(absent)), "{absent}");
    }
    let host_paths: Vec<&str> = spec
        .windows(2)
        .filter(|w| w[0] == "hostPath:")
        .map(|w| w[1])
        .collect();
    assert_eq!(
        host_paths,
        [
            "path: /sys/kernel/btf",
            "path: /sys/fs/cgroup",
            "path: /run/containerd/containerd.sock"
        ],
        "hostPath volumes"
    );
    assert_eq!(spec.iter().filter(|l| **l == "readOnly: true").count(), 3);
}

/// Scheduled only where the image runs (Linux, its architecture), and probed on the paths
/// that need no auth and no scrape (so a web config with TLS or basic auth keeps it ready).
#[test]
fn daemonset_selects_its_nodes_and_probes_without_a_scrape() {
    let text = fs::read_to_string(Path::new(ROOT).join("contrib/kubernetes/daemonset.yaml"))
        .expect("daemonset.yaml");
    let spec: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let after = |key: &str, n: usize| -> Vec<&str> {
        let at = spec
            .iter()
            .position(|l| *l == key)
            .unwrap_or_else(|| panic!("{key}"));
        spec[at + 1..at + 1 + n].to_vec()
    };
    assert_eq!(
        after("nodeSelector:", 2),
        ["kubernetes.io/os: linux", "kubernetes.io/arch: amd64"]
    );
    assert_eq!(
        after("livenessProbe:", 3),
        ["httpGet:", "path: /-/healthy", "port: metrics"]
    );
    assert_eq!(
        after("readinessProbe:", 3),
        ["httpGet:", "path: /-/ready", "port: metrics"]
    );
    assert!(!spec.contains(&"path: /metrics"), "a probe scrapes");
}
