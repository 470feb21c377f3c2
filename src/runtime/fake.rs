//! Stand-ins for the runtimes in unit tests: a CRI runtime service (tonic, answering only
//! the two list calls) and a Docker API (hyper, answering one canned reply), each on a unix
//! socket in a directory of its own, served by a tokio runtime of its own.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use tonic::codegen::tokio_stream::wrappers::UnixListenerStream;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};

use super::PodNames;

/// A directory under the system's temporary one, removed with everything in it on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("tcpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tokio runtime serving one unix socket; stopping it removes the socket.
struct Served {
    runtime: Option<tokio::runtime::Runtime>,
    path: PathBuf,
}

impl Served {
    fn new(path: &Path) -> (Served, tokio::net::UnixListener) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let _ = std::fs::remove_file(path);
        let listener = {
            let _context = runtime.enter();
            tokio::net::UnixListener::bind(path).unwrap()
        };
        let served = Served {
            runtime: Some(runtime),
            path: path.to_owned(),
        };
        (served, listener)
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.runtime.as_ref().unwrap().spawn(task);
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the fake CRI runtime answers, and when it was asked.
#[derive(Default)]
pub struct CriState {
    pub sandboxes: Vec<cri::PodSandbox>,
    pub containers: Vec<cri::Container>,
    /// Every call answers this error instead.
    pub refuse: Option<Code>,
    /// Every call waits this long before answering.
    pub hang: Option<Duration>,
    /// When ListPodSandbox was called.
    pub calls: Vec<Instant>,
}

/// A fake CRI runtime service on `path`.
pub struct FakeCri {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub state: Arc<Mutex<CriState>>,
    _served: Served,
    _tmp: Option<TempDir>,
}

impl FakeCri {
    /// A fake in a new temporary directory, on its `cri.sock`.
    pub fn start(name: &str) -> FakeCri {
        let tmp = TempDir::new(name);
        let mut fake = FakeCri::at(&tmp.0.join("cri.sock"));
        fake._tmp = Some(tmp);
        fake
    }

    /// A fake on `path` (its directory must exist).
    pub fn at(path: &Path) -> FakeCri {
        let state = Arc::new(Mutex::new(CriState::default()));
        let (served, listener) = Served::new(path);
        let service = RuntimeServiceServer::new(Answers(state.clone()));
        served.spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(UnixListenerStream::new(listener))
                .await;
        });
        FakeCri {
            path: path.to_owned(),
            dir: path.parent().unwrap().to_owned(),
            state,
            _served: served,
            _tmp: None,
        }
    }

    /// Lists these pods (with their sandbox ids) and containers (id, sandbox id, name).
    pub fn set(&self, pods: Vec<(PodNames, &str)>, containers: Vec<(&str, &str, &str)>) {
        let mut state = self.state.lock().unwrap();
        state.sandboxes = pods.iter().map(|(pod, id)| sandbox(id, pod)).collect();
        state.containers = containers
            .iter()
            .map(|(id, sandbox, name)| container(id, sandbox, name))
            .collect();
    }

    pub fn refuse(&self, code: Code) {
        self.state.lock().unwrap().refuse = Some(code);
    }

    pub fn hang(&self, wait: Duration) {
        self.state.lock().unwrap().hang = Some(wait);
    }

    /// How many times ListPodSandbox was called.
    pub fn calls(&self) -> Vec<Instant> {
        self.state.lock().unwrap().calls.clone()
    }
}

/// A sandbox of `pod` with this id.
pub fn sandbox(id: &str, pod: &PodNames) -> cri::PodSandbox {
    cri::PodSandbox {
        id: id.into(),
        metadata: Some(cri::PodSandboxMetadata {
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            namespace: pod.namespace.clone(),
            attempt: 0,
        }),
        ..cri::PodSandbox::default()
    }
}

/// A container named `name` with this id, in the sandbox `sandbox`.
pub fn container(id: &str, sandbox: &str, name: &str) -> cri::Container {
    cri::Container {
        id: id.into(),
        pod_sandbox_id: sandbox.into(),
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        ..cri::Container::default()
    }
}

/// The fake's answers, from its state.
struct Answers(Arc<Mutex<CriState>>);

impl Answers {
    /// Waits as told, then answers `answer` of the state or the refusal.
    async fn answer<T>(&self, answer: impl FnOnce(&CriState) -> T) -> Result<Response<T>, Status> {
        let hang = self.0.lock().unwrap().hang;
        if let Some(wait) = hang {
            tokio::time::sleep(wait).await;
        }
        let state = self.0.lock().unwrap();
        match state.refuse {
            Some(code) => Err(Status::new(code, "refused by the fake")),
            None => Ok(Response::new(answer(&state))),
        }
    }
}

type Events = Pin<Box<dyn Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>>;

