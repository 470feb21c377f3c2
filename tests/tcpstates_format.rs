//! Golden strings for every tcpstates layout, checked against bcc's printf formats.

mod common;

use chrono::{Local, TimeZone};
use common::{record_bytes, v4, v6};
use tcptools::comm::Comm;
use tcptools::container::{CgroupPaths, SocketContainer};
use tcptools::net::{Endpoints, AF_INET, AF_INET6};
use tcptools::pods::Identities;
use tcptools::runtime::{ContainerNames, PodNames, Runtimes};
use tcptools::tcpstates::event::Owner;
use tcptools::tcpstates::{state_name, Format, Printer, StateChange};
use tcptools::time::WallClock;

const HEADER: &str = "SKADDR           PID     COMM       LADDR           LPORT RADDR           RPORT OLDSTATE    -> NEWSTATE    MS\n";
const WIDE_HEADER: &str = "SKADDR           PID     COMM             IP LADDR                                   LPORT RADDR                                   RPORT OLDSTATE    -> NEWSTATE    MS\n";

fn change(family: u16, laddr: [u8; 16], lport: u16, raddr: [u8; 16], rport: u16) -> StateChange {
    StateChange {
        skaddr: 0xffff8881064b0940,
        pid: 7673,
        comm: Comm::from_kernel(b"python3\0"),
        endpoints: Endpoints {
            family,
            laddr,
            lport,
            raddr,
            rport,
        },
        oldstate: 1,
        newstate: 4,
        container: SocketContainer {
            cgroup_id: 7,
            netns: 4026531840,
        },
        owner: None,
        delta_ns: 50_345_000,
        delta_known: true,
        ts_us: 10_000_000,
    }
}

/// The hierarchy the fixtures' cgroup ids resolve in.
fn cgroups() -> CgroupPaths {
    CgroupPaths::fixed([(1, "/".to_owned()), (7, "/pod/web".to_owned())])
}

fn loopback_v4() -> StateChange {
    change(AF_INET, v4([127, 0, 0, 1]), 59600, v4([127, 0, 0, 1]), 8765)
}

