//! The exporter's HTTP side: one bounded connection at a time, GET /metrics only, on its
//! own thread; each scrape asks the collecting loop for the exposition.
//!
//! Deliberately small: every request is read within a deadline and a size limit, parsed
//! by httparse, answered with `Connection: close`, and the socket closed, so no client
//! can hold memory, threads or the metrics for long.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Largest request head accepted.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 64;
/// Time a client has to send its whole request.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);
/// Time a client has to take the whole response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a scrape waits for the collecting loop to render the exposition.
const SCRAPE_WAIT: Duration = Duration::from_secs(5);
/// How often the accept loop checks for a stop request.
const ACCEPT_POLL_MS: u16 = 100;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    NotFound,
}

/// The outcome of reading a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    Request(Route),
    /// Status code to answer with: 400 malformed, 431 too large.
    Reject(u16),
}

/// Parses the bytes received so far.
pub fn parse_request(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.unwrap_or("");
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            if request.method == Some("GET") && path == "/metrics" {
                Parsed::Request(Route::Metrics)
            } else {
                Parsed::Request(Route::NotFound)
            }
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_REQUEST_BYTES => Parsed::Reject(431),
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Reject(431),
        Err(_) => Parsed::Reject(400),
    }
}

/// A complete response with `Connection: close`.
pub fn response(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// The HTTP thread and the scrapes it is waiting on: the thread owns no BPF state, it
/// sends each scrape a channel for the answer and waits up to `SCRAPE_WAIT`.
pub struct Server {
    scrapes: Receiver<SyncSender<String>>,
    thread: JoinHandle<Result<()>>,
}

/// Starts serving `listener` on a thread of its own, until a stop is requested.
pub fn spawn(listener: TcpListener) -> Result<Server> {
    let (requests, scrapes) = mpsc::channel::<SyncSender<String>>();
    let thread = thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            serve(listener, || {
                let (reply, answer) = mpsc::sync_channel(1);
                requests.send(reply).ok()?;
                answer.recv_timeout(SCRAPE_WAIT).ok()
            })
        })
        .context("cannot start the HTTP thread")?;
    Ok(Server { scrapes, thread })
}

impl Server {
    /// Answers every waiting scrape with what `render` returns; false once the HTTP thread
    /// has ended.
    pub fn answer(&self, mut render: impl FnMut() -> Result<String>) -> Result<bool> {
        loop {
            match self.scrapes.try_recv() {
                Ok(reply) => {
                    // A scrape that gave up waiting no longer takes the answer.
                    let _ = reply.try_send(render()?);
                }
                Err(TryRecvError::Empty) => return Ok(true),
                Err(TryRecvError::Disconnected) => return Ok(false),
            }
        }
    }

    /// Waits for the thread to end, with its error if it failed.
    pub fn join(self) -> Result<()> {
        drop(self.scrapes);
        self.thread
            .join()
            .map_err(|_| anyhow!("the HTTP thread failed"))?
    }
}

/// Serves until a stop is requested. `scrape` returns the current exposition, or None
/// when it could not be had in time (answered 503).
pub fn serve(listener: TcpListener, scrape: impl Fn() -> Option<String>) -> Result<()> {
    listener
        .set_nonblocking(true)
        .context("cannot set up the listening socket")?;
    while !crate::signal::stop_requested() {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ACCEPT_POLL_MS)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => return Err(err).context("error waiting for HTTP clients"),
        }
        match listener.accept() {
            // A client that misbehaves only loses its own answer.
            Ok((stream, _)) => {
                let _ = handle(stream, &scrape);
            }
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            // ECONNABORTED and the like concern one client; resource exhaustion passes.
            Err(_) => std::thread::sleep(Duration::from_millis(ACCEPT_POLL_MS.into())),
        }
    }
    Ok(())
}

fn handle(mut stream: TcpStream, scrape: &impl Fn() -> Option<String>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let deadline = Instant::now() + READ_DEADLINE;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let parsed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Parsed::Reject(408);
        }
        stream.set_read_timeout(Some(left))?;
        let want = chunk.len().min(MAX_REQUEST_BYTES - buf.len());
        match stream.read(&mut chunk[..want]) {
            // The client went away before finishing its request.
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break Parsed::Reject(408)
            }
            Err(err) => return Err(err),
        }
        match parse_request(&buf) {
            Parsed::Partial => continue,
            done => break done,
        }
    };
    let reply = match parsed {
        Parsed::Request(Route::Metrics) => match scrape() {
            Some(body) => response(200, super::CONTENT_TYPE, &body),
            None => response(503, "text/plain", "metrics unavailable\n"),
        },
        Parsed::Request(Route::NotFound) => response(404, "text/plain", "not found\n"),
        Parsed::Reject(status) => response(status, "text/plain", ""),
        Parsed::Partial => response(400, "text/plain", ""),
    };
    stream.write_all(&reply)?;
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let req = |s: &str| parse_request(s.as_bytes());
        assert_eq!(
            req("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Parsed::Request(Route::Metrics)
        );
        assert_eq!(
            req("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Parsed::Request(Route::Metrics)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\n\r\n"),
            Parsed::Request(Route::NotFound)
        );
        assert_eq!(
            req("POST /metrics HTTP/1.1\r\n\r\n"),
            Parsed::Request(Route::NotFound)
        );
        assert_eq!(
            req("GET /metricsx HTTP/1.1\r\n\r\n"),
            Parsed::Request(Route::NotFound)
        );
        assert_eq!(req("GET /metrics HTTP/1.1\r\nHost"), Parsed::Partial);
        assert_eq!(req("\x01\x02 nonsense\r\n\r\n"), Parsed::Reject(400));
        let big = format!(
            "GET /metrics HTTP/1.1\r\nX: {}",
            "a".repeat(MAX_REQUEST_BYTES)
        );
        assert_eq!(req(&big), Parsed::Reject(431));
    }

    #[test]
    fn response_head() {
        let r = String::from_utf8(response(404, "text/plain", "not found\n")).unwrap();
        assert_eq!(
            r,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n"
        );
    }
}
