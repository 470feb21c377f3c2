//! tcptools-exporter's kernel side: its programs (bpf/exporter.bpf.c), loaded once, and
//! the reads that sum their per-CPU counters and histograms at every scrape.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};
use libbpf_rs::skel::Skel;
use libbpf_rs::{MapCore, MapFlags, MapMut};

use super::metrics::{
    hist_index, kernel_bounds, transition_index, Counts, GroupedHists, Hist, HistKind, HIST_SLOTS,
    STATES,
};
use super::options::{Config, GroupBy};
use crate::attach::{self, Attached};
use crate::programs::prog_info;
use crate::sk_store::{self, Slots};
use crate::skel::exporter::{types, ExporterSkel, ExporterSkelBuilder};

/// A group's keys the kernel maps hold room for: the states it leaves (13 TCP states, in
/// practice one family), its connect outcomes and its RTT and connect latency histograms
/// (one or two families), with room to spare.
const STATES_PER_GROUP: u32 = 16;
const COUNTERS_PER_GROUP: u32 = 8;
const HISTS_PER_GROUP: u32 = 6;

/// The slot table of state starts (bpf/slots.bpf.h): 2^13 buckets, 65,536 sockets (1 MiB
/// of kernel memory) before sockets go to socket storage.
const SOCKET_SLOT_BITS: u32 = 13;

/// Groups the kernel maps hold room for, given `--max-groups`: a quarter more, so that
/// groups beyond the labeled ones still count as themselves (into "other") before the
/// maps overflow.
pub fn kernel_groups(max_groups: usize) -> u32 {
    let max = u32::try_from(max_groups).unwrap_or(u32::MAX);
    max.saturating_add(max / 4).saturating_add(8)
}

/// The loaded programs, and the kernel's run-time statistics kept on for their lifetime.
pub struct Programs {
    pub attached: Attached<ExporterSkel<'static>>,
    pub group_by: GroupBy,
    /// With group_by, the histograms kept per group.
    pub grouped_hists: GroupedHists,
    stats: RunStats,
}

/// Where the programs' run time and count come from.
enum RunStats {
    /// BPF_ENABLE_STATS: kept while the descriptor is open (needs CAP_SYS_ADMIN, Linux 5.8).
    Enabled { _open: OwnedFd },
    /// Whatever the kernel.bpf_stats_enabled sysctl says at each scrape.
    Sysctl,
}