fn render(format: Format, events: &[StateChange]) -> String {
    let at = Local.with_ymd_and_hms(2026, 1, 2, 22, 22, 29).unwrap();
    let mut clock = WallClock::fixed(at);
    let mut printer = Printer::new(format, cgroups());
    let mut out = Vec::new();
    printer.header(&mut out).unwrap();
    for ev in events {
        printer.line(ev, &mut clock, &mut out).unwrap();
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn default_layout() {
    let mut idle = loopback_v4();
    idle.pid = 0;
    idle.comm = Comm::from_kernel(b"swapper/0\0");
    idle.oldstate = 4;
    idle.newstate = 5;
    idle.delta_ns = 2_342_000;
    assert_eq!(
        render(Format::default(), &[loopback_v4(), idle]),
        format!(
            "{HEADER}\
ffff8881064b0940 7673    python3    127.0.0.1       59600 127.0.0.1       8765  ESTABLISHED -> FIN_WAIT1   50.345\n\
ffff8881064b0940 0       swapper/0  127.0.0.1       59600 127.0.0.1       8765  FIN_WAIT1   -> FIN_WAIT2   2.342\n"
        )
    );
}

#[test]
fn long_names_are_cut_to_ten_bytes_and_long_addresses_push_columns() {
    let mut ev = change(AF_INET6, v6("::ffff:127.0.0.1"), 59600, v6("::1"), 8765);
    ev.comm = Comm::from_kernel(b"averylongname15");
    ev.delta_ns = 125_000;
    assert_eq!(
        render(Format::default(), &[ev]),
        format!(
            "{HEADER}\
ffff8881064b0940 7673    averylongn ::ffff:127.0.0.1 59600 ::1             8765  ESTABLISHED -> FIN_WAIT1   0.125\n"
        )
    );
}

#[test]
fn wide_layout_prints_39_character_ipv6_addresses_in_full() {
    let mut ev = change(
        AF_INET6,
        v6("2001:db8:1234:5678:9abc:def0:1234:5678"),
        443,
        v6("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"),
        65535,
    );
    ev.pid = 123456;
    ev.comm = Comm::from_kernel(b"averylongname15");
    ev.oldstate = 2;
    ev.newstate = 13;
    ev.delta_ns = 2_500_000;
    let wide = Format {
        wide: true,
        ..Format::default()
    };
    assert_eq!(
        render(wide, &[ev]),
        format!(
            "{WIDE_HEADER}\
ffff8881064b0940 123456  averylongname15  6  2001:db8:1234:5678:9abc:def0:1234:5678  443   2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff  65535 SYN_SENT    -> UNKNOWN     2.500\n"
        )
    );
}

#[test]
fn clock_column_with_wide_layout() {
    let mut ev = change(AF_INET, v4([127, 0, 0, 1]), 8765, v4([0, 0, 0, 0]), 0);
    ev.skaddr = 0xffff8881064b3780;
    ev.pid = 8204;
    ev.oldstate = 7;
    ev.newstate = 10;
    ev.delta_ns = 0;
    let format = Format {
        clock: true,
        wide: true,
        ..Format::default()
    };
    assert_eq!(
        render(format, &[ev]),
        format!(
            "TIME(s)  {WIDE_HEADER}\
22:22:29 ffff8881064b3780 8204    python3          4  127.0.0.1                               8765  0.0.0.0                                 0     CLOSE       -> LISTEN      0.000\n"
        )
    );
}

#[test]
fn seconds_column_counts_from_the_first_printed_event_and_may_go_negative() {
    let first = loopback_v4();
    let mut later = loopback_v4();
    later.ts_us = first.ts_us + 12_345_678;
    let mut earlier = loopback_v4();
    earlier.ts_us = first.ts_us - 1_500_000;
    let format = Format {
        seconds: true,
        ..Format::default()
    };
    let text = render(format, &[first, later, earlier]);
    let prefixes: Vec<&str> = text.lines().map(|l| &l[..10]).collect();
    assert_eq!(
        prefixes,
        ["TIME(s)   ", "0.000000  ", "12.345678 ", "-1.500000 "]
    );
    let plain = render(Format::default(), &[loopback_v4()]);
    assert_eq!(
        &text.lines().nth(1).unwrap()[10..],
        plain.lines().nth(1).unwrap()
    );
}

#[test]
fn clock_and_seconds_together_put_the_clock_first() {
    let format = Format {
        clock: true,
        seconds: true,
        ..Format::default()
    };
    let text = render(format, &[loopback_v4()]);
    assert!(
        text.starts_with(&format!("TIME(s)  TIME(s)   {HEADER}")),
        "{text}"
    );
    assert!(text
        .lines()
        .nth(1)
        .unwrap()
        .starts_with("22:22:29 0.000000  ffff8881064b0940 "));
}

#[test]
fn csv_layout_is_python_tcpstates_csv() {
    let format = Format {
        csv: true,
        wide: true,
        ..Format::default()
    };
    assert_eq!(
        render(format, &[loopback_v4()]),
        "SKADDR,C-PID,C-COMM,IP,LADDR,LPORT,RADDR,RPORT,OLDSTATE,NEWSTATE,MS\n\
ffff8881064b0940,7673,python3,4,127.0.0.1,59600,127.0.0.1,8765,ESTABLISHED,FIN_WAIT1,50.345\n"
    );
}

#[test]
fn csv_with_clock_and_seconds() {
    let format = Format {
        csv: true,
        clock: true,
        seconds: true,
        ..Format::default()
    };
    assert_eq!(
        render(format, &[loopback_v4()]),
        "TIME,TIME(s),SKADDR,C-PID,C-COMM,IP,LADDR,LPORT,RADDR,RPORT,OLDSTATE,NEWSTATE,MS\n\
22:22:29,0.000000,ffff8881064b0940,7673,python3,4,127.0.0.1,59600,127.0.0.1,8765,ESTABLISHED,FIN_WAIT1,50.345\n"
    );
}

#[test]
fn csv_quotes_fields_holding_commas_or_quotes() {
    let mut ev = loopback_v4();
    ev.comm = Comm::from_kernel(b"a,b\"c\0");
    let format = Format {
        csv: true,
        ..Format::default()
    };
    let text = render(format, &[ev]);
    assert_eq!(
        text.lines().nth(1).unwrap(),
        "ffff8881064b0940,7673,\"a,b\"\"c\",4,127.0.0.1,59600,127.0.0.1,8765,ESTABLISHED,FIN_WAIT1,50.345"
    );
}

#[test]
fn json_has_named_fields_and_numbers() {
    let format = Format {
        json: true,
        seconds: true,
        ..Format::default()
    };
    let text = render(format, &[loopback_v4()]);
    assert_eq!(text.lines().count(), 1, "no header in JSON: {text}");
    let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    let at = Local.with_ymd_and_hms(2026, 1, 2, 22, 22, 29).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "time": tcptools::time::rfc3339(at),
            "skaddr": "ffff8881064b0940",
            "pid": 7673,
            "comm": "python3",
            "ip": 4,
            "laddr": "127.0.0.1",
            "lport": 59600,
            "raddr": "127.0.0.1",
            "rport": 8765,
            "oldstate": "ESTABLISHED",
            "newstate": "FIN_WAIT1",
            "ms": 50.345,
            "seconds": 0.0,
            "netns": 4026531840u32,
            "cgroup": "/pod/web",
        })
    );
}

