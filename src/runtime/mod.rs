//! Names of pods and containers, from the node's container runtime (never from the API
//! server): the CRI runtime service that kubelet uses (containerd, CRI-O) and the
//! Docker-compatible API (Docker, podman's service). Looked up off the BPF hot path: a
//! cache filled by a thread of its own, refreshed when an unknown id is asked for (at most
//! once a second), bounded, and keeping a gone container's names for a grace period.
//!
//! The parts: `source` (which sockets, in which API), `cri` and `docker` (one listing from
//! a socket), `cache` (the names, their grace period and bound), `worker` (the thread, its
//! spacing of refreshes and its error lines).

mod cache;
mod cri;
mod docker;
#[cfg(test)]
mod fake;
mod source;
#[cfg(test)]
mod tests;
mod worker;

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLockReadGuard};
use std::time::{Duration, Instant};

use crate::cli::UsageError;

use cache::{Listing, Names, MAX_ENTRIES, NO_SOURCE};
use source::Source;
use worker::{Report, Settings, Shared};

/// How long a container's (or a pod's) names stay after its runtime stopped listing it:
/// events of its last sockets, and a scrape after it ended, still name it.
pub const GRACE: Duration = Duration::from_secs(300);
/// Least time between two refreshes.
const SPACING: Duration = Duration::from_secs(1);
/// Bound on each call to a runtime, connecting included.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `start` waits for the first refresh: a call's timeout and a little more, so
/// that by then every runtime has answered or been given up on (each answer is taken as it
/// comes, so one that hangs does not hold back the others' names).
const START_WAIT: Duration = Duration::from_millis(2_500);
/// How long `refresh` waits: the spacing since the last refresh, then the calls.
const REFRESH_WAIT: Duration = Duration::from_millis(3_500);

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
    /// There are endpoints, and the last refresh of every one succeeded.
    pub up: bool,
    /// Refreshes of an endpoint that failed, since start.
    pub errors: u64,
}

/// The names cache. Cheap to clone (one shared cache); Send and Sync. Its thread ends when
/// the last clone is dropped. `Default` is [`Runtimes::none`].
#[derive(Clone)]
pub struct Runtimes {
    owner: Arc<Owner>,
}

/// Stops the cache's thread when the last `Runtimes` goes.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl Default for Runtimes {
    fn default() -> Runtimes {
        Runtimes::none()
    }
}

impl Runtimes {
    /// Starts the cache's thread for `endpoint`, and fills the cache once before returning
    /// (bounded by a short timeout), so that names of what runs now are known at once.
    /// `tool` prefixes the one stderr line written when a runtime cannot be reached.
    pub fn start(endpoint: &Endpoint, tool: &'static str, verbose: bool) -> Runtimes {
        let docker_host = std::env::var("DOCKER_HOST").ok();
        let sources = source::sources(endpoint, docker_host.as_deref());
        if verbose {
            let asked = source::in_use(&sources);
            let urls: Vec<String> = (sources.iter().zip(asked))
                .filter(|(_, asked)| *asked)
                .map(|(source, _)| source.url())
                .collect();
            let urls = if urls.is_empty() {
                "none".into()
            } else {
                urls.join(", ")
            };
            eprintln!("{tool}: container runtimes asked for names: {urls}");
        }
        let report: Report = Arc::new(move |line: &str| eprintln!("{tool}: {line}"));
        Runtimes::launch(sources, Settings::default(), report)
    }

    /// The cache asking `sources`, run as `settings` say, its lines going to `report`.
    fn launch(sources: Vec<Source>, settings: Settings, report: Report) -> Runtimes {
        if sources.is_empty() {
            return Runtimes::none();
        }
        let shared = Arc::new(Shared::new(Names::new(settings.limit), settings, true));
        if let Err(error) = worker::spawn(shared.clone(), sources, report.clone()) {
            report(&format!("{error:#}; showing cgroup paths"));
            return Runtimes::none();
        }
        shared.wait_finished(1, START_WAIT);
        Runtimes {
            owner: Arc::new(Owner(shared)),
        }
    }

    /// A cache that never names anything (`--runtime-endpoint none`, golden tests).
    pub fn none() -> Runtimes {
        Runtimes::fixed(Vec::new(), Vec::new())
    }

    /// Fixed names, for golden tests: never refreshed.
    pub fn fixed(pods: Vec<PodNames>, containers: Vec<ContainerNames>) -> Runtimes {
        let mut names = Names::new(MAX_ENTRIES);
        let listing = Listing { pods, containers };
        names.take(NO_SOURCE, listing, Instant::now(), GRACE);
        let shared = Shared::new(names, Settings::default(), false);
        Runtimes {
            owner: Arc::new(Owner(Arc::new(shared))),
        }
    }

    fn names(&self) -> RwLockReadGuard<'_, Names> {
        self.owner
            .0
            .names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The pod with this uid (with dashes, as `identity::PodRef::uid`), if known. An unknown
    /// uid asks for a refresh (at most once a second) and answers None now.
    pub fn pod(&self, uid: &str) -> Option<PodNames> {
        let found = self.names().pod(uid);
        if found.is_none() {
            self.owner.0.ask();
        }
        found
    }

    /// The container with this full id, if known; an unknown id asks for a refresh.
    pub fn container(&self, id: &str) -> Option<ContainerNames> {
        let found = self.names().container(id);
        if found.is_none() {
            self.owner.0.ask();
        }
        found
    }

    /// Refreshes now, waiting for the answer (bounded by a short timeout). Refreshes stay a
    /// second apart: one asked inside the second starts when it ends. A refresh already
    /// under way serves the call when no lookup has missed since it started: it answers
    /// every id missed before, so a caller that looked up, missed, then calls this waits
    /// for no second refresh.
    pub fn refresh(&self) {
        self.owner.0.refresh(REFRESH_WAIT);
    }

    /// Refreshes now, waiting, only while the runtimes answer (the last refresh of every
    /// endpoint succeeded): what a caller that met an unnamed new cgroup does, so that its
    /// output never stalls on a runtime that does not answer. Whether it refreshed.
    pub fn refresh_if_up(&self) -> bool {
        let up = self.status().up;
        if up {
            self.refresh();
        }
        up
    }

    /// The endpoints asked now (named ones, and found ones whose socket exists), whether
    /// each answered its last refresh (false with none), and the failed calls since start.
    pub fn status(&self) -> Status {
        self.owner.0.status()
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            grace: GRACE,
            spacing: SPACING,
            call_timeout: CALL_TIMEOUT,
            limit: MAX_ENTRIES,
        }
    }
}
