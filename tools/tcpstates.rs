//! tcpstates: trace TCP session state changes and how long each state lasted.

use std::mem::MaybeUninit;
use std::os::fd::AsFd;

use anyhow::Result;
use libbpf_rs::OpenObject;

use tcptools::attach::{self, Hook};
use tcptools::net::{family_filter, PortList};
use tcptools::skel::tcpstates::{TcpstatesSkel, TcpstatesSkelBuilder};
use tcptools::stream::{self, Transport};
use tcptools::tcpstates::options::Options;
use tcptools::tcpstates::{Format, Printer, StateChange};
use tcptools::time::WallClock;
use tcptools::{cli, privilege, signal};

const TOOL: &str = "tcpstates";

// ---- options ----

// `Options` lives in the library so the man page and completions come from the same
// definition (`make docs`); here the parsed options are validated into a Config.

/// What to trace and how to print it, validated.
struct Config {
    family: u16,
    local_ports: Option<PortList>,
    remote_ports: Option<PortList>,
    format: Format,
    journal: bool,
    verbose: bool,
}

impl Config {
    fn from_options(o: Options) -> Config {
        Config {
            family: family_filter(o.ipv4, o.ipv6),
            local_ports: cli::port_list(o.localport),
            remote_ports: cli::port_list(o.remoteport),
            format: Format {
                clock: o.timestamp,
                seconds: o.seconds,
                wide: o.wide,
                csv: o.csv,
                json: o.json,
            },
            journal: o.journal,
            verbose: o.verbose,
        }
    }
}

fn main() {
    let config = Config::from_options(cli::parse(TOOL));
    cli::run(TOOL, || trace(&config))
}

// ---- BPF setup ----

fn open_load_attach<'obj>(
    hook: Hook,
    object: &'obj mut MaybeUninit<OpenObject>,
    config: &Config,
    transport: Transport,
) -> Result<TcpstatesSkel<'obj>> {
    attach::open_load_attach(TcpstatesSkelBuilder::default(), object, |open| {
        open.progs.set_state_btf.set_autoload(hook == Hook::TpBtf);
        open.progs.set_state_raw.set_autoload(hook == Hook::RawTp);
        let rodata = attach::rodata(&mut open.maps.rodata_data)?;
        transport.prepare(&mut open.maps.events, &mut rodata.use_ringbuf)?;
        rodata.target_family = config.family;
        if let Some(ports) = &config.local_ports {
            rodata.filter_by_lport = 1;
            rodata.lports = ports.bitmap();
        }
        if let Some(ports) = &config.remote_ports {
            rodata.filter_by_rport = 1;
            rodata.rports = ports.bitmap();
        }
        Ok(())
    })
}

fn trace(config: &Config) -> Result<()> {
    privilege::require_bpf()?;
    attach::libbpf_logging(config.verbose);
    signal::install()?;
    let journal = config
        .journal
        .then(tcptools::journal::Journal::connect)
        .transpose()?;
    let transport = Transport::choose();
    let mut storage = attach::object_storage();
    let (skel, hook) = attach::with_fallback(&mut storage, |hook, object| {
        open_load_attach(hook, object, config, transport)
    })?;
    let program = match hook {
        Hook::TpBtf => skel.progs.set_state_btf.as_fd(),
        Hook::RawTp => skel.progs.set_state_raw.as_fd(),
    };

    // ---- event loop and rendering ----

    let mut printer = Printer::new(config.format);
    let mut header = Vec::new();
    printer.header(&mut header)?;
    let mut clock = WallClock::system();
    stream::print_events(
        transport,
        &skel.maps.events,
        &skel.maps.ringbuf_drops,
        vec![program],
        |w| w.write_all(&header),
        |data, w| {
            let Some(change) = StateChange::decode(data) else {
                eprintln!("Error: packet too small");
                return Ok(());
            };
            if let Some(journal) = &journal {
                journal.send(&change);
            }
            printer.line(&change, &mut clock, w)
        },
    )
}
