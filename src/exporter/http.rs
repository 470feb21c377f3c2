//! The exporter's HTTP side: GET the metrics (`--web.telemetry-path`), a landing page at /,
//! and the probes /-/healthy and /-/ready, over HTTP/1.1, plain or TLS (and HTTP/2 over TLS
//! by ALPN), with what the web config asks (`web_reload`: TLS taken at each handshake, rate
//! limit, headers and users at each request), served by hyper on a small tokio runtime of
//! its own thread, for every listener at once. The main thread owns the BPF state: each scrape asks it for the
//! exposition through a channel and waits for the answer on a oneshot.
//!
//! Every connection is a task of its own, so a slow, idle or hostile client delays only
//! itself, and every connection is bounded: `TLS_HANDSHAKE_TIMEOUT` for the handshake,
//! `HEADER_READ_TIMEOUT` for a request head of at most `MAX_HEADER_BYTES` (which also ends
//! an idle keep-alive; over HTTP/2, which hyper does not bound so, for as long without a
//! request being answered), and `RESPONSE_TIMEOUT` from a request to its response taken. At
//! most `MAX_CONNECTIONS` are open at once, HTTP/1.1 and HTTP/2 alike: a new one takes the
//! place of the one that has waited longest for a request (connections.rs), so held
//! connections never refuse a scrape; and at most `MAX_SCRAPES_IN_FLIGHT` scrapes are
//! answered at once, as promhttp bounds requests in flight. Request bodies are ignored.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Write};
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use super::auth::REALM;
use super::connections::{Connections, Shed, Slot};
use super::exposition::Format;
use super::web_reload::{LiveWebConfig, Served};

/// Connections open at once (fewer if the descriptor limit is lower); at the bound, a new
/// one takes the place of the one that has waited longest for a request.
pub const MAX_CONNECTIONS: usize = 1024;
/// Scrapes answered at once, as node_exporter's --web.max-requests (40); more get a 503.
pub const MAX_SCRAPES_IN_FLIGHT: usize = 40;
/// Time a client has to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a request head, from the connection's start or from the end
/// of the previous response (so also the longest a keep-alive connection stays idle).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Time from a request's arrival to its response taken by the client.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a scrape waits for the main thread's answer before a 503.
pub const SCRAPE_WAIT: Duration = Duration::from_secs(5);
/// Requests at once on one HTTP/2 connection (a scraper asks one at a time).
const MAX_STREAMS: u32 = 16;
/// Most header lines in a request.
const MAX_HEADERS: usize = 64;
/// hyper's read buffer (8 KiB at least): what a connection may hold of unread input.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Tasks run on two workers; bcrypt runs on the blocking pool, one at a time.
const WORKERS: usize = 2;
const BLOCKING_THREADS: usize = 2;
/// How often the HTTP thread looks at the SIGINT/SIGTERM flag.
const STOP_POLL: Duration = Duration::from_millis(50);
/// How long a stop waits for blocking work (a bcrypt) before the runtime is dropped.
const STOP_GRACE: Duration = Duration::from_millis(200);
/// Pause after a failed accept (out of descriptors, say) before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The landing page at /, linking to the metrics at `telemetry_path` (a plain path, see
/// options.rs, so it needs no escaping).
pub fn landing_page(telemetry_path: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>tcptools-exporter</title></head>\n\
        <body>\n<h1>tcptools-exporter {}</h1>\n\
        <p>TCP state changes, connect latency and RTT from kernel tracepoints.</p>\n\
        <p><a href=\"{telemetry_path}\">Metrics</a></p>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// A waiting scrape: the format it asked for, and where the main thread sends the
/// exposition, or `None` if it failed.
type Reply = (Format, oneshot::Sender<Option<Bytes>>);

/// What the HTTP side counts, for the exporter's own metrics.
pub struct Stats {
    /// Responses by status code.
    responses: Mutex<BTreeMap<u16, u64>>,
    scrape_errors: AtomicU64,
    /// The last scrape's duration, in nanoseconds.
    last_scrape_ns: AtomicU64,
    connections: Arc<Connections>,
}

/// The HTTP side's figures at a scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Serving {
    /// Responses by status code (200, 500 and 503 from the start, as promhttp has them).
    pub responses: Vec<(u16, u64)>,
    pub scrape_errors: u64,
    /// The previous scrape's duration (reading the kernel's counts and rendering).
    pub last_scrape_seconds: f64,
    pub connections_shed: u64,
    pub connections_refused: u64,
}

