//! tcpconnlat: trace TCP connects and show how long each waited for its answer.

use anyhow::Result;

use tcptools::cli;
use tcptools::event_source;
use tcptools::stream::{self, Transport};
use tcptools::tcpconnlat::{bpf, Config, ConnectLatency, Options, Printer};
use tcptools::time::WallClock;

fn main() {
    cli::main::<Options>(trace)
}

fn trace(config: &Config) -> Result<()> {
    let format = config.format;
    let mut traced = config.container.trace(format.shows(), "tcpconnlat")?;
    let transport = Transport::choose();
    let (bpf, cgroups) = bpf::load(&config.filter, &traced.filter, &transport)?;
    traced.follow(cgroups);

    let clock = WallClock::system();
    let mut printer = Printer::new(config.format, traced.identities());
    let mut header = Vec::new();
    printer.header(&mut header)?;
    // Unlike bcc, an event buffer that cannot be set up is an error (exit 1, bcc: 0).
    let source = event_source!(transport, bpf);
    stream::print_events(source, &header, ConnectLatency::decode, |connect, w| {
        if !connect.has_known_family() {
            eprintln!("broken event: event->af={}", connect.endpoints.family);
            return Ok(());
        }
        printer.line(&connect, clock.at_kernel_us(connect.ts_us), w)
    })
}
