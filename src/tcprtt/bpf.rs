//! tcprtt's BPF side: its settings, loaded and attached on tcp:tcp_probe, and the
//! user-space half of the generation protocol that reads one interval's histograms.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, MapFlags, MapMut};

use super::event::RttHist;
use super::print::{sort_sections, KeyKind};
use crate::attach::{self, Attached};
use crate::container::{CgroupSet, ContainerFilter};
use crate::pods::Identities;
use crate::skel::tcprtt::{types, TcprttSkel, TcprttSkelBuilder};
use crate::{cgroup_set, container_settings, size_cgroup_set};

pub type Skel = TcprttSkel<'static>;

/// An address filter of `-a`/`-A`: IPv4 (network order) or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrFilter {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// Which segments are counted. The default counts every segment of every socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// AF_INET or AF_INET6; 0: both.
    pub family: u16,
    /// `-p`/`-P`: one local/remote port; 0: any.
    pub lport: u16,
    pub rport: u16,
    pub laddr: Option<AddrFilter>,
    pub raddr: Option<AddrFilter>,
}

impl Filter {
    fn settings(&self, key: KeyKind, millisecond: bool) -> types::tcprtt_settings {
        let mut s = types::tcprtt_settings {
            family: self.family,
            lport: self.lport,
            rport: self.rport,
            key: types::hist_key_kind(key as u32),
            millisecond: u8::from(millisecond),
            ..Default::default()
        };
        match self.laddr {
            Some(AddrFilter::V4(a)) => s.laddr_v4 = u32::from_ne_bytes(a),
            Some(AddrFilter::V6(a)) => (s.filter_laddr_v6, s.laddr_v6) = (1, a),
            None => {}
        }
        match self.raddr {
            Some(AddrFilter::V4(a)) => s.raddr_v4 = u32::from_ne_bytes(a),
            Some(AddrFilter::V6(a)) => (s.filter_raddr_v6, s.raddr_v6) = (1, a),
            None => {}
        }
        s
    }
}

/// Loads and attaches the programs that count the segments `filter` and `container` let
/// through into histograms keyed by `key`, in milliseconds or microseconds. The cgroup set
/// holds `container`'s cgroups before the programs are attached.
pub fn load(
    filter: &Filter,
    container: &ContainerFilter,
    key: KeyKind,
    millisecond: bool,
) -> Result<(Attached<Skel>, CgroupSet)> {
    attach::load_then(
        TcprttSkelBuilder::default,
        |open, _| {
            let rodata = attach::rodata(&mut open.maps.rodata_data)?;
            rodata.settings = filter.settings(key, millisecond);
            rodata.settings.container = container_settings!(types::container_settings, container);
            size_cgroup_set!(open, container)?;
            // The default key's histograms are in the array: the keyed map costs no memory.
            if key == KeyKind::All {
                let keyed = &mut open.maps.keyed_hists;
                keyed
                    .set_max_entries(1)
                    .context("failed to size keyed_hists")?;
            }
            Ok(())
        },
        |skel| cgroup_set!(skel, container),
    )
}

/// How long a program run can still be using the generation it read before user space
/// moved it on. tcp_probe programs run with preemption disabled and take microseconds;
/// this is three orders of magnitude more.
const GRACE: Duration = Duration::from_millis(10);
/// Bound on passes over the map when keys of old generations keep turning up.
const MAX_PASSES: usize = 4;

/// Ends the current generation and returns its histograms, cleared in the maps, in print
/// order, cgroups named by `identities`.
///
/// Why no sample is lost or counted twice: the BPF side writes only under the generation
/// it read at the start of its run. After the switch and the grace period, no run writes
/// the old generation's histograms, so reading then clearing them races with nothing, and
/// every sample of the interval is in exactly one of them.
pub fn take_interval(
    skel: &mut Skel,
    generation: &mut u32,
    identities: &mut Identities,
) -> Result<Vec<RttHist>> {
    let old = *generation;
    let next = old.wrapping_add(1);
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
    // The key kind fills one of the maps; the other stays empty and adds nothing.
    let mut hists: Vec<RttHist> = take_default(&skel.maps.hists, old)?.into_iter().collect();
    hists.extend(drain_all_but(&skel.maps.keyed_hists, next)?.into_values());
    for hist in hists.iter_mut().filter(|h| h.cgroup_id != 0) {
        hist.cgroup = identities.path(hist.cgroup_id);
    }
    sort_sections(&mut hists);
    Ok(hists)
}

/// Reads the default key's histogram of generation `old` (at index `old & 1`) and zeroes
/// it for generation `old + 2`, which shares its index; None if it counted nothing (as the
/// keyed map has no key then).
fn take_default(map: &MapMut, old: u32) -> Result<Option<RttHist>> {
    let cpus = libbpf_rs::num_possible_cpus().context("failed to count the CPUs")?;
    let zeros = vec![vec![0; map.value_size() as usize]; cpus];
    let index = (old & 1).to_ne_bytes();
    let values = map
        .lookup_percpu(&index, MapFlags::ANY)
        .context("failed to lookup infos")?
        .unwrap_or_default();
    map.update_percpu(&index, &zeros, MapFlags::ANY)
        .context("failed to cleanup infos")?;
    let hist = RttHist::sum_cpus(&types::hist_key::default(), &values);
    Ok(hist.filter(|hist| hist.count != 0))
}

/// A histogram's key without its generation: family, address, cgroup id.
type HistKey = (u16, [u8; 16], u64);

/// Reads and deletes every key of a generation other than `current`, merged by key.
fn drain_all_but(map: &MapMut, current: u32) -> Result<BTreeMap<HistKey, RttHist>> {
    let mut merged = BTreeMap::new();
    for _ in 0..MAX_PASSES {
        let stale: Vec<Vec<u8>> = map
            .keys()
            .filter(|key| key_generation(key) != Some(current))
            .collect();
        if stale.is_empty() {
            break;
        }
        for key in stale {
            let Some(hist) = read(map, &key)? else {
                continue;
            };
            map.delete(&key).context("failed to cleanup infos")?;
            merged
                .entry((hist.family, hist.addr, hist.cgroup_id))
                .and_modify(|same: &mut RttHist| same.merge(&hist))
                .or_insert(hist);
        }
    }
    Ok(merged)
}

/// One keyed histogram; None if the key vanished or does not decode.
fn read(map: &MapMut, key: &[u8]) -> Result<Option<RttHist>> {
    let value = map
        .lookup(key, MapFlags::ANY)
        .context("failed to lookup infos")?;
    Ok(value.and_then(|value| RttHist::decode_per_cpu(key, &[value]).map(|(_, hist)| hist)))
}

fn key_generation(key: &[u8]) -> Option<u32> {
    key.get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
}
