//! Whose cgroup a cgroup v2 path is: the Kubernetes pod and the container that the path's
//! names tell, read from the path alone, before any runtime is asked for names.
//!
//! Where the layouts come from:
//! - kubelet's cgroup manager (pkg/kubelet/cm: cgroup_manager_linux.go, qos_container_manager
//!   and pod_container_manager) puts pods in `kubepods`, burstable and best-effort pods one
//!   level lower in a QoS cgroup, and names a pod's cgroup `pod<uid>`. The cgroupfs driver
//!   uses those names as directories: `/kubepods/burstable/pod<uid>`, `/kubepods/pod<uid>` for
//!   guaranteed pods. The systemd driver turns each level into a slice named after the whole
//!   path (systemd.slice(5): `a-b.slice` is a child of `a.slice`), and since `-` separates
//!   those levels it escapes the `-` of a pod uid as `_`:
//!   `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with _>.slice`.
//!   kubelet's `--cgroup-root` prefixes all of them (kind's:
//!   `/kubelet.slice/kubelet-kubepods.slice/…`).
//! - Pod uids are UUIDs from the API server, but a static pod's uid is kubelet's MD5 of its
//!   manifest in hex (pkg/kubelet/config/common.go), 32 hex digits without dashes.
//! - The runtimes name a container's cgroup after its id, 64 lower-case hex digits (Docker's,
//!   CRI-O's and podman's `stringid`, containerd CRI's `GenerateID`), with runc/crun's systemd
//!   driver making `<prefix>-<id>.scope` from `slice:prefix:id`:
//!   containerd's CRI plugin `cri-containerd-<id>.scope` (cgroupfs: the bare id in the pod's
//!   directory, as cri-dockerd does), CRI-O `crio-<id>.scope` and its monitor
//!   `crio-conmon-<id>.scope` (cgroupfs: the same names without `.scope`), Docker
//!   `docker-<id>.scope` (cgroupfs: `/docker/<id>`), podman `libpod-<id>.scope` and
//!   `libpod-conmon-<id>.scope` (cgroupfs: `libpod-<id>`).

use std::fmt;

/// A container runtime, as the names of its cgroups tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
    Podman,
}

impl Runtime {
    /// The runtime's own name, for output.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A pod's QoS class, from the kubelet cgroup its pod cgroup sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// A Kubernetes pod's cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    /// The pod's uid as the API server (or kubelet, for a static pod) wrote it, with dashes.
    pub uid: String,
    pub qos: QosClass,
    /// The pod's cgroup directory, from the hierarchy's root: what `-c` would take.
    pub dir: String,
}

/// A container's cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRef {
    /// None where the name does not tell: the bare id in a pod's cgroupfs directory is
    /// containerd's or cri-dockerd's.
    pub runtime: Option<Runtime>,
    /// The full id, 64 hex digits, as the runtime's API takes it.
    pub id: String,
    /// The cgroup holds the container's monitor (CRI-O's and podman's conmon), not the
    /// container's own processes.
    pub conmon: bool,
    /// The container's cgroup directory (the path may be below it: cgroups the container
    /// made itself, as systemd in a container does).
    pub dir: String,
}

/// What a cgroup path tells of its pod and container; one of them at least is known. A pod
/// without a container is the pod's own cgroup (the sandbox's pause container has a scope of
/// its own, which only the runtime can tell from a workload container's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupIdentity {
    pub pod: Option<PodRef>,
    pub container: Option<ContainerRef>,
}

/// The pod and container of a cgroup path such as `CgroupPaths` gives (`/` is the root),
/// or None for a cgroup in no pod and no container (and for an id printed as a number).
///
/// The outermost container wins: the node's runtime knows it, and what is below it (a
/// kind node's pods, Docker in Docker) belongs to a runtime inside that container.
pub fn parse_cgroup_path(path: &str) -> Option<CgroupIdentity> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let dir_of = |last: usize| format!("/{}", parts[..=last].join("/"));
    let mut pod: Option<(usize, PodRef)> = None;
    for (i, name) in parts.iter().enumerate() {
        let parents = &parts[..i];
        let below_pod = pod.as_ref().is_some_and(|(at, _)| at + 1 == i);
        if let Some(scope) = container_scope(name, parents, below_pod) {
            let container = ContainerRef {
                runtime: scope.runtime,
                id: scope.id.to_owned(),
                conmon: scope.conmon,
                dir: dir_of(i),
            };
            return Some(CgroupIdentity {
                pod: pod.map(|(_, pod)| pod),
                container: Some(container),
            });
        }
        if pod.is_none() {
            pod = pod_cgroup(name, parents).map(|(uid, qos)| {
                let dir = dir_of(i);
                (i, PodRef { uid, qos, dir })
            });
        }
    }
    pod.map(|(_, pod)| CgroupIdentity {
        pod: Some(pod),
        container: None,
    })
}