/// The service: the two list calls, and every other call unimplemented. One macro writes
/// the whole impl, since async_trait must see the generated methods.
macro_rules! runtime_service {
    ($($call:ident: $request:ident -> $response:ident;)*) => {
        #[tonic::async_trait]
        impl RuntimeService for Answers {
            type GetContainerEventsStream = Events;

            async fn list_pod_sandbox(
                &self,
                _: Request<cri::ListPodSandboxRequest>,
            ) -> Result<Response<cri::ListPodSandboxResponse>, Status> {
                self.0.lock().unwrap().calls.push(Instant::now());
                self.answer(|state| cri::ListPodSandboxResponse {
                    items: state.sandboxes.clone(),
                })
                .await
            }

            async fn list_containers(
                &self,
                _: Request<cri::ListContainersRequest>,
            ) -> Result<Response<cri::ListContainersResponse>, Status> {
                self.answer(|state| cri::ListContainersResponse {
                    containers: state.containers.clone(),
                })
                .await
            }

            async fn get_container_events(
                &self,
                _: Request<cri::GetEventsRequest>,
            ) -> Result<Response<Events>, Status> {
                Err(Status::unimplemented("get_container_events"))
            }

            $(
                async fn $call(
                    &self,
                    _: Request<cri::$request>,
                ) -> Result<Response<cri::$response>, Status> {
                    Err(Status::unimplemented(stringify!($call)))
                }
            )*
        }
    };
}

runtime_service! {
    version: VersionRequest -> VersionResponse;
    run_pod_sandbox: RunPodSandboxRequest -> RunPodSandboxResponse;
    stop_pod_sandbox: StopPodSandboxRequest -> StopPodSandboxResponse;
    remove_pod_sandbox: RemovePodSandboxRequest -> RemovePodSandboxResponse;
    pod_sandbox_status: PodSandboxStatusRequest -> PodSandboxStatusResponse;
    create_container: CreateContainerRequest -> CreateContainerResponse;
    start_container: StartContainerRequest -> StartContainerResponse;
    stop_container: StopContainerRequest -> StopContainerResponse;
    remove_container: RemoveContainerRequest -> RemoveContainerResponse;
    container_status: ContainerStatusRequest -> ContainerStatusResponse;
    update_container_resources: UpdateContainerResourcesRequest -> UpdateContainerResourcesResponse;
    reopen_container_log: ReopenContainerLogRequest -> ReopenContainerLogResponse;
    exec_sync: ExecSyncRequest -> ExecSyncResponse;
    exec: ExecRequest -> ExecResponse;
    attach: AttachRequest -> AttachResponse;
    port_forward: PortForwardRequest -> PortForwardResponse;
    container_stats: ContainerStatsRequest -> ContainerStatsResponse;
    list_container_stats: ListContainerStatsRequest -> ListContainerStatsResponse;
    pod_sandbox_stats: PodSandboxStatsRequest -> PodSandboxStatsResponse;
    list_pod_sandbox_stats: ListPodSandboxStatsRequest -> ListPodSandboxStatsResponse;
    update_runtime_config: UpdateRuntimeConfigRequest -> UpdateRuntimeConfigResponse;
    status: StatusRequest -> StatusResponse;
    checkpoint_container: CheckpointContainerRequest -> CheckpointContainerResponse;
    list_metric_descriptors: ListMetricDescriptorsRequest -> ListMetricDescriptorsResponse;
    list_pod_sandbox_metrics: ListPodSandboxMetricsRequest -> ListPodSandboxMetricsResponse;
    runtime_config: RuntimeConfigRequest -> RuntimeConfigResponse;
}

/// A fake Docker API on `path`: every request gets `status` and `body`; the request
/// targets are recorded.
pub struct FakeDocker {
    pub path: PathBuf,
    pub targets: Arc<Mutex<Vec<String>>>,
    _served: Served,
    _tmp: TempDir,
}

impl FakeDocker {
    pub fn start(name: &str, status: u16, body: &str) -> FakeDocker {
        let tmp = TempDir::new(name);
        let path = tmp.0.join("docker.sock");
        let (served, listener) = Served::new(&path);
        let targets = Arc::new(Mutex::new(Vec::new()));
        let reply = (status, Bytes::from(body.to_owned()));
        served.spawn(serve_docker(listener, reply, targets.clone()));
        FakeDocker {
            path,
            targets,
            _served: served,
            _tmp: tmp,
        }
    }
}

async fn serve_docker(
    listener: tokio::net::UnixListener,
    reply: (u16, Bytes),
    targets: Arc<Mutex<Vec<String>>>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        let (reply, targets) = (reply.clone(), targets.clone());
        let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
            targets.lock().unwrap().push(request.uri().to_string());
            let response = hyper::Response::builder()
                .status(reply.0)
                .header("content-type", "application/json")
                .body(Full::new(reply.1.clone()));
            async move { response }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service),
        );
    }
}
