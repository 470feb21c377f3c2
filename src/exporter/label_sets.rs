//! `--group-by namespace|pod|container`: the kernel counts by cgroup, and each cgroup gets the
//! label set its names make, from the node's container runtime (never the API server). A
//! set's counts are its cgroups' summed, plus what its retired cgroups had counted, so a
//! pod's counters never go down when a container restarts (in a new cgroup).
//!
//! Rules (docs/exporter.md, "Groups"):
//! - A cgroup's set is decided at the first scrape that sees it and kept until the cgroup is
//!   retired, so counts never move from one series to another. When the runtime's cache does
//!   not know a new cgroup's pod or container, that scrape waits for one refresh first (when
//!   the runtime is up); still unknown, the pod is labeled by its uid (`namespace=""`) and the
//!   container by its id.
//! - A cgroup in no pod has empty names, but for a Docker or podman container's name in
//!   `container`.
//! - A set lasts while it has a cgroup, or while one of its pods' (or, outside pods, its
//!   containers') cgroup directories exists: a pod whose containers are all restarting
//!   keeps its series. Then it ends, and `Groups::retire` decides what its counts become.
//! - Sets get ids that are never reused: those are the keys `Groups` places.

use std::collections::{BTreeMap, BTreeSet};

use super::metrics::{Counts, Grouped, Groups};
use super::options::GroupBy;
use crate::identity::{parse_cgroup_path, CgroupIdentity};
use crate::runtime::{Runtimes, Status};

/// A label set's values, in the order of [`GroupBy::labels`].
type Values = Vec<String>;

/// One label set: the live cgroups it sums and what its retired ones had counted.
struct LabelSet {
    values: Values,
    cgroups: BTreeSet<u64>,
    /// Cgroup directories that keep the set while it has no cgroup left.
    anchors: BTreeSet<String>,
    retired: Counts,
}

/// The label sets of the cgroups seen, for a [`GroupBy::named`] kind.
pub struct LabelSets {
    kind: GroupBy,
    runtimes: Runtimes,
    /// Each live cgroup's set.
    of_cgroup: BTreeMap<u64, u64>,
    ids: BTreeMap<Values, u64>,
    sets: BTreeMap<u64, LabelSet>,
    next_id: u64,
}

/// A cgroup's names: namespace, pod, container; and whether the runtime left one unknown.
struct Names {
    values: [String; 3],
    unnamed: bool,
}

