//! The Docker Engine API (Docker, podman's compatible service) over its unix socket: every
//! container, running or not, with its name and, where kubelet's labels say (cri-dockerd),
//! its pod. (podman 4.3's `kube play` puts no such labels on a pod's containers: they are
//! named as plain containers, `POD-CONTAINER`.)

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::cache::Listing;
use super::cri::MAX_ANSWER;
use super::{ContainerNames, PodNames};

/// Every container, in every state. Unversioned: the daemon's own API version answers
/// (Docker 29 refuses versions below 1.44, so a pinned old one would not do), and the
/// fields read here have not changed since the first versions.
pub const CONTAINERS: &str = "/containers/json?all=true";

/// Labels kubelet puts on its containers (cri-dockerd keeps them as Docker labels).
const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const POD_NAME: &str = "io.kubernetes.pod.name";
const POD_UID: &str = "io.kubernetes.pod.uid";
const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// cri-dockerd's label for what a container is: `podsandbox` for a pod's pause container.
const DOCKER_TYPE: &str = "io.kubernetes.docker.type";

/// One container of the list, as far as it is read.
#[derive(Deserialize)]
struct Summary {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Option<Vec<String>>,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

/// What the daemon at `path` lists now, bounded by `timeout` from connect to the last byte.
pub async fn list(path: &Path, timeout: Duration) -> Result<Listing> {
    let body = tokio::time::timeout(timeout, get(path, CONTAINERS))
        .await
        .map_err(|_| anyhow!("GET {CONTAINERS}: no answer in {timeout:?}"))??;
    names(&body).with_context(|| format!("GET {CONTAINERS}"))
}

/// The body of a GET of `target` at the socket `path`, if the answer is a success.
async fn get(path: &Path, target: &str) -> Result<Bytes> {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .context("cannot connect")?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(connection);
    let request = Request::get(target)
        .header(hyper::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .context("request")?;
    let response = sender
        .send_request(request)
        .await
        .with_context(|| format!("GET {target}"))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| anyhow!("GET {target}: reading the answer: {e}"))?
        .to_bytes();
    if status != StatusCode::OK {
        bail!("GET {target}: {status}: {}", first_line(&body));
    }
    Ok(body)
}

/// The start of an error answer (Docker's `{"message":"..."}`), printable on one line.
fn first_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next().unwrap_or("").trim();
    line.chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The names in the daemon's container list.
pub fn names(body: &[u8]) -> Result<Listing> {
    let summaries: Vec<Summary> =
        serde_json::from_slice(body).context("not a list of containers")?;
    let mut listing = Listing::default();
    for summary in summaries.into_iter().filter(|s| !s.id.is_empty()) {
        let labels = summary.labels.unwrap_or_default();
        let pod = pod(&labels);
        if let Some(pod) = &pod {
            listing.pods.push(pod.clone());
        }
        let name = if pod.is_none() {
            own_name(summary.names)
        } else if labels.get(DOCKER_TYPE).is_some_and(|t| t == "podsandbox") {
            String::new()
        } else {
            labels
                .get(CONTAINER_NAME)
                .cloned()
                .unwrap_or_else(|| own_name(summary.names))
        };
        listing.containers.push(ContainerNames {
            name,
            id: summary.id,
            pod,
        });
    }
    Ok(listing)
}

/// The container's pod, from kubelet's labels, when all three are there.
fn pod(labels: &HashMap<String, String>) -> Option<PodNames> {
    let label = |key| labels.get(key).filter(|v| !v.is_empty()).cloned();
    Some(PodNames {
        namespace: label(POD_NAMESPACE)?,
        name: label(POD_NAME)?,
        uid: label(POD_UID)?,
    })
}

/// Docker's name for a container: its first name without the leading `/`.
fn own_name(names: Option<Vec<String>>) -> String {
    let first = names.and_then(|names| names.into_iter().next());
    let first = first.unwrap_or_default();
    first.strip_prefix('/').unwrap_or(&first).to_owned()
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeDocker, TempDir};
    use super::*;

