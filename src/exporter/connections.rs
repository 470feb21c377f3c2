//! The exporter's open connections, bounded without locking anyone out: at the bound, a new
//! connection takes the place of the one that has waited longest for a request (idle,
//! trickling a request head, or half-open), so a client that holds many connections can
//! only push out its own and other stale ones, never refuse a scrape. Idle means no request
//! being answered, whatever the protocol: an HTTP/2 connection with several requests at once
//! stays busy until the last is answered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The open connections and how many were shed or refused at the bound.
pub struct Connections {
    limit: usize,
    table: Mutex<Table>,
    /// Connections closed to make room for a new one.
    pub shed: AtomicU64,
    /// New connections closed because every open one had a request being answered.
    pub refused: AtomicU64,
}

#[derive(Default)]
struct Table {
    /// The stamp of the next event: connections and requests, in the order they came.
    next: u64,
    open: HashMap<u64, Entry>,
}

struct Entry {
    /// When it last began a request (or was accepted), as a stamp.
    active: u64,
    /// Requests of it being answered now (HTTP/2 may have several at once).
    busy: u32,
    /// When its last request was answered (or it was accepted).
    idle_since: Instant,
    /// Closes it (the connection's task ends when this is sent or dropped).
    shed: oneshot::Sender<()>,
}

/// A connection's place: it leaves the table when dropped.
pub struct Slot {
    id: u64,
    connections: Arc<Connections>,
}

/// Resolves when the connection is shed to make room for a newer one.
pub type Shed = oneshot::Receiver<()>;

impl Connections {
    /// At most `limit` connections open at once (at least one).
    pub fn new(limit: usize) -> Arc<Connections> {
        Arc::new(Connections {
            limit: limit.max(1),
            table: Mutex::new(Table::default()),
            shed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// A place for a new connection, shedding the one that waited longest for a request if
    /// the bound is reached; `None` (counted as refused) if every open connection has a
    /// request being answered.
    pub fn admit(self: &Arc<Self>) -> Option<(Arc<Slot>, Shed)> {
        let mut table = self.lock();
        if table.open.len() >= self.limit {
            let Some(oldest) = table.oldest_idle() else {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            if let Some(entry) = table.open.remove(&oldest) {
                let _ = entry.shed.send(());
            }
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
        let (shed, on_shed) = oneshot::channel();
        let id = table.stamp();
        let entry = Entry {
            active: id,
            busy: 0,
            idle_since: Instant::now(),
            shed,
        };
        table.open.insert(id, entry);
        let slot = Arc::new(Slot {
            id,
            connections: self.clone(),
        });
        Some((slot, on_shed))
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Table {
    fn stamp(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// The connection without a request being answered that began its last request (or
    /// was accepted) first. A linear walk: it runs only at the bound, over at most a few
    /// thousand entries.
    fn oldest_idle(&self) -> Option<u64> {
        let idle = self.open.iter().filter(|(_, e)| e.busy == 0);
        idle.min_by_key(|(_, e)| e.active).map(|(id, _)| *id)
    }
}

impl Slot {
    /// A request of this connection is being answered until the returned guard is dropped
    /// (also when the request is cancelled, as an HTTP/2 stream reset does): the connection
    /// is not shed meanwhile, and is the newest once done.
    pub fn begin_request(self: &Arc<Self>) -> Request {
        let mut table = self.connections.lock();
        let stamp = table.stamp();
        if let Some(entry) = table.open.get_mut(&self.id) {
            entry.active = stamp;
            entry.busy += 1;
        }
        Request { slot: self.clone() }
    }

    /// How long the connection has had no request being answered; `None` while it has one.
    pub fn idle_for(&self) -> Option<Duration> {
        let table = self.connections.lock();
        let entry = table.open.get(&self.id)?;
        (entry.busy == 0).then(|| entry.idle_since.elapsed())
    }
}

/// A request being answered: its connection is busy until it is dropped.
pub struct Request {
    slot: Arc<Slot>,
}

impl Drop for Request {
    fn drop(&mut self) {
        let slot = &self.slot;
        if let Some(entry) = slot.connections.lock().open.get_mut(&slot.id) {
            entry.busy = entry.busy.saturating_sub(1);
            if entry.busy == 0 {
                entry.idle_since = Instant::now();
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.lock().open.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_connection_makes_room() {
        let connections = Connections::new(3);
        let (a, mut a_shed) = connections.admit().unwrap();
        let (b, mut b_shed) = connections.admit().unwrap();
        let (c, mut c_shed) = connections.admit().unwrap();
        assert_eq!(connections.open(), 3);
        // a began a request after b and c were accepted: b is the oldest idle one.
        drop(a.begin_request());
        let (d, mut d_shed) = connections.admit().unwrap();
        assert!(b_shed.try_recv().is_ok(), "b shed");
        assert!(a_shed.try_recv().is_err() && c_shed.try_recv().is_err());
        assert_eq!(connections.open(), 3);
        assert_eq!(connections.shed.load(Ordering::Relaxed), 1);
        drop(b);
        assert_eq!(connections.open(), 3, "a shed slot's drop changes nothing");
        // Busy connections are never shed; with every one busy a new one is refused.
        let requests = [&a, &c, &d].map(|slot| slot.begin_request());
        assert!(connections.admit().is_none());
        assert_eq!(connections.refused.load(Ordering::Relaxed), 1);
        let [a_request, _c_request, d_request] = requests;
        drop(d_request);
        let (_e, _) = connections.admit().unwrap();
        assert!(d_shed.try_recv().is_ok(), "d shed once idle");
        drop((a_request, a));
        assert_eq!(connections.open(), 2);
    }

    /// An HTTP/2 connection answering two requests at once stays busy until both are
    /// answered: the first one done does not make it idle.
    #[test]
    fn a_connection_is_idle_only_when_its_last_request_is_answered() {
        let connections = Connections::new(2);
        let (h2, mut h2_shed) = connections.admit().unwrap();
        let (other, mut other_shed) = connections.admit().unwrap();
        let (first, second) = (h2.begin_request(), h2.begin_request());
        drop(other.begin_request());
        drop(first);
        assert_eq!(h2.idle_for(), None, "one request still being answered");
        // At the bound, the idle connection is shed, not the busy one (though it is older).
        let (_third, _) = connections.admit().unwrap();
        assert!(other_shed.try_recv().is_ok(), "the idle one shed");
        assert!(h2_shed.try_recv().is_err(), "the busy one kept");
        drop(second);
        assert!(h2
            .idle_for()
            .is_some_and(|idle| idle < Duration::from_secs(1)));
        let (_fourth, _) = connections.admit().unwrap();
        assert!(
            h2_shed.try_recv().is_ok(),
            "shed once its last request is answered"
        );
    }
}