/// The sysctl that keeps every BPF program's run time and count, for everyone.
const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl Programs {
    pub fn load(config: &Config) -> Result<Programs> {
        let attached = attach::load(ExporterSkelBuilder::default, |open, hook| {
            let rodata = attach::rodata(&mut open.maps.rodata_data)?;
            rodata.settings = settings(config);
            let store = crate::open_store!(start, open, rodata);
            sk_store::size(store, hook, Slots::Buckets(SOCKET_SLOT_BITS))?;
            size_group_maps(&mut open.maps, config)
        })?;
        let programs = Programs {
            attached,
            group_by: config.group_by,
            grouped_hists: config.grouped_hists,
            stats: enable_stats().map_or(RunStats::Sysctl, |fd| RunStats::Enabled { _open: fd }),
        };
        if config.verbose {
            eprintln!("{}", programs.stats_note());
            eprintln!("{}", memory_note(&programs.map_memory()));
        }
        Ok(programs)
    }

    /// Whether the kernel keeps the programs' run time and count now.
    pub fn stats_enabled(&self) -> bool {
        match self.stats {
            RunStats::Enabled { .. } => true,
            RunStats::Sysctl => sysctl_stats_on(),
        }
    }

    /// The `-v` line on the programs' run-time statistics.
    fn stats_note(&self) -> String {
        match (&self.stats, self.stats_enabled()) {
            (RunStats::Enabled { .. }, _) => {
                "BPF run-time statistics: on (BPF_ENABLE_STATS, for the exporter's lifetime)".into()
            }
            (RunStats::Sysctl, true) => {
                "BPF run-time statistics: on (kernel.bpf_stats_enabled is 1)".into()
            }
            (RunStats::Sysctl, false) => format!(
                "BPF run-time statistics: off (BPF_ENABLE_STATS needs CAP_SYS_ADMIN and \
                 kernel.bpf_stats_enabled is 0): no tcptools_exporter_bpf_run* metrics until \
                 `sysctl kernel.bpf_stats_enabled=1` ({STATS_SYSCTL})"
            ),
        }
    }

    /// The kernel memory of the programs' maps (what their memlock says), by map.
    pub fn map_memory(&self) -> Vec<(String, u64)> {
        let object = self.attached.skel.object();
        let maps = object.maps().filter_map(|map| {
            let bytes = memlock_of(map.as_fd())?;
            Some((map.name().to_string_lossy().into_owned(), bytes))
        });
        maps.collect()
    }

    /// Everything the programs counted since they were loaded.
    pub fn read(&self) -> Result<KernelCounts> {
        let maps = &self.attached.skel.maps;
        let all = read_arrays(&maps.counters, &maps.hists)?;
        let groups = if self.group_by == GroupBy::None {
            BTreeMap::new()
        } else {
            read_groups(&maps.group_states, &maps.group_counters, &maps.group_hists)?
        };
        Ok(KernelCounts {
            all,
            groups,
            group_overflow: per_cpu_count(&maps.group_overflow)?,
            sockets_untracked: sk_store::untracked(&maps.table_full),
            maps: self.map_fill(),
        })
    }

    fn map_fill(&self) -> Vec<MapFill> {
        let maps = &self.attached.skel.maps;
        let mut fill = Vec::new();
        if self.group_by != GroupBy::None {
            fill.push(MapFill::of("group_states", &maps.group_states));
            fill.push(MapFill::of("group_counters", &maps.group_counters));
            fill.push(MapFill::of("group_hists", &maps.group_hists));
        }
        if !sk_store::in_sk_storage(self.attached.hook) {
            fill.push(MapFill::of("start_table", &maps.start_table));
        }
        fill
    }

    /// The loaded programs, main programs and catchers, with their names without the hook
    /// (`set_state`, `catch_state`, ...).
    pub fn programs(&self) -> Vec<(&'static str, BorrowedFd<'_>)> {
        let programs = self.attached.programs().into_iter();
        programs.map(|(program, fd)| (program.name, fd)).collect()
    }

    /// Events the kernel skipped a main program for: those its catcher ran the handler for
    /// (caught), and those lost (skipped).
    pub fn skips(&self) -> (u64, u64) {
        self.attached.skip_counters().totals()
    }
}

fn settings(config: &Config) -> types::exporter_settings {
    let mut s = types::exporter_settings {
        // Namespaces, pods and containers are named cgroups: the kernel counts by cgroup.
        // Pods and namespaces by the parent of the socket's: a container's cgroup is a
        // child of its pod's, which outlives it (a container gone before a scrape still
        // counts under its pod). Containers need their own.
        hist_bounds: kernel_bounds(),
        grouped_hists: config.grouped_hists.bits(),
        group_by: match config.group_by {
            GroupBy::None => types::group_by::GROUP_NONE,
            GroupBy::Netns => types::group_by::GROUP_NETNS,
            GroupBy::Namespace | GroupBy::Pod => types::group_by::GROUP_CGROUP_PARENT,
            GroupBy::Cgroup | GroupBy::Container => types::group_by::GROUP_CGROUP,
        },
        ..Default::default()
    };
    if let Some(ports) = &config.ports.local {
        (s.filter_lports, s.lports) = (1, ports.bitmap());
    }
    if let Some(ports) = &config.ports.remote {
        (s.filter_rports, s.rports) = (1, ports.bitmap());
    }
    s
}

/// Room for `--max-groups` (and some) in the group maps; one entry when not grouping.
fn size_group_maps(
    maps: &mut crate::skel::exporter::OpenExporterMaps,
    config: &Config,
) -> Result<()> {
    let groups = match config.group_by {
        GroupBy::None => 0,
        _ => kernel_groups(config.max_groups),
    };
    let entries = |per_group: u32| groups.saturating_mul(per_group).max(1);
    maps.group_states
        .set_max_entries(entries(STATES_PER_GROUP))
        .context("sizing group_states")?;
    maps.group_counters
        .set_max_entries(entries(COUNTERS_PER_GROUP))
        .context("sizing group_counters")?;
    maps.group_hists
        .set_max_entries(entries(HISTS_PER_GROUP))
        .context("sizing group_hists")?;
    Ok(())
}

