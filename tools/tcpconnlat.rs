//! tcpconnlat: trace TCP connects and show how long each waited for its answer.

use std::mem::MaybeUninit;
use std::os::fd::AsFd;

use anyhow::Result;
use chrono::Local;
use libbpf_rs::OpenObject;

use tcptools::attach::{self, Hook};
use tcptools::net::family_filter;
use tcptools::skel::tcpconnlat::{TcpconnlatSkel, TcpconnlatSkelBuilder};
use tcptools::stream::{self, Transport};
use tcptools::tcpconnlat::options::Options;
use tcptools::tcpconnlat::{ConnectLatency, Format, Printer};
use tcptools::{cli, privilege, signal};

const TOOL: &str = "tcpconnlat";

// ---- options ----

// `Options` lives in the library so the man page and completions come from the same
// definition (`make docs`); here the parsed options are validated into a Config.

/// What to trace and how to print it, validated.
struct Config {
    family: u16,
    /// 0: every process.
    pid: u32,
    /// 0: every connect.
    min_us: u64,
    format: Format,
    verbose: bool,
}

/// The minimum latency in whole microseconds, as bcc truncates it; None unless it is a
/// finite number of milliseconds that leaves at least 1 µs.
fn parse_min_us(arg: &str) -> Option<u64> {
    let ms: f64 = arg.parse().ok()?;
    if !ms.is_finite() || ms < 0.0 {
        return None;
    }
    // `as` saturates: an absurd minimum simply hides every connect.
    let us = (ms * 1000.0) as u64;
    (us > 0).then_some(us)
}

fn parse_pid(arg: &str) -> Option<u32> {
    let pid: i32 = arg.parse().ok()?;
    u32::try_from(pid).ok().filter(|&p| p > 0)
}

impl Config {
    fn from_options(o: Options) -> Config {
        let mut positional = o.min_ms.into_iter();
        let min_us = positional.next().map_or(0, |arg| {
            parse_min_us(&arg)
                .unwrap_or_else(|| cli::usage_error(format!("Invalid delay (in us): {arg}")))
        });
        if let Some(extra) = positional.next() {
            cli::usage_error(format!("Unrecognized positional argument: {extra}"));
        }
        let pid = o.pid.map_or(0, |arg| {
            parse_pid(&arg).unwrap_or_else(|| cli::usage_error(format!("invalid PID: {arg}")))
        });
        Config {
            family: family_filter(o.ipv4, o.ipv6),
            pid,
            min_us,
            format: Format {
                seconds: o.timestamp,
                lport: o.lport,
                json: o.json,
            },
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
) -> Result<TcpconnlatSkel<'obj>> {
    attach::open_load_attach(TcpconnlatSkelBuilder::default(), object, |open| {
        open.progs.set_state_btf.set_autoload(hook == Hook::TpBtf);
        open.progs.set_state_raw.set_autoload(hook == Hook::RawTp);
        let rodata = attach::rodata(&mut open.maps.rodata_data)?;
        transport.prepare(&mut open.maps.events, &mut rodata.use_ringbuf)?;
        rodata.target_family = config.family;
        rodata.target_tgid = config.pid;
        rodata.min_us = config.min_us;
        Ok(())
    })
}

fn trace(config: &Config) -> Result<()> {
    privilege::require_bpf()?;
    attach::libbpf_logging(config.verbose);
    signal::install()?;
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
    // Unlike bcc, an event buffer that cannot be set up is an error (exit 1, bcc: 0).
    stream::print_events(
        transport,
        &skel.maps.events,
        &skel.maps.ringbuf_drops,
        vec![program],
        |w| w.write_all(&header),
        |data, w| {
            let Some(connect) = ConnectLatency::decode(data) else {
                eprintln!("Error: packet too small");
                return Ok(());
            };
            if !connect.has_known_family() {
                eprintln!("broken event: event->af={}", connect.family);
                return Ok(());
            }
            printer.line(&connect, Local::now(), w)
        },
    )
}
