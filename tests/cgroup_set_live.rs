//! The cgroup set (bpf/container.bpf.h, `CgroupSet` in src/container.rs) at the library
//! level, on real loopback traffic (needs root): tcpstates' programs loaded with an empty
//! set that may grow, members added and removed while they run, and exactly the members'
//! sockets (and those of the cgroups below them) traced. Ports 47100-47199 are this file's.
//!
//! The traffic comes from python3 processes moved into the test's own cgroups before they
//! exec; the test process never moves. Only sockets of the test's cgroups can pass the
//! filter, so other traffic on the machine cannot disturb the counts.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{transitions_of, Netns, Proc};
use tcptools::container::{
    self, ContainerArgs, ContainerFilter, CGROUP_SET_ENTRIES, CGROUP_SET_LEVELS,
};
use tcptools::event_source;
use tcptools::stream::{EventStream, Transport};
use tcptools::tcpstates::{bpf, state_name, StateChange};

const WAIT: Duration = Duration::from_secs(20);
/// How long a phase that must show nothing (or nothing more) keeps reading events.
const SETTLE: Duration = Duration::from_millis(500);
/// Connections per phase.
const N: usize = 2;

/// N connections on loopback within one process, to itself: listen on PORT, connect,
/// accept, one exchange, the client closes first, the server reads EOF and closes; then the
/// listener closes. Prints `done`.
const PAIR: &str = r#"
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('127.0.0.1', port))
l.listen(8)
for _ in range(n):
    c = socket.create_connection(('127.0.0.1', port))
    a, _ = l.accept()
    c.sendall(b'x')
    assert a.recv(1) == b'x'
    a.sendall(b'y')
    assert c.recv(1) == b'y'
    c.close()
    assert a.recv(1) == b''
    a.close()
l.close()
print('done', flush=True)
"#;

/// The state changes read so far, shared with the stream's callback.
type Seen = Rc<RefCell<Vec<StateChange>>>;

/// A member of the set for the test's cgroup `cg`, resolved as `-c` resolves its path.
fn member(cg: &common::Cgroup) -> container::Cgroup {
    let args = ContainerArgs {
        cgroup: Some(cg.dir.clone()),
        ..Default::default()
    };
    let mut filter = args.resolve(false).expect("resolve the test's cgroup");
    filter.cgroups.pop().expect("one cgroup")
}

/// Runs N connections from a process in `cg`, inside `ns`, to their end.
fn traffic(cg: &common::Cgroup, ns: &Netns, port: u16) {
    let args = ["-c", PAIR, &port.to_string(), &N.to_string()];
    let mut p = Proc::spawn(Some(cg), ns, "python3", &args);
    p.expect_line("done", WAIT);
    p.finish(WAIT);
}

/// How many times each transition appears.
fn census(events: &[StateChange]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in events {
        let t = format!("{} -> {}", state_name(e.oldstate), state_name(e.newstate));
        *counts.entry(t).or_insert(0) += 1;
    }
    counts
}

/// Reads events until `count` have arrived (at most WAIT), then SETTLE longer for any extra.
fn read_events(stream: &EventStream, seen: &Seen, count: usize) {
    let deadline = Instant::now() + WAIT;
    while seen.borrow().len() < count && Instant::now() < deadline {
        stream.poll(Duration::from_millis(50)).expect("poll events");
    }
    let settle = Instant::now() + SETTLE;
    while Instant::now() < settle {
        stream.poll(Duration::from_millis(50)).expect("poll events");
    }
}

/// Traffic from `cg`: with `traced`, exactly its N connections' state changes, each of a
/// socket in cgroup `traced`; without, none. Clears what was read.
fn phase(
    what: &str,
    run: (&EventStream, &Seen, &Netns),
    cg: &common::Cgroup,
    port: u16,
    traced: Option<u64>,
) {
    let (stream, seen, ns) = run;
    traffic(cg, ns, port);
    let expected = match traced {
        Some(_) => transitions_of(N, true, 1),
        None => BTreeMap::new(),
    };
    read_events(stream, seen, expected.values().sum());
    let events = seen.take();
    assert_eq!(census(&events), expected, "{what}: {events:#?}");
    for e in &events {
        assert_eq!(Some(e.container.cgroup_id), traced, "{what}: {e:?}");
    }
}