/// A container's cgroup name, taken apart.
struct ContainerScope<'a> {
    runtime: Option<Runtime>,
    id: &'a str,
    conmon: bool,
}

/// A runtime's name for a container's cgroup: `<prefix><id>.scope` under the systemd driver,
/// and `<prefix><id>` under cgroupfs where `cgroupfs` says so.
struct ScopeName {
    prefix: &'static str,
    runtime: Runtime,
    conmon: bool,
    cgroupfs: bool,
}

const SCOPE_NAMES: [ScopeName; 6] = [
    ScopeName {
        prefix: "cri-containerd-",
        runtime: Runtime::Containerd,
        conmon: false,
        cgroupfs: false,
    },
    ScopeName {
        prefix: "crio-conmon-",
        runtime: Runtime::CriO,
        conmon: true,
        cgroupfs: true,
    },
    ScopeName {
        prefix: "crio-",
        runtime: Runtime::CriO,
        conmon: false,
        cgroupfs: true,
    },
    ScopeName {
        prefix: "docker-",
        runtime: Runtime::Docker,
        conmon: false,
        cgroupfs: false,
    },
    ScopeName {
        prefix: "libpod-conmon-",
        runtime: Runtime::Podman,
        conmon: true,
        cgroupfs: false,
    },
    ScopeName {
        prefix: "libpod-",
        runtime: Runtime::Podman,
        conmon: false,
        cgroupfs: true,
    },
];

/// `name` as a container's cgroup, given the names above it and whether it is directly in
/// a pod's cgroup.
fn container_scope<'a>(
    name: &'a str,
    parents: &[&str],
    below_pod: bool,
) -> Option<ContainerScope<'a>> {
    let (stem, systemd) = match name.strip_suffix(".scope") {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    if !systemd && is_container_id(stem) {
        // Bare ids: containerd and cri-dockerd in a pod's cgroupfs directory, Docker's own
        // cgroupfs parent.
        let runtime = match parents.last() {
            _ if below_pod => None,
            Some(&"docker") => Some(Runtime::Docker),
            _ => return None,
        };
        return Some(ContainerScope {
            runtime,
            id: stem,
            conmon: false,
        });
    }
    // `crio-conmon-<id>` also starts with `crio-`, but `conmon-<id>` is no id.
    SCOPE_NAMES
        .iter()
        .filter(|scope| systemd || scope.cgroupfs)
        .find_map(|scope| {
            let id = stem
                .strip_prefix(scope.prefix)
                .filter(|id| is_container_id(id))?;
            Some(ContainerScope {
                runtime: Some(scope.runtime),
                id,
                conmon: scope.conmon,
            })
        })
}

/// The runtimes' ids are 64 lower-case hex digits; Docker's `stringid.ValidateID` rejects
/// anything else, upper case included, and so does this.
fn is_container_id(id: &str) -> bool {
    id.len() == 64 && is_lower_hex(id)
}

/// `name` as a pod's cgroup under either driver: the pod's uid and QoS class.
fn pod_cgroup(name: &str, parents: &[&str]) -> Option<(String, QosClass)> {
    match name.strip_suffix(".slice") {
        Some(stem) => systemd_pod(stem, parents.last().copied()),
        None => cgroupfs_pod(name, parents),
    }
}