    /// Two plain containers (one with null labels) and cri-dockerd's pair for one pod.
    const LIST: &str = r#"[
      {"Id": "aaa", "Names": ["/web"], "Image": "x", "Labels": {"a": "b"}, "State": "running"},
      {"Id": "bbb", "Names": ["/db", "/web/db"], "Labels": null},
      {"Id": "ccc", "Names": ["/k8s_POD_p_ns_u1_0"], "Labels": {
        "io.kubernetes.pod.namespace": "ns", "io.kubernetes.pod.name": "p",
        "io.kubernetes.pod.uid": "u1", "io.kubernetes.docker.type": "podsandbox"}},
      {"Id": "ddd", "Names": ["/k8s_app_p_ns_u1_0"], "Labels": {
        "io.kubernetes.pod.namespace": "ns", "io.kubernetes.pod.name": "p",
        "io.kubernetes.pod.uid": "u1", "io.kubernetes.container.name": "app",
        "io.kubernetes.docker.type": "container"}},
      {"Id": "eee"}
    ]"#;

    fn named(name: &str, id: &str, pod: Option<&PodNames>) -> ContainerNames {
        ContainerNames {
            name: name.into(),
            id: id.into(),
            pod: pod.cloned(),
        }
    }

    fn the_pod() -> PodNames {
        PodNames {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u1".into(),
        }
    }

    #[test]
    fn names_and_kubelet_labels() {
        let listing = names(LIST.as_bytes()).unwrap();
        let pod = the_pod();
        assert_eq!(listing.pods, [pod.clone(), pod.clone()]);
        let want = [
            named("web", "aaa", None),
            named("db", "bbb", None),
            named("", "ccc", Some(&pod)),
            named("app", "ddd", Some(&pod)),
            named("", "eee", None),
        ];
        assert_eq!(listing.containers, want);
    }

    #[test]
    fn garbage_is_an_error() {
        for body in [
            "",
            "{}",
            "[1, 2]",
            "[{\"Names\": [\"/x\"]}]",
            "\u{0}\u{1}",
            "[{",
        ] {
            assert!(names(body.as_bytes()).is_err(), "{body:?}");
        }
        assert_eq!(names(b"[]").unwrap(), Listing::default());
    }

    #[tokio::test]
    async fn lists_a_daemon_over_its_socket() {
        let daemon = FakeDocker::start("docker-list", 200, LIST);
        let listing = list(&daemon.path, Duration::from_secs(2)).await.unwrap();
        assert_eq!(listing.containers.len(), 5);
        assert_eq!(*daemon.targets.lock().unwrap(), [CONTAINERS]);
    }

    #[tokio::test]
    async fn failures_are_errors_that_say_why() {
        let daemon = FakeDocker::start("docker-500", 500, "{\"message\":\"boom\"}\n");
        let error = list(&daemon.path, Duration::from_secs(2))
            .await
            .unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains("500 Internal Server Error: {\"message\":\"boom\"}"),
            "{text}"
        );
        let daemon = FakeDocker::start("docker-bad", 200, "<html>");
        let error = list(&daemon.path, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(format!("{error:#}").contains("not a list of containers"));
        let dir = TempDir::new("docker-missing");
        let error = list(&dir.0.join("no.sock"), Duration::from_secs(2)).await;
        let text = format!("{:#}", error.unwrap_err());
        assert!(text.contains("cannot connect: No such file"), "{text}");
    }

    #[tokio::test]
    async fn a_silent_daemon_times_out() {
        let dir = TempDir::new("docker-silent");
        let path = dir.0.join("docker.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let error = list(&path, Duration::from_millis(200)).await.unwrap_err();
        assert!(
            format!("{error:#}").contains("no answer in 200ms"),
            "{error:#}"
        );
    }
}
