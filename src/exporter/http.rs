//! The exporter's HTTP side: GET /metrics and a landing page at /, over HTTP/1.1, plain or
//! TLS (and HTTP/2 over TLS), with what the web config asks (`web_reload`), served by hyper
//! on a small tokio runtime of its own thread. The main thread owns the BPF state: each scrape asks it for the
//! exposition through a channel and waits for the answer on a oneshot.
//!
//! Every connection is a task of its own, so a slow, idle or hostile client delays only
//! itself, and every connection is bounded: at most `MAX_CONNECTIONS` at once (others are
//! closed at once), `TLS_HANDSHAKE_TIMEOUT` for the handshake, `HEADER_READ_TIMEOUT` for a
//! request head of at most `MAX_HEADER_BYTES` (which also ends an idle keep-alive), and
//! `RESPONSE_TIMEOUT` from a request to its response taken. Request bodies are ignored.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Write};
use std::net::TcpListener;
use std::pin::Pin;
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
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use super::auth::REALM;
use super::web_reload::{LiveWebConfig, Served};

/// Connections served at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;
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
/// Most header lines in a request.
const MAX_HEADERS: usize = 64;
/// hyper's read buffer (8 KiB at least): what a connection may hold of unread input.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Tasks run on two workers; bcrypt runs on the blocking pool, one at a time.
const WORKERS: usize = 2;
const BLOCKING_THREADS: usize = 2;
/// How often the accept loop looks at the SIGINT/SIGTERM flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Pause after a failed accept (out of descriptors, say) before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The landing page at /.
pub const LANDING_PAGE: &str = concat!(
    "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>tcptools-exporter</title></head>\n",
    "<body>\n<h1>tcptools-exporter ",
    env!("CARGO_PKG_VERSION"),
    "</h1>\n<p>TCP state changes, connect latency and RTT from kernel tracepoints.</p>\n",
    "<p><a href=\"/metrics\">Metrics</a></p>\n</body>\n</html>\n"
);

/// A waiting scrape: where the main thread sends the exposition.
type Reply = oneshot::Sender<Bytes>;

/// The HTTP thread and the scrapes waiting for the main thread.
pub struct Server {
    scrapes: Receiver<Reply>,
    stop: Option<oneshot::Sender<()>>,
    thread: JoinHandle<Result<()>>,
    /// `https` with TLS, else `http`.
    scheme: &'static str,
}

/// Starts serving `listener` with `web` on a thread of its own, until a stop is requested
/// (SIGINT, SIGTERM) or `Server::join`.
pub fn spawn(listener: TcpListener, web: Arc<LiveWebConfig>) -> Result<Server> {
    listener
        .set_nonblocking(true)
        .context("cannot set up the listening socket")?;
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
    let scheme = if web.current().web.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let thread = thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            let served = runtime.block_on(serve(listener, web, requests, stopped));
            // Open connections end here; a bcrypt under way is not waited for long.
            runtime.shutdown_timeout(Duration::from_secs(1));
            served
        })
        .context("cannot start the HTTP thread")?;
    Ok(Server {
        scrapes,
        stop: Some(stop),
        thread,
        scheme,
    })
}

impl Server {
    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// Waits up to `wait` for a scrape, then answers every scrape waiting, all with one call
    /// of `render`; false once the HTTP thread has ended.
    pub fn answer(
        &self,
        wait: Duration,
        mut render: impl FnMut() -> Result<String>,
    ) -> Result<bool> {
        let mut waiting = Vec::new();
        match self.scrapes.recv_timeout(wait) {
            Ok(reply) => waiting.push(reply),
            Err(RecvTimeoutError::Timeout) => return Ok(true),
            Err(RecvTimeoutError::Disconnected) => return Ok(false),
        }
        loop {
            match self.scrapes.try_recv() {
                Ok(reply) => waiting.push(reply),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(false),
            }
        }
        // A scrape that gave up waiting no longer takes an answer.
        waiting.retain(|reply| !reply.is_closed());
        if !waiting.is_empty() {
            let body = Bytes::from(render()?);
            for reply in waiting {
                let _ = reply.send(body.clone());
            }
        }
        Ok(true)
    }

    /// Stops serving and waits for the thread to end, with its error if it failed.
    pub fn join(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread
            .join()
            .map_err(|_| anyhow!("the HTTP thread failed"))?
    }
}

/// Accepts until stopped: through `stopped` (also when the Server is dropped) or a signal.
async fn serve(
    listener: TcpListener,
    web: Arc<LiveWebConfig>,
    scrapes: Sender<Reply>,
    mut stopped: oneshot::Receiver<()>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .context("cannot set up the listening socket")?;
    tokio::spawn(web.clone().watch());
    let app = Arc::new(App { web, scrapes });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut stop_poll = tokio::time::interval(STOP_POLL);
    loop {
        tokio::select! {
            _ = &mut stopped => return Ok(()),
            _ = stop_poll.tick() => {
                if crate::signal::stop_requested() {
                    return Ok(());
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Over the limit: dropped, so closed at once rather than kept waiting.
                    if let Ok(slot) = slots.clone().try_acquire_owned() {
                        tokio::spawn(connection(stream, app.clone(), slot));
                    }
                }
                // ECONNABORTED concerns one client; running out of descriptors passes.
                Err(_) => tokio::time::sleep(ACCEPT_RETRY).await,
            },
        }
    }
}

