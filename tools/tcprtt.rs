//! tcprtt: summarize the smoothed RTT of received TCP segments as log2 histograms.

use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::process;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Local;
use libbpf_rs::{MapCore, MapFlags, OpenObject};

use tcptools::attach::{self, Hook};
use tcptools::net::family_filter;
use tcptools::out::Output;
use tcptools::skel::tcprtt::{TcprttSkel, TcprttSkelBuilder};
use tcptools::stream::recursion_misses;
use tcptools::tcprtt::options::Options;
use tcptools::tcprtt::{banner, sort_sections, write_interval, Format, KeyKind, RttHist};
use tcptools::{cli, privilege, signal};

const TOOL: &str = "tcprtt";

// ---- options ----

// `Options` lives in the library so the man page and completions come from the same
// definition (`make docs`); here the parsed options are validated into a Config.

/// An address filter: IPv4 (network order) or IPv6. The all-zero address means no filter,
/// as in bcc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AddrFilter {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// What to trace and how to print it, validated.
struct Config {
    /// Seconds between intervals; None: until Ctrl-C.
    interval: Option<u64>,
    /// `-d`: seconds until the tool ends.
    duration: Option<u64>,
    family: u16,
    lport: u16,
    rport: u16,
    laddr: Option<AddrFilter>,
    raddr: Option<AddrFilter>,
    format: Format,
    verbose: bool,
}

/// bcc's `strtol(arg, NULL, 10) > 0` test for `-i`/`-d`: leading blanks and a sign are
/// allowed and text after the digits is ignored (`1abc` is 1); no digits, zero, negatives
/// and values beyond a C long are rejected.
fn parse_seconds(arg: &str) -> Option<u64> {
    let s = arg.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let value: i64 = rest[..digits].parse().ok()?;
    if negative || value <= 0 {
        return None;
    }
    u64::try_from(value).ok()
}

/// A port for `-p`/`-P`: decimal digits only, 1..=65535.
fn parse_port(arg: &str) -> Option<u16> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    arg.parse::<u16>().ok().filter(|&p| p > 0)
}

/// `-a`/`-A`: text with a `:` is IPv6, anything else must be a dotted-quad IPv4 address
/// (inet_pton's rules). The all-zero address is no filter.
fn parse_addr(arg: &str) -> Result<Option<AddrFilter>, ()> {
    let filter = if arg.contains(':') {
        AddrFilter::V6(arg.parse::<Ipv6Addr>().map_err(|_| ())?.octets())
    } else {
        AddrFilter::V4(arg.parse::<Ipv4Addr>().map_err(|_| ())?.octets())
    };
    let zero = match filter {
        AddrFilter::V4(a) => a == [0; 4],
        AddrFilter::V6(a) => a == [0; 16],
    };
    Ok((!zero).then_some(filter))
}

impl Config {
    fn from_options(o: Options) -> Config {
        let seconds = |arg: Option<String>, what: &str| {
            arg.map(|a| {
                parse_seconds(&a)
                    .unwrap_or_else(|| cli::usage_error(format!("invalid {what}: {a}")))
            })
        };
        let port = |arg: Option<String>, what: &str| {
            arg.map_or(0, |a| {
                parse_port(&a).unwrap_or_else(|| cli::usage_error(format!("invalid {what}: {a}")))
            })
        };
        let interval = seconds(o.interval, "interval");
        let duration = seconds(o.duration, "duration");
        let laddr = o.laddr.and_then(|a| {
            parse_addr(&a).unwrap_or_else(|()| {
                let what = if a.contains(':') {
                    "local IPv6 address"
                } else {
                    "local address"
                };
                cli::usage_error(format!("invalid {what}: {a}"))
            })
        });
        let raddr = o.raddr.and_then(|a| {
            parse_addr(&a)
                .unwrap_or_else(|()| cli::usage_error(format!("invalid remote address: {a}")))
        });
        let lport = port(o.lport, "lport");
        let rport = port(o.rport, "rport");
        Config {
            // bcc never ends with -d alone (it sleeps 99999999 s); DECISIONS §3: one
            // interval of the whole duration, then exit.
            interval: interval.or(duration),
            duration,
            family: family_filter(o.ipv4, o.ipv6),
            lport,
            rport,
            laddr,
            raddr,
            format: Format {
                key: if o.byladdr {
                    KeyKind::Local
                } else if o.byraddr {
                    KeyKind::Remote
                } else {
                    KeyKind::All
                },
                extension: o.extension,
                timestamp: o.timestamp,
                millisecond: o.millisecond,
                json: o.json,
            },
            verbose: o.verbose,
        }
    }

    /// bcc refuses an IPv4 and an IPv6 address filter together (exit 1, not a usage error).
    fn mixes_families(&self) -> bool {
        let filters = [self.laddr, self.raddr];
        let v4 = filters.iter().any(|f| matches!(f, Some(AddrFilter::V4(_))));
        let v6 = filters.iter().any(|f| matches!(f, Some(AddrFilter::V6(_))));
        v4 && v6
    }
}

fn main() {
    let config = Config::from_options(cli::parse(TOOL));
    if config.mixes_families() {
        eprintln!("It is not permitted to filter by both IPv4 and IPv6");
        process::exit(cli::EXIT_FAILURE);
    }
    cli::run(TOOL, || trace(&config))
}

// ---- BPF setup ----

