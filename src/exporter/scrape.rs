//! A scrape: the kernel's counts read and summed, groups placed and named, and the
//! exposition rendered.

use std::collections::BTreeMap;

use anyhow::Result;

use super::collect::{program_stats, KernelCounts, Programs};
use super::exposition::{self, Format, Own, Series};
use super::http::Serving;
use super::label_sets::LabelSets;
use super::metrics::{Counts, Grouped, Groups};
use super::options::GroupBy;
use crate::container::CgroupPaths;
use crate::runtime::Runtimes;

/// The exporter's state between scrapes: which groups have labels, cgroup paths, and with
/// --group-by namespace, pod or container the cgroups' label sets.
pub struct Collector<'a> {
    programs: &'a Programs,
    groups: Groups,
    paths: CgroupPaths,
    /// Each group's activity at the last scrape, to tell the quiet ones.
    activity: BTreeMap<u64, u64>,
    /// The groups `groups` places are label sets, not cgroups (a named kind).
    sets: Option<LabelSets>,
}

impl<'a> Collector<'a> {
    /// `runtimes` names namespaces, pods and containers where the kind is named.
    pub fn new(programs: &'a Programs, max_groups: usize, runtimes: Runtimes) -> Collector<'a> {
        let kind = programs.group_by;
        Collector {
            programs,
            groups: Groups::new(max_groups),
            paths: CgroupPaths::system(),
            activity: BTreeMap::new(),
            sets: kind.named().then(|| LabelSets::new(kind, runtimes)),
        }
    }

    /// The exposition in `format`, with everything the programs counted before this call
    /// and the HTTP side's figures.
    pub fn scrape(&mut self, serving: Serving, format: Format) -> Result<Vec<u8>> {
        let mut kernel = self.programs.read()?;
        self.retire_gone(&mut kernel.groups);
        let mut own = self.own(&mut kernel);
        own.serving = Some(serving);
        if self.programs.group_by == GroupBy::None {
            let series = [Series::new(Vec::new(), &kernel.all)];
            return Ok(exposition::encode(&series, &own, format));
        }
        // The arrays hold the overflow of the kinds kept per group, and the node's
        // histograms of the others.
        let node = kernel.all.clone();
        let grouped = self.split(kernel.groups, kernel.all);
        own.groups = Some(self.groups.sizes());
        let kept = self.programs.grouped_hists;
        let mut series: Vec<Series<'_>> = Vec::with_capacity(grouped.labeled.len() + 2);
        for (id, counts) in &grouped.labeled {
            let group = self.group_labels(*id);
            series.push(Series {
                hists: kept,
                ..Series::new(group, counts)
            });
        }
        let other = self.programs.group_by.labels().iter();
        let other = other.map(|name| (*name, "other".to_owned())).collect();
        series.push(Series {
            hists: kept,
            ..Series::new(other, &grouped.other)
        });
        series.push(Series::node_hists(&node, kept));
        Ok(exposition::encode(&series, &own, format))
    }

    /// The kernel's groups (by cgroup, summed into label sets for a named kind) placed into
    /// labeled groups and "other", which starts with `overflow`.
    fn split(&mut self, groups: BTreeMap<u64, Counts>, overflow: Counts) -> Grouped {
        let Some(sets) = &mut self.sets else {
            return self.groups.split(groups, overflow);
        };
        let paths = &mut self.paths;
        sets.assign(groups.keys().copied(), |id| paths.path(id));
        let paths = &self.paths;
        sets.split(&mut self.groups, &groups, overflow, |dir| {
            paths.dir_exists(dir)
        })
    }

    /// The exporter's own figures (the map fill is taken from `kernel`).
    fn own(&self, kernel: &mut KernelCounts) -> Own {
        let (caught, skipped) = self.programs.skips();
        Own {
            caught,
            skipped,
            programs: self.own_programs(),
            stats_enabled: self.programs.stats_enabled(),
            maps: std::mem::take(&mut kernel.maps),
            map_memory: self.programs.map_memory(),
            group_overflow: kernel.group_overflow,
            sockets_untracked: kernel.sockets_untracked,
            groups: None,
            runtime: self.sets.as_ref().map(LabelSets::status),
            hook: self.programs.attached.hook.to_string(),
            sk_storage: crate::sk_store::in_sk_storage(self.programs.attached.hook),
            serving: None,
            web_config_reload_failures: super::web_reload::reload_failures(),
        }
    }

    /// Retires the cgroups that are gone and counted nothing since the last scrape, and
    /// deletes their kernel entries, so that the bounded group maps keep room for new
    /// containers; a label set keeps what they counted. Network namespaces are never
    /// retired (no cheap way to tell one is gone).
    fn retire_gone(&mut self, groups: &mut BTreeMap<u64, Counts>) {
        if !self.programs.group_by.by_cgroup() {
            return;
        }
        // At most one walk of the hierarchy per scrape, and only for new ids: a group's
        // label is its path from its first scrape on.
        self.paths.learn(groups.keys().copied());
        let mut gone = Vec::new();
        for (&id, counts) in groups.iter() {
            let activity = counts.activity();
            let quiet = self.activity.insert(id, activity) == Some(activity);
            if quiet && !self.paths.exists(id) {
                gone.push(id);
            }
        }
        for id in gone {
            if let Some(counts) = groups.remove(&id) {
                match &mut self.sets {
                    Some(sets) => sets.retire_cgroup(id, &counts),
                    None => self.groups.retire(id, &counts),
                }
                self.programs.forget_group(id);
                self.activity.remove(&id);
            }
        }
    }

    /// A group's labels: the cgroup's path from the hierarchy's root, the network
    /// namespace's inode, or a label set's names.
    fn group_labels(&mut self, id: u64) -> Vec<(&'static str, String)> {
        match (&self.sets, self.programs.group_by) {
            (Some(sets), _) => sets.labels(id),
            (None, GroupBy::Cgroup) => vec![("cgroup", self.paths.path(id))],
            (None, kind) => kind.labels().iter().map(|l| (*l, id.to_string())).collect(),
        }
    }

    fn own_programs(&self) -> Vec<(String, super::collect::ProgramStats)> {
        let programs = self.programs.programs();
        let stats = programs
            .into_iter()
            .map(|(name, fd)| (name.to_owned(), program_stats(fd)));
        stats.collect()
    }
}
