//! tcptools-exporter: the tools' measurements as Prometheus metrics on GET /metrics.

use std::cell::RefCell;
use std::io::Write;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::sync::mpsc::{self, SyncSender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use libbpf_rs::{MapCore, MapFlags, OpenObject};

use tcptools::attach::{self, Hook};
use tcptools::exporter::options::Options;
use tcptools::exporter::{
    http, state_change_delta_known, Log2Hist, Metrics, PortFilter, RttTotals,
};
use tcptools::skel::tcpconnlat::{TcpconnlatSkel, TcpconnlatSkelBuilder};
use tcptools::skel::tcprtt::{TcprttSkel, TcprttSkelBuilder};
use tcptools::skel::tcpstates::{TcpstatesSkel, TcpstatesSkelBuilder};
use tcptools::stream::{recursion_misses, EventStream, Transport};
use tcptools::tcpconnlat::ConnectLatency;
use tcptools::tcprtt::RttHist;
use tcptools::tcpstates::StateChange;
use tcptools::{cli, exporter, privilege, signal};

const TOOL: &str = "tcptools-exporter";

/// How long each event buffer is polled per pass; a scrape waits at most two of these.
const POLL_SLICE: Duration = Duration::from_millis(25);
/// How often the kernel's RTT histograms are read between scrapes: often enough that no
/// 32-bit slot can wrap twice in between.
const RTT_READ_EVERY: Duration = Duration::from_secs(1);
/// How long the HTTP side waits for the event loop to render a scrape.
const SCRAPE_WAIT: Duration = Duration::from_secs(5);
/// Bound on the RTT map's keys read per pass (the exporter keys it by family: 2 keys).
const MAX_RTT_KEYS: usize = 64;

struct Config {
    listen: SocketAddr,
    ports: PortFilter,
    verbose: bool,
}

impl Config {
    fn from_options(o: Options) -> Config {
        let listen = o
            .listen
            .parse::<SocketAddr>()
            .unwrap_or_else(|_| cli::usage_error(format!("invalid listen address: {}", o.listen)));
        Config {
            listen,
            ports: PortFilter {
                local: cli::port_list(o.localport),
                remote: cli::port_list(o.remoteport),
            },
            verbose: o.verbose,
        }
    }
}

fn main() {
    let config = Config::from_options(cli::parse(TOOL));
    cli::run(TOOL, || run(&config))
}

// ---- BPF setup ----

fn load_states<'obj>(
    hook: Hook,
    object: &'obj mut MaybeUninit<OpenObject>,
    transport: Transport,
) -> Result<TcpstatesSkel<'obj>> {
    attach::open_load_attach(TcpstatesSkelBuilder::default(), object, |open| {
        open.progs.set_state_btf.set_autoload(hook == Hook::TpBtf);
        open.progs.set_state_raw.set_autoload(hook == Hook::RawTp);
        let rodata = attach::rodata(&mut open.maps.rodata_data)?;
        transport.prepare(&mut open.maps.events, &mut rodata.use_ringbuf)?;
        Ok(())
    })
}

fn load_connlat<'obj>(
    hook: Hook,
    object: &'obj mut MaybeUninit<OpenObject>,
    transport: Transport,
) -> Result<TcpconnlatSkel<'obj>> {
    attach::open_load_attach(TcpconnlatSkelBuilder::default(), object, |open| {
        open.progs.set_state_btf.set_autoload(hook == Hook::TpBtf);
        open.progs.set_state_raw.set_autoload(hook == Hook::RawTp);
        let rodata = attach::rodata(&mut open.maps.rodata_data)?;
        transport.prepare(&mut open.maps.events, &mut rodata.use_ringbuf)?;
        Ok(())
    })
}

/// tcprtt's program keyed by family, with one generation forever: the kernel's
/// histograms are cumulative from load.
fn load_rtt<'obj>(
    hook: Hook,
    object: &'obj mut MaybeUninit<OpenObject>,
    ports: &PortFilter,
) -> Result<TcprttSkel<'obj>> {
    attach::open_load_attach(TcprttSkelBuilder::default(), object, |open| {
        open.progs.tcp_probe_btf.set_autoload(hook == Hook::TpBtf);
        open.progs.tcp_probe_raw.set_autoload(hook == Hook::RawTp);
        let rodata = attach::rodata(&mut open.maps.rodata_data)?;
        rodata.targ_family_key = 1;
        if let Some(list) = &ports.local {
            rodata.filter_lports = 1;
            rodata.lports = list.bitmap();
        }
        if let Some(list) = &ports.remote {
            rodata.filter_rports = 1;
            rodata.rports = list.bitmap();
        }
        Ok(())
    })
}

/// Adds what the kernel's RTT histograms gained since the last read.
fn read_rtt(skel: &TcprttSkel, totals: &mut RttTotals, metrics: &mut Metrics) -> Result<()> {
    let map = &skel.maps.hists;
    for key in map.keys().take(MAX_RTT_KEYS) {
        let Some(value) = map
            .lookup(&key, MapFlags::ANY)
            .context("failed to read the RTT histograms")?
        else {
            continue;
        };
        let Some((_, hist)) = RttHist::decode(&key, &value) else {
            continue;
        };
        let into = metrics
            .rtt
            .entry(hist.family)
            .or_insert_with(|| Log2Hist::new(exporter::RTT_SLOTS));
        totals.update(hist.family, &hist.slots, hist.sum, into);
    }
    Ok(())
}

