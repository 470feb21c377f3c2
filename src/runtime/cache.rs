//! The names themselves: pods by uid and containers by id, each with when a runtime last
//! listed it and which endpoint did, kept a grace period after they are gone and bounded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{ContainerNames, PodNames};

/// Most pods, and most containers, the cache holds; past it the longest gone are dropped.
pub const MAX_ENTRIES: usize = 65_536;

/// What one endpoint listed in one refresh.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub pods: Vec<PodNames>,
    pub containers: Vec<ContainerNames>,
}

/// A name and when it was last listed, by which endpoint (an index into the cache's
/// endpoints; what an endpoint no longer lists expires only when that endpoint answered).
struct Seen<T> {
    names: T,
    at: Instant,
    source: usize,
}

/// Pods by uid and containers by id.
pub struct Names {
    pods: HashMap<String, Seen<PodNames>>,
    containers: HashMap<String, Seen<ContainerNames>>,
    limit: usize,
}

/// The endpoint index of names that no endpoint lists (`Runtimes::fixed`): never expired.
pub const NO_SOURCE: usize = usize::MAX;

impl Names {
    /// An empty cache of at most `limit` pods and `limit` containers.
    pub fn new(limit: usize) -> Names {
        Names {
            pods: HashMap::new(),
            containers: HashMap::new(),
            limit,
        }
    }

    pub fn pod(&self, uid: &str) -> Option<PodNames> {
        self.pods.get(uid).map(|seen| seen.names.clone())
    }

    pub fn container(&self, id: &str) -> Option<ContainerNames> {
        self.containers.get(id).map(|seen| seen.names.clone())
    }

    /// Takes what endpoint `source` listed at `now`: every listed name is seen now; what
    /// `source` listed before but not now is dropped once it has been gone `grace`; then
    /// the longest gone go until each map is within the limit.
    pub fn take(&mut self, source: usize, listing: Listing, now: Instant, grace: Duration) {
        let pods = listing.pods.into_iter().map(|p| (p.uid.clone(), p));
        merge(&mut self.pods, pods, source, now, grace, self.limit);
        let containers = listing.containers.into_iter().map(|c| (c.id.clone(), c));
        merge(
            &mut self.containers,
            containers,
            source,
            now,
            grace,
            self.limit,
        );
    }
}

/// One map's part of [`Names::take`]. Empty keys (garbage from a runtime) are skipped.
fn merge<T>(
    map: &mut HashMap<String, Seen<T>>,
    listed: impl Iterator<Item = (String, T)>,
    source: usize,
    now: Instant,
    grace: Duration,
    limit: usize,
) {
    for (key, names) in listed.filter(|(key, _)| !key.is_empty()) {
        map.insert(
            key,
            Seen {
                names,
                at: now,
                source,
            },
        );
    }
    map.retain(|_, seen| seen.source != source || now.saturating_duration_since(seen.at) <= grace);
    trim(map, limit);
}

/// Drops the entries last seen longest ago until `map` holds at most `limit`.
fn trim<T>(map: &mut HashMap<String, Seen<T>>, limit: usize) {
    let Some(excess) = map.len().checked_sub(limit).filter(|n| *n > 0) else {
        return;
    };
    let mut by_age: Vec<(Instant, &String)> = map.iter().map(|(k, s)| (s.at, k)).collect();
    by_age.select_nth_unstable_by_key(excess - 1, |(at, _)| *at);
    let gone: Vec<String> = by_age[..excess].iter().map(|(_, k)| (*k).clone()).collect();
    for key in gone {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(300);

    fn len(names: &Names) -> (usize, usize) {
        (names.pods.len(), names.containers.len())
    }

    fn pod(uid: &str) -> PodNames {
        PodNames {
            namespace: "ns".into(),
            name: format!("pod-{uid}"),
            uid: uid.into(),
        }
    }

    fn container(id: &str, pod: Option<PodNames>) -> ContainerNames {
        ContainerNames {
            name: format!("c-{id}"),
            id: id.into(),
            pod,
        }
    }

    fn listing(pods: &[&str], containers: &[&str]) -> Listing {
        Listing {
            pods: pods.iter().map(|uid| pod(uid)).collect(),
            containers: containers.iter().map(|id| container(id, None)).collect(),
        }
    }

    #[test]
    fn names_listed_are_found() {
        let mut names = Names::new(MAX_ENTRIES);
        let mut listed = listing(&["u1"], &["a"]);
        listed.containers.push(container("b", Some(pod("u1"))));
        names.take(0, listed, Instant::now(), GRACE);
        assert_eq!(names.pod("u1"), Some(pod("u1")));
        assert_eq!(names.container("a"), Some(container("a", None)));
        assert_eq!(names.container("b").and_then(|c| c.pod), Some(pod("u1")));
        assert_eq!(names.pod("u2"), None);
        assert_eq!(names.container(""), None);
    }

    #[test]
    fn gone_names_stay_for_the_grace_period() {
        let mut names = Names::new(MAX_ENTRIES);
        let t0 = Instant::now();
        names.take(0, listing(&["u1", "u2"], &["a", "b"]), t0, GRACE);
        names.take(0, listing(&["u1"], &["a"]), t0 + GRACE, GRACE);
        assert!(names.pod("u2").is_some() && names.container("b").is_some());
        let later = t0 + GRACE + Duration::from_secs(1);
        names.take(0, listing(&["u1"], &["a"]), later, GRACE);
        assert_eq!((names.pod("u2"), names.container("b")), (None, None));
        assert!(names.pod("u1").is_some() && names.container("a").is_some());
    }

    #[test]
    fn names_expire_only_when_their_own_endpoint_answers() {
        let mut names = Names::new(MAX_ENTRIES);
        let t0 = Instant::now();
        names.take(0, listing(&["u0"], &["a"]), t0, GRACE);
        names.take(1, listing(&["u1"], &["b"]), t0, GRACE);
        let later = t0 + GRACE * 2;
        names.take(1, listing(&[], &[]), later, GRACE);
        assert_eq!((names.pod("u1"), names.container("b")), (None, None));
        assert!(names.pod("u0").is_some() && names.container("a").is_some());
    }

    #[test]
    fn never_more_than_the_limit_and_the_longest_gone_go_first() {
        let mut names = Names::new(3);
        let t0 = Instant::now();
        names.take(0, listing(&[], &["old"]), t0, GRACE);
        let t1 = t0 + Duration::from_secs(1);
        names.take(1, listing(&[], &["mid"]), t1, GRACE);
        let t2 = t1 + Duration::from_secs(1);
        names.take(
            2,
            listing(&["p1", "p2", "p3", "p4"], &["x", "y"]),
            t2,
            GRACE,
        );
        assert_eq!(len(&names), (3, 3));
        assert_eq!(names.container("old"), None);
        assert!(["mid", "x", "y"]
            .iter()
            .all(|id| names.container(id).is_some()));
    }

    #[test]
    fn the_real_limit_holds_a_full_listing() {
        let mut names = Names::new(MAX_ENTRIES);
        let ids: Vec<String> = (0..MAX_ENTRIES + 10).map(|i| format!("{i:064x}")).collect();
        let listed = Listing {
            pods: Vec::new(),
            containers: ids.iter().map(|id| container(id, None)).collect(),
        };
        names.take(0, listed, Instant::now(), GRACE);
        assert_eq!(len(&names), (0, MAX_ENTRIES));
    }
}