impl Programs {
    /// Deletes every kernel entry of `group`: only for a group that is gone and counts
    /// nothing any more (an update between the last read and this is lost).
    pub fn forget_group(&self, group: u64) {
        let maps = &self.attached.skel.maps;
        for map in [&maps.group_states, &maps.group_counters, &maps.group_hists] {
            let keys: Vec<Vec<u8>> = map.keys().filter(|k| group_key(k).0 == group).collect();
            for key in keys {
                let _ = map.delete(&key);
            }
        }
    }
}

/// The kernel's counts: every socket's (or, with groups, those of groups without room in
/// the group maps), each group's, and the exporter's own.
pub struct KernelCounts {
    pub all: Counts,
    pub groups: BTreeMap<u64, Counts>,
    /// Counts that went to "other" because the group maps were full.
    pub group_overflow: u64,
    /// Sockets whose state start the fixed table had no room for (raw_tp, Linux 5.10).
    pub sockets_untracked: u64,
    pub maps: Vec<MapFill>,
}

/// How full a bounded map is.
pub struct MapFill {
    pub name: &'static str,
    pub entries: u64,
    pub capacity: u64,
}

impl MapFill {
    fn of(name: &'static str, map: &MapMut<'_>) -> MapFill {
        MapFill {
            name,
            entries: map.keys().count() as u64,
            capacity: u64::from(map.max_entries()),
        }
    }
}

fn u64_at(bytes: &[u8], i: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(b) = bytes.get(i * 8..i * 8 + 8) {
        word.copy_from_slice(b);
    }
    u64::from_ne_bytes(word)
}

/// A per-CPU counter's CPUs' values, summed.
fn sum_counter(per_cpu: &[Vec<u8>]) -> u64 {
    per_cpu
        .iter()
        .fold(0u64, |a, v| a.wrapping_add(u64_at(v, 0)))
}

/// A per-CPU `struct exporter_hist`, summed: HIST_SLOTS slots, then the sum.
fn sum_hist(per_cpu: &[Vec<u8>]) -> Hist {
    let mut hist = Hist::default();
    for value in per_cpu {
        for (i, slot) in hist.slots.iter_mut().enumerate() {
            *slot = slot.wrapping_add(u64_at(value, i));
        }
        hist.sum_us = hist.sum_us.wrapping_add(u64_at(value, HIST_SLOTS));
    }
    hist
}

fn lookup_percpu(map: &MapMut<'_>, key: &[u8]) -> Result<Vec<Vec<u8>>> {
    Ok(map
        .lookup_percpu(key, MapFlags::ANY)
        .with_context(|| format!("reading {}", map.name().to_string_lossy()))?
        .unwrap_or_default())
}

fn per_cpu_count(map: &MapMut<'_>) -> Result<u64> {
    Ok(sum_counter(&lookup_percpu(map, &0u32.to_ne_bytes())?))
}

/// The arrays' counts, summed over the CPUs.
fn read_arrays(counters: &MapMut<'_>, hists: &MapMut<'_>) -> Result<Counts> {
    let mut counts = Counts::default();
    let key = |i: usize| (i as u32).to_ne_bytes();
    for (i, value) in counts.counters.iter_mut().enumerate() {
        *value = sum_counter(&lookup_percpu(counters, &key(i))?);
    }
    for (i, hist) in counts.hists.iter_mut().enumerate() {
        *hist = sum_hist(&lookup_percpu(hists, &key(i))?);
    }
    Ok(counts)
}

/// `struct group_key`: the group, then the index.
fn group_key(key: &[u8]) -> (u64, usize) {
    (u64_at(key, 0), u64_at(key, 1) as u32 as usize)
}

/// A value of a map shared by the CPUs, as the one CPU of a per-CPU value (none: deleted
/// since the keys were listed).
fn lookup_shared(map: &MapMut<'_>, key: &[u8]) -> Result<Vec<Vec<u8>>> {
    let value = map
        .lookup(key, MapFlags::ANY)
        .with_context(|| format!("reading {}", map.name().to_string_lossy()))?;
    Ok(value.into_iter().collect())
}