impl Stats {
    fn new(connections: Arc<Connections>) -> Stats {
        let codes = [200, 500, 503].map(|code| (code, 0));
        Stats {
            responses: Mutex::new(codes.into_iter().collect()),
            scrape_errors: AtomicU64::new(0),
            last_scrape_ns: AtomicU64::new(0),
            connections,
        }
    }

    fn count_response(&self, status: StatusCode) {
        let mut responses = self.responses.lock().unwrap_or_else(|e| e.into_inner());
        *responses.entry(status.as_u16()).or_default() += 1;
    }

    pub fn serving(&self) -> Serving {
        let responses = self.responses.lock().unwrap_or_else(|e| e.into_inner());
        let connections = &self.connections;
        Serving {
            responses: responses.iter().map(|(c, n)| (*c, *n)).collect(),
            scrape_errors: self.scrape_errors.load(Ordering::Relaxed),
            last_scrape_seconds: self.last_scrape_ns.load(Ordering::Relaxed) as f64 / 1e9,
            connections_shed: connections.shed.load(Ordering::Relaxed),
            connections_refused: connections.refused.load(Ordering::Relaxed),
        }
    }
}

/// The HTTP thread and the scrapes waiting for the main thread.
pub struct Server {
    scrapes: Receiver<Reply>,
    stop: Option<oneshot::Sender<()>>,
    thread: JoinHandle<Result<()>>,
    /// `https` with TLS, else `http`.
    scheme: &'static str,
    ready: Arc<AtomicBool>,
    stats: Arc<Stats>,
}

/// Starts serving `listeners` with `web` on a thread of its own, metrics at
/// `telemetry_path` and at most `max_connections` open, until a stop is requested (SIGINT,
/// SIGTERM) or `Server::join`. /-/ready answers 503 until `Server::set_ready`.
pub fn spawn(
    listeners: Vec<TcpListener>,
    web: Arc<LiveWebConfig>,
    telemetry_path: &str,
    max_connections: usize,
) -> Result<Server> {
    for listener in &listeners {
        listener
            .set_nonblocking(true)
            .context("cannot set up the listening socket")?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("http")
        .enable_io()
        .enable_time()
        .build()
        .context("cannot start the HTTP runtime")?;
    let (requests, scrapes) = mpsc::channel();
    let (stop, stopped) = oneshot::channel();
    // A reload keeps the scheme: the toolkit's, too, is chosen at start.
    let scheme = if web.current().web.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let connections = Connections::new(max_connections);
    let stats = Arc::new(Stats::new(connections.clone()));
    let ready = Arc::new(AtomicBool::new(false));
    let app = Arc::new(App {
        web,
        scrapes: requests,
        telemetry_path: telemetry_path.to_owned(),
        landing_page: Bytes::from(landing_page(telemetry_path)),
        ready: ready.clone(),
        scrapes_in_flight: Semaphore::new(MAX_SCRAPES_IN_FLIGHT),
        stats: stats.clone(),
    });
    let thread = thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            let served = runtime.block_on(serve(listeners, app, connections, stopped));
            // Open connections end here; a bcrypt under way is not waited for long.
            runtime.shutdown_timeout(STOP_GRACE);
            served
        })
        .context("cannot start the HTTP thread")?;
    Ok(Server {
        scrapes,
        stop: Some(stop),
        thread,
        scheme,
        ready,
        stats,
    })
}