#[test]
fn json_carries_the_owner_when_known() {
    let format = Format {
        json: true,
        ..Format::default()
    };
    let mut owned = loopback_v4();
    owned.owner = Some(Owner {
        pid: 4242,
        comm: Comm::from_kernel(b"nginx\0"),
    });
    let text = render(format, &[owned, loopback_v4()]);
    let values: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values[0]["owner_pid"], serde_json::json!(4242));
    assert_eq!(values[0]["owner_comm"], serde_json::json!("nginx"));
    assert_eq!(values[0]["pid"], serde_json::json!(7673));
    assert_eq!(values[1].get("owner_pid"), None);
    assert_eq!(values[1].get("owner_comm"), None);
}

#[test]
fn owner_view_and_cgroup_column() {
    let format = Format {
        owner: true,
        cgroup: true,
        ..Format::default()
    };
    let mut owned = loopback_v4();
    owned.owner = Some(Owner {
        pid: 4242,
        comm: Comm::from_kernel(b"nginx\0"),
    });
    let mut at_root = loopback_v4();
    at_root.container.cgroup_id = 1;
    assert_eq!(
        render(format, &[owned, at_root.clone()]),
        "SKADDR           PID     COMM       LADDR           LPORT RADDR           RPORT OLDSTATE    -> NEWSTATE    MS CGROUP\n\
         ffff8881064b0940 4242    nginx      127.0.0.1       59600 127.0.0.1       8765  ESTABLISHED -> FIN_WAIT1   50.345 /pod/web\n\
         ffff8881064b0940 -       -          127.0.0.1       59600 127.0.0.1       8765  ESTABLISHED -> FIN_WAIT1   50.345 /\n"
    );
    let csv = Format {
        csv: true,
        ..format
    };
    assert_eq!(
        render(csv, &[at_root]).lines().nth(1),
        Some(
            "ffff8881064b0940,-,-,4,127.0.0.1,59600,127.0.0.1,8765,ESTABLISHED,FIN_WAIT1,50.345,/"
        )
    );
}

#[test]
fn control_characters_in_process_names_print_as_question_marks() {
    let mut ev = loopback_v4();
    ev.comm = Comm::from_kernel(b"ev\x1b[2Jil\x07\0");
    let text = render(Format::default(), &[ev]);
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("ffff8881064b0940 7673    ev?[2Jil?  127.0.0.1 "),
        "{text}"
    );
}

