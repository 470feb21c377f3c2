//! tcptools-exporter: TCP metrics counted in the kernel, served on GET /metrics.

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use anyhow::{bail, Result};

use tcptools::exporter::collect::Programs;
use tcptools::exporter::scrape::Collector;
use tcptools::exporter::web_reload::LiveWebConfig;
use tcptools::exporter::{http, listen, Config, Options};
use tcptools::runtime::Runtimes;
use tcptools::{cli, signal};

/// How long the main thread waits for a scrape request before it looks at signals again.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// A test hook (tests/exporter_serve.rs), read at start: the first N scrapes fail.
const FAIL_SCRAPES: &str = "TCPTOOLS_FAIL_SCRAPES";

fn main() {
    cli::main::<Options>(run)
}

fn run(config: &Config) -> Result<()> {
    // Taken first: it clears systemd's variables, which is safe before any thread starts.
    let listeners = listeners(config)?;
    // Certificates, key and hashes are checked before anything is loaded.
    let web = LiveWebConfig::load(config.web_config_file.as_deref(), config.verbose)?;
    let max_connections = listen::raise_descriptor_limit() as usize;
    let max_connections = max_connections.min(http::MAX_CONNECTIONS);
    let addresses = listen::local_addresses(&listeners);
    // Serving starts before the programs load, so /-/healthy answers while they do.
    let server = http::spawn(listeners, web, &config.telemetry_path, max_connections)?;
    let programs = Programs::load(config)?;
    // A runtime that does not answer is one line on stderr, and a metric; serving goes on.
    let runtimes = if config.group_by.named() {
        Runtimes::start(&config.runtime, "tcptools-exporter", config.verbose)
    } else {
        Runtimes::none()
    };
    let mut collector = Collector::new(&programs, config.max_groups, runtimes);
    server.set_ready();
    ready_line(server.scheme(), &addresses, &config.telemetry_path);

    let mut failures_left = forced_failures();
    let mut serving = true;
    while serving && !signal::stop_requested() {
        serving = server.answer(WAIT_SLICE, |figures, format| {
            if failures_left > 0 {
                failures_left -= 1;
                bail!("failure forced by {FAIL_SCRAPES}");
            }
            collector.scrape(figures, format)
        });
    }
    server.join()?;
    if !serving && !signal::stop_requested() {
        bail!("the HTTP server stopped");
    }
    Ok(())
}

/// The sockets systemd passed, or those of --web.listen-address.
fn listeners(config: &Config) -> Result<Vec<TcpListener>> {
    if config.systemd_socket {
        return listen::from_systemd();
    }
    listen::bind(&config.listen)
}

/// `Serving metrics on URL, URL`: nobody may be reading stdout (a service); it is a
/// courtesy, and the tests' sign that it serves.
fn ready_line(scheme: &str, addresses: &[std::net::SocketAddr], path: &str) {
    let urls: Vec<String> = addresses
        .iter()
        .map(|addr| format!("{scheme}://{addr}{path}"))
        .collect();
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "Serving metrics on {}", urls.join(", "));
    let _ = stdout.flush();
}

fn forced_failures() -> u32 {
    let value = std::env::var(FAIL_SCRAPES).ok();
    value.and_then(|v| v.parse().ok()).unwrap_or(0)
}