impl Server {
    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// From now on /-/ready answers 200: the BPF programs are loaded and scrapes answered.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Waits up to `wait` for a scrape, then answers every scrape waiting, with one call of
    /// `render` per format asked for, which gets the HTTP side's figures and the format;
    /// false once the HTTP thread has ended. A failed render is one line on stderr, counted,
    /// and a 500 to the scrapes of its format.
    pub fn answer(
        &self,
        wait: Duration,
        mut render: impl FnMut(Serving, Format) -> Result<Vec<u8>>,
    ) -> bool {
        let mut waiting = Vec::new();
        match self.scrapes.recv_timeout(wait) {
            Ok(reply) => waiting.push(reply),
            Err(RecvTimeoutError::Timeout) => return true,
            Err(RecvTimeoutError::Disconnected) => return false,
        }
        loop {
            match self.scrapes.try_recv() {
                Ok(reply) => waiting.push(reply),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        // A scrape that gave up waiting no longer takes an answer.
        waiting.retain(|(_, reply)| !reply.is_closed());
        for format in [Format::Text, Format::Protobuf] {
            if waiting.iter().any(|(asked, _)| *asked == format) {
                let body = self.render(|serving| render(serving, format));
                for (_, reply) in waiting.extract_if(.., |(asked, _)| *asked == format) {
                    let _ = reply.send(body.clone());
                }
            }
        }
        true
    }

    /// One render, timed; `None` if it failed.
    fn render(&self, render: impl FnOnce(Serving) -> Result<Vec<u8>>) -> Option<Bytes> {
        let started = std::time::Instant::now();
        let rendered = render(self.stats.serving());
        let took = started.elapsed().as_nanos().try_into().unwrap_or(u64::MAX);
        self.stats.last_scrape_ns.store(took, Ordering::Relaxed);
        match rendered {
            Ok(body) => Some(Bytes::from(body)),
            Err(err) => {
                self.stats.scrape_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("tcptools-exporter: scrape failed: {err:#}");
                None
            }
        }
    }

    /// Stops serving and waits for the thread to end, with its error if it failed.
    pub fn join(mut self) -> Result<()> {
        self.ready.store(false, Ordering::Relaxed);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread
            .join()
            .map_err(|_| anyhow!("the HTTP thread failed"))?
    }
}

/// Accepts on every listener until stopped: through `stopped` (also when the Server is
/// dropped) or a signal.
async fn serve(
    listeners: Vec<TcpListener>,
    app: Arc<App>,
    connections: Arc<Connections>,
    mut stopped: oneshot::Receiver<()>,
) -> Result<()> {
    // Dropped on return, which ends every accept loop.
    let mut accepting = tokio::task::JoinSet::new();
    accepting.spawn(app.web.clone().watch());
    for listener in listeners {
        let listener = tokio::net::TcpListener::from_std(listener)
            .context("cannot set up the listening socket")?;
        let (app, connections) = (app.clone(), connections.clone());
        accepting.spawn(accept(listener, app, connections));
    }
    let mut stop_poll = tokio::time::interval(STOP_POLL);
    loop {
        tokio::select! {
            _ = &mut stopped => return Ok(()),
            _ = stop_poll.tick() => {
                if crate::signal::stop_requested() {
                    return Ok(());
                }
            }
        }
    }
}

/// One listener's accept loop: each connection gets a place (another may be shed for it)
/// and a task, or is closed at once if every open one has a request being answered.
async fn accept(listener: tokio::net::TcpListener, app: Arc<App>, connections: Arc<Connections>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if let Some((slot, shed)) = connections.admit() {
                    tokio::spawn(connection(stream, app.clone(), slot, shed));
                }
            }
            // ECONNABORTED concerns one client; running out of descriptors passes.
            Err(_) => tokio::time::sleep(ACCEPT_RETRY).await,
        }
    }
}

/// One connection, from TLS handshake (with the web config current then) to close, or until
/// it is shed for a newer one.
async fn connection(stream: tokio::net::TcpStream, app: Arc<App>, slot: Arc<Slot>, shed: Shed) {
    tokio::select! {
        _ = served(stream, app, slot) => {}
        // Dropping the connection's future closes its socket.
        _ = shed => {}
    }
}

