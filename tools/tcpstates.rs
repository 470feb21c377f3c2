//! tcpstates: trace TCP session state changes and how long each state lasted.

use anyhow::{bail, Result};

use tcptools::cli;
use tcptools::event_source;
use tcptools::sk_store;
use tcptools::stream::{self, Transport};
use tcptools::tcpstates::journal::Journal;
use tcptools::tcpstates::{bpf, Config, Options, Printer, StateChange};
use tcptools::time::WallClock;

fn main() {
    cli::main::<Options>(trace)
}

fn trace(config: &Config) -> Result<()> {
    let journal = config.journal.then(Journal::connect).transpose()?;
    let format = config.format;
    let mut traced = config.container.trace(format.shows(), "tcpstates")?;
    let transport = Transport::choose();
    let (bpf, cgroups) = bpf::load(
        &config.filter,
        &traced.filter,
        config.format.needs_owner(),
        &transport,
    )?;
    traced.follow(cgroups);
    if config.format.owner && !sk_store::in_sk_storage(bpf.hook) {
        bail!("--owner needs socket storage in tp_btf programs (Linux 5.12 or later), and the programs attached with raw_tp (-v says why)");
    }

    let mut clock = WallClock::system();
    let mut printer = Printer::new(config.format, traced.identities());
    let mut header = Vec::new();
    printer.header(&mut header)?;
    let source = event_source!(transport, bpf);
    stream::print_events(source, &header, StateChange::decode, |change, w| {
        if let Some(journal) = &journal {
            journal.send(&change);
        }
        printer.line(&change, &mut clock, w)
    })
}