fn open_load_attach<'obj>(
    hook: Hook,
    object: &'obj mut MaybeUninit<OpenObject>,
    config: &Config,
) -> Result<TcprttSkel<'obj>> {
    attach::open_load_attach(TcprttSkelBuilder::default(), object, |open| {
        open.progs.tcp_probe_btf.set_autoload(hook == Hook::TpBtf);
        open.progs.tcp_probe_raw.set_autoload(hook == Hook::RawTp);
        let rodata = attach::rodata(&mut open.maps.rodata_data)?;
        rodata.targ_laddr_hist = u8::from(config.format.key == KeyKind::Local);
        rodata.targ_raddr_hist = u8::from(config.format.key == KeyKind::Remote);
        rodata.targ_ms = u8::from(config.format.millisecond);
        rodata.targ_family = config.family;
        rodata.targ_sport = config.lport;
        rodata.targ_dport = config.rport;
        match config.laddr {
            Some(AddrFilter::V4(a)) => rodata.targ_saddr = u32::from_ne_bytes(a),
            Some(AddrFilter::V6(a)) => {
                rodata.filter_saddr_v6 = 1;
                rodata.targ_saddr_v6 = a;
            }
            None => {}
        }
        match config.raddr {
            Some(AddrFilter::V4(a)) => rodata.targ_daddr = u32::from_ne_bytes(a),
            Some(AddrFilter::V6(a)) => {
                rodata.filter_daddr_v6 = 1;
                rodata.targ_daddr_v6 = a;
            }
            None => {}
        }
        Ok(())
    })
}

// ---- reading intervals ----

/// How long a program run can still be using the generation it read before user space
/// moved it on. tcp_probe programs run with preemption disabled and take microseconds;
/// this is three orders of magnitude more.
const GRACE: Duration = Duration::from_millis(10);
/// Bound on passes over the map when keys of old generations keep turning up.
const MAX_PASSES: usize = 4;

/// Ends the current generation and returns its histograms, removed from the map.
///
/// Why no sample is lost or counted twice: the BPF side writes only under the generation
/// it read at the start of its run. After the switch and the grace period, no run writes
/// the old generation's keys, so reading then deleting them races with nothing, and every
/// sample of the interval is in exactly one of them.
fn take_interval(skel: &mut TcprttSkel, generation: &mut u32) -> Result<Vec<RttHist>> {
    let next = generation.wrapping_add(1);
    let bss = skel
        .maps
        .bss_data
        .as_deref_mut()
        .context("BPF object has no .bss")?;
    // SAFETY: a valid, aligned u32 in the mmapped .bss; volatile because only the BPF
    // side reads it.
    unsafe { std::ptr::write_volatile(&mut bss.generation, next) };
    *generation = next;
    std::thread::sleep(GRACE);

    let map = &skel.maps.hists;
    let mut hists: Vec<RttHist> = Vec::new();
    for _ in 0..MAX_PASSES {
        let stale: Vec<Vec<u8>> = map
            .keys()
            .filter(|key| key_generation(key) != Some(next))
            .collect();
        if stale.is_empty() {
            break;
        }
        for key in stale {
            let Some(value) = map
                .lookup(&key, MapFlags::ANY)
                .context("failed to lookup infos")?
            else {
                continue;
            };
            map.delete(&key).context("failed to cleanup infos")?;
            let Some((_, hist)) = RttHist::decode(&key, &value) else {
                continue;
            };
            match hists
                .iter_mut()
                .find(|h| h.family == hist.family && h.addr == hist.addr)
            {
                Some(same) => same.merge(&hist),
                None => hists.push(hist),
            }
        }
    }
    sort_sections(&mut hists);
    Ok(hists)
}

fn key_generation(key: &[u8]) -> Option<u32> {
    key.get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
}

// ---- interval loop ----

/// Longest single sleep: bcc's `sleep()` takes an unsigned int of seconds.
const MAX_SLEEP: Duration = Duration::from_secs(u32::MAX as u64);

fn trace(config: &Config) -> Result<()> {
    privilege::require_bpf()?;
    attach::libbpf_logging(config.verbose);
    signal::install()?;
    let mut storage = attach::object_storage();
    let (mut skel, hook) = attach::with_fallback(&mut storage, |hook, object| {
        open_load_attach(hook, object, config)
    })?;

    let format = config.format;
    let mut out = Output::stdout();
    out.emit(|w| banner(w, config.duration, &format))?;
    out.flush()?;

    let start = Instant::now();
    let interval = config
        .interval
        .map_or(MAX_SLEEP, |s| Duration::from_secs(s).min(MAX_SLEEP));
    let duration = config.duration.map(Duration::from_secs);
    let mut generation = 0u32;
    let mut skips_reported = 0u64;
    loop {
        let slept_fully = signal::sleep_unless_stopped(interval);
        let hists = take_interval(&mut skel, &mut generation)?;
        out.emit(|w| write_interval(w, &format, Local::now(), &hists))
            .context("failed to write output")?;
        out.flush().context("failed to write output")?;

        let program = match hook {
            Hook::TpBtf => skel.progs.tcp_probe_btf.as_fd(),
            Hook::RawTp => skel.progs.tcp_probe_raw.as_fd(),
        };
        let skips = recursion_misses(program);
        if skips > skips_reported {
            eprintln!("kernel skipped {} events", skips - skips_reported);
            skips_reported = skips;
        }

        if !slept_fully || out.is_closed() {
            break;
        }
        if duration.is_some_and(|d| start.elapsed() > d) {
            break;
        }
    }
    Ok(())
}
