//! The cache's thread: waits for a refresh to be asked, spaces refreshes a second apart
//! (asks inside the second are served together when it ends), asks every source at once on
//! a tokio runtime of its own, and takes each answer into the names as it arrives.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::task::JoinSet;

use super::cache::{Listing, Names};
use super::source::{in_use, Source};
use super::Status;

/// How the cache runs; the tests shorten the waits.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How long a name stays after its runtime stopped listing it.
    pub grace: Duration,
    /// Least time between the starts of two refreshes.
    pub spacing: Duration,
    /// Bound on each call to a runtime, connecting included.
    pub call_timeout: Duration,
    /// Most pods, and most containers, kept.
    pub limit: usize,
}

/// Where the thread's lines go (stderr, with the tool's name, outside the tests).
pub type Report = Arc<dyn Fn(&str) + Send + Sync>;

/// What the cache's users and its thread share.
pub struct Shared {
    pub names: RwLock<Names>,
    schedule: Mutex<Schedule>,
    wake: Condvar,
    status: Mutex<Status>,
    /// False for a cache with no thread (`none`, `fixed`): nothing to ask.
    refreshes: bool,
    pub settings: Settings,
}

/// Refreshes asked for, started and finished.
#[derive(Default)]
struct Schedule {
    wanted: bool,
    started: u64,
    finished: u64,
    stop: bool,
}

/// A lock's guard, also after a panic elsewhere while it was held (the data are names and
/// counters, whole at every step).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(names: Names, settings: Settings, refreshes: bool) -> Shared {
        Shared {
            names: RwLock::new(names),
            schedule: Mutex::new(Schedule {
                wanted: refreshes,
                ..Schedule::default()
            }),
            wake: Condvar::new(),
            status: Mutex::new(Status::default()),
            refreshes,
            settings,
        }
    }

    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    /// Asks for a refresh, without waiting for it.
    pub fn ask(&self) {
        if !self.refreshes {
            return;
        }
        let mut schedule = lock(&self.schedule);
        if !schedule.wanted {
            schedule.wanted = true;
            self.wake.notify_all();
        }
    }

    /// Waits, at most `bound`, for a refresh that serves every lookup made before the call:
    /// the one in progress when no lookup has asked since it started (the caller's own
    /// misses asked before it started, so it lists what they missed), else the next one.
    pub fn refresh(&self, bound: Duration) {
        if !self.refreshes {
            return;
        }
        let mut schedule = lock(&self.schedule);
        let busy = schedule.started > schedule.finished;
        let target = if busy && !schedule.wanted {
            schedule.started
        } else {
            schedule.wanted = true;
            self.wake.notify_all();
            schedule.started + 1
        };
        drop(schedule);
        self.wait_finished(target, bound);
    }

    /// Waits, at most `bound`, until `target` refreshes have finished.
    pub fn wait_finished(&self, target: u64, bound: Duration) {
        let deadline = Instant::now() + bound;
        let mut schedule = lock(&self.schedule);
        while schedule.finished < target && !schedule.stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            schedule = self
                .wake
                .wait_timeout(schedule, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Ends the thread (after the refresh it is in, if any).
    pub fn stop(&self) {
        lock(&self.schedule).stop = true;
        self.wake.notify_all();
    }

    /// Waits for a refresh to be asked and for the spacing since `last` to pass; false when
    /// the cache is stopped.
    fn next(&self, last: Option<Instant>) -> bool {
        let mut schedule = lock(&self.schedule);
        loop {
            if schedule.stop {
                return false;
            }
            let due = last.map_or(Instant::now(), |last| last + self.settings.spacing);
            let wait = due.saturating_duration_since(Instant::now());
            if schedule.wanted && wait.is_zero() {
                schedule.wanted = false;
                schedule.started += 1;
                return true;
            }
            schedule = if schedule.wanted {
                let waited = self.wake.wait_timeout(schedule, wait);
                waited.unwrap_or_else(PoisonError::into_inner).0
            } else {
                let waited = self.wake.wait(schedule);
                waited.unwrap_or_else(PoisonError::into_inner)
            };
        }
    }

    fn finished(&self) {
        lock(&self.schedule).finished += 1;
        self.wake.notify_all();
    }
}

/// The thread's own state: per source whether it is asked now and whether it fails.
struct Worker {
    shared: Arc<Shared>,
    sources: Vec<Source>,
    asked: Vec<bool>,
    failing: Vec<bool>,
    ok: Vec<bool>,
    errors: u64,
    report: Report,
}

/// Starts the cache's thread; an error if it cannot start.
pub fn spawn(shared: Arc<Shared>, sources: Vec<Source>, report: Report) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime of the names cache")?;
    let n = sources.len();
    let mut worker = Worker {
        shared,
        sources,
        asked: vec![false; n],
        failing: vec![false; n],
        ok: vec![false; n],
        errors: 0,
        report,
    };
    std::thread::Builder::new()
        .name("runtime-names".into())
        .spawn(move || worker.run(&runtime))
        .context("cannot start the thread of the names cache")?;
    Ok(())
}

impl Worker {
    fn run(&mut self, runtime: &tokio::runtime::Runtime) {
        let mut last = None;
        while self.shared.next(last) {
            last = Some(Instant::now());
            runtime.block_on(self.refresh());
            self.publish();
            self.shared.finished();
        }
    }

    /// Asks every source in use at once and takes each answer as it comes; a source that
    /// is not in use (its socket gone, in auto mode) lists nothing.
    async fn refresh(&mut self) {
        self.asked = in_use(&self.sources);
        let timeout = self.shared.settings.call_timeout;
        let mut answers = JoinSet::new();
        let mut index_of = HashMap::new();
        for index in 0..self.sources.len() {
            if !self.asked[index] {
                self.take(index, Ok(Listing::default()));
                continue;
            }
            let source = self.sources[index].clone();
            let task = answers.spawn(async move { (index, source.list(timeout).await) });
            index_of.insert(task.id(), index);
        }
        while let Some(done) = answers.join_next().await {
            match done {
                Ok((index, answer)) => self.take(index, answer),
                // A task that panicked: its source failed.
                Err(error) => {
                    if let Some(index) = index_of.get(&error.id()) {
                        self.take(*index, Err(anyhow::anyhow!("{error}")));
                    }
                }
            }
        }
    }

    /// Takes one source's answer: its names, or its failure (one line when it starts).
    fn take(&mut self, index: usize, answer: Result<Listing>) {
        match answer {
            Ok(listing) => {
                let settings = self.shared.settings;
                let mut names = self
                    .shared
                    .names
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                names.take(index, listing, Instant::now(), settings.grace);
                (self.ok[index], self.failing[index]) = (true, false);
            }
            Err(error) => {
                self.errors += 1;
                self.ok[index] = false;
                if !self.failing[index] {
                    let url = self.sources[index].url();
                    (self.report)(&format!(
                        "cannot ask the container runtime at {url} for names: {error:#}; \
                         showing cgroup paths"
                    ));
                }
                self.failing[index] = true;
            }
        }
    }

    fn publish(&self) {
        let used = (0..self.sources.len()).filter(|i| self.asked[*i]);
        let endpoints: Vec<String> = used.clone().map(|i| self.sources[i].url()).collect();
        let up = !endpoints.is_empty() && used.into_iter().all(|i| self.ok[i]);
        *lock(&self.shared.status) = Status {
            endpoints,
            up,
            errors: self.errors,
        };
    }
}
