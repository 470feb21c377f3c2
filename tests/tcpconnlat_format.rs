//! Golden strings for every tcpconnlat layout, checked against bcc's printf formats.

mod common;

use chrono::{Local, TimeZone};
use common::{record_bytes, v4, v6};
use tcptools::comm::Comm;
use tcptools::container::{CgroupPaths, SocketContainer};
use tcptools::net::{Endpoints, AF_INET, AF_INET6};
use tcptools::tcpconnlat::{ConnectLatency, Format, Printer};

const HEADER: &str = "PID    COMM         IP SADDR            DADDR            DPORT LAT(ms)\n";
const LPORT_HEADER: &str =
    "PID    COMM         IP SADDR            LPORT  DADDR            DPORT LAT(ms)\n";

/// bcc's example: wget connecting to port 80 in 1.65 ms.
fn wget() -> ConnectLatency {
    ConnectLatency {
        pid: 1201,
        comm: Comm::from_kernel(b"wget\0"),
        endpoints: Endpoints {
            family: AF_INET,
            laddr: v4([10, 153, 223, 157]),
            lport: 41234,
            raddr: v4([23, 23, 100, 231]),
            rport: 80,
        },
        container: SocketContainer {
            cgroup_id: 7,
            netns: 4026531840,
        },
        delta_us: 1650,
        ts_us: 5_000_000,
    }
}

/// bcc's IPv6 example, with addresses longer than the 16-wide columns.
fn python_v6() -> ConnectLatency {
    ConnectLatency {
        pid: 20337,
        comm: Comm::from_kernel(b"python2.7\0"),
        endpoints: Endpoints {
            family: AF_INET6,
            laddr: v6("1234:ab12:2040:5020:2299:0:5:0"),
            lport: 5555,
            raddr: v6("1234:ab12:20:9f1d:2299:dde9:0:f5"),
            rport: 7001,
        },
        container: SocketContainer {
            cgroup_id: 1,
            netns: 4026532000,
        },
        delta_us: 62_200,
        ts_us: 6_235_000,
    }
}

fn loopback_v6(ev: ConnectLatency) -> ConnectLatency {
    ConnectLatency {
        endpoints: Endpoints {
            laddr: v6("::1"),
            raddr: v6("::1"),
            ..ev.endpoints
        },
        ..ev
    }
}

/// The hierarchy the fixtures' cgroup ids resolve in.
fn cgroups() -> CgroupPaths {
    CgroupPaths::fixed([
        (1, "/".to_owned()),
        (7, "/system.slice/wget.service".to_owned()),
    ])
}

