//! The man pages are where the options, the JSON fields and the exporter's metrics are
//! documented: each page, rendered by the code `make docs` runs, names every argument clap
//! defines with its help, every field the tool's `--json` prints and every metric family the
//! exporter serves. No BPF, no root.

use std::collections::BTreeSet;

use chrono::{Local, TimeZone};
use clap::Arg;
use serde_json::Value;

use tcptools::comm::Comm;
use tcptools::container::{CgroupPaths, SocketContainer};
use tcptools::docs::{self, Tool};
use tcptools::exporter::collect::{MapFill, ProgramStats};
use tcptools::exporter::http::Serving;
use tcptools::exporter::{render, Counts, Own, Series};
use tcptools::net::{Endpoints, AF_INET};
use tcptools::runtime::Status;
use tcptools::tcpstates::event::Owner;
use tcptools::time::WallClock;
use tcptools::{tcpconnlat, tcprtt, tcpstates};

/// The page as text: roff's escapes undone, one space between words (roff fills lines).
fn page_text(tool: &Tool) -> String {
    let roff = String::from_utf8(docs::man_page(tool).expect("render")).expect("UTF-8");
    let plain = roff
        .replace("\\-", "-")
        .replace("\\(aq", "'")
        .replace("\\*(Aq", "'")
        .replace("\\(bu", "*")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\\\", "\\");
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text of section `title` of `page`, up to the next section.
fn section<'a>(page: &'a str, title: &str) -> &'a str {
    let start = page
        .find(&format!(".SH {title} "))
        .unwrap_or_else(|| panic!("no section {title}"));
    let rest = &page[start + 4 + title.len()..];
    &rest[..rest.find(".SH ").unwrap_or(rest.len())]
}

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn arguments(tool: &Tool) -> Vec<Arg> {
    let mut cmd = (tool.command)();
    cmd.build();
    cmd.get_arguments().cloned().collect()
}

#[test]
fn every_argument_is_in_its_page_with_its_help() {
    for tool in docs::TOOLS {
        let page = page_text(tool);
        let options = section(&page, "OPTIONS");
        let name = tool.name;
        for arg in arguments(tool) {
            let id = arg.get_id().to_string();
            let mut names: Vec<String> = Vec::new();
            names.extend(arg.get_long().map(|long| format!("--{long}")));
            names.extend(arg.get_short().map(|short| format!("-{short}")));
            names.extend(
                arg.get_short_and_visible_aliases()
                    .into_iter()
                    .flatten()
                    .map(|c| format!("-{c}")),
            );
            names.extend(
                arg.get_long_and_visible_aliases()
                    .into_iter()
                    .flatten()
                    .map(|l| format!("--{l}")),
            );
            if arg.get_action().takes_values() {
                let values = arg.get_value_names().into_iter().flatten();
                names.extend(values.map(|v| v.to_string()));
            }
            assert!(!names.is_empty(), "{name}: {id} has no name");
            for shown in names {
                assert!(
                    options.contains(&shown),
                    "{name}: {shown} ({id}) not under OPTIONS"
                );
            }
            let help = arg.get_long_help().or(arg.get_help());
            let help = words(&help.expect("every argument has help").to_string());
            assert!(
                options.contains(&help),
                "{name}: the help of {id} not under OPTIONS: {help}"
            );
        }
    }
}

/// bcc's hidden `-?` is an alias clap does not show; the page says it.
#[test]
fn help_aliases_are_in_every_page() {
    for tool in docs::TOOLS {
        let page = page_text(tool);
        assert!(page.contains("-h, -? and --help"), "{}", tool.name);
    }
}

#[test]
fn every_json_field_is_in_its_page() {
    for tool in docs::TOOLS {
        let page = page_text(tool);
        let name = tool.name;
        let has_json = arguments(tool)
            .iter()
            .any(|arg| arg.get_long() == Some("json"));
        assert_eq!(
            has_json,
            !tool.man.json_fields.is_empty(),
            "{name}: JSON FIELDS"
        );
        if !has_json {
            assert!(!page.contains(".SH \"JSON FIELDS\""), "{name}");
            continue;
        }
        let fields = section(&page, "\"JSON FIELDS\"");
        for (field, meaning) in tool.man.json_fields {
            assert!(
                fields.contains(&format!(".TP {field} {}", words(meaning))),
                "{name}: {field}"
            );
        }
    }
}

/// The keys of JSON lines, all together.
fn keys(lines: &[u8]) -> BTreeSet<String> {
    let text = String::from_utf8(lines.to_vec()).expect("UTF-8");
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        let object: Value = serde_json::from_str(line).expect("one JSON object per line");
        keys.extend(object.as_object().expect("an object").keys().cloned());
    }
    keys
}

fn documented(fields: &[(&str, &str)]) -> BTreeSet<String> {
    fields.iter().map(|(field, _)| field.to_string()).collect()
}

fn socket() -> Endpoints {
    Endpoints {
        family: AF_INET,
        lport: 80,
        rport: 5000,
        ..Endpoints::default()
    }
}