#[test]
fn state_names_and_unnamed_numbers() {
    let names: Vec<String> = (0..=14).map(|s| state_name(s).into_owned()).collect();
    assert_eq!(
        names,
        [
            "0",
            "ESTABLISHED",
            "SYN_SENT",
            "SYN_RECV",
            "FIN_WAIT1",
            "FIN_WAIT2",
            "TIME_WAIT",
            "CLOSE",
            "CLOSE_WAIT",
            "LAST_ACK",
            "LISTEN",
            "CLOSING",
            "NEW_SYN_RECV",
            "UNKNOWN",
            "14"
        ]
    );
    assert_eq!(state_name(-3), "-3");
    let mut ev = loopback_v4();
    ev.oldstate = 0;
    ev.newstate = 99;
    let text = render(Format::default(), &[ev]);
    assert!(
        text.ends_with("8765  0           -> 99          50.345\n"),
        "{text}"
    );
}

#[test]
fn short_records_are_rejected() {
    assert_eq!(StateChange::decode(&[0u8; 10]), None);
}

/// The BPF record, whole (with the container and the owner) and short (without: what the
/// program sends where the output shows neither, 96 bytes).
#[test]
fn decodes_whole_and_short_bpf_records() {
    let mut raw = tcptools::skel::tcpstates::types::state_change {
        laddr: v4([127, 0, 0, 1]),
        raddr: v4([127, 0, 0, 2]),
        skaddr: 0xffff_8880_1234_5678,
        ts_ns: 7_500,
        delta_ns: 42_999,
        pid: 99,
        oldstate: 2,
        newstate: 1,
        family: AF_INET,
        lport: 40000,
        rport: 42000,
        delta_known: 1,
        cgroup_id: 5,
        netns: 6,
        ..Default::default()
    };
    raw.comm[..4].copy_from_slice(b"curl");
    raw.owner.pid = 98;
    raw.owner.comm[..4].copy_from_slice(b"wget");
    raw.owner.known = 1;
    let bytes = record_bytes(&raw);
    assert_eq!(bytes.len(), 136);
    let whole = StateChange::decode(bytes).unwrap();
    let expected = StateChange {
        skaddr: 0xffff_8880_1234_5678,
        pid: 99,
        comm: Comm::from_kernel(b"curl"),
        endpoints: Endpoints {
            family: AF_INET,
            laddr: v4([127, 0, 0, 1]),
            lport: 40000,
            raddr: v4([127, 0, 0, 2]),
            rport: 42000,
        },
        container: SocketContainer {
            cgroup_id: 5,
            netns: 6,
        },
        owner: Some(Owner {
            pid: 98,
            comm: Comm::from_kernel(b"wget"),
        }),
        oldstate: 2,
        newstate: 1,
        delta_ns: 42_999,
        delta_known: true,
        ts_us: 7,
    };
    assert_eq!(whole, expected);
    let short = StateChange::decode(&bytes[..96]).unwrap();
    assert_eq!(
        short,
        StateChange {
            container: SocketContainer::default(),
            owner: None,
            ..expected
        }
    );
    assert_eq!(StateChange::decode(&bytes[..95]), None);
}

#[test]
fn sub_microsecond_durations_are_0_000_in_columns_but_not_in_json() {
    let mut quick = loopback_v4();
    quick.delta_ns = 412;
    let text = render(Format::default(), &[quick.clone()]);
    assert!(text.lines().nth(1).unwrap().ends_with(" 0.000"), "{text}");
    let json = Format {
        json: true,
        ..Format::default()
    };
    let value: serde_json::Value = serde_json::from_str(render(json, &[quick]).trim_end()).unwrap();
    assert_eq!(value["ms"], serde_json::json!(0.000412));
}