async fn served(stream: tokio::net::TcpStream, app: Arc<App>, slot: Arc<Slot>) {
    let _ = stream.set_nodelay(true);
    let deadline = ResponseDeadline::default();
    let stream = Deadlined {
        inner: stream,
        deadline: deadline.clone(),
        timer: None,
    };
    let tls = app.web.current().web.tls.clone();
    match tls {
        None => http(stream, app, slot, deadline, false).await,
        Some(config) => {
            let acceptor = TlsAcceptor::from(config);
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            // A failed handshake (plain HTTP to the TLS port, a refused client
            // certificate) ends the connection; rustls has sent its alert.
            if let Ok(Ok(stream)) = handshake.await {
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                http(stream, app, slot, deadline, h2).await
            }
        }
    }
}

/// Serves HTTP/2 when the TLS handshake chose it (ALPN h2), else HTTP/1.1.
async fn http<S>(stream: S, app: Arc<App>, slot: Arc<Slot>, deadline: ResponseDeadline, h2: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let watched = slot.clone();
    let service = hyper::service::service_fn(move |request| {
        deadline.start();
        // Busy until answered, or until hyper drops the request (a reset HTTP/2 stream).
        let answering = slot.begin_request();
        let app = app.clone();
        async move {
            // Requests take the web config current at their arrival.
            let web = app.web.current();
            let mut response = app.respond(request, &web).await;
            web.decorate(&mut response);
            app.stats.count_response(response.status());
            drop(answering);
            Ok::<_, Infallible>(response)
        }
    });
    let io = TokioIo::new(stream);
    // Errors (a timeout, a malformed request, a client gone) concern this client only.
    // ALPN has told the protocol, so each has its builder (hyper-util's auto builder
    // cannot bound an HTTP/1.1 head's size).
    if h2 {
        let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .max_concurrent_streams(MAX_STREAMS)
            .serve_connection(io, service);
        // hyper's HTTP/2 server has no idle or header timeout: without this, a client that
        // sends nothing, or never ends a stream's headers, would hold its place for good.
        tokio::select! {
            _ = served => {}
            _ = idle_past(&watched, HEADER_READ_TIMEOUT) => {}
        }
        return;
    }
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .max_buf_size(READ_BUFFER_BYTES)
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
}

/// Resolves once the connection has had no request being answered for `limit` (counted
/// from its accept or its last response made): the HTTP/2 twin of HTTP/1.1's header read
/// timeout. A response still being sent then is cut, as Prometheus' default scrape
/// timeout (10 s) would have given up on it too. A dead peer needs no keep-alive ping: it
/// is idle, so it goes at the latest here.
async fn idle_past(slot: &Slot, limit: Duration) {
    let mut wait = limit;
    loop {
        tokio::time::sleep(wait).await;
        wait = match slot.idle_for() {
            Some(idle) if idle >= limit => return,
            Some(idle) => limit - idle,
            // Busy (or shed, which ends the connection anyway): look again later.
            None => limit,
        };
    }
}

/// What every connection shares: the web config, the way to the main thread, and what the
/// probes and counters need.
struct App {
    web: Arc<LiveWebConfig>,
    scrapes: Sender<Reply>,
    telemetry_path: String,
    landing_page: Bytes,
    ready: Arc<AtomicBool>,
    scrapes_in_flight: Semaphore,
    stats: Arc<Stats>,
}

