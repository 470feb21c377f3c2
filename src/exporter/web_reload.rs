//! The web config as served, picked up again when it changes, without a restart.
//!
//! The toolkit re-reads its file on every request and its certificates on every handshake.
//! Here a task looks at the file and the certificate, key and CA files it names (their
//! inode, size and change times) once a second, and reloads when they have changed and then
//! stayed the same for one look, so a certificate and key renewed one after the other are
//! taken together. A new file that does not load keeps the last good one serving, costs
//! one stderr line and counts in `reload_failures()`. Connections take the config current at
//! their handshake, requests the one current at their arrival.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{bail, Result};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hyper::Response;

use super::web_config::{self, RateLimit, WebConfig};

/// How often the files are looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Reloads that failed since start (`tcptools_exporter_web_config_reload_failures_total`).
static RELOAD_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Reloads of the web config that failed since start.
pub fn reload_failures() -> u64 {
    RELOAD_FAILURES.load(Ordering::Relaxed)
}

/// The web config being served, and how to tell it changed.
pub struct LiveWebConfig {
    path: Option<PathBuf>,
    verbose: bool,
    served: RwLock<Arc<Served>>,
    watch: Mutex<Watch>,
}

/// One web config as served: the file's settings and the rate limit's bucket.
pub struct Served {
    pub web: WebConfig,
    limiter: Option<(RateLimit, Arc<DefaultDirectRateLimiter>)>,
}

/// What the watched files looked like: at the last load (or failed load), and at the last
/// look.
struct Watch {
    files: Vec<PathBuf>,
    loaded: Vec<Option<Stamp>>,
    seen: Vec<Option<Stamp>>,
}

/// What tells a file changed, also when it is replaced by a rename.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn stamps(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    let stamp = |path: &PathBuf| {
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    };
    files.iter().map(stamp).collect()
}

impl Served {
    fn new(web: WebConfig, previous: Option<&Served>) -> Served {
        // The bucket goes on while the limit is the same, as the toolkit's does for good.
        let kept = previous
            .and_then(|p| p.limiter.clone())
            .filter(|(limit, _)| Some(*limit) == web.rate_limit);
        let limiter = kept.or_else(|| {
            let limit = web.rate_limit?;
            let burst = std::num::NonZeroU32::new(limit.burst)?;
            let quota = Quota::with_period(limit.interval)?.allow_burst(burst);
            Some((limit, Arc::new(RateLimiter::direct(quota))))
        });
        Served { web, limiter }
    }

    /// Whether the rate limit lets one more request through (always, without one).
    pub fn admits(&self) -> bool {
        match &self.limiter {
            Some((_, limiter)) => limiter.check().is_ok(),
            None => true,
        }
    }

    /// Adds the file's `http_server_config.headers` to a response.
    pub fn decorate<B>(&self, response: &mut Response<B>) {
        let headers = response.headers_mut();
        for (name, value) in &self.web.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}

impl LiveWebConfig {
    /// Reads `--web.config.file` (none: plain HTTP without auth); its problems are errors.
    /// With `verbose`, says on stderr what is done instead of what rustls cannot do.
    pub fn load(path: Option<&Path>, verbose: bool) -> Result<Arc<LiveWebConfig>> {
        let web = web_config::load(path, None)?;
        let live = LiveWebConfig {
            path: path.map(Path::to_owned),
            verbose,
            watch: Mutex::new(Watch {
                loaded: stamps(&web.files),
                seen: stamps(&web.files),
                files: web.files.clone(),
            }),
            served: RwLock::new(Arc::new(Served::new(web, None))),
        };
        live.note(&live.current().web.notes);
        Ok(Arc::new(live))
    }

    /// The config to serve a handshake or a request with.
    pub fn current(&self) -> Arc<Served> {
        self.served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Looks at the files every `CHECK_EVERY` until dropped, off the serving threads.
    pub async fn watch(self: Arc<Self>) {
        if self.path.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let live = self.clone();
            let _ = tokio::task::spawn_blocking(move || live.check()).await;
        }
    }

    /// Reloads if the files changed since the last load and not since the last look.
    pub fn check(&self) {
        let Some(path) = &self.path else {
            return;
        };
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamps(&watch.files);
        let settled = now == watch.seen;
        watch.seen = now.clone();
        if now == watch.loaded || !settled {
            return;
        }
        watch.loaded = now;
        match self.reload(path) {
            Ok(files) => {
                watch.loaded = stamps(&files);
                watch.seen = watch.loaded.clone();
                watch.files = files;
            }
            Err(err) => {
                RELOAD_FAILURES.fetch_add(1, Ordering::Relaxed);
                eprintln!("tcptools-exporter: {err:#} (serving on with the last good one)");
            }
        }
    }

    /// Loads the file again and serves it from now on; the files it names.
    fn reload(&self, path: &Path) -> Result<Vec<PathBuf>> {
        let current = self.current();
        let web = web_config::load(Some(path), Some(&current.web))?;
        if web.tls.is_some() != current.web.tls.is_some() {
            bail!(
                "web config {}: tls_server_config: turning TLS on or off needs a restart",
                path.display()
            );
        }
        if self.verbose {
            eprintln!("tcptools-exporter: web config {} reloaded", path.display());
        }
        self.note(&web.notes);
        let files = web.files.clone();
        let served = Arc::new(Served::new(web, Some(&current)));
        *self.served.write().unwrap_or_else(|e| e.into_inner()) = served;
        Ok(files)
    }

    fn note(&self, notes: &[String]) {
        let Some(path) = self.path.as_ref().filter(|_| self.verbose) else {
            return;
        };
        for note in notes {
            eprintln!("tcptools-exporter: web config {}: {note}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_is_a_full_bucket_refilled_per_interval() {
        let limit = RateLimit {
            interval: Duration::from_secs(3600),
            burst: 3,
        };
        let web = WebConfig {
            rate_limit: Some(limit),
            ..WebConfig::default()
        };
        let served = Served::new(web, None);
        let admitted: Vec<bool> = (0..5).map(|_| served.admits()).collect();
        assert_eq!(admitted, [true, true, true, false, false]);
        // A reload with the same limit keeps the bucket (still empty).
        let again = WebConfig {
            rate_limit: Some(limit),
            ..WebConfig::default()
        };
        let reloaded = Served::new(again, Some(&served));
        assert!(!reloaded.admits());
        let unlimited = Served::new(WebConfig::default(), Some(&served));
        assert!((0..100).all(|_| unlimited.admits()));
    }

    #[test]
    fn reloads_once_settled_and_keeps_the_last_good() {
        let dir = std::env::temp_dir().join(format!("tcpt-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.yml");
        std::fs::write(&path, "rate_limit:\n  interval: 1h\n  burst: 1\n").unwrap();
        let live = LiveWebConfig::load(Some(&path), false).unwrap();
        let limit = |live: &LiveWebConfig| live.current().web.rate_limit.map(|l| l.burst);
        assert_eq!(limit(&live), Some(1));
        std::fs::write(&path, "rate_limit:\n  interval: 1h\n  burst: 22\n").unwrap();
        live.check();
        assert_eq!(
            limit(&live),
            Some(1),
            "not yet: changed since the last look"
        );
        live.check();
        assert_eq!(limit(&live), Some(22));
        let failures = reload_failures();
        std::fs::write(&path, "rate_limit:\n  burst: [\n").unwrap();
        live.check();
        live.check();
        live.check();
        assert_eq!(limit(&live), Some(22), "the last good one serves on");
        assert_eq!(reload_failures(), failures + 1, "counted once");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
