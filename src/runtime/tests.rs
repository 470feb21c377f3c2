//! The cache as the tools use it, against the fake runtimes: names at start, refreshes asked
//! by unknown ids and spaced a second apart, the grace period, the bound on start, and
//! endpoints that fail.

use std::sync::Mutex;
use std::thread::sleep;

use super::fake::{FakeCri, FakeDocker, TempDir};
use super::source::Api;
use super::*;

fn pod(n: u32) -> PodNames {
    PodNames {
        namespace: format!("ns{n}"),
        name: format!("pod{n}"),
        uid: format!("uid-{n}"),
    }
}

fn cri(path: &std::path::Path, named: bool) -> Source {
    Source {
        api: Api::Cri,
        path: path.to_owned(),
        named,
    }
}

/// A report that keeps its lines.
fn collector() -> (Report, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let kept = lines.clone();
    let report: Report = Arc::new(move |line: &str| kept.lock().unwrap().push(line.to_owned()));
    (report, lines)
}

fn lines(lines: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    lines.lock().unwrap().clone()
}

/// Polls `found` for up to `bound`.
fn within(bound: Duration, found: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if found() {
            return true;
        }
        sleep(Duration::from_millis(20));
    }
    found()
}

#[test]
fn endpoint_forms() {
    assert_eq!(Endpoint::parse("auto"), Ok(Endpoint::Auto));
    assert_eq!(Endpoint::parse("none"), Ok(Endpoint::None));
    let x = Endpoint::Cri(PathBuf::from("/run/x.sock"));
    assert_eq!(Endpoint::parse("unix:///run/x.sock"), Ok(x.clone()));
    assert_eq!(Endpoint::parse("/run/x.sock"), Ok(x));
    for bad in [
        "",
        "tcp://x",
        "unix://relative",
        "unix://",
        "unix:///",
        "/",
        "x.sock",
    ] {
        let error = Endpoint::parse(bad).unwrap_err();
        assert_eq!(error.exit_code, crate::cli::EXIT_USAGE, "{bad:?}");
        assert!(
            error.message.contains("invalid runtime endpoint"),
            "{bad:?}"
        );
    }
}

#[test]
fn fixed_and_none_name_without_asking() {
    let app = ContainerNames {
        name: "app".into(),
        id: "c1".into(),
        pod: Some(pod(1)),
    };
    let fixed = Runtimes::fixed(vec![pod(1)], vec![app.clone()]);
    assert_eq!(
        (fixed.pod("uid-1"), fixed.container("c1")),
        (Some(pod(1)), Some(app))
    );
    assert_eq!((fixed.pod("uid-2"), fixed.container("c2")), (None, None));
    fixed.refresh();
    assert_eq!(fixed.status(), Status::default());
    let none = Runtimes::default();
    assert_eq!((none.pod("uid-1"), none.container("c1")), (None, None));
    let none = Runtimes::start(&Endpoint::None, "test", false);
    assert_eq!(none.status(), Status::default());
}

#[test]
fn start_names_what_runs_now() {
    let server = FakeCri::start("cache-start");
    server.set(vec![(pod(1), "s1")], vec![("c1", "s1", "app")]);
    let (report, said) = collector();
    let cache = Runtimes::launch(vec![cri(&server.path, true)], Settings::default(), report);
    let app = cache.container("c1").unwrap();
    assert_eq!((app.name.as_str(), app.pod), ("app", Some(pod(1))));
    let pause = cache.container("s1").unwrap();
    assert_eq!((pause.name.as_str(), pause.pod), ("", Some(pod(1))));
    assert_eq!(cache.pod("uid-1"), Some(pod(1)));
    let url = format!("unix://{}", server.path.display());
    let status = cache.status();
    assert_eq!(
        (status.endpoints, status.up, status.errors),
        (vec![url], true, 0)
    );
    assert!(lines(&said).is_empty());
}

#[test]
fn unknown_ids_ask_for_refreshes_a_second_apart() {
    let server = FakeCri::start("cache-spacing");
    server.set(vec![(pod(1), "s1")], vec![]);
    let (report, _) = collector();
    let cache = Runtimes::launch(vec![cri(&server.path, true)], Settings::default(), report);
    assert_eq!(server.calls().len(), 1);
    server.set(vec![(pod(1), "s1"), (pod(2), "s2")], vec![]);
    let asked = Instant::now();
    // Asked for all the time: refreshes stay a second apart, the first when the second
    // since start ends.
    while asked.elapsed() < Duration::from_millis(2_500) {
        let _ = cache.container("unknown");
        let _ = cache.pod("uid-2");
        sleep(Duration::from_millis(5));
    }
    assert_eq!(cache.pod("uid-2"), Some(pod(2)));
    let calls = server.calls();
    assert!((2..=4).contains(&calls.len()), "{} refreshes", calls.len());
    for pair in calls.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(950),
            "{gap:?} between refreshes"
        );
    }
    // Known names ask nothing (once the last unknown ones were served).
    cache.refresh();
    let before = server.calls().len();
    for _ in 0..100 {
        assert!(cache.pod("uid-1").is_some());
    }
    sleep(Duration::from_millis(1_200));
    assert_eq!(server.calls().len(), before);
}