/// Loaded with an empty set that may grow, tcpstates' programs trace nothing; then exactly
/// the members and the cgroups below them, as members come and go: a level of the set's
/// mask stays while another member sits at it, and goes with the last one.
#[test]
fn the_set_traces_exactly_its_members_as_they_come_and_go() {
    let ns = Netns::new("cgset");
    let (a, b) = (common::Cgroup::new("cgsetA"), common::Cgroup::new("cgsetB"));
    let inner = a.child("inner");
    let (ma, mb, minner) = (member(&a), member(&b), member(&inner));
    assert_eq!(ma.level, mb.level);
    assert_eq!(minner.level, ma.level + 1);
    let growing = ContainerFilter {
        cgroups_may_grow: true,
        record: true,
        ..Default::default()
    };
    let transport = Transport::choose();
    let (loaded, set) = bpf::load(&bpf::Filter::default(), &growing, false, &transport)
        .expect("load tcpstates' programs");
    let seen: Seen = Rc::default();
    let sink = seen.clone();
    let stream = EventStream::open(event_source!(transport, loaded), move |_, data| {
        sink.borrow_mut()
            .push(StateChange::decode(data).expect("a state change"));
    })
    .expect("open the event stream");
    let run = (&stream, &seen, &ns);

    phase("empty set, traffic from A", run, &a, 47101, None);
    set.insert(&ma).expect("insert A");
    phase("A in the set, traffic from A", run, &a, 47102, Some(ma.id));
    phase("A in the set, traffic from B", run, &b, 47103, None);
    phase(
        "A in the set, traffic from A/inner",
        run,
        &inner,
        47104,
        Some(minner.id),
    );
    set.insert(&mb).expect("insert B");
    set.remove(ma.id).expect("remove A");
    assert!(set.contains(mb.id) && !set.contains(ma.id));
    phase(
        "B in the set, A removed, traffic from B",
        run,
        &b,
        47105,
        Some(mb.id),
    );
    phase(
        "B in the set, A removed, traffic from A",
        run,
        &a,
        47106,
        None,
    );
    phase(
        "B in the set, A removed, traffic from A/inner",
        run,
        &inner,
        47107,
        None,
    );
    set.insert(&minner).expect("insert A/inner");
    set.remove(mb.id).expect("remove B");
    phase(
        "A/inner in the set, traffic from A/inner",
        run,
        &inner,
        47108,
        Some(minner.id),
    );
    phase("A/inner in the set, traffic from B", run, &b, 47109, None);
    phase("A/inner in the set, traffic from A", run, &a, 47110, None);
    set.remove(minner.id).expect("remove A/inner");
    set.remove(minner.id).expect("remove what is not there");
    phase(
        "empty again, traffic from A/inner",
        run,
        &inner,
        47111,
        None,
    );
    drop(stream);
    assert_eq!(
        loaded.skip_counters().lost(),
        0,
        "events the kernel skipped, uncaught"
    );
}

/// A set loaded without a cgroup filter takes no member (the programs would not look); no
/// set takes a cgroup deeper than its level mask has bits for, nor more than
/// CGROUP_SET_ENTRIES members.
#[test]
fn members_the_set_cannot_hold_are_refused() {
    let (_loaded, inert) = bpf::load(
        &bpf::Filter::default(),
        &ContainerFilter::default(),
        false,
        &Transport::choose(),
    )
    .expect("load tcpstates' programs");
    let root = container::Cgroup {
        id: 1,
        level: 0,
        path: "/".to_owned(),
    };
    let err = inert.insert(&root).expect_err("a member of an inert set");
    assert!(
        format!("{err:#}").contains("without a cgroup filter"),
        "{err:#}"
    );

    let growing = ContainerFilter {
        cgroups_may_grow: true,
        ..Default::default()
    };
    let (_loaded, set) = bpf::load(
        &bpf::Filter::default(),
        &growing,
        false,
        &Transport::choose(),
    )
    .expect("load tcpstates' programs");
    let deep = container::Cgroup {
        id: 12345,
        level: CGROUP_SET_LEVELS,
        path: "/deep".to_owned(),
    };
    let err = set.insert(&deep).expect_err("a member too deep");
    assert!(format!("{err:#}").contains("levels deep"), "{err:#}");
    assert!(!set.contains(deep.id));

    // Ids no cgroup has (kernfs ids are far below), so that nothing is traced.
    let fake = |i: u64| container::Cgroup {
        id: u64::MAX - i,
        level: 5,
        path: format!("/fake{i}"),
    };
    for i in 0..u64::from(CGROUP_SET_ENTRIES) {
        set.insert(&fake(i)).expect("room in the set");
    }
    set.insert(&fake(0)).expect("a member again");
    let err = set
        .insert(&fake(u64::from(CGROUP_SET_ENTRIES)))
        .expect_err("a full set");
    assert!(format!("{err:#}").contains("full"), "{err:#}");
    set.remove(u64::MAX).expect("remove one");
    set.insert(&fake(u64::from(CGROUP_SET_ENTRIES)))
        .expect("room again");
}
