//! The CRI v1 runtime service (containerd, CRI-O) over its unix socket: the pod sandboxes
//! and containers it lists, in every state, as names.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{Container, ListContainersRequest, ListPodSandboxRequest, PodSandbox};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::cache::Listing;
use super::{ContainerNames, PodNames};

/// Largest answer taken (gRPC's default, 4 MiB, is a few thousand containers with their
/// labels and annotations; crictl takes 16 MiB).
pub const MAX_ANSWER: usize = 64 << 20;

/// A channel to the socket at `path`. The connection is made at the first call, so its
/// failure is that call's error, under that call's timeout.
fn channel(path: &Path) -> Result<Channel> {
    let path = path.to_owned();
    let connect = move |_: Uri| {
        let path = path.clone();
        async move { UnixStream::connect(path).await.map(TokioIo::new) }
    };
    // tonic wants a URI; the connector ignores it and dials the socket.
    let endpoint = Endpoint::try_from("http://[::]:50051").context("CRI endpoint")?;
    Ok(endpoint.connect_with_connector_lazy(tower::service_fn(connect)))
}

/// What the runtime at `path` lists now: ListPodSandbox and ListContainers, side by side,
/// each bounded by `timeout`.
pub async fn list(path: &Path, timeout: Duration) -> Result<Listing> {
    let client = RuntimeServiceClient::new(channel(path)?).max_decoding_message_size(MAX_ANSWER);
    let (mut sandboxes, mut containers) = (client.clone(), client);
    let (sandboxes, containers) = tokio::join!(
        call(
            "ListPodSandbox",
            timeout,
            sandboxes.list_pod_sandbox(ListPodSandboxRequest { filter: None })
        ),
        call(
            "ListContainers",
            timeout,
            containers.list_containers(ListContainersRequest { filter: None })
        ),
    );
    Ok(names(sandboxes?.items, containers?.containers))
}

/// One call's answer, or why there is none.
async fn call<T>(
    name: &str,
    timeout: Duration,
    answer: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, answer).await {
        Err(_) => Err(anyhow!("{name}: no answer in {timeout:?}")),
        Ok(Err(status)) => Err(anyhow!("{name}: {}", reason(&status))),
        Ok(Ok(answer)) => Ok(answer.into_inner()),
    }
}

/// A failed call in one line: the gRPC code and its message (a connection's failure is
/// tonic's `Unavailable` with the system's error as message), or the causes without one.
fn reason(status: &tonic::Status) -> String {
    let mut reason = format!("{:?}", status.code());
    if !status.message().is_empty() {
        return format!("{reason}: {}", status.message());
    }
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        reason = format!("{reason}: {error}");
        cause = error.source();
    }
    reason
}

/// The names in a runtime's answers: pods from the sandboxes' metadata, containers with
/// their sandbox's pod, and each sandbox as the nameless container it runs (the pause
/// container, whose cgroup is named after the sandbox id).
pub fn names(sandboxes: Vec<PodSandbox>, containers: Vec<Container>) -> Listing {
    let mut listing = Listing::default();
    let mut pod_of: HashMap<String, PodNames> = HashMap::new();
    for sandbox in sandboxes {
        let pod = sandbox.metadata.map(|meta| PodNames {
            namespace: meta.namespace,
            name: meta.name,
            uid: meta.uid,
        });
        if let Some(pod) = &pod {
            listing.pods.push(pod.clone());
            pod_of.insert(sandbox.id.clone(), pod.clone());
        }
        listing.containers.push(ContainerNames {
            name: String::new(),
            id: sandbox.id,
            pod,
        });
    }
    for container in containers {
        listing.containers.push(ContainerNames {
            name: container.metadata.map(|meta| meta.name).unwrap_or_default(),
            pod: pod_of.get(&container.pod_sandbox_id).cloned(),
            id: container.id,
        });
    }
    listing
}

#[cfg(test)]
mod tests {
    use super::super::fake::{self, FakeCri};
    use super::*;

    fn pod(n: u32) -> PodNames {
        PodNames {
            namespace: format!("ns{n}"),
            name: format!("pod{n}"),
            uid: format!("uid-{n}"),
        }
    }

    fn named(name: &str, id: &str, pod: Option<PodNames>) -> ContainerNames {
        ContainerNames {
            name: name.into(),
            id: id.into(),
            pod,
        }
    }

    #[test]
    fn sandboxes_name_pods_and_their_containers() {
        let sandboxes = vec![fake::sandbox("s1", &pod(1)), fake::sandbox("s2", &pod(2))];
        let containers = vec![
            fake::container("c1", "s1", "app"),
            fake::container("c2", "s2", "sidecar"),
            fake::container("c3", "gone", "orphan"),
        ];
        let listing = names(sandboxes, containers);
        assert_eq!(listing.pods, [pod(1), pod(2)]);
        let want = [
            named("", "s1", Some(pod(1))),
            named("", "s2", Some(pod(2))),
            named("app", "c1", Some(pod(1))),
            named("sidecar", "c2", Some(pod(2))),
            named("orphan", "c3", None),
        ];
        assert_eq!(listing.containers, want);
    }

    #[test]
    fn missing_metadata_is_no_name() {
        let sandbox = PodSandbox {
            id: "s1".into(),
            ..PodSandbox::default()
        };
        let container = Container {
            id: "c1".into(),
            pod_sandbox_id: "s1".into(),
            ..Container::default()
        };
        let listing = names(vec![sandbox], vec![container]);
        assert!(listing.pods.is_empty());
        assert_eq!(
            listing.containers,
            [named("", "s1", None), named("", "c1", None)]
        );
    }

    #[tokio::test]
    async fn lists_a_runtime_over_its_socket() {
        let server = FakeCri::start("cri-list");
        server.set(vec![(pod(1), "s1")], vec![("c1", "s1", "app")]);
        let listing = list(&server.path, Duration::from_secs(2)).await.unwrap();
        assert_eq!(listing.pods, [pod(1)]);
        let app = named("app", "c1", Some(pod(1)));
        assert_eq!(listing.containers, [named("", "s1", Some(pod(1))), app]);
    }

    #[tokio::test]
    async fn failures_are_errors_that_say_why() {
        let server = FakeCri::start("cri-fail");
        let missing = server.dir.join("missing.sock");
        let error = list(&missing, Duration::from_secs(2)).await.unwrap_err();
        assert!(format!("{error:#}").contains("No such file"), "{error:#}");
        server.refuse(tonic::Code::PermissionDenied);
        let error = list(&server.path, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("PermissionDenied"),
            "{error:#}"
        );
        server.hang(Duration::from_secs(5));
        let error = list(&server.path, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(
            format!("{error:#}").contains("no answer in 200ms"),
            "{error:#}"
        );
    }
}
