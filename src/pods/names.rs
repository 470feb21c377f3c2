//! What the output says of a socket's cgroup: its path, and its pod's and container's
//! names (JSON, `--show-pod`, tcprtt's `--bypod`).

use std::collections::HashMap;

use crate::container::CgroupPaths;
use crate::identity::{parse_cgroup_path, CgroupIdentity};
use crate::runtime::{ContainerNames, PodNames, Runtimes};

/// Bound on the parsed identities a printer keeps (one per cgroup it printed).
const MAX_KNOWN: usize = 65_536;

/// What the output says of a socket's cgroup: its path, and the names of its pod and
/// container where the runtime knows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shown {
    pub cgroup: String,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub container_id: Option<String>,
}

impl Shown {
    /// `--show-pod`'s NAMESPACE/POD/CONTAINER (`-` for a part not known, as a pod's own
    /// cgroup has no container), or the cgroup path where the socket is in no container
    /// the runtime names.
    pub fn column(&self) -> String {
        if self.pod.is_none() && self.container.is_none() {
            return self.cgroup.clone();
        }
        let part = |p: &Option<String>| p.clone().unwrap_or_else(|| "-".to_owned());
        format!(
            "{}/{}/{}",
            part(&self.namespace),
            part(&self.pod),
            part(&self.container)
        )
    }

    /// tcprtt's `--bypod` key: NAMESPACE/POD, or the cgroup path outside pods.
    pub fn pod_key(&self) -> String {
        match (&self.namespace, &self.pod) {
            (Some(ns), Some(pod)) => format!("{ns}/{pod}"),
            _ => self.cgroup.clone(),
        }
    }

    /// Adds `namespace`, `pod`, `container` and `container_id` to a JSON object, those known.
    pub fn add_to_json(&self, object: &mut serde_json::Value) {
        let fields = [
            ("namespace", &self.namespace),
            ("pod", &self.pod),
            ("container", &self.container),
            ("container_id", &self.container_id),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                object[key] = serde_json::json!(value);
            }
        }
    }
}

/// The JSON fields names add, for the man pages' JSON FIELDS.
pub const JSON_FIELDS: &[(&str, &str)] = &[
    (
        "namespace",
        "The Kubernetes namespace of the socket's pod, where the container runtime names it.",
    ),
    ("pod", "The pod's name, likewise."),
    (
        "container",
        "The container's name (Kubernetes', Docker's or podman's), where the runtime names it; \
absent for a pod's own cgroup.",
    ),
    ("container_id", "The container's full id, likewise."),
];

/// Names for cgroup ids: paths from the hierarchy, identities parsed from the paths once,
/// names from the runtime at each call (they arrive after the cgroup does).
pub struct Identities {
    paths: CgroupPaths,
    runtimes: Runtimes,
    parsed: HashMap<u64, Option<CgroupIdentity>>,
}

impl Identities {
    pub fn new(paths: CgroupPaths, runtimes: Runtimes) -> Identities {
        Identities {
            paths,
            runtimes,
            parsed: HashMap::new(),
        }
    }

    /// The path of cgroup `id` (see [`CgroupPaths::path`]).
    pub fn path(&mut self, id: u64) -> String {
        self.paths.path(id)
    }

    /// What the output says of cgroup `id`. At the first sight of a cgroup whose pod or
    /// container the cache does not name, it waits for one refresh first (when the runtime
    /// is up), as the exporter does: a container is listed by its runtime before its
    /// processes run, but the cache may not have asked since, and its first sockets would
    /// go unnamed.
    pub fn of(&mut self, id: u64) -> Shown {
        let cgroup = self.paths.path(id);
        let first_sight = !self.parsed.contains_key(&id);
        let identity = self.identity(id, &cgroup);
        let mut shown = Shown {
            cgroup,
            ..Shown::default()
        };
        let Some(identity) = identity else {
            return shown;
        };
        let mut names = self.names(&identity);
        if first_sight && names.unnamed(&identity) && self.runtimes.status().up {
            self.runtimes.refresh();
            names = self.names(&identity);
        }
        if let Some(pod) = names.pod {
            shown.namespace = Some(pod.namespace);
            shown.pod = Some(pod.name);
        }
        if let Some(container) = names.container {
            if let (None, Some(pod)) = (&shown.pod, container.pod) {
                shown.namespace = Some(pod.namespace);
                shown.pod = Some(pod.name);
            }
            shown.container = Some(container.name).filter(|name| !name.is_empty());
            shown.container_id = Some(container.id);
        }
        shown
    }

    /// What the cache names now of `identity`'s pod and container.
    fn names(&self, identity: &CgroupIdentity) -> Names {
        Names {
            pod: (identity.pod.as_ref()).and_then(|pod| self.runtimes.pod(&pod.uid)),
            container: (identity.container.as_ref()).and_then(|c| self.runtimes.container(&c.id)),
        }
    }

    /// The parsed identity of `id` at `path`, parsed once (an id printed as a number, its
    /// cgroup gone or not found yet, is parsed again next time).
    fn identity(&mut self, id: u64, path: &str) -> Option<CgroupIdentity> {
        if let Some(known) = self.parsed.get(&id) {
            return known.clone();
        }
        let identity = parse_cgroup_path(path);
        if path.starts_with('/') {
            if self.parsed.len() >= MAX_KNOWN {
                self.parsed.clear();
            }
            self.parsed.insert(id, identity.clone());
        }
        identity
    }
}

/// A cgroup's pod and container as the cache names them.
struct Names {
    pod: Option<PodNames>,
    container: Option<ContainerNames>,
}

impl Names {
    /// Whether the cgroup's pod or container (those its path has) goes unnamed: a pod
    /// named neither itself nor through its container.
    fn unnamed(&self, identity: &CgroupIdentity) -> bool {
        let pod_named =
            self.pod.is_some() || self.container.as_ref().is_some_and(|c| c.pod.is_some());
        (identity.pod.is_some() && !pod_named)
            || (identity.container.is_some() && self.container.is_none())
    }
}

/// Paths only: nothing is named (`--runtime-endpoint none`, golden tests).
impl From<CgroupPaths> for Identities {
    fn from(paths: CgroupPaths) -> Identities {
        Identities::new(paths, Runtimes::none())
    }
}