/// `<root->kubepods[-burstable|-besteffort]-pod<uid with _>.slice`, in the slice its name
/// says it is in (systemd nests `a-b.slice` in `a.slice`).
fn systemd_pod(stem: &str, parent: Option<&str>) -> Option<(String, QosClass)> {
    let (qos_slice, escaped) = stem.rsplit_once("-pod")?;
    if escaped.contains('-') || parent != Some(&format!("{qos_slice}.slice")) {
        return None;
    }
    let (kubepods, qos) = if let Some(kubepods) = qos_slice.strip_suffix("-burstable") {
        (kubepods, QosClass::Burstable)
    } else if let Some(kubepods) = qos_slice.strip_suffix("-besteffort") {
        (kubepods, QosClass::BestEffort)
    } else {
        (qos_slice, QosClass::Guaranteed)
    };
    if kubepods != "kubepods" && !kubepods.ends_with("-kubepods") {
        return None;
    }
    let uid = escaped.replace('_', "-");
    is_pod_uid(&uid).then_some((uid, qos))
}

/// `…/kubepods/pod<uid>` or `…/kubepods/{burstable,besteffort}/pod<uid>`.
fn cgroupfs_pod(name: &str, parents: &[&str]) -> Option<(String, QosClass)> {
    let uid = name.strip_prefix("pod").filter(|uid| is_pod_uid(uid))?;
    let qos = match parents {
        [.., "kubepods"] => QosClass::Guaranteed,
        [.., "kubepods", "burstable"] => QosClass::Burstable,
        [.., "kubepods", "besteffort"] => QosClass::BestEffort,
        _ => return None,
    };
    Some((uid.to_owned(), qos))
}

