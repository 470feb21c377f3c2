//! tcptools-exporter: TCP metrics counted in the kernel, served on GET /metrics.

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use tcptools::exporter::collect::Programs;
use tcptools::exporter::scrape::Collector;
use tcptools::exporter::web_reload::LiveWebConfig;
use tcptools::exporter::{http, Config, Options};
use tcptools::runtime::Runtimes;
use tcptools::{cli, signal};

/// How long the main thread waits for a scrape request before it looks at signals again.
const WAIT_SLICE: Duration = Duration::from_millis(100);

fn main() {
    cli::main::<Options>(run)
}

fn run(config: &Config) -> Result<()> {
    // Certificates, key and hashes are checked before anything is bound or loaded.
    let web = LiveWebConfig::load(config.web_config_file.as_deref(), config.verbose)?;
    let listener = TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr().unwrap_or(config.listen);
    let programs = Programs::load(config)?;
    // A runtime that does not answer is one line on stderr, and a metric; serving goes on.
    let runtimes = if config.group_by.named() {
        Runtimes::start(&config.runtime, "tcptools-exporter", config.verbose)
    } else {
        Runtimes::none()
    };
    let mut collector = Collector::new(&programs, config.max_groups, runtimes);
    let server = http::spawn(listener, web)?;

    let mut stdout = std::io::stdout();
    // Nobody may be reading stdout (a service); the line is a courtesy.
    let _ = writeln!(
        stdout,
        "Serving metrics on {}://{bound}/metrics",
        server.scheme()
    );
    let _ = stdout.flush();

    let mut serving = true;
    while serving && !signal::stop_requested() {
        serving = server.answer(WAIT_SLICE, || collector.scrape())?;
    }
    server.join()?;
    if !serving && !signal::stop_requested() {
        bail!("the HTTP server stopped");
    }
    Ok(())
}
