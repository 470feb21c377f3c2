//! Golden tests of tcprtt's output (bcc's banner, sections and histograms), without BPF.

use chrono::{DateTime, Local, TimeZone};
use serde_json::Value;

use tcptools::tcprtt::{
    banner, sort_sections, write_interval, Format, KeyKind, RttHist, MAX_SLOTS,
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

fn at() -> DateTime<Local> {
    Local.with_ymd_and_hms(2024, 3, 5, 22, 25, 1).unwrap()
}

fn hist(family: u16, addr: &str, set: &[(usize, u32)], sum: u64, count: u64) -> RttHist {
    let mut bytes = [0u8; 16];
    match family {
        AF_INET => {
            bytes[..4].copy_from_slice(&addr.parse::<std::net::Ipv4Addr>().unwrap().octets())
        }
        AF_INET6 => bytes = addr.parse::<std::net::Ipv6Addr>().unwrap().octets(),
        _ => {}
    }
    let mut slots = [0u32; MAX_SLOTS];
    for &(i, c) in set {
        slots[i] = c;
    }
    RttHist {
        family,
        addr: bytes,
        cgroup_id: 0,
        cgroup: String::new(),
        pod: None,
        sum,
        count,
        slots,
    }
}

fn all(set: &[(usize, u32)], sum: u64, count: u64) -> RttHist {
    hist(0, "", set, sum, count)
}

fn render(format: Format, hists: &[RttHist]) -> String {
    let mut buf = Vec::new();
    write_interval(&mut buf, &format, at(), hists).unwrap();
    String::from_utf8(buf).unwrap()
}

fn banner_text(duration: Option<u64>, format: Format) -> String {
    let mut buf = Vec::new();
    banner(&mut buf, duration, &format).unwrap();
    String::from_utf8(buf).unwrap()
}

const SMALL_HIST: &str = concat!(
    "     usecs               : count    distribution\n",
    "         0 -> 1          : 2        |***********                             |\n",
    "         2 -> 3          : 0        |                                        |\n",
    "         4 -> 7          : 7        |****************************************|\n",
);

#[test]
fn banners() {
    let text = Format::default();
    assert_eq!(
        banner_text(None, text),
        "Tracing TCP RTT... Hit Ctrl-C to end.\n"
    );
    assert_eq!(banner_text(Some(1), text), "Tracing TCP RTT for 1 secs.\n");
    assert_eq!(
        banner_text(Some(10), text),
        "Tracing TCP RTT for 10 secs.\n"
    );
    let json = Format {
        json: true,
        ..Format::default()
    };
    assert_eq!(banner_text(None, json), "");
}

#[test]
fn all_addresses_has_trailing_space() {
    let out = render(Format::default(), &[all(&[(0, 2), (2, 7)], 30, 9)]);
    assert_eq!(out, format!("\nAll Addresses = ****** \n{SMALL_HIST}"));
}

#[test]
fn all_addresses_with_average() {
    let format = Format {
        extension: true,
        ..Format::default()
    };
    let out = render(format, &[all(&[(0, 2), (2, 7)], 2915, 9)]);
    assert_eq!(
        out,
        format!("\nAll Addresses = ****** [AVG 323]\n{SMALL_HIST}")
    );
}

#[test]
fn timestamp_line_then_sections() {
    let format = Format {
        extension: true,
        timestamp: true,
        ..Format::default()
    };
    let out = render(format, &[all(&[(0, 2), (2, 7)], 2915, 9)]);
    assert_eq!(
        out,
        format!("\n22:25:01\nAll Addresses = ****** [AVG 323]\n{SMALL_HIST}")
    );
}

/// bcc's documented `-B -e` example, IPv4 and IPv6 keys back to back.
#[test]
fn remote_addresses_with_average_spec_example() {
    let format = Format {
        key: KeyKind::Remote,
        extension: true,
        ..Format::default()
    };
    let hists = [
        hist(AF_INET, "10.0.0.1", &[(0, 2), (2, 7)], 9, 9),
        hist(AF_INET6, "2001:db8::1", &[(1, 1)], 3, 1),
    ];
    let expected = concat!(
        "\n",
        "Remote Address = 10.0.0.1 [AVG 1]\n",
        "     usecs               : count    distribution\n",
        "         0 -> 1          : 2        |***********                             |\n",
        "         2 -> 3          : 0        |                                        |\n",
        "         4 -> 7          : 7        |****************************************|\n",
        "Remote Address = 2001:db8::1 [AVG 3]\n",
        "     usecs               : count    distribution\n",
        "         0 -> 1          : 0        |                                        |\n",
        "         2 -> 3          : 1        |****************************************|\n",
    );
    assert_eq!(render(format, &hists), expected);
}

#[test]
fn local_and_remote_headers_without_average() {
    let local = Format {
        key: KeyKind::Local,
        ..Format::default()
    };
    let remote = Format {
        key: KeyKind::Remote,
        ..Format::default()
    };
    let h = [hist(AF_INET, "127.0.0.1", &[(0, 2), (2, 7)], 0, 9)];
    assert_eq!(
        render(local, &h),
        format!("\nLocal Address = 127.0.0.1 \n{SMALL_HIST}")
    );
    assert_eq!(
        render(remote, &h),
        format!("\nRemote Address = 127.0.0.1 \n{SMALL_HIST}")
    );
    let v6 = [hist(AF_INET6, "::ffff:10.1.2.3", &[(0, 2), (2, 7)], 0, 9)];
    assert_eq!(
        render(local, &v6),
        format!("\nLocal Address = ::ffff:10.1.2.3 \n{SMALL_HIST}")
    );
}

#[test]
fn milliseconds_unit() {
    let format = Format {
        millisecond: true,
        ..Format::default()
    };
    let out = render(format, &[all(&[(3, 5)], 60, 5)]);
    assert_eq!(
        out,
        concat!(
            "\n",
            "All Addresses = ****** \n",
            "     msecs               : count    distribution\n",
            "         0 -> 1          : 0        |                                        |\n",
            "         2 -> 3          : 0        |                                        |\n",
            "         4 -> 7          : 0        |                                        |\n",
            "         8 -> 15         : 5        |****************************************|\n",
        )
    );
}

#[test]
fn empty_interval_is_one_empty_line() {
    assert_eq!(render(Format::default(), &[]), "\n");
    let format = Format {
        timestamp: true,
        extension: true,
        ..Format::default()
    };
    assert_eq!(render(format, &[]), "\n22:25:01\n");
}

#[test]
fn average_of_zero_samples_is_zero() {
    let format = Format {
        extension: true,
        ..Format::default()
    };
    // A key the BPF side created but never counted into: header and no histogram.
    let out = render(format, &[all(&[], 0, 0)]);
    assert_eq!(out, "\nAll Addresses = ****** [AVG 0]\n");
    assert_eq!(all(&[], 5, 0).average(), 0);
    assert_eq!(all(&[], 7, 2).average(), 3);
}

#[test]
fn sections_sorted_ipv4_then_ipv6() {
    let mut hists = vec![
        hist(AF_INET6, "::1", &[(0, 1)], 0, 1),
        hist(AF_INET, "10.0.0.2", &[(0, 1)], 0, 1),
        hist(AF_INET6, "2001:db8::1", &[(0, 1)], 0, 1),
        hist(AF_INET, "10.0.0.1", &[(0, 1)], 0, 1),
    ];
    sort_sections(&mut hists);
    let format = Format {
        key: KeyKind::Local,
        ..Format::default()
    };
    let headers: Vec<String> = render(format, &hists)
        .lines()
        .filter(|l| l.starts_with("Local"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        headers,
        [
            "Local Address = 10.0.0.1 ",
            "Local Address = 10.0.0.2 ",
            "Local Address = ::1 ",
            "Local Address = 2001:db8::1 "
        ]
    );
}

#[test]
fn json_one_object_per_histogram() {
    let format = Format {
        key: KeyKind::Remote,
        extension: true,
        json: true,
        ..Format::default()
    };
    let hists = [
        hist(AF_INET, "10.0.0.1", &[(0, 2), (2, 7)], 9, 9),
        hist(AF_INET6, "2001:db8::1", &[(1, 1)], 3, 1),
    ];
    let out = render(format, &hists);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    let time = tcptools::time::rfc3339(at());
    assert_eq!(
        lines[0],
        format!(
            r#"{{"addr":"10.0.0.1","avg":1,"buckets":[{{"count":2,"high":1,"low":0}},{{"count":0,"high":3,"low":2}},{{"count":7,"high":7,"low":4}}],"count":9,"key":"remote","sum":9,"time":"{time}","unit":"usecs"}}"#
        )
    );
    let second: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(second["addr"], "2001:db8::1");
    assert_eq!(second["avg"], 3);
    assert_eq!(second["count"], 1);
    assert_eq!(second["buckets"].as_array().unwrap().len(), 2);
}

#[test]
fn json_all_addresses_has_no_addr_nor_avg_without_e() {
    let format = Format {
        json: true,
        millisecond: true,
        ..Format::default()
    };
    let out = render(format, &[all(&[(3, 5)], 60, 5)]);
    let v: Value = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(v["key"], "all");
    assert_eq!(v["unit"], "msecs");
    assert!(v.get("addr").is_none());
    assert!(v.get("avg").is_none());
    assert_eq!(v["sum"], 60);
    assert_eq!(v["count"], 5);
    assert_eq!(v["buckets"][3]["low"], 8);
    assert_eq!(v["buckets"][3]["high"], 15);
    assert_eq!(v["buckets"][3]["count"], 5);
    // An empty interval prints nothing in JSON.
    assert_eq!(render(format, &[]), "");
}

#[test]
fn decodes_map_records_summed_over_cpus() {
    // struct hist_key: generation, family, addr[16], pad[2], cgroup_id.
    let mut key = vec![0u8; 32];
    key[..4].copy_from_slice(&7u32.to_ne_bytes());
    key[4..6].copy_from_slice(&AF_INET.to_ne_bytes());
    key[6..10].copy_from_slice(&[127, 0, 0, 1]);
    // struct hist: latency, cnt, slots[27], pad; one per CPU.
    let cpu = |sum: u64, count: u32, slot: usize| {
        let mut value = vec![0u8; 128];
        value[..8].copy_from_slice(&sum.to_ne_bytes());
        value[8..16].copy_from_slice(&u64::from(count).to_ne_bytes());
        value[16 + 4 * slot..16 + 4 * (slot + 1)].copy_from_slice(&count.to_ne_bytes());
        value
    };
    let values = [cpu(300, 3, 13), cpu(0, 0, 0), cpu(20, 2, 13)];
    let (generation, h) = RttHist::decode_per_cpu(&key, &values).unwrap();
    assert_eq!(generation, 7);
    assert_eq!(h, hist(AF_INET, "127.0.0.1", &[(13, 5)], 320, 5));
    assert!(RttHist::decode_per_cpu(&key[..10], &values).is_none());
    assert!(RttHist::decode_per_cpu(&key, &[values[0][..100].to_vec()]).is_none());
}

/// `--bypod`: two containers of one pod merge into one section, the pod's own cgroup too;
/// a cgroup in no pod keeps its own section, headed by its path.
#[test]
fn bypod_merges_a_pods_cgroups() {
    use tcptools::container::CgroupPaths;
    use tcptools::pods::Identities;
    use tcptools::runtime::{PodNames, Runtimes};
    use tcptools::tcprtt::merge_by_pod;

    let uid = "3f2a9c4e-1b7d-4e8a-9f60-2c5d8e7a1b90";
    let pod_dir = format!("/kubepods/burstable/pod{uid}");
    let paths = CgroupPaths::fixed([
        (5, format!("{pod_dir}/{}", "a".repeat(64))),
        (6, format!("{pod_dir}/{}", "b".repeat(64))),
        (7, "/system.slice/sshd.service".to_owned()),
    ]);
    let pod = PodNames {
        namespace: "shop".into(),
        name: "web-0".into(),
        uid: uid.into(),
    };
    let mut identities = Identities::new(paths, Runtimes::fixed(vec![pod], vec![]));
    let in_cgroup = |id: u64, set: &[(usize, u32)], sum: u64, count: u64| RttHist {
        cgroup_id: id,
        ..all(set, sum, count)
    };
    let hists = vec![
        in_cgroup(7, &[(0, 1)], 1, 1),
        in_cgroup(5, &[(0, 2)], 2, 2),
        in_cgroup(6, &[(2, 7)], 28, 7),
    ];
    let merged = merge_by_pod(hists, &mut identities);
    let format = Format {
        key: KeyKind::Cgroup,
        bypod: true,
        extension: true,
        ..Format::default()
    };
    let text = render(format, &merged);
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("Pod = ")).collect();
    assert_eq!(
        headers,
        [
            "Pod = /system.slice/sshd.service [AVG 1]",
            "Pod = shop/web-0 [AVG 3]"
        ]
    );
    assert!(text.ends_with(SMALL_HIST), "{text}");
    let json = render(
        Format {
            json: true,
            ..format
        },
        &merged,
    );
    let pods: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(pods[0]["key"], "pod");
    assert_eq!(pods[0]["cgroup"], "/system.slice/sshd.service");
    assert_eq!(
        (&pods[1]["namespace"], &pods[1]["pod"]),
        (&Value::from("shop"), &Value::from("web-0"))
    );
    assert_eq!(pods[1]["count"], 9);
}