/// The groups' counts: group_states' entries (`struct group_state`: the transitions out
/// of a state, then the time spent in it) spread to the dense indices, then the counters'
/// and histograms' by their index.
fn read_groups(
    states: &MapMut<'_>,
    counters: &MapMut<'_>,
    hists: &MapMut<'_>,
) -> Result<BTreeMap<u64, Counts>> {
    let mut groups: BTreeMap<u64, Counts> = BTreeMap::new();
    for key in states.keys() {
        let (group, index) = group_key(&key);
        let Some(value) = lookup_shared(states, &key)?.pop() else {
            continue;
        };
        let (family, old) = (index / STATES, index % STATES);
        let counts = groups.entry(group).or_default();
        for new in 0..STATES {
            let at = transition_index(family, old, new);
            if let Some(slot) = counts.counters.get_mut(at) {
                *slot = slot.wrapping_add(u64_at(&value, new));
            }
        }
        let time = sum_hist(&[value[(STATES * 8).min(value.len())..].to_vec()]);
        let at = hist_index(family, HistKind::State(old));
        if let Some(hist) = counts.hists.get_mut(at) {
            hist.add(&time);
        }
    }
    for key in counters.keys() {
        let (group, index) = group_key(&key);
        let value = sum_counter(&lookup_shared(counters, &key)?);
        if let Some(slot) = groups.entry(group).or_default().counters.get_mut(index) {
            *slot = slot.wrapping_add(value);
        }
    }
    for key in hists.keys() {
        let (group, index) = group_key(&key);
        let value = sum_hist(&lookup_shared(hists, &key)?);
        if let Some(hist) = groups.entry(group).or_default().hists.get_mut(index) {
            hist.add(&value);
        }
    }
    Ok(groups)
}

/// Turns on the kernel's run-time statistics of BPF programs until the descriptor closes
/// (the exporter's lifetime), not globally as the kernel.bpf_stats_enabled sysctl would.
fn enable_stats() -> Option<OwnedFd> {
    // SAFETY: a plain syscall wrapper; it returns a new descriptor or a negative errno.
    let fd = unsafe {
        libbpf_rs::libbpf_sys::bpf_enable_stats(libbpf_rs::libbpf_sys::BPF_STATS_RUN_TIME)
    };
    // SAFETY: fd is a new descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether kernel.bpf_stats_enabled is on (no: unreadable).
fn sysctl_stats_on() -> bool {
    std::fs::read_to_string(STATS_SYSCTL).is_ok_and(|v| v.trim() != "0")
}

/// A map's `memlock` from /proc/self/fdinfo: its kernel memory in bytes (since Linux 6.5
/// what the map uses, before an estimate from its sizes).
fn memlock_of(map: BorrowedFd<'_>) -> Option<u64> {
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", map.as_raw_fd())).ok()?;
    let line = fdinfo.lines().find_map(|l| l.strip_prefix("memlock:"))?;
    line.trim().parse().ok()
}

/// The `-v` line on the maps' kernel memory: the total and the largest maps.
fn memory_note(maps: &[(String, u64)]) -> String {
    let total: u64 = maps.iter().map(|(_, bytes)| bytes).sum();
    let mut largest: Vec<&(String, u64)> = maps.iter().collect();
    largest.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
    let largest: Vec<String> = largest
        .iter()
        .take(4)
        .map(|(name, bytes)| format!("{name} {}", kib(*bytes)))
        .collect();
    format!(
        "BPF maps' kernel memory: {} over {} maps, {} possible CPUs (largest: {})",
        kib(total),
        maps.len(),
        libbpf_rs::num_possible_cpus().unwrap_or(0),
        largest.join(", ")
    )
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// A program's run statistics (zero where the kernel keeps none).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgramStats {
    pub run_ns: u64,
    pub runs: u64,
}

pub fn program_stats(prog: BorrowedFd<'_>) -> ProgramStats {
    prog_info(prog)
        .map(|info| ProgramStats {
            run_ns: info.run_time_ns,
            runs: info.run_cnt,
        })
        .unwrap_or_default()
}
