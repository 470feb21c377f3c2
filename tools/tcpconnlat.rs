//! tcpconnlat: trace TCP connects and show how long each waited for its answer.

use anyhow::Result;
use chrono::Local;

use tcptools::cli;
use tcptools::container::CgroupPaths;
use tcptools::event_source;
use tcptools::pods::Identities;
use tcptools::stream::{self, Transport};
use tcptools::tcpconnlat::{bpf, Config, ConnectLatency, Options, Printer};

fn main() {
    cli::main::<Options>(trace)
}

fn trace(config: &Config) -> Result<()> {
    let runtimes = config
        .container
        .pods
        .runtimes(config.format.needs_names(), "tcpconnlat");
    let mut container = config.container.resolve(config.format.needs_container())?;
    let selection = config
        .container
        .pods
        .select(&mut container, &runtimes, "tcpconnlat");
    let transport = Transport::choose();
    let (bpf, cgroups) = bpf::load(&config.filter, &container, transport)?;
    if let Some(selection) = selection {
        selection.follow(cgroups);
    }

    let identities = Identities::new(CgroupPaths::system(), runtimes);
    let mut printer = Printer::new(config.format, identities);
    let mut header = Vec::new();
    printer.header(&mut header)?;
    // Unlike bcc, an event buffer that cannot be set up is an error (exit 1, bcc: 0).
    let source = event_source!(transport, bpf);
    stream::print_events(source, &header, ConnectLatency::decode, |connect, w| {
        if !connect.has_known_family() {
            eprintln!("broken event: event->af={}", connect.endpoints.family);
            return Ok(());
        }
        printer.line(&connect, Local::now(), w)
    })
}
