//! Names of pods and containers, from the node's container runtime (never from the API
//! server): the CRI runtime service that kubelet uses (containerd, CRI-O) and the
//! Docker-compatible API (Docker, podman's service). Looked up off the BPF hot path: a
//! cache filled by a thread of its own, refreshed when an unknown id is asked for (at most
//! once a second), bounded, and keeping a gone container's names for a grace period.
//!
//! INTERFACE STUB: the signatures below are the contract the tools and the exporter use;
//! the implementation (cri.rs, docker.rs, the cache thread) fills them in.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::UsageError;

/// A pod as the runtime names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodNames {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A container as the runtime names it: its name (the Kubernetes container name, or
/// Docker's/podman's name without the leading `/`), its full id, and its pod where it is in
/// one. A pod sandbox's own (pause) container has no name: `name` is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerNames {
    pub name: String,
    pub id: String,
    pub pod: Option<PodNames>,
}

/// `--runtime-endpoint`: where to ask for names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Endpoint {
    /// The runtimes' usual sockets, those that exist: CRI (containerd, CRI-O) and the
    /// Docker-compatible API (DOCKER_HOST, Docker, podman).
    #[default]
    Auto,
    /// `none`: no runtime is asked; cgroup paths only.
    None,
    /// `unix:///PATH`: this CRI socket (the Docker-compatible ones are still looked for).
    Cri(PathBuf),
}

impl Endpoint {
    /// `auto`, `none` or `unix:///PATH` (crictl's form; a bare absolute path is taken too).
    pub fn parse(arg: &str) -> Result<Endpoint, UsageError> {
        match arg {
            "auto" => Ok(Endpoint::Auto),
            "none" => Ok(Endpoint::None),
            _ => {
                let path = arg.strip_prefix("unix://").unwrap_or(arg);
                if !path.starts_with('/') || path.len() < 2 {
                    return Err(UsageError::new(format!(
                        "invalid runtime endpoint: {arg} (auto, none or unix:///PATH)"
                    )));
                }
                Ok(Endpoint::Cri(PathBuf::from(path)))
            }
        }
    }
}

/// Whether the runtimes answer, for the exporter's metric and -v.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The endpoints in use, as URLs (`unix:///run/containerd/containerd.sock`).
    pub endpoints: Vec<String>,
    /// The last refresh of every endpoint succeeded.
    pub up: bool,
    /// Refreshes that failed, since start.
    pub errors: u64,
}

/// The names cache. Cheap to clone (one shared cache); Send and Sync.
#[derive(Clone, Default)]
pub struct Runtimes {
    _shared: Arc<()>,
    /// What `fixed` was given: (pods, containers).
    fixed: Arc<(Vec<PodNames>, Vec<ContainerNames>)>,
}

impl Runtimes {
    /// Starts the cache's thread for `endpoint`, and fills the cache once before returning
    /// (bounded by a short timeout), so that names of what runs now are known at once.
    /// `tool` prefixes the one stderr line written when a runtime cannot be reached.
    pub fn start(_endpoint: &Endpoint, _tool: &'static str, _verbose: bool) -> Runtimes {
        Runtimes::default()
    }

    /// A cache that never names anything (`--runtime-endpoint none`, golden tests).
    pub fn none() -> Runtimes {
        Runtimes::default()
    }

    /// Fixed names, for golden tests: never refreshed.
    pub fn fixed(pods: Vec<PodNames>, containers: Vec<ContainerNames>) -> Runtimes {
        Runtimes {
            fixed: Arc::new((pods, containers)),
            ..Runtimes::default()
        }
    }

    /// The pod with this uid (with dashes, as `identity::PodRef::uid`), if known. An unknown
    /// uid asks for a refresh (at most once a second) and answers None now.
    pub fn pod(&self, uid: &str) -> Option<PodNames> {
        self.fixed.0.iter().find(|pod| pod.uid == uid).cloned()
    }

    /// The container with this full id, if known; an unknown id asks for a refresh.
    pub fn container(&self, id: &str) -> Option<ContainerNames> {
        self.fixed.1.iter().find(|c| c.id == id).cloned()
    }

    /// Refreshes now, waiting for the answer (bounded by a short timeout).
    pub fn refresh(&self) {}

    pub fn status(&self) -> Status {
        Status::default()
    }
}