#[test]
fn gone_names_stay_for_the_grace_period() {
    let server = FakeCri::start("cache-grace");
    server.set(vec![(pod(1), "s1")], vec![("c1", "s1", "app")]);
    let settings = Settings {
        grace: Duration::from_millis(1_500),
        spacing: Duration::from_millis(100),
        ..Settings::default()
    };
    let (report, _) = collector();
    let cache = Runtimes::launch(vec![cri(&server.path, true)], settings, report);
    assert!(cache.container("c1").is_some());
    server.set(vec![], vec![]);
    cache.refresh();
    assert!(cache.container("c1").is_some() && cache.pod("uid-1").is_some());
    sleep(Duration::from_millis(1_600));
    cache.refresh();
    assert_eq!((cache.container("c1"), cache.pod("uid-1")), (None, None));
    assert_eq!(cache.container("s1"), None);
}

#[test]
fn start_is_bounded_when_a_runtime_hangs() {
    let hanging = FakeCri::start("cache-hang");
    hanging.hang(Duration::from_secs(10));
    let daemon = FakeDocker::start("cache-hang-docker", 200, r#"[{"Id":"d1","Names":["/w"]}]"#);
    let docker = Source {
        api: Api::Docker,
        path: daemon.path.clone(),
        named: false,
    };
    let (report, said) = collector();
    let started = Instant::now();
    let sources = vec![cri(&hanging.path, true), docker];
    let cache = Runtimes::launch(sources, Settings::default(), report);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "start took {took:?}");
    assert_eq!(cache.container("d1").map(|c| c.name), Some("w".into()));
    assert!(within(Duration::from_secs(2), || cache.status().errors == 1));
    assert!(!cache.status().up);
    let said = lines(&said);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("ListPodSandbox: no answer in 2s"),
        "{said:?}"
    );
}

#[test]
fn found_sockets_that_do_not_exist_are_silent() {
    let dir = TempDir::new("cache-auto");
    let missing = Source {
        api: Api::Docker,
        path: dir.0.join("docker.sock"),
        named: false,
    };
    let (report, said) = collector();
    let sources = vec![cri(&dir.0.join("cri.sock"), false), missing];
    let cache = Runtimes::launch(sources, Settings::default(), report);
    assert_eq!(cache.container("c1"), None);
    cache.refresh();
    assert_eq!(cache.status(), Status::default());
    assert!(lines(&said).is_empty());
}

#[test]
fn a_failing_socket_is_one_line_until_it_recovers() {
    let dir = TempDir::new("cache-fail");
    let path = dir.0.join("cri.sock");
    let settings = Settings {
        spacing: Duration::from_millis(50),
        ..Settings::default()
    };
    let (report, said) = collector();
    let cache = Runtimes::launch(vec![cri(&path, true)], settings, report);
    let status = cache.status();
    let url = format!("unix://{}", path.display());
    assert_eq!(
        (status.endpoints, status.up, status.errors),
        (vec![url.clone()], false, 1)
    );
    cache.refresh();
    assert_eq!((cache.status().errors, lines(&said).len()), (2, 1));
    let line = &lines(&said)[0];
    let start = format!("cannot ask the container runtime at {url} for names: ");
    assert!(line.starts_with(&start), "{line}");
    let end = "No such file or directory (os error 2); showing cgroup paths";
    assert!(line.ends_with(end), "{line}");
    let server = FakeCri::at(&path);
    server.set(vec![(pod(1), "s1")], vec![]);
    cache.refresh();
    assert!(cache.status().up && cache.pod("uid-1").is_some());
    drop(server);
    cache.refresh();
    assert_eq!((cache.status().up, cache.status().errors), (false, 3));
    assert_eq!(lines(&said).len(), 2);
    // A failing runtime's names stay: it did not say they are gone.
    assert_eq!(cache.pod("uid-1"), Some(pod(1)));
}

#[test]
fn garbage_answers_are_failures() {
    let daemon = FakeDocker::start("cache-garbage", 200, "{\"not\": \"a list\"}");
    let found = Source {
        api: Api::Docker,
        path: daemon.path.clone(),
        named: false,
    };
    let (report, said) = collector();
    let cache = Runtimes::launch(vec![found], Settings::default(), report);
    assert!(!cache.status().up);
    let said = lines(&said);
    assert_eq!(said.len(), 1);
    assert!(said[0].contains("not a list of containers"), "{said:?}");
}

#[test]
fn the_thread_ends_with_the_last_clone() {
    let server = FakeCri::start("cache-drop");
    let (report, _) = collector();
    let cache = Runtimes::launch(vec![cri(&server.path, true)], Settings::default(), report);
    let shared = Arc::downgrade(&cache.owner.0);
    let clone = cache.clone();
    drop(cache);
    clone.refresh();
    assert!(shared.upgrade().is_some());
    drop(clone);
    assert!(within(Duration::from_secs(1), || shared
        .upgrade()
        .is_none()));
}

#[test]
fn refresh_takes_the_refresh_under_way_that_a_miss_started() {
    let server = FakeCri::start("cache-under-way");
    let (report, _) = collector();
    let cache = Runtimes::launch(vec![cri(&server.path, true)], Settings::default(), report);
    server.set(vec![(pod(2), "s2")], vec![]);
    server.hang(Duration::from_millis(300));
    sleep(Duration::from_millis(1_000));
    assert_eq!(cache.pod("uid-2"), None);
    assert!(within(Duration::from_secs(1), || server.calls().len() == 2));
    let asked = Instant::now();
    cache.refresh();
    let took = asked.elapsed();
    assert!(took < Duration::from_millis(900), "refresh took {took:?}");
    assert_eq!(
        (cache.pod("uid-2"), server.calls().len()),
        (Some(pod(2)), 2)
    );
}
