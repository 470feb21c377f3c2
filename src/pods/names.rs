//! What the output says of a socket's cgroup: its path, and its pod's and container's
//! names (JSON, `--show-pod`, tcprtt's `--bypod`).

use std::collections::{HashMap, HashSet};

use crate::container::CgroupPaths;
use crate::identity::{parse_cgroup_path, CgroupIdentity};
use crate::runtime::Runtimes;

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
    /// Cgroups whose names were waited for once.
    waited: HashSet<u64>,
}

impl Identities {
    pub fn new(paths: CgroupPaths, runtimes: Runtimes) -> Identities {
        Identities {
            paths,
            runtimes,
            parsed: HashMap::new(),
            waited: HashSet::new(),
        }
    }

    /// The path of cgroup `id` (see [`CgroupPaths::path`]).
    pub fn path(&mut self, id: u64) -> String {
        self.paths.path(id)
    }

    /// What the output says of cgroup `id`.
    pub fn of(&mut self, id: u64) -> Shown {
        let cgroup = self.paths.path(id);
        let identity = self.identity(id, &cgroup);
        let mut shown = Shown {
            cgroup,
            ..Shown::default()
        };
        if let Some(identity) = identity {
            let named = self.name(&identity, &mut shown);
            if !named && self.first_wait(id) && self.runtimes.refresh_if_up() {
                self.name(&identity, &mut shown);
            }
        }
        shown
    }

    /// Whether this is the first time cgroup `id` waits for the runtime's names: a container
    /// that just started is named by the next refresh, a second at most; once per cgroup.
    fn first_wait(&mut self, id: u64) -> bool {
        if self.waited.len() >= MAX_KNOWN {
            self.waited.clear();
        }
        self.waited.insert(id)
    }

    /// Fills `shown` with the runtime's names of `identity`; false if one it tells of is not
    /// named (yet).
    fn name(&self, identity: &CgroupIdentity, shown: &mut Shown) -> bool {
        let pod = identity.pod.as_ref().map(|pod| self.runtimes.pod(&pod.uid));
        if let Some(Some(pod)) = &pod {
            shown.namespace = Some(pod.namespace.clone());
            shown.pod = Some(pod.name.clone());
        }
        let container = identity
            .container
            .as_ref()
            .map(|c| self.runtimes.container(&c.id));
        if let Some(Some(container)) = &container {
            if let (None, Some(pod)) = (&shown.pod, &container.pod) {
                shown.namespace = Some(pod.namespace.clone());
                shown.pod = Some(pod.name.clone());
            }
            shown.container = Some(container.name.clone()).filter(|name| !name.is_empty());
            shown.container_id = Some(container.id.clone());
        }
        !matches!(pod, Some(None)) && !matches!(container, Some(None))
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

/// Paths only: nothing is named (`--runtime-endpoint none`, golden tests).
impl From<CgroupPaths> for Identities {
    fn from(paths: CgroupPaths) -> Identities {
        Identities::new(paths, Runtimes::none())
    }
}