/// A UUID as the API server writes it (lower-case, 8-4-4-4-12), or a static pod's 32 hex
/// digits.
fn is_pod_uid(uid: &str) -> bool {
    let groups: Vec<&str> = uid.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let shaped = lengths == [8, 4, 4, 4, 12] || lengths == [32];
    shaped && groups.iter().all(|g| is_lower_hex(g))
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8a7c2e5f1b3d4c6e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f567";
    const UID: &str = "3f2a9c1e-5b7d-4e8f-a012-6c3d4e5f6a7b";
    const UID_ESCAPED: &str = "3f2a9c1e_5b7d_4e8f_a012_6c3d4e5f6a7b";
    const STATIC_UID: &str = "5d6b1ad1f1d4e5d6c7b8a9f0e1d2c3b4";

    fn pod(uid: &str, qos: QosClass, dir: &str) -> Option<PodRef> {
        Some(PodRef {
            uid: uid.to_owned(),
            qos,
            dir: dir.to_owned(),
        })
    }

    fn container(runtime: Option<Runtime>, conmon: bool, dir: &str) -> Option<ContainerRef> {
        Some(ContainerRef {
            runtime,
            id: ID.to_owned(),
            conmon,
            dir: dir.to_owned(),
        })
    }

    /// `path`'s identity is this pod and container (None for both: no identity).
    fn check(path: &str, pod: Option<PodRef>, container: Option<ContainerRef>) {
        let expected =
            (pod.is_some() || container.is_some()).then_some(CgroupIdentity { pod, container });
        assert_eq!(parse_cgroup_path(path), expected, "{path}");
    }

    /// `{pod_dir}/{scope}` is a container of `runtime` in the pod at `pod_dir`.
    fn check_in_pod(
        pod_dir: &str,
        qos: QosClass,
        scope: &str,
        runtime: Option<Runtime>,
        conmon: bool,
    ) {
        let dir = format!("{pod_dir}/{scope}");
        check(
            &dir,
            pod(UID, qos, pod_dir),
            container(runtime, conmon, &dir),
        );
    }

    /// `template` with the test's container id for `{id}` and pod uid for `{uid}` (`{uid_}`
    /// as the systemd driver escapes it).
    fn fill(template: &str) -> String {
        template
            .replace("{id}", ID)
            .replace("{uid_}", UID_ESCAPED)
            .replace("{uid}", UID)
    }

    #[test]
    fn systemd_driver_every_qos_class() {
        let cases = [
            (
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice",
                QosClass::Burstable,
            ),
            (
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice",
                QosClass::BestEffort,
            ),
            // Guaranteed pods have no QoS slice: one level higher.
            (
                "/kubepods.slice/kubepods-pod{uid_}.slice",
                QosClass::Guaranteed,
            ),
        ];
        for (pod_dir, qos) in cases {
            let pod_dir = fill(pod_dir);
            let scope = format!("cri-containerd-{ID}.scope");
            check_in_pod(&pod_dir, qos, &scope, Some(Runtime::Containerd), false);
            check(&pod_dir, pod(UID, qos, &pod_dir), None);
        }
    }

    #[test]
    fn cgroupfs_driver_every_qos_class() {
        let cases = [
            ("/kubepods/burstable/pod{uid}", QosClass::Burstable),
            ("/kubepods/besteffort/pod{uid}", QosClass::BestEffort),
            ("/kubepods/pod{uid}", QosClass::Guaranteed),
        ];
        for (pod_dir, qos) in cases {
            let pod_dir = fill(pod_dir);
            // containerd and cri-dockerd both put the bare id there.
            check_in_pod(&pod_dir, qos, ID, None, false);
            let crio = Some(Runtime::CriO);
            check_in_pod(&pod_dir, qos, &format!("crio-{ID}"), crio, false);
            check_in_pod(&pod_dir, qos, &format!("crio-conmon-{ID}"), crio, true);
            check(&pod_dir, pod(UID, qos, &pod_dir), None);
        }
    }

    #[test]
    fn each_runtime_in_a_systemd_pod() {
        let pod_dir =
            fill("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice");
        let cases = [
            ("cri-containerd-", Runtime::Containerd, false),
            ("crio-", Runtime::CriO, false),
            // CRI-O's conmon_cgroup = "pod".
            ("crio-conmon-", Runtime::CriO, true),
            // cri-dockerd.
            ("docker-", Runtime::Docker, false),
        ];
        for (prefix, runtime, conmon) in cases {
            let scope = format!("{pod_dir}/{prefix}{ID}.scope");
            check(
                &scope,
                pod(UID, QosClass::BestEffort, &pod_dir),
                container(Some(runtime), conmon, &scope),
            );
        }
    }

    #[test]
    fn containers_without_pods() {
        let docker = Some(Runtime::Docker);
        let podman = Some(Runtime::Podman);
        let crio = Some(Runtime::CriO);
        let cases = [
            ("/system.slice/docker-{id}.scope", docker, false),
            ("/docker/{id}", docker, false),
            ("/machine.slice/libpod-{id}.scope", podman, false),
            ("/machine.slice/libpod-conmon-{id}.scope", podman, true),
            // Rootless podman, under the user's systemd.
            (
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{id}.scope",
                podman,
                false,
            ),
            // A podman pod is no Kubernetes pod.
            (
                "/machine.slice/machine-libpod_pod_0c1d2e3f4a5b.slice/libpod-{id}.scope",
                podman,
                false,
            ),
            ("/libpod_parent/libpod-{id}", podman, false),
            // CRI-O's default conmon_cgroup, "system.slice".
            ("/system.slice/crio-conmon-{id}.scope", crio, true),
        ];
        for (path, runtime, conmon) in cases {
            let path = fill(path);
            check(&path, None, container(runtime, conmon, &path));
        }
    }

    #[test]
    fn static_pods_have_md5_uids() {
        let pod_dir = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{STATIC_UID}.slice"
        );
        let scope = format!("{pod_dir}/cri-containerd-{ID}.scope");
        check(
            &scope,
            pod(STATIC_UID, QosClass::Burstable, &pod_dir),
            container(Some(Runtime::Containerd), false, &scope),
        );
        let pod_dir = format!("/kubepods/pod{STATIC_UID}");
        check(
            &pod_dir,
            pod(STATIC_UID, QosClass::Guaranteed, &pod_dir),
            None,
        );
    }

    #[test]
    fn kubelet_cgroup_root_prefixes_the_layout() {
        // kind's --cgroup-root=/kubelet with the systemd driver, and a cgroupfs root.
        let pod_dir = fill(concat!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice",
            "/kubelet-kubepods-besteffort-pod{uid_}.slice",
        ));
        let scope = format!("{pod_dir}/cri-containerd-{ID}.scope");
        check(
            &scope,
            pod(UID, QosClass::BestEffort, &pod_dir),
            container(Some(Runtime::Containerd), false, &scope),
        );
        let pod_dir = fill("/kubelet/kubepods/pod{uid}");
        check(&pod_dir, pod(UID, QosClass::Guaranteed, &pod_dir), None);
    }

    #[test]
    fn cgroups_below_a_container_are_the_container() {
        let pod_dir = fill("/kubepods.slice/kubepods-pod{uid_}.slice");
        let scope = format!("{pod_dir}/crio-{ID}.scope");
        check(
            &format!("{scope}/container/init.scope"),
            pod(UID, QosClass::Guaranteed, &pod_dir),
            container(Some(Runtime::CriO), false, &scope),
        );
        // A kind node seen from its host: the node is the host's Docker container; its pods
        // are the inner containerd's.
        let node = fill("/system.slice/docker-{id}.scope");
        let inner = fill(concat!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{uid_}.slice",
            "/cri-containerd-{id}.scope",
        ));
        let docker = Some(Runtime::Docker);
        check(
            &format!("{node}{inner}"),
            None,
            container(docker, false, &node),
        );
        let dind = fill("/docker/{id}/docker/{id}");
        check(&dind, None, container(docker, false, &fill("/docker/{id}")));
    }

    #[test]
    fn plain_paths_are_no_container() {
        for path in [
            "/",
            "",
            "12345",
            "/init.scope",
            "/system.slice/sshd.service",
            "/system.slice/docker.service",
            "/system.slice/containerd.service",
            "/user.slice/user-1000.slice/session-2.scope",
            "/kubepods.slice",
            "/kubepods.slice/kubepods-burstable.slice",
            "/kubepods/burstable",
        ] {
            check(path, None, None);
        }
    }

    #[test]
    fn lookalikes_are_no_container() {
        for path in [
            // A unit that is no container scope, and scopes of other prefixes.
            "/system.slice/docker-{id}.service",
            "/system.slice/cri-containerd-{id}.slice",
            "/system.slice/containerd-{id}.scope",
            // The systemd-only names as cgroupfs directories.
            "/docker-{id}",
            // A bare id outside a pod's and Docker's directory.
            "/{id}",
            "/system.slice/{id}",
            // Pod slices outside the slice their name says, or of no kubepods.
            "/kubepods-burstable-pod{uid_}.slice",
            "/kubepods.slice/kubepods-burstable-pod{uid_}.slice",
            "/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod{uid_}.slice",
            "/pods.slice/pods-burstable.slice/pods-burstable-pod{uid_}.slice",
            // The systemd driver never leaves a dash in a uid; cgroupfs never escapes one.
            "/kubepods.slice/kubepods-pod{uid}.slice",
            "/kubepods/pod{uid_}",
            // cgroupfs pod directories outside kubepods, or of no uid.
            "/burstable/pod{uid}",
            "/kubepods/guaranteed/pod{uid}",
            "/kubepods/burstable/podcast",
        ] {
            check(&fill(path), None, None);
        }
        // A systemd-only name in a cgroupfs pod: the pod, no container.
        let pod_dir = fill("/kubepods/pod{uid}");
        check(
            &format!("{pod_dir}/cri-containerd-{ID}"),
            pod(UID, QosClass::Guaranteed, &pod_dir),
            None,
        );
    }

    #[test]
    fn ids_are_64_lower_case_hex_digits() {
        let truncated = &ID[..12];
        let upper = ID.to_uppercase();
        for id in [
            truncated,
            &ID[..63],
            &format!("{ID}0"),
            &upper,
            &ID.replace('a', "g"),
        ] {
            for path in [
                format!("/system.slice/docker-{id}.scope"),
                format!("/docker/{id}"),
                format!("/machine.slice/libpod-{id}.scope"),
            ] {
                check(&path, None, None);
            }
            // In a pod, the pod is still known.
            let pod_dir = fill("/kubepods/besteffort/pod{uid}");
            check(
                &format!("{pod_dir}/{id}"),
                pod(UID, QosClass::BestEffort, &pod_dir),
                None,
            );
        }
        let upper_uid = UID.to_uppercase();
        check(&format!("/kubepods/pod{upper_uid}"), None, None);
        check(&format!("/kubepods/pod{}", &UID[..35]), None, None);
    }

    #[test]
    fn paths_with_doubled_or_trailing_slashes() {
        let pod_dir = fill("/kubepods/pod{uid}");
        check(
            &fill("//kubepods//pod{uid}/"),
            pod(UID, QosClass::Guaranteed, &pod_dir),
            None,
        );
    }
}