// ---- serving ----

fn run(config: &Config) -> Result<()> {
    privilege::require_bpf()?;
    attach::libbpf_logging(config.verbose);
    signal::install()?;
    let listener = TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr().unwrap_or(config.listen);

    let transport = Transport::choose();
    let mut states_storage = attach::object_storage();
    let (states, states_hook) = attach::with_fallback(&mut states_storage, |hook, object| {
        load_states(hook, object, transport)
    })
    .context("tcpstates's programs")?;
    let mut connlat_storage = attach::object_storage();
    let (connlat, connlat_hook) = attach::with_fallback(&mut connlat_storage, |hook, object| {
        load_connlat(hook, object, transport)
    })
    .context("tcpconnlat's programs")?;
    let mut rtt_storage = attach::object_storage();
    let (rtt, rtt_hook) = attach::with_fallback(&mut rtt_storage, |hook, object| {
        load_rtt(hook, object, &config.ports)
    })
    .context("tcprtt's programs")?;
    let states_prog = match states_hook {
        Hook::TpBtf => states.progs.set_state_btf.as_fd(),
        Hook::RawTp => states.progs.set_state_raw.as_fd(),
    };
    let connlat_prog = match connlat_hook {
        Hook::TpBtf => connlat.progs.set_state_btf.as_fd(),
        Hook::RawTp => connlat.progs.set_state_raw.as_fd(),
    };
    let rtt_prog = match rtt_hook {
        Hook::TpBtf => rtt.progs.tcp_probe_btf.as_fd(),
        Hook::RawTp => rtt.progs.tcp_probe_raw.as_fd(),
    };

    let metrics = RefCell::new(Metrics::new());
    let ports = &config.ports;
    let states_stream = EventStream::open(
        transport,
        &states.maps.events,
        &states.maps.ringbuf_drops,
        vec![states_prog],
        |data| {
            let mut metrics = metrics.borrow_mut();
            let (Some(change), Some(known)) =
                (StateChange::decode(data), state_change_delta_known(data))
            else {
                bump(&mut metrics.malformed, "tcpstates");
                return;
            };
            if ports.allows(change.lport, change.rport) {
                metrics.record_state_change(&change, known);
            }
        },
    )?;
    let connlat_stream = EventStream::open(
        transport,
        &connlat.maps.events,
        &connlat.maps.ringbuf_drops,
        vec![connlat_prog],
        |data| {
            let mut metrics = metrics.borrow_mut();
            let Some(connect) = ConnectLatency::decode(data) else {
                bump(&mut metrics.malformed, "tcpconnlat");
                return;
            };
            if ports.allows(connect.lport, connect.dport) {
                metrics.record_connect(&connect);
            }
        },
    )?;

    // The HTTP side owns no BPF state: it asks this loop for each exposition.
    let (requests, pending) = mpsc::channel::<SyncSender<String>>();
    let server = thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            http::serve(listener, || {
                let (reply, answer) = mpsc::sync_channel(1);
                requests.send(reply).ok()?;
                answer.recv_timeout(SCRAPE_WAIT).ok()
            })
        })
        .context("cannot start the HTTP thread")?;

    let mut stdout = std::io::stdout();
    // Nobody may be reading stdout (a service); the line is a courtesy.
    let _ = writeln!(stdout, "Serving metrics on http://{bound}/metrics");
    let _ = stdout.flush();

    let mut totals = RttTotals::default();
    let mut last_rtt = Instant::now();
    let mut server_gone = false;
    while !signal::stop_requested() && !server_gone {
        states_stream.poll(POLL_SLICE)?;
        connlat_stream.poll(POLL_SLICE)?;
        let refresh = |totals: &mut RttTotals| -> Result<()> {
            let mut metrics = metrics.borrow_mut();
            read_rtt(&rtt, totals, &mut metrics)?;
            metrics.lost.insert("tcpstates", states_stream.lost_total());
            metrics
                .lost
                .insert("tcpconnlat", connlat_stream.lost_total());
            metrics
                .skipped
                .insert("tcpstates", recursion_misses(states_prog));
            metrics
                .skipped
                .insert("tcpconnlat", recursion_misses(connlat_prog));
            metrics.skipped.insert("tcprtt", recursion_misses(rtt_prog));
            Ok(())
        };
        loop {
            match pending.try_recv() {
                Ok(reply) => {
                    // Whatever happened before the scrape is in it.
                    states_stream.poll(Duration::ZERO)?;
                    connlat_stream.poll(Duration::ZERO)?;
                    refresh(&mut totals)?;
                    let _ = reply.try_send(metrics.borrow().render());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    server_gone = true;
                    break;
                }
            }
        }
        if last_rtt.elapsed() >= RTT_READ_EVERY {
            last_rtt = Instant::now();
            refresh(&mut totals)?;
            states_stream.losses().report();
            connlat_stream.losses().report();
        }
    }
    drop(pending);
    match server.join() {
        Ok(result) => result?,
        Err(_) => return Err(anyhow!("the HTTP thread failed")),
    }
    if server_gone && !signal::stop_requested() {
        return Err(anyhow!("the HTTP server stopped"));
    }
    Ok(())
}

fn bump(counts: &mut std::collections::BTreeMap<&'static str, u64>, key: &'static str) {
    let count = counts.entry(key).or_insert(0);
    *count = count.saturating_add(1);
}