/// Every field a tcpstates JSON line can hold (with -t and a known owner) is documented,
/// and every documented field is printed.
#[test]
fn tcpstates_json_fields_are_the_printed_ones() {
    let format = tcpstates::Format {
        json: true,
        seconds: true,
        ..Default::default()
    };
    let mut printer = tcpstates::Printer::new(format, CgroupPaths::fixed([(1, "/".into())]));
    let change = tcpstates::StateChange {
        skaddr: 0xffff,
        pid: 7,
        comm: Comm::from_kernel(b"curl"),
        endpoints: socket(),
        container: SocketContainer::default(),
        owner: Some(Owner {
            pid: 7,
            comm: Comm::from_kernel(b"curl"),
        }),
        oldstate: 2,
        newstate: 1,
        delta_ns: 1000,
        delta_known: true,
        ts_us: 1,
    };
    let mut clock = WallClock::fixed(Local.timestamp_opt(0, 0).unwrap());
    let mut out = Vec::new();
    printer.line(&change, &mut clock, &mut out).expect("print");
    assert_eq!(keys(&out), documented(tcpstates::options::MAN.json_fields));
}

#[test]
fn tcpconnlat_json_fields_are_the_printed_ones() {
    let format = tcpconnlat::Format {
        json: true,
        seconds: true,
        ..Default::default()
    };
    let mut printer = tcpconnlat::Printer::new(format, CgroupPaths::fixed([]));
    let connect = tcpconnlat::ConnectLatency {
        pid: 7,
        comm: Comm::from_kernel(b"curl"),
        endpoints: socket(),
        container: SocketContainer::default(),
        delta_us: 120,
        ts_us: 1,
    };
    let mut out = Vec::new();
    let at = Local.timestamp_opt(0, 0).unwrap();
    printer.line(&connect, at, &mut out).expect("print");
    assert_eq!(keys(&out), documented(tcpconnlat::options::MAN.json_fields));
}

/// tcprtt's fields depend on the key: all of them over -b, --bycgroup, --bypod and -e.
#[test]
fn tcprtt_json_fields_are_the_printed_ones() {
    let hist = tcprtt::RttHist {
        family: AF_INET,
        addr: [0; 16],
        cgroup_id: 1,
        cgroup: "/".into(),
        pod: None,
        sum: 10,
        count: 1,
        slots: [1; tcprtt::MAX_SLOTS],
    };
    let mut out = Vec::new();
    for key in [tcprtt::KeyKind::Local, tcprtt::KeyKind::Cgroup] {
        let format = tcprtt::Format {
            key,
            extension: true,
            json: true,
            ..Default::default()
        };
        let at = Local.timestamp_opt(0, 0).unwrap();
        tcprtt::write_interval(&mut out, &format, at, std::slice::from_ref(&hist)).expect("print");
    }
    let in_pod = tcprtt::RttHist {
        pod: Some(("shop".into(), "web-0".into())),
        ..hist
    };
    let bypod = tcprtt::Format {
        key: tcprtt::KeyKind::Cgroup,
        bypod: true,
        json: true,
        ..Default::default()
    };
    let at = Local.timestamp_opt(0, 0).unwrap();
    tcprtt::write_interval(&mut out, &bypod, at, &[in_pod]).expect("print");
    assert_eq!(keys(&out), documented(tcprtt::options::MAN.json_fields));
}

/// The exporter's METRICS lists each family it serves (all but the process_* ones, which
/// the page names as such).
#[test]
fn every_metric_family_is_in_the_exporter_page() {
    let tool = docs::TOOLS
        .iter()
        .find(|tool| tool.name == "tcptools-exporter")
        .expect("the exporter is documented");
    let page = page_text(tool);
    let metrics = section(&page, "METRICS");
    // Something counted everywhere, so that every family has series.
    let mut counts = Counts::default();
    counts.counters.fill(1);
    counts.hists.iter_mut().for_each(|hist| hist.slots[0] = 1);
    let own = Own {
        programs: vec![("set_state".into(), ProgramStats::default())],
        stats_enabled: true,
        maps: vec![MapFill {
            name: "slots",
            entries: 1,
            capacity: 2,
        }],
        map_memory: vec![("slots".into(), 1)],
        groups: Some((1, 1)),
        runtime: Some(Status::default()),
        // What a server's scrape has: the HTTP side's figures.
        serving: Some(Serving {
            responses: vec![(200, 1)],
            ..Serving::default()
        }),
        ..Own::default()
    };
    let series = [Series::new(Vec::new(), &counts)];
    let exposition = render(&series, &own);
    let served: BTreeSet<&str> = exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# HELP "))
        .filter_map(|line| line.split(' ').next())
        .filter(|family| !family.starts_with("process_"))
        .collect();
    assert_eq!(served.len(), 27, "{exposition}");
    for family in served {
        assert!(
            metrics.contains(&format!(".TP {family} (")),
            "METRICS lacks {family}"
        );
    }
    assert!(
        page.contains("process_"),
        "the page names the process_* metrics"
    );
}
