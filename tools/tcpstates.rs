//! tcpstates: trace TCP session state changes and how long each state lasted.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;

use anyhow::{Context, Result};
use chrono::Local;
use clap::{ArgAction, Parser};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::OpenObject;

use tcptools::attach::{self, Hook};
use tcptools::net::{PortList, AF_INET, AF_INET6};
use tcptools::out::Output;
use tcptools::skel::tcpstates::{TcpstatesSkel, TcpstatesSkelBuilder};
use tcptools::stream::{EventStream, Transport};
use tcptools::tcpstates::{Format, Printer, StateChange};
use tcptools::{cli, privilege, signal};

const TOOL: &str = "tcpstates";

// ---- options ----

const EXAMPLES: &str = "EXAMPLES:
    tcpstates                  # trace all TCP state changes
    tcpstates -T               # include timestamps
    tcpstates -L 80            # only trace local port 80
    tcpstates -D 80            # only trace remote port 80
    tcpstates -t               # include seconds since the first event
    tcpstates -s               # comma-separated values
    tcpstates --json           # one JSON object per event";

#[derive(Parser)]
#[command(
    name = TOOL,
    version,
    about = "Trace TCP session state changes and durations.",
    override_usage = "tcpstates [-4] [-6] [-T] [-t] [-w] [-s] [-Y] [--json] [-L lport] [-D dport]",
    after_help = EXAMPLES,
    disable_help_flag = true,
    infer_long_args = true,
    args_override_self = true
)]
struct Options {
    /// Trace IPv4 family only
    #[arg(short = '4', long = "ipv4", overrides_with = "ipv6")]
    ipv4: bool,
    /// Trace IPv6 family only
    #[arg(short = '6', long = "ipv6", overrides_with = "ipv4")]
    ipv6: bool,
    /// Comma-separated list of remote ports to trace.
    #[arg(
        short = 'D',
        long = "remoteport",
        value_name = "DPORT",
        allow_hyphen_values = true,
        verbatim_doc_comment
    )]
    remoteport: Option<String>,
    /// Comma-separated list of local ports to trace.
    #[arg(
        short = 'L',
        long = "localport",
        value_name = "LPORT",
        allow_hyphen_values = true,
        verbatim_doc_comment
    )]
    localport: Option<String>,
    /// Include timestamp on output
    #[arg(short = 'T', long = "timestamp")]
    timestamp: bool,
    /// Include seconds since the first printed event on output
    #[arg(short = 't', long = "seconds")]
    seconds: bool,
    /// Comma separated values output
    #[arg(short = 's', long = "csv")]
    csv: bool,
    /// Also log each state change to the systemd journal
    #[arg(short = 'Y', long = "journal")]
    journal: bool,
    /// One JSON object per line
    #[arg(long = "json")]
    json: bool,
    /// Verbose debug output
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Wide column output (fits IPv6 addresses)
    #[arg(short = 'w', long = "wide")]
    wide: bool,
    /// Give this help list
    #[arg(short = 'h', long = "help", short_alias = '?', action = ArgAction::Help)]
    help: Option<bool>,
}

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
        let ports = |arg: Option<String>| {
            arg.map(|a| {
                PortList::parse(&a)
                    .unwrap_or_else(|| cli::usage_error(format!("Invalid ports: {a}")))
            })
        };
        Config {
            family: if o.ipv4 {
                AF_INET
            } else if o.ipv6 {
                AF_INET6
            } else {
                0
            },
            local_ports: ports(o.localport),
            remote_ports: ports(o.remoteport),
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
    let mut open = TcpstatesSkelBuilder::default()
        .open(object)
        .context("failed to open BPF object")?;
    open.progs.set_state_btf.set_autoload(hook == Hook::TpBtf);
    open.progs.set_state_raw.set_autoload(hook == Hook::RawTp);
    transport.prepare(&mut open.maps.events)?;
    let rodata = open
        .maps
        .rodata_data
        .as_deref_mut()
        .context("BPF object has no read-only data")?;
    rodata.use_ringbuf = transport.uses_ringbuf();
    rodata.target_family = config.family;
    if let Some(ports) = &config.local_ports {
        rodata.filter_by_lport = 1;
        rodata.lports = ports.bitmap();
    }
    if let Some(ports) = &config.remote_ports {
        rodata.filter_by_rport = 1;
        rodata.rports = ports.bitmap();
    }
    let mut skel = open.load().context("failed to load BPF object")?;
    skel.attach().context("failed to attach BPF programs")?;
    Ok(skel)
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

    // ---- event loop ----

    let out = RefCell::new(Output::stdout());
    let mut printer = Printer::new(config.format);
    {
        let mut out = out.borrow_mut();
        out.emit(|w| printer.header(w))?;
        out.flush()?;
    }
    let failure = RefCell::new(None);
    let stream = EventStream::open(
        transport,
        &skel.maps.events,
        &skel.maps.ringbuf_drops,
        vec![program],
        |data| {
            let Some(change) = StateChange::decode(data) else {
                eprintln!("Error: packet too small");
                return;
            };
            let now = Local::now();
            if let Err(err) = out.borrow_mut().emit(|w| printer.line(&change, now, w)) {
                failure.borrow_mut().get_or_insert(err);
            }
            if let Some(journal) = &journal {
                journal.send(&change);
            }
        },
    )?;
    stream.run(|| {
        let mut out = out.borrow_mut();
        if let Err(err) = out.flush() {
            failure.borrow_mut().get_or_insert(err);
        }
        failure.borrow().is_none() && !out.is_closed()
    })?;
    drop(stream);
    match failure.into_inner() {
        Some(err) => Err(err).context("failed to write output"),
        None => Ok(()),
    }
}
