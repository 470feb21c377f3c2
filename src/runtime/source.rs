//! Which sockets the cache asks, and in which API: the `--runtime-endpoint` turned into a
//! list of sources, and each source asked for its listing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use super::cache::Listing;
use super::{cri, docker, Endpoint};

/// The CRI sockets looked for in auto mode: containerd's, then CRI-O's (under both names of
/// /run, which are one directory where /var/run is a link to /run).
pub const CRI_SOCKETS: [&str; 3] = [
    "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/run/crio/crio.sock",
];

/// The Docker-API sockets looked for when DOCKER_HOST does not name a unix socket: Docker's
/// and podman's system service.
pub const DOCKER_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/podman/podman.sock"];

/// Which protocol a socket speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// The CRI v1 runtime service (gRPC): containerd, CRI-O.
    Cri,
    /// The Docker Engine API (HTTP/1.1): Docker, podman's compatible service.
    Docker,
}

/// One socket the cache asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub api: Api,
    pub path: PathBuf,
    /// Named by the user: a missing socket is an error. Otherwise it is asked only while
    /// it exists, and its absence is silent.
    pub named: bool,
}

impl Source {
    fn found(api: Api, path: &str) -> Source {
        Source {
            api,
            path: PathBuf::from(path),
            named: false,
        }
    }

    /// The socket as a URL, for messages and `Status`.
    pub fn url(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// What the runtime at this socket lists now, each call bounded by `timeout`.
    pub async fn list(&self, timeout: Duration) -> Result<Listing> {
        match self.api {
            Api::Cri => cri::list(&self.path, timeout).await,
            Api::Docker => docker::list(&self.path, timeout).await,
        }
    }
}

/// The sources of `endpoint`, given DOCKER_HOST's value.
pub fn sources(endpoint: &Endpoint, docker_host: Option<&str>) -> Vec<Source> {
    let mut sources: Vec<Source> = match endpoint {
        Endpoint::None => return Vec::new(),
        Endpoint::Auto => CRI_SOCKETS
            .iter()
            .map(|path| Source::found(Api::Cri, path))
            .collect(),
        Endpoint::Cri(path) => vec![Source {
            api: Api::Cri,
            path: path.clone(),
            named: true,
        }],
    };
    match docker_host.and_then(unix_socket) {
        Some(path) => sources.push(Source {
            api: Api::Docker,
            path,
            named: false,
        }),
        None => sources.extend(DOCKER_SOCKETS.iter().map(|p| Source::found(Api::Docker, p))),
    }
    sources
}

/// The path of a `unix:///PATH` URL (DOCKER_HOST's form), if `url` is one.
fn unix_socket(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("unix://")?;
    (path.starts_with('/') && path.len() > 1).then(|| PathBuf::from(path))
}

/// Which of `sources` to ask now: the named ones, and the others whose socket exists and is
/// not the same file as an earlier one's (a runtime is asked once, by its first name).
pub fn in_use(sources: &[Source]) -> Vec<bool> {
    let mut seen: Vec<PathBuf> = Vec::new();
    sources
        .iter()
        .map(|source| {
            if source.named {
                return true;
            }
            let Ok(real) = Path::new(&source.path).canonicalize() else {
                return false;
            };
            let first = !seen.contains(&real);
            seen.push(real);
            first
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(sources: &[Source]) -> Vec<(Api, &str, bool)> {
        sources
            .iter()
            .map(|s| (s.api, s.path.to_str().unwrap(), s.named))
            .collect()
    }

    #[test]
    fn auto_looks_for_every_runtime() {
        let found = sources(&Endpoint::Auto, None);
        let mut want: Vec<(Api, &str, bool)> =
            CRI_SOCKETS.iter().map(|p| (Api::Cri, *p, false)).collect();
        want.extend(DOCKER_SOCKETS.iter().map(|p| (Api::Docker, *p, false)));
        assert_eq!(paths(&found), want);
        let tcp = sources(&Endpoint::Auto, Some("tcp://127.0.0.1:2375"));
        assert_eq!(tcp, found);
    }

    #[test]
    fn docker_host_replaces_the_docker_sockets() {
        let found = sources(&Endpoint::Auto, Some("unix:///tmp/d.sock"));
        assert_eq!(found.len(), CRI_SOCKETS.len() + 1);
        assert_eq!(paths(&found[3..]), [(Api::Docker, "/tmp/d.sock", false)]);
        let relative = sources(&Endpoint::Auto, Some("unix://d.sock"));
        assert_eq!(relative, sources(&Endpoint::Auto, None));
    }

    #[test]
    fn a_named_cri_socket_comes_with_the_docker_ones() {
        let named = Endpoint::Cri(PathBuf::from("/run/x.sock"));
        let found = sources(&named, None);
        assert_eq!(paths(&found[..1]), [(Api::Cri, "/run/x.sock", true)]);
        assert_eq!(found[1..], sources(&Endpoint::Auto, None)[3..]);
        assert!(sources(&Endpoint::None, Some("unix:///tmp/d.sock")).is_empty());
    }

    #[test]
    fn in_use_skips_missing_and_repeated_sockets() {
        let dir = std::env::temp_dir().join(format!("tcpt-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.sock");
        std::fs::write(&file, "").unwrap();
        let link = dir.join("b.sock");
        let _ = std::os::unix::fs::symlink(&file, &link);
        let source = |path: &Path, named| Source {
            api: Api::Cri,
            path: path.to_owned(),
            named,
        };
        let missing = dir.join("missing.sock");
        let all = [
            source(&missing, false),
            source(&file, false),
            source(&link, false),
            source(&missing, true),
        ];
        let used = in_use(&all);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(used, [false, true, false, true]);
    }
}