/// One connection, from TLS handshake (with the web config current then) to close; its
/// slot is freed when it ends.
async fn connection(stream: tokio::net::TcpStream, app: Arc<App>, _slot: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    let deadline = ResponseDeadline::default();
    let stream = Deadlined {
        inner: stream,
        deadline: deadline.clone(),
        timer: None,
    };
    let tls = app.web.current().web.tls.clone();
    match tls {
        None => http(stream, app, deadline, false).await,
        Some(config) => {
            let acceptor = TlsAcceptor::from(config);
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            // A failed handshake (plain HTTP to the TLS port, a refused client
            // certificate) ends the connection; rustls has sent its alert.
            if let Ok(Ok(stream)) = handshake.await {
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                http(stream, app, deadline, h2).await
            }
        }
    }
}

/// Serves HTTP/2 when the TLS handshake chose it (ALPN h2), else HTTP/1.1.
async fn http<S>(stream: S, app: Arc<App>, deadline: ResponseDeadline, h2: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        deadline.start();
        let app = app.clone();
        async move {
            let web = app.web.current();
            let mut response = app.respond(request, &web).await;
            web.decorate(&mut response);
            Ok::<_, Infallible>(response)
        }
    });
    let io = TokioIo::new(stream);
    // Errors (a timeout, a malformed request, a client gone) concern this client only.
    // ALPN has told the protocol, so each has its builder (hyper-util's auto builder
    // cannot bound an HTTP/1.1 head's size).
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .serve_connection(io, service)
            .await;
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

/// What every connection shares: the web config, and the way to the main thread.
struct App {
    web: Arc<LiveWebConfig>,
    scrapes: Sender<Reply>,
}

impl App {
    async fn respond(&self, request: Request<Incoming>, web: &Served) -> Response<Full<Bytes>> {
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
        let route = route(request.method(), request.uri().path());
        // The body, if any, is not read: hyper closes the connection after the response.
        drop(request);
        if let Some(users) = &web.web.users {
            if !users.allow(authorization.as_deref()).await {
                let mut response = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
                let challenge = format!("Basic realm=\"{REALM}\"");
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&challenge).expect("ASCII"),
                );
                return response;
            }
        }
        match route {
            Route::Landing => response(
                StatusCode::OK,
                "text/html; charset=utf-8",
                Bytes::from_static(LANDING_PAGE.as_bytes()),
            ),
            Route::Metrics => self.metrics(gzip).await,
            Route::NotFound => plain(StatusCode::NOT_FOUND, "not found\n"),
            Route::MethodNotAllowed => {
                let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                response
            }
        }
    }

    /// Asks the main thread for the exposition; 503 if it does not answer in time.
    async fn metrics(&self, gzip: bool) -> Response<Full<Bytes>> {
        let (reply, answer) = oneshot::channel();
        let body = match self.scrapes.send(reply) {
            Ok(()) => tokio::time::timeout(SCRAPE_WAIT, answer).await,
            Err(_) => return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        };
        let Ok(Ok(body)) = body else {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable\n");
        };
        let compressed = if gzip { gzipped(&body).ok() } else { None };
        let encoded = compressed.is_some();
        let mut response = response(
            StatusCode::OK,
            super::CONTENT_TYPE,
            compressed.map_or(body, Bytes::from),
        );
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if encoded {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
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
    NotFound,
    MethodNotAllowed,
}

/// The route of a method and path (the query is not part of the path).
pub fn route(method: &Method, path: &str) -> Route {
    let page = match path {
        "/" => Route::Landing,
        "/metrics" => Route::Metrics,
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
        assert_eq!(route(&Method::GET, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::HEAD, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::GET, "/"), Route::Landing);
        assert_eq!(route(&Method::HEAD, "/"), Route::Landing);
        assert_eq!(route(&Method::POST, "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::DELETE, "/"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::GET, "/metricsx"), Route::NotFound);
        assert_eq!(route(&Method::GET, "/metrics/"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/x"), Route::NotFound);
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
        assert!(LANDING_PAGE.contains("<a href=\"/metrics\">"));
        assert!(LANDING_PAGE.contains(concat!("tcptools-exporter ", env!("CARGO_PKG_VERSION"))));
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
        let server = spawn(listener, web).unwrap();
        assert_eq!(server.scheme(), "http");
        let (done, finished) = mpsc::channel::<()>();
        let main = thread::spawn(move || {
            let mut renders = 0;
            while finished.try_recv().is_err() {
                server
                    .answer(Duration::from_millis(5), || {
                        renders += 1;
                        Ok(format!("up {renders}\n"))
                    })
                    .unwrap();
            }
            server.join().unwrap();
        });
        let stop = move || {
            done.send(()).unwrap();
            main.join().unwrap();
        };
        (addr, stop)
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
        assert!(metrics.contains("vary: Accept-Encoding\r\n"), "{metrics}");
        assert!(metrics.ends_with("\r\n\r\nup 1\n"), "{metrics}");
        let gz = get(
            addr,
            &format!("GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip\r\n{close}"),
        );
        assert!(gz.contains("content-encoding: gzip\r\n"), "{gz}");
        let head = get(addr, &format!("HEAD /metrics HTTP/1.1\r\n{close}"));
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
        let landing = get(addr, &format!("GET / HTTP/1.1\r\n{close}"));
        assert!(landing.ends_with(LANDING_PAGE), "{landing}");
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