impl LabelSets {
    pub fn new(kind: GroupBy, runtimes: Runtimes) -> LabelSets {
        LabelSets {
            kind,
            runtimes,
            of_cgroup: BTreeMap::new(),
            ids: BTreeMap::new(),
            sets: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// Whether the runtimes answer, for the exporter's own metrics.
    pub fn status(&self) -> Status {
        self.runtimes.status()
    }

    /// Gives each of `cgroups` not seen before its set, from its path (`path_of`).
    pub fn assign(
        &mut self,
        cgroups: impl IntoIterator<Item = u64>,
        mut path_of: impl FnMut(u64) -> String,
    ) {
        let new: Vec<(u64, Option<CgroupIdentity>)> = cgroups
            .into_iter()
            .filter(|id| !self.of_cgroup.contains_key(id))
            .map(|id| (id, parse_cgroup_path(&path_of(id))))
            .collect();
        let unnamed = new.iter().any(|(_, who)| self.names(who.as_ref()).unnamed);
        // Names at first sight: a container is known to its runtime before its processes
        // run, but the cache may not have asked since.
        if unnamed {
            self.runtimes.refresh_if_up();
        }
        for (id, who) in new {
            let Names { values, .. } = self.names(who.as_ref());
            let values = values.into_iter().take(self.kind.labels().len()).collect();
            self.join(id, values, who.as_ref().and_then(anchor));
        }
    }

    fn join(&mut self, cgroup: u64, values: Values, anchor: Option<String>) {
        let next_id = &mut self.next_id;
        let id = *self.ids.entry(values.clone()).or_insert_with(|| {
            *next_id += 1;
            *next_id
        });
        let set = self.sets.entry(id).or_insert_with(|| LabelSet {
            values,
            cgroups: BTreeSet::new(),
            anchors: BTreeSet::new(),
            retired: Counts::default(),
        });
        set.cgroups.insert(cgroup);
        set.anchors.extend(anchor);
        self.of_cgroup.insert(cgroup, id);
    }

    /// The names of a cgroup with this identity (None: in no pod or container).
    fn names(&self, who: Option<&CgroupIdentity>) -> Names {
        let pod_ref = who.and_then(|who| who.pod.as_ref());
        let container_ref = who.and_then(|who| who.container.as_ref());
        let container = container_ref.and_then(|c| self.runtimes.container(&c.id));
        let pod = pod_ref.and_then(|p| self.runtimes.pod(&p.uid));
        let pod = pod.or_else(|| container.as_ref().and_then(|c| c.pod.clone()));
        let unnamed_pod = pod.is_none() && pod_ref.is_some();
        let unnamed_container = container.is_none() && container_ref.is_some();
        let (namespace, pod_name) = match (pod, pod_ref) {
            (Some(pod), _) => (pod.namespace, pod.name),
            (None, Some(unnamed)) => (String::new(), unnamed.uid.clone()),
            (None, None) => Default::default(),
        };
        let container_name = match (container, container_ref) {
            (Some(names), _) => names.name,
            (None, Some(unnamed)) => unnamed.id.clone(),
            (None, None) => String::new(),
        };
        Names {
            unnamed: unnamed_pod || (self.kind == GroupBy::Container && unnamed_container),
            values: [namespace, pod_name, container_name],
        }
    }

    /// Cgroup `id` is retired (gone, and quiet) with everything it counted: its set keeps
    /// the counts.
    pub fn retire_cgroup(&mut self, id: u64, counts: &Counts) {
        let Some(set) = self.of_cgroup.remove(&id) else {
            return;
        };
        if let Some(set) = self.sets.get_mut(&set) {
            set.cgroups.remove(&id);
            set.retired.add(counts);
        }
    }

    /// One scrape's split of `groups` (the kernel's, by cgroup, every one assigned):
    /// summed into their sets, the sets that ended retired from `placed`, and the rest
    /// placed into labeled sets and "other" (`overflow` to start with). `dir_exists` tells
    /// whether a cgroup directory exists.
    pub fn split(
        &mut self,
        placed: &mut Groups,
        groups: &BTreeMap<u64, Counts>,
        overflow: Counts,
        dir_exists: impl Fn(&str) -> bool,
    ) -> Grouped {
        let ended: Vec<u64> = self
            .sets
            .iter()
            .filter(|(_, set)| set.cgroups.is_empty() && !set.anchors.iter().any(|d| dir_exists(d)))
            .map(|(&id, _)| id)
            .collect();
        for id in ended {
            if let Some(set) = self.sets.remove(&id) {
                self.ids.remove(&set.values);
                placed.retire(id, &set.retired);
            }
        }
        let mut sums: BTreeMap<u64, Counts> = BTreeMap::new();
        for (&id, set) in &self.sets {
            let mut sum = set.retired.clone();
            for counts in set.cgroups.iter().filter_map(|c| groups.get(c)) {
                sum.add(counts);
            }
            sums.insert(id, sum);
        }
        placed.split(sums, overflow)
    }

    /// The labels of set `id`, in the order of [`GroupBy::labels`].
    pub fn labels(&self, id: u64) -> Vec<(&'static str, String)> {
        let values = self.sets.get(&id).map(|set| set.values.clone());
        let values = values.unwrap_or_else(|| vec![id.to_string(); self.kind.labels().len()]);
        self.kind.labels().iter().copied().zip(values).collect()
    }
}

/// The cgroup directory that keeps a cgroup's set: its pod's, else its container's.
fn anchor(who: &CgroupIdentity) -> Option<String> {
    let pod = who.pod.as_ref().map(|pod| pod.dir.clone());
    pod.or_else(|| who.container.as_ref().map(|c| c.dir.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::metrics::transition_index;
    use crate::runtime::{ContainerNames, PodNames};

    const UID_WEB: &str = "3f2a9c1e-5b7d-4e8f-a012-6c3d4e5f6a7b";
    const UID_DB: &str = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";
    const UID_UNKNOWN: &str = "99999999-8888-4777-8666-555555555555";

    /// A container id: 64 hex digits made of `c`.
    fn id(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn pod_dir(uid: &str) -> String {
        format!("/kubepods/besteffort/pod{uid}")
    }

    /// Cgroups by id: 1-3 in pod web (its containers a, b, and a's restart c), 4 in pod
    /// db, 5 a Docker container, 6 a node service, 7 a pod no runtime names, 8 an unnamed
    /// container in pod web; and the parents the kernel keys `pod` and `namespace` by: 9
    /// pod web's cgroup, 10 db's, 11 the unnamed pod's, 12 the node's services, 13 a QoS
    /// class (the parent of a pod's own cgroup).
    fn path_of(cgroup: u64) -> String {
        let docker = format!("/system.slice/docker-{}.scope", id('d'));
        match cgroup {
            1 => format!("{}/{}", pod_dir(UID_WEB), id('a')),
            2 => format!("{}/{}", pod_dir(UID_WEB), id('b')),
            3 => format!("{}/{}", pod_dir(UID_WEB), id('c')),
            4 => format!("{}/{}", pod_dir(UID_DB), id('e')),
            5 => docker,
            6 => "/system.slice/ssh.service".to_owned(),
            7 => format!("{}/{}", pod_dir(UID_UNKNOWN), id('f')),
            8 => format!("{}/{}", pod_dir(UID_WEB), id('9')),
            9 => pod_dir(UID_WEB),
            10 => pod_dir(UID_DB),
            11 => pod_dir(UID_UNKNOWN),
            12 => "/system.slice".to_owned(),
            13 => "/kubepods/besteffort".to_owned(),
            n => n.to_string(),
        }
    }

    fn pod(namespace: &str, name: &str, uid: &str) -> PodNames {
        PodNames {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
        }
    }

    fn container(name: &str, c: char, pod: Option<PodNames>) -> ContainerNames {
        ContainerNames {
            name: name.to_owned(),
            id: id(c),
            pod,
        }
    }

    /// What the runtime names: pods web and db, their containers, and redis in Docker.
    fn runtimes() -> Runtimes {
        let web = pod("shop", "web-0", UID_WEB);
        let db = pod("shop", "db-0", UID_DB);
        let containers = vec![
            container("app", 'a', Some(web.clone())),
            container("sidecar", 'b', Some(web.clone())),
            container("app", 'c', Some(web.clone())),
            container("postgres", 'e', Some(db.clone())),
            container("redis", 'd', None),
        ];
        Runtimes::fixed(vec![web, db], containers)
    }

    fn busy(n: u64) -> Counts {
        let mut counts = Counts::default();
        counts.counters[transition_index(0, 1, 4)] = n;
        counts
    }

    /// A scrape as the collector runs it: assign, then split; `dirs` are the cgroup
    /// directories that exist.
    struct Scraper {
        sets: LabelSets,
        placed: Groups,
        dirs: Vec<String>,
    }

    impl Scraper {
        fn new(kind: GroupBy, runtimes: Runtimes, max: usize) -> Scraper {
            Scraper {
                sets: LabelSets::new(kind, runtimes),
                placed: Groups::new(max),
                dirs: vec![pod_dir(UID_WEB), pod_dir(UID_DB)],
            }
        }

        /// Each series' labels (values joined by `/`) and transitions counted.
        fn scrape(&mut self, groups: &[(u64, u64)], overflow: u64) -> BTreeMap<String, u64> {
            let groups: BTreeMap<u64, Counts> =
                groups.iter().map(|&(id, n)| (id, busy(n))).collect();
            self.sets.assign(groups.keys().copied(), path_of);
            let dirs = &self.dirs;
            let grouped = self
                .sets
                .split(&mut self.placed, &groups, busy(overflow), |d| {
                    dirs.iter().any(|dir| dir == d)
                });
            let mut series: BTreeMap<String, u64> = grouped
                .labeled
                .iter()
                .map(|(id, counts)| {
                    let labels = self.sets.labels(*id);
                    let values: Vec<String> = labels.into_iter().map(|(_, v)| v).collect();
                    (values.join("/"), counts.transitions(0, 1, 4))
                })
                .collect();
            series.insert("other".to_owned(), grouped.other.transitions(0, 1, 4));
            series
        }
    }

    fn series(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn a_pod_sums_its_containers_and_the_node_has_empty_names() {
        let mut s = Scraper::new(GroupBy::Pod, runtimes(), 10);
        let got = s.scrape(&[(1, 3), (2, 2), (4, 7), (5, 1), (6, 4)], 0);
        let want = [("shop/web-0", 5), ("shop/db-0", 7), ("/", 5), ("other", 0)];
        assert_eq!(got, series(&want));
        let labels = s.sets.labels(1);
        assert_eq!(
            labels,
            [("namespace", "shop".into()), ("pod", "web-0".into())]
        );
    }

    #[test]
    fn containers_and_namespaces() {
        let mut s = Scraper::new(GroupBy::Container, runtimes(), 10);
        let got = s.scrape(&[(1, 3), (2, 2), (3, 1), (4, 7), (5, 1), (6, 4)], 0);
        let want = [
            ("shop/web-0/app", 4),
            ("shop/web-0/sidecar", 2),
            ("shop/db-0/postgres", 7),
            ("//redis", 1),
            ("//", 4),
            ("other", 0),
        ];
        assert_eq!(got, series(&want));
        let mut s = Scraper::new(GroupBy::Namespace, runtimes(), 10);
        let got = s.scrape(&[(1, 3), (2, 2), (4, 7), (5, 1), (6, 4)], 0);
        assert_eq!(got, series(&[("shop", 12), ("", 5), ("other", 0)]));
    }

    /// Container a restarts as c: a's cgroup is retired, and the pod's counts never go
    /// down, also while none of its containers runs; when its cgroup is gone, it ends.
    #[test]
    fn a_restarted_container_keeps_its_pod_s_totals() {
        let mut s = Scraper::new(GroupBy::Pod, runtimes(), 1);
        assert_eq!(s.scrape(&[(1, 3), (2, 2)], 0)["shop/web-0"], 5);
        s.sets.retire_cgroup(1, &busy(3));
        assert_eq!(s.scrape(&[(2, 2), (3, 1)], 0)["shop/web-0"], 6);
        s.sets.retire_cgroup(2, &busy(2));
        s.sets.retire_cgroup(3, &busy(1));
        assert_eq!(s.scrape(&[], 0), series(&[("shop/web-0", 6), ("other", 0)]));
        assert_eq!(s.placed.sizes(), (1, 0));
        s.dirs.clear();
        assert_eq!(s.scrape(&[], 0), series(&[("other", 0)]));
        assert_eq!(s.placed.sizes(), (0, 0));
        // Its label is free: the next pod gets it.
        assert_eq!(
            s.scrape(&[(4, 2)], 0),
            series(&[("shop/db-0", 2), ("other", 0)])
        );
    }

    /// More sets than --max-groups: the busiest get labels, the others and the kernel's
    /// overflow are summed exactly into "other", which keeps what its ended sets counted.
    #[test]
    fn top_n_sets_and_other() {
        let mut s = Scraper::new(GroupBy::Pod, runtimes(), 2);
        let got = s.scrape(&[(1, 3), (2, 2), (4, 9), (5, 1), (6, 1), (7, 4)], 10);
        let unknown = format!("/{UID_UNKNOWN}");
        let want = [("shop/db-0", 9), ("shop/web-0", 5), ("other", 16)];
        assert_eq!(got, series(&want), "{unknown} and / in other");
        assert_eq!(s.placed.sizes(), (2, 2));
        s.sets.retire_cgroup(7, &busy(4));
        let got = s.scrape(&[(1, 3), (2, 2), (4, 9), (5, 1), (6, 1)], 10);
        assert_eq!(got["other"], 16);
        assert_eq!(s.placed.sizes(), (2, 1));
    }

    /// A pod the runtime does not name is labeled by its uid, with namespace=""; its
    /// unnamed container by its id; a namespace is "" for it.
    #[test]
    fn unnamed_pods_and_containers() {
        let mut s = Scraper::new(GroupBy::Pod, runtimes(), 10);
        let got = s.scrape(&[(7, 4), (8, 1)], 0);
        let unknown = format!("/{UID_UNKNOWN}");
        assert_eq!(
            got,
            series(&[(&unknown, 4), ("shop/web-0", 1), ("other", 0)])
        );
        let mut s = Scraper::new(GroupBy::Container, runtimes(), 10);
        let got = s.scrape(&[(7, 4), (8, 1)], 0);
        let in_unknown = format!("/{UID_UNKNOWN}/{}", id('f'));
        let in_web = format!("shop/web-0/{}", id('9'));
        assert_eq!(got, series(&[(&in_unknown, 4), (&in_web, 1), ("other", 0)]));
        let mut s = Scraper::new(GroupBy::Pod, Runtimes::none(), 10);
        let got = s.scrape(&[(1, 3), (2, 2), (6, 1)], 0);
        let web = format!("/{UID_WEB}");
        assert_eq!(got, series(&[(&web, 5), ("/", 1), ("other", 0)]));
    }

    /// `--group-by pod` and `namespace` as the kernel keys them, by the parent of the
    /// socket's cgroup: a pod's directory has the pod's names (no container), the node's
    /// parents (a slice, a QoS class) empty ones; an unnamed pod's directory its uid.
    #[test]
    fn pod_directories_and_other_parents() {
        let mut s = Scraper::new(GroupBy::Pod, runtimes(), 10);
        let got = s.scrape(&[(9, 5), (10, 7), (12, 4), (13, 1)], 0);
        let want = [("shop/web-0", 5), ("shop/db-0", 7), ("/", 5), ("other", 0)];
        assert_eq!(got, series(&want));
        let got = s.scrape(&[(9, 6), (10, 7), (11, 2), (12, 4), (13, 1)], 0);
        let unknown = format!("/{UID_UNKNOWN}");
        let want = [
            ("shop/web-0", 6),
            ("shop/db-0", 7),
            (unknown.as_str(), 2),
            ("/", 5),
            ("other", 0),
        ];
        assert_eq!(got, series(&want));
        let mut s = Scraper::new(GroupBy::Namespace, runtimes(), 10);
        let got = s.scrape(&[(9, 5), (10, 7), (11, 2), (12, 4), (13, 1)], 0);
        assert_eq!(got, series(&[("shop", 12), ("", 7), ("other", 0)]));
    }

    /// A pod's directory retired when the pod is deleted: its set ends with it.
    #[test]
    fn a_deleted_pod_s_directory_ends_its_set() {
        let mut s = Scraper::new(GroupBy::Pod, runtimes(), 1);
        assert_eq!(s.scrape(&[(9, 3)], 0)["shop/web-0"], 3);
        s.sets.retire_cgroup(9, &busy(3));
        s.dirs.clear();
        assert_eq!(s.scrape(&[], 0), series(&[("other", 0)]));
        assert_eq!(s.placed.sizes(), (0, 0));
        assert_eq!(
            s.scrape(&[(10, 2)], 0),
            series(&[("shop/db-0", 2), ("other", 0)])
        );
    }
}