fn render(format: Format, events: &[ConnectLatency]) -> String {
    let at = Local.with_ymd_and_hms(2026, 1, 2, 22, 22, 29).unwrap();
    let mut printer = Printer::new(format, cgroups());
    let mut out = Vec::new();
    printer.header(&mut out).unwrap();
    for ev in events {
        printer.line(ev, at, &mut out).unwrap();
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn default_layout() {
    assert_eq!(
        render(Format::default(), &[wget(), python_v6()]),
        format!(
            "{HEADER}\
             1201   wget         4  10.153.223.157   23.23.100.231    80    1.65\n\
             20337  python2.7    6  1234:ab12:2040:5020:2299:0:5:0 1234:ab12:20:9f1d:2299:dde9:0:f5 7001  62.20\n"
        )
    );
}

#[test]
fn local_port_layout() {
    let format = Format {
        lport: true,
        ..Format::default()
    };
    assert_eq!(
        render(format, &[wget(), loopback_v6(python_v6())]),
        format!(
            "{LPORT_HEADER}\
             1201   wget         4  10.153.223.157   41234  23.23.100.231    80    1.65\n\
             20337  python2.7    6  ::1              5555   ::1              7001  62.20\n"
        )
    );
}

#[test]
fn seconds_with_local_port_layout() {
    let format = Format {
        seconds: true,
        lport: true,
        ..Format::default()
    };
    assert_eq!(
        render(format, &[wget(), loopback_v6(python_v6())]),
        "TIME(s)   PID    COMM         IP SADDR            LPORT  DADDR            DPORT LAT(ms)\n\
         0.000     1201   wget         4  10.153.223.157   41234  23.23.100.231    80    1.65\n\
         1.235     20337  python2.7    6  ::1              5555   ::1              7001  62.20\n"
    );
}

#[test]
fn seconds_layout() {
    let format = Format {
        seconds: true,
        ..Format::default()
    };
    assert_eq!(
        render(format, &[wget(), python_v6()]),
        "TIME(s)   PID    COMM         IP SADDR            DADDR            DPORT LAT(ms)\n\
         0.000     1201   wget         4  10.153.223.157   23.23.100.231    80    1.65\n\
         1.235     20337  python2.7    6  1234:ab12:2040:5020:2299:0:5:0 1234:ab12:20:9f1d:2299:dde9:0:f5 7001  62.20\n"
    );
}

#[test]
fn seconds_are_signed_for_an_older_event() {
    // Events from another CPU can be older than the first one printed; bcc wraps to
    // 18446744073709.551, tcptools prints the negative difference.
    let format = Format {
        seconds: true,
        ..Format::default()
    };
    let mut older = wget();
    older.ts_us -= 1_500;
    let mut much_later = wget();
    much_later.ts_us += 12_345_678_000;
    let text = render(format, &[wget(), older, much_later]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1],
        "0.000     1201   wget         4  10.153.223.157   23.23.100.231    80    1.65"
    );
    assert_eq!(
        lines[2],
        "-0.002    1201   wget         4  10.153.223.157   23.23.100.231    80    1.65"
    );
    assert_eq!(
        lines[3],
        "12345.678 1201   wget         4  10.153.223.157   23.23.100.231    80    1.65"
    );
}

#[test]
fn long_ipv6_addresses_print_in_full() {
    let ev = ConnectLatency {
        endpoints: Endpoints {
            laddr: v6("2001:db8:1234:5678:9abc:def0:1234:5678"),
            raddr: v6("fd00:ffff:eeee:dddd:cccc:bbbb:aaaa:9999"),
            ..python_v6().endpoints
        },
        ..python_v6()
    };
    let format = Format {
        lport: true,
        ..Format::default()
    };
    assert_eq!(
        render(format, &[ev]),
        format!(
            "{LPORT_HEADER}\
             20337  python2.7    6  2001:db8:1234:5678:9abc:def0:1234:5678 5555   fd00:ffff:eeee:dddd:cccc:bbbb:aaaa:9999 7001  62.20\n"
        )
    );
}

#[test]
fn v4_mapped_on_an_ipv6_socket_prints_as_ipv6() {
    let ev = ConnectLatency {
        endpoints: Endpoints {
            family: AF_INET6,
            laddr: v6("::ffff:127.0.0.1"),
            raddr: v6("::ffff:127.0.0.1"),
            ..wget().endpoints
        },
        ..wget()
    };
    assert_eq!(
        render(Format::default(), &[ev]),
        format!(
            "{HEADER}\
             1201   wget         6  ::ffff:127.0.0.1 ::ffff:127.0.0.1 80    1.65\n"
        )
    );
}

#[test]
fn comm_is_cut_at_12_bytes_and_wide_values_push_columns() {
    let ev = ConnectLatency {
        pid: 4_194_304,
        comm: Comm::from_kernel(b"averylongcommand"),
        endpoints: Endpoints {
            lport: 65535,
            rport: 65535,
            ..wget().endpoints
        },
        delta_us: 123_456_789,
        ..wget()
    };
    let format = Format {
        lport: true,
        ..Format::default()
    };
    assert_eq!(
        render(format, &[ev]),
        format!(
            "{LPORT_HEADER}\
             4194304 averylongcom 4  10.153.223.157   65535  23.23.100.231    65535 123456.79\n"
        )
    );
}

#[test]
fn control_characters_in_comm_are_masked() {
    let ev = ConnectLatency {
        comm: Comm::from_kernel(b"a\x1b[2Jb\0"),
        ..wget()
    };
    assert_eq!(
        render(Format::default(), &[ev]),
        format!("{HEADER}1201   a?[2Jb       4  10.153.223.157   23.23.100.231    80    1.65\n")
    );
}

#[test]
fn latency_rounds_like_printf() {
    // %.2f rounds the exact binary value, ties to even: 0.125 -> 0.12, 0.005 -> 0.01.
    let lat = |delta_us| {
        let ev = ConnectLatency { delta_us, ..wget() };
        let text = render(Format::default(), &[ev]);
        text.lines()
            .nth(1)
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(lat(125), "0.12");
    assert_eq!(lat(5), "0.01");
    assert_eq!(lat(0), "0.00");
    assert_eq!(lat(1), "0.00");
    assert_eq!(lat(999_995), "1000.00");
}

#[test]
fn json_objects() {
    let format = Format {
        json: true,
        ..Format::default()
    };
    let at = Local.with_ymd_and_hms(2026, 1, 2, 22, 22, 29).unwrap();
    let time = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    assert_eq!(
        render(format, &[wget(), loopback_v6(python_v6())]),
        format!(
            "{{\"cgroup\":\"/system.slice/wget.service\",\"comm\":\"wget\",\"daddr\":\"23.23.100.231\",\"dport\":80,\"ip\":4,\"lat_ms\":1.65,\"lport\":41234,\"netns\":4026531840,\"pid\":1201,\"saddr\":\"10.153.223.157\",\"time\":\"{time}\"}}\n\
             {{\"cgroup\":\"/\",\"comm\":\"python2.7\",\"daddr\":\"::1\",\"dport\":7001,\"ip\":6,\"lat_ms\":62.2,\"lport\":5555,\"netns\":4026532000,\"pid\":20337,\"saddr\":\"::1\",\"time\":\"{time}\"}}\n"
        )
    );
    let with_seconds = Format {
        json: true,
        seconds: true,
        ..Format::default()
    };
    let text = render(with_seconds, &[wget(), loopback_v6(python_v6())]);
    let objects: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["seconds"], serde_json::json!(0.0));
    assert_eq!(objects[1]["seconds"], serde_json::json!(1.235));
    assert_eq!(objects[1]["lat_ms"], serde_json::json!(62.2));
    assert_eq!(objects[1]["time"], serde_json::json!(time));
    assert!(text.starts_with('{'), "no header in JSON mode");
}

#[test]
fn decodes_the_bpf_record() {
    let mut raw = tcptools::skel::tcpconnlat::types::connect_latency {
        laddr: v4([127, 0, 0, 1]),
        raddr: v4([127, 0, 0, 2]),
        delta_ns: 42_999,
        ts_ns: 7_500,
        pid: 99,
        family: AF_INET,
        lport: 40000,
        rport: 42000,
        cgroup_id: 5,
        netns: 6,
        ..Default::default()
    };
    raw.comm[..4].copy_from_slice(b"curl");
    let bytes = record_bytes(&raw);
    assert_eq!(bytes.len(), 88);
    let ev = ConnectLatency::decode(bytes).unwrap();
    assert_eq!(
        ev,
        ConnectLatency {
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
            delta_us: 42,
            ts_us: 7,
        }
    );
    assert!(ev.has_known_family());
    assert!(ConnectLatency::decode(&bytes[..87]).is_none());
    let mut other = ev;
    other.endpoints.family = 1;
    assert!(!other.has_known_family());
}

#[test]
fn cgroup_column() {
    let format = Format {
        cgroup: true,
        lport: true,
        ..Format::default()
    };
    assert_eq!(
        render(format, &[wget(), loopback_v6(python_v6())]),
        "PID    COMM         IP SADDR            LPORT  DADDR            DPORT LAT(ms) CGROUP\n\
         1201   wget         4  10.153.223.157   41234  23.23.100.231    80    1.65 /system.slice/wget.service\n\
         20337  python2.7    6  ::1              5555   ::1              7001  62.20 /\n"
    );
}