impl App {
    async fn respond(&self, request: Request<Incoming>, web: &Served) -> Response<Full<Bytes>> {
        let route = route(request.method(), request.uri().path(), &self.telemetry_path);
        // The probes answer without auth and outside the rate limit (they take none of its
        // tokens): a kubelet's probe that got a 429 would restart a healthy pod.
        match route {
            Route::Healthy => return plain(StatusCode::OK, "healthy\n"),
            Route::Ready => return self.readiness(),
            _ => {}
        }
        // Before anything else, as the toolkit's limiter.
        if !web.admits() {
            return plain(StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
        }
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        let gzip = request
            .headers()
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(accepts_gzip);
        let accept = request.headers().get(header::ACCEPT);
        let format = Format::negotiate(accept.and_then(|v| v.to_str().ok()).unwrap_or(""));
        // The body, if any, is not read: hyper closes the connection after the response.
        drop(request);
        if let Some(users) = &web.web.users {
            if !users.allow(authorization.as_deref()).await {
                return unauthorized();
            }
        }
        match route {
            Route::Landing => response(
                StatusCode::OK,
                "text/html; charset=utf-8",
                self.landing_page.clone(),
            ),
            Route::Metrics => self.metrics(gzip, format).await,
            Route::NotFound | Route::Healthy | Route::Ready => {
                plain(StatusCode::NOT_FOUND, "not found\n")
            }
            Route::MethodNotAllowed => {
                let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                response
            }
        }
    }

    /// 200 once the programs are loaded and scrapes answered, else 503.
    fn readiness(&self) -> Response<Full<Bytes>> {
        if self.ready.load(Ordering::Relaxed) {
            plain(StatusCode::OK, "ready\n")
        } else {
            plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
        }
    }

    /// Asks the main thread for the exposition: 503 if too many scrapes are in flight or
    /// it does not answer in time, 500 if the scrape failed.
    async fn metrics(&self, gzip: bool, format: Format) -> Response<Full<Bytes>> {
        let Ok(_in_flight) = self.scrapes_in_flight.try_acquire() else {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many scrapes at once\n",
            );
        };
        let (reply, answer) = oneshot::channel();
        let body = match self.scrapes.send((format, reply)) {
            Ok(()) => tokio::time::timeout(SCRAPE_WAIT, answer).await,
            Err(_) => return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        };
        let body = match body {
            Ok(Ok(Some(body))) => body,
            Ok(Ok(None)) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "scrape failed\n"),
            _ => return plain(StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable\n"),
        };
        let compressed = if gzip { gzipped(&body).ok() } else { None };
        let encoded = compressed.is_some();
        let mut response = response(
            StatusCode::OK,
            format.content_type(),
            compressed.map_or(body, Bytes::from),
        );
        let headers = response.headers_mut();
        headers.insert(
            header::VARY,
            HeaderValue::from_static("Accept, Accept-Encoding"),
        );
        if encoded {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
    let challenge = format!("Basic realm=\"{REALM}\"");
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&challenge).expect("ASCII"),
    );
    response
}

fn gzipped(body: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(text.as_bytes()),
    )
}

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Landing,
    Metrics,
    /// `/-/healthy`: the process serves.
    Healthy,
    /// `/-/ready`: the BPF programs are loaded and scrapes answered.
    Ready,
    NotFound,
    MethodNotAllowed,
}

/// The route of a method and path (the query is not part of the path), with the metrics at
/// `telemetry_path`.
pub fn route(method: &Method, path: &str, telemetry_path: &str) -> Route {
    let page = match path {
        "/" => Route::Landing,
        "/-/healthy" => Route::Healthy,
        "/-/ready" => Route::Ready,
        _ if path == telemetry_path => Route::Metrics,
        _ => return Route::NotFound,
    };
    if method == Method::GET || method == Method::HEAD {
        page
    } else {
        Route::MethodNotAllowed
    }
}

/// Whether an Accept-Encoding value takes gzip: named (or `x-gzip`) with a weight above
/// zero, or not named and `*` above zero.
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    let mut named = None;
    let mut any = None;
    for item in accept_encoding.split(',') {
        let mut params = item.split(';');
        let coding = params.next().unwrap_or("").trim();
        let weight = params
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            named = Some(weight);
        } else if coding == "*" {
            any = Some(weight);
        }
    }
    named.or(any).is_some_and(|q| q > 0.0)
}

/// When the response now being answered must have been taken by: set as each request
/// arrives, and consulted only while a write waits on the client.
#[derive(Clone, Default)]
struct ResponseDeadline(Arc<Mutex<Option<Instant>>>);

impl ResponseDeadline {
    fn start(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + RESPONSE_TIMEOUT);
    }

    fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection's socket whose writes fail once they have waited on the client past the
