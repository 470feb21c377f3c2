//! tcprtt: summarize the smoothed RTT of received TCP segments as log2 histograms.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Local;

use tcptools::container::Shows;
use tcptools::nested::Skips;
use tcptools::out::Output;
use tcptools::tcprtt::{banner, bpf, merge_by_pod, write_interval, Config, KeyKind, Options};
use tcptools::{cli, signal};

/// Longest single sleep: bcc's `sleep()` takes an unsigned int of seconds.
const MAX_SLEEP: Duration = Duration::from_secs(u32::MAX as u64);

fn main() {
    cli::main::<Options>(trace)
}

fn trace(config: &Config) -> Result<()> {
    let format = config.format;
    let mut traced = config.container.trace(
        Shows {
            cgroup: format.key == KeyKind::Cgroup,
            names: format.bypod,
        },
        "tcprtt",
    )?;
    let (mut bpf, cgroups) = bpf::load(
        &config.filter,
        &traced.filter,
        format.key,
        format.millisecond,
    )?;
    traced.follow(cgroups);
    let mut identities = traced.identities();
    let mut out = Output::stdout();
    out.emit(|w| banner(w, config.duration, &format))?;
    out.flush()?;

    let start = Instant::now();
    let interval = config
        .interval
        .map_or(MAX_SLEEP, |s| Duration::from_secs(s).min(MAX_SLEEP));
    let duration = config.duration.map(Duration::from_secs);
    let mut generation = 0u32;
    let skips = Skips::default();
    loop {
        let slept_fully = signal::sleep_unless_stopped(interval);
        let mut hists = bpf::take_interval(&mut bpf.skel, &mut generation, &mut identities)?;
        if format.bypod {
            hists = merge_by_pod(hists, &mut identities);
        }
        out.emit(|w| write_interval(w, &format, Local::now(), &hists))
            .context("failed to write output")?;
        out.flush().context("failed to write output")?;
        skips.report(&bpf.skip_counters());
        if !slept_fully || out.is_closed() || duration.is_some_and(|d| start.elapsed() > d) {
            break;
        }
    }
    Ok(())
}
