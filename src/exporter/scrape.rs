//! A scrape: the kernel's counts read and summed, groups placed and named, and the
//! exposition rendered.

use std::collections::BTreeMap;

use anyhow::Result;

use super::collect::{program_stats, Programs};
use super::exposition::{self, Own, Series};
use super::metrics::{Counts, Groups};
use super::options::GroupBy;
use crate::container::CgroupPaths;

/// The exporter's state between scrapes: which groups have labels, and cgroup paths.
pub struct Collector<'a> {
    programs: &'a Programs,
    groups: Groups,
    paths: CgroupPaths,
    /// Each group's activity at the last scrape, to tell the quiet ones.
    activity: BTreeMap<u64, u64>,
}

impl<'a> Collector<'a> {
    pub fn new(programs: &'a Programs, max_groups: usize) -> Collector<'a> {
        Collector {
            programs,
            groups: Groups::new(max_groups),
            paths: CgroupPaths::system(),
            activity: BTreeMap::new(),
        }
    }

    /// The exposition, with everything the programs counted before this call.
    pub fn scrape(&mut self) -> Result<String> {
        let mut kernel = self.programs.read()?;
        self.retire_gone(&mut kernel.groups);
        let group_by = self.programs.group_by;
        let (caught, skipped) = self.programs.skips();
        let own = Own {
            caught,
            skipped,
            programs: self.own_programs(),
            stats_enabled: self.programs.stats_enabled(),
            maps: kernel.maps,
            group_overflow: kernel.group_overflow,
            sockets_untracked: kernel.sockets_untracked,
            groups: None,
            hook: self.programs.attached.hook.to_string(),
            sk_storage: crate::sk_store::in_sk_storage(self.programs.attached.hook),
        };
        if group_by == GroupBy::None {
            let series = [Series {
                group: None,
                counts: &kernel.all,
            }];
            return Ok(exposition::render(&series, &own));
        }
        let grouped = self.groups.split(kernel.groups, kernel.all);
        let name = group_by.label();
        let mut series: Vec<Series<'_>> = grouped
            .labeled
            .iter()
            .map(|(id, counts)| Series {
                group: Some((name, self.group_value(*id))),
                counts,
            })
            .collect();
        series.push(Series {
            group: Some((name, "other".to_owned())),
            counts: &grouped.other,
        });
        let own = Own {
            groups: Some(self.groups.sizes()),
            ..own
        };
        Ok(exposition::render(&series, &own))
    }

    /// Retires the groups whose cgroup is gone and that counted nothing since the last
    /// scrape, and deletes their kernel entries, so that the bounded group maps keep room
    /// for new containers. Network namespaces are never retired (no cheap way to tell one
    /// is gone).
    fn retire_gone(&mut self, groups: &mut BTreeMap<u64, Counts>) {
        if self.programs.group_by != GroupBy::Cgroup {
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
                self.groups.retire(id, &counts);
                self.programs.forget_group(id);
                self.activity.remove(&id);
            }
        }
    }

    /// A group's label value: the cgroup's path from the hierarchy's root, or the network
    /// namespace's inode.
    fn group_value(&mut self, id: u64) -> String {
        match self.programs.group_by {
            GroupBy::Cgroup => self.paths.path(id),
            _ => id.to_string(),
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
