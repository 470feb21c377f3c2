//! A selector followed while the tool runs: pods and containers that start are added to
//! the kernel's set of traced cgroups, those that end are removed.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Selector;
use crate::container::{Cgroup, CgroupPaths, CgroupSet};
use crate::runtime::Runtimes;

/// How often the selection looks for new and removed pods and containers.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Where selected cgroups go: the kernel's set of traced cgroups.
pub trait CgroupSink: Send + 'static {
    fn insert(&mut self, cgroup: &Cgroup) -> anyhow::Result<()>;
    fn remove(&mut self, id: u64) -> anyhow::Result<()>;
}

/// The kernel's set, shared with the thread that follows the selector.
impl CgroupSink for CgroupSet {
    fn insert(&mut self, cgroup: &Cgroup) -> anyhow::Result<()> {
        CgroupSet::insert(self, cgroup)
    }

    fn remove(&mut self, id: u64) -> anyhow::Result<()> {
        CgroupSet::remove(self, id)
    }
}

/// A selector's cgroups: those found at start (the kernel's initial set), then followed by a
/// thread of its own as pods and containers come and go.
pub struct Selection {
    selector: Selector,
    runtimes: Runtimes,
    paths: CgroupPaths,
    current: BTreeMap<u64, Cgroup>,
    tool: &'static str,
}

impl Selection {
    /// The cgroups `selector` selects now; if none, one line on stderr says the tool waits.
    pub fn start(selector: Selector, runtimes: Runtimes, tool: &'static str) -> Selection {
        let mut paths = CgroupPaths::system();
        let found = selector.cgroups(&mut paths, &runtimes);
        if found.is_empty() {
            eprintln!(
                "{tool}: no {} is running yet; waiting for it",
                selector.describe()
            );
        }
        let selection = Selection {
            selector,
            runtimes,
            paths,
            current: found.into_iter().map(|c| (c.id, c)).collect(),
            tool,
        };
        selection.report(selection.current.values(), "tracing");
        selection
    }

    /// The cgroups the kernel's set starts with.
    pub fn initial(&self) -> Vec<Cgroup> {
        self.current.values().cloned().collect()
    }

    /// Follows the selector from now on in a thread of its own, keeping `sink` to what it
    /// selects.
    pub fn follow(mut self, mut sink: impl CgroupSink) {
        std::thread::spawn(move || loop {
            std::thread::sleep(FOLLOW_EVERY);
            self.update(&mut sink);
        });
    }

    /// One look: the selected cgroups that are new go into `sink`, those gone out of it.
    fn update(&mut self, sink: &mut impl CgroupSink) {
        let found = self.selector.cgroups(&mut self.paths, &self.runtimes);
        let found: BTreeMap<u64, Cgroup> = found.into_iter().map(|c| (c.id, c)).collect();
        let (new, gone) = changes(&self.current, &found);
        for cgroup in &new {
            self.check(sink.insert(cgroup), cgroup);
        }
        for cgroup in &gone {
            self.check(sink.remove(cgroup.id), cgroup);
        }
        self.report(new.iter(), "tracing");
        self.report(gone.iter(), "no longer tracing");
        self.current = found;
    }

    fn check(&self, done: anyhow::Result<()>, cgroup: &Cgroup) {
        if let Err(err) = done {
            let tool = self.tool;
            eprintln!("{tool}: cannot select cgroup {}: {err:#}", cgroup.path);
        }
    }

    /// With -v, one line per cgroup selected or gone.
    fn report<'a>(&self, cgroups: impl Iterator<Item = &'a Cgroup>, what: &str) {
        if !crate::attach::verbose() {
            return;
        }
        let (tool, selected) = (self.tool, self.selector.describe());
        for cgroup in cgroups {
            eprintln!("{tool}: {what} {selected} (cgroup {})", cgroup.path);
        }
    }
}

/// The cgroups in `found` but not in `current`, and those in `current` but not in `found`.
fn changes(
    current: &BTreeMap<u64, Cgroup>,
    found: &BTreeMap<u64, Cgroup>,
) -> (Vec<Cgroup>, Vec<Cgroup>) {
    let missing_from = |a: &BTreeMap<u64, Cgroup>, b: &BTreeMap<u64, Cgroup>| -> Vec<Cgroup> {
        a.values()
            .filter(|c| !b.contains_key(&c.id))
            .cloned()
            .collect()
    };
    (missing_from(found, current), missing_from(current, found))
}