/// response deadline: a client that asks and then reads slowly or not at all is let go.
struct Deadlined<S> {
    inner: S,
    deadline: ResponseDeadline,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Deadlined<S> {
    /// A write that cannot go on yet: an error once past the deadline, else wait for the
    /// client or the deadline, whichever comes first.
    fn stalled<T>(&mut self, cx: &mut TaskContext<'_>) -> Poll<io::Result<T>> {
        let Some(deadline) = self.deadline.get() else {
            return Poll::Pending;
        };
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not take the response in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadlined<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadlined<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.stalled(cx),
            done => done,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.stalled(cx),
            done => done,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.stalled(cx),
            done => done,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.stalled(cx),
            done => done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpStream;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn routes() {
        let route = |method: &Method, path: &str| route(method, path, "/metrics");
        assert_eq!(route(&Method::GET, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::HEAD, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::GET, "/"), Route::Landing);
        assert_eq!(route(&Method::HEAD, "/"), Route::Landing);
        assert_eq!(route(&Method::GET, "/-/healthy"), Route::Healthy);
        assert_eq!(route(&Method::HEAD, "/-/ready"), Route::Ready);
        assert_eq!(route(&Method::POST, "/-/ready"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::POST, "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::DELETE, "/"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::GET, "/metricsx"), Route::NotFound);
        assert_eq!(route(&Method::GET, "/metrics/"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/x"), Route::NotFound);
        assert_eq!(super::route(&Method::GET, "/m/x", "/m/x"), Route::Metrics);
        assert_eq!(
            super::route(&Method::GET, "/metrics", "/m/x"),
            Route::NotFound
        );
    }

    #[test]
    fn gzip_negotiation() {
        for yes in [
            "gzip",
            "GZIP",
            "gzip, deflate, br",
            "deflate, gzip;q=0.5",
            "x-gzip",
            "*",
            "br, *;q=0.1",
            "gzip ; q=1.0",
        ] {
            assert!(accepts_gzip(yes), "{yes:?}");
        }
        for no in [
            "",
            "identity",
            "deflate, br",
            "gzip;q=0",
            "gzip;q=0.000",
            "*;q=0",
            "gzip;q=0, *",
            "gzip;q=nonsense",
            "gzipx",
        ] {
            assert!(!accepts_gzip(no), "{no:?}");
        }
    }

    #[test]
    fn landing_page_links_metrics() {
        let page = landing_page("/custom/path");
        assert!(page.contains("<a href=\"/custom/path\">"));
        assert!(page.contains(concat!("tcptools-exporter ", env!("CARGO_PKG_VERSION"))));
    }

    /// A writer the client never reads from fails at the deadline, not before, and not at
    /// all without one.
    #[tokio::test]
    async fn stalled_writes_end_at_the_deadline() {
        let (_client, server) = tokio::io::duplex(64);
        let deadline = ResponseDeadline::default();
        let mut stream = Deadlined {
            inner: server,
            deadline: deadline.clone(),
            timer: None,
        };
        let body = vec![b'x'; 4096];
        let unbounded =
            tokio::time::timeout(Duration::from_millis(200), stream.write_all(&body)).await;
        assert!(unbounded.is_err(), "no deadline: the write waits");
        *deadline.0.lock().unwrap() = Some(Instant::now() + Duration::from_millis(300));
        let started = Instant::now();
        let err = stream
            .write_all(&body)
            .await
            .expect_err("the deadline ends it");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    fn get(addr: std::net::SocketAddr, head: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        std::io::Write::write_all(&mut stream, head.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        String::from_utf8_lossy(&raw).into_owned()
    }

    /// The server in this process, answered by a thread standing in for the main loop.
    /// A plain HTTP server on a free port, answering `up N` to its Nth scrape, until the
    /// returned function stops it.
    fn plain_server() -> (std::net::SocketAddr, impl FnOnce()) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let web = super::super::web_reload::LiveWebConfig::load(None, false).unwrap();
        let server = spawn(vec![listener], web, "/metrics", 8).unwrap();
        server.set_ready();
        assert_eq!(server.scheme(), "http");
        let (done, finished) = mpsc::channel::<()>();
        let main = thread::spawn(move || {
            let mut renders = 0;
            while finished.try_recv().is_err() {
                server.answer(Duration::from_millis(5), |_, format| {
                    renders += 1;
                    Ok(format!("up {renders} {format:?}\n").into_bytes())
                });
            }
            server.join().unwrap();
        });
        let stop = move || {
            done.send(()).unwrap();
            main.join().unwrap();
        };
        (addr, stop)
    }

    /// A render that fails fails only the scrapes of its format: a 500 to them, counted,
    /// while a scrape of the other format is answered.
    #[test]
    fn a_failed_render_is_a_500_to_its_format_only() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let web = super::super::web_reload::LiveWebConfig::load(None, false).unwrap();
        let server = spawn(vec![listener], web, "/metrics", 8).unwrap();
        server.set_ready();
        let (done, finished) = mpsc::channel::<()>();
        let main = thread::spawn(move || {
            while finished.try_recv().is_err() {
                server.answer(Duration::from_millis(5), |serving, format| match format {
                    Format::Protobuf => Err(anyhow!("no protobuf today")),
                    Format::Text => Ok(format!("errors {}\n", serving.scrape_errors).into()),
                });
            }
            server.join().unwrap();
        });
        let accept = "Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
        let proto = get(
            addr,
            &format!("GET /metrics HTTP/1.1\r\n{accept}\r\nConnection: close\r\n\r\n"),
        );
        assert!(
            proto.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{proto}"
        );
        assert!(proto.ends_with("\r\n\r\nscrape failed\n"), "{proto}");
        let text = get(addr, "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nerrors 1\n"), "{text}");
        done.send(()).unwrap();
        main.join().unwrap();
    }

    /// A scrape that asks for protobuf gets the render of that format, and its type.
    #[test]
    fn serves_protobuf_to_who_asks() {
        let (addr, stop) = plain_server();
        let accept = "Accept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3";
        let proto = get(
            addr,
            &format!("GET /metrics HTTP/1.1\r\n{accept}\r\nConnection: close\r\n\r\n"),
        );
        assert!(proto.ends_with("\r\n\r\nup 1 Protobuf\n"), "{proto}");
        let content_type = super::super::protobuf::CONTENT_TYPE;
        assert!(proto.contains(&format!("content-type: {content_type}\r\n")));
        stop();
    }

    #[test]
    fn serves_plain_http() {
        let (addr, stop) = plain_server();
        let close = "Connection: close\r\n\r\n";
        let metrics = get(
            addr,
            &format!("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n{close}"),
        );
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(metrics.contains(&format!(
            "content-type: {}\r\n",
            crate::exporter::CONTENT_TYPE
        )));
        assert!(
            metrics.contains("vary: Accept, Accept-Encoding\r\n"),
            "{metrics}"
        );
        assert!(metrics.ends_with("\r\n\r\nup 1 Text\n"), "{metrics}");
        let gz = get(
            addr,
            &format!("GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip\r\n{close}"),
        );
        assert!(gz.contains("content-encoding: gzip\r\n"), "{gz}");
        let head = get(addr, &format!("HEAD /metrics HTTP/1.1\r\n{close}"));
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
        let landing = get(addr, &format!("GET / HTTP/1.1\r\n{close}"));
        assert!(landing.ends_with(&landing_page("/metrics")), "{landing}");
        let healthy = get(addr, &format!("GET /-/healthy HTTP/1.1\r\n{close}"));
        assert!(healthy.starts_with("HTTP/1.1 200 OK\r\n"), "{healthy}");
        let ready = get(addr, &format!("GET /-/ready HTTP/1.1\r\n{close}"));
        assert!(ready.ends_with("\r\n\r\nready\n"), "{ready}");
        let missing = get(addr, &format!("GET /nope HTTP/1.1\r\n{close}"));
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        let post = get(
            addr,
            &format!("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n{close}abc"),
        );
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{post}"
        );
        assert!(post.contains("allow: GET, HEAD\r\n"), "{post}");
        let big = get(
            addr,
            &format!(
                "GET /metrics HTTP/1.1\r\nX: {}\r\n{close}",
                "a".repeat(MAX_HEADER_BYTES)
            ),
        );
        assert!(
            big.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{big}"
        );
        stop();
    }
}