/// A pod uid and container id as kubelet's cgroupfs layout names their cgroups.
const POD_UID: &str = "3f2a9c4e-1b7d-4e8a-9f60-2c5d8e7a1b90";
const CONTAINER_ID: &str = "4c01db0b339c5a9b6e7f0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f7";

/// Cgroups 1 (the root), 7 (a cgroup in no pod), 8 (a pod's container), 9 (a pod's own
/// cgroup), named by a runtime that knows the pod and the container.
fn named() -> Identities {
    let pod_dir = format!("/kubepods/besteffort/pod{POD_UID}");
    let paths = CgroupPaths::fixed([
        (1, "/".to_owned()),
        (7, "/pod/web".to_owned()),
        (8, format!("{pod_dir}/{CONTAINER_ID}")),
        (9, pod_dir),
    ]);
    let pod = PodNames {
        namespace: "shop".into(),
        name: "web-0".into(),
        uid: POD_UID.into(),
    };
    let container = ContainerNames {
        name: "nginx".into(),
        id: CONTAINER_ID.into(),
        pod: Some(pod.clone()),
    };
    Identities::new(paths, Runtimes::fixed(vec![pod], vec![container]))
}

fn render_named(format: Format, cgroups: &[u64]) -> String {
    let mut clock = WallClock::fixed(Local.with_ymd_and_hms(2026, 1, 2, 22, 22, 29).unwrap());
    let mut printer = Printer::new(format, named());
    let mut out = Vec::new();
    printer.header(&mut out).unwrap();
    for &id in cgroups {
        let mut ev = loopback_v4();
        ev.container.cgroup_id = id;
        printer.line(&ev, &mut clock, &mut out).unwrap();
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn pod_column_names_pods_and_containers_and_falls_back_to_paths() {
    let format = Format {
        pod: true,
        ..Format::default()
    };
    assert_eq!(
        render_named(format, &[8, 9, 7]),
        "SKADDR           PID     COMM       LADDR           LPORT RADDR           RPORT OLDSTATE    -> NEWSTATE    MS NAMESPACE/POD/CONTAINER\n\
         ffff8881064b0940 7673    python3    127.0.0.1       59600 127.0.0.1       8765  ESTABLISHED -> FIN_WAIT1   50.345 shop/web-0/nginx\n\
         ffff8881064b0940 7673    python3    127.0.0.1       59600 127.0.0.1       8765  ESTABLISHED -> FIN_WAIT1   50.345 shop/web-0/-\n\
         ffff8881064b0940 7673    python3    127.0.0.1       59600 127.0.0.1       8765  ESTABLISHED -> FIN_WAIT1   50.345 /pod/web\n"
    );
    let csv = Format {
        csv: true,
        cgroup: true,
        ..format
    };
    let text = render_named(csv, &[8]);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("SKADDR,C-PID,C-COMM,IP,LADDR,LPORT,RADDR,RPORT,OLDSTATE,NEWSTATE,MS,CGROUP,NAMESPACE/POD/CONTAINER")
    );
    assert_eq!(
        lines.next().map(|l| l.rsplit(',').next().unwrap()),
        Some("shop/web-0/nginx")
    );
}

#[test]
fn json_names_the_pod_and_container_where_known() {
    let format = Format {
        json: true,
        ..Format::default()
    };
    let text = render_named(format, &[8, 9, 7]);
    let values: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names = |v: &serde_json::Value| {
        ["namespace", "pod", "container", "container_id"].map(|k| v.get(k).cloned())
    };
    let s = |text: &str| Some(serde_json::json!(text));
    assert_eq!(
        names(&values[0]),
        [s("shop"), s("web-0"), s("nginx"), s(CONTAINER_ID)]
    );
    assert_eq!(names(&values[1]), [s("shop"), s("web-0"), None, None]);
    assert_eq!(names(&values[2]), [None, None, None, None]);
    assert_eq!(values[2]["cgroup"], serde_json::json!("/pod/web"));
}
