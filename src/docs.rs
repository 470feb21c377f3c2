//! Man pages and shell completions, generated from the clap definitions the tools parse with
//! (`make docs` runs the `gendocs` example; tests/packaging.rs checks the same output).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::Command;
use clap_complete::Shell;
use clap_mangen::Man;
use roff::{bold, italic, roman, Roff};

use crate::cli::{self, IntoConfig, ManPage};

/// One documented tool: its clap command, `--help` examples and man page prose.
pub struct Tool {
    pub name: &'static str,
    pub command: fn() -> Command,
    pub examples: &'static str,
    pub man: &'static ManPage,
}

/// The tool whose command line is `crate::MODULE::Options`.
macro_rules! tool {
    ($module:ident) => {{
        const MAN: &ManPage = <crate::$module::Options as IntoConfig>::MAN;
        Tool {
            name: MAN.name,
            command: cli::command::<crate::$module::Options>,
            examples: MAN.examples,
            man: MAN,
        }
    }};
}

/// Every tool that gets a man page and completions.
pub const TOOLS: &[Tool] = &[
    tool!(tcpstates),
    tool!(tcprtt),
    tool!(tcpconnlat),
    tool!(exporter),
];

/// The shells completions are generated for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// A man page's path under the output directory; `make install-files` copies it to
/// `share/man/man8/`.
pub fn man_path(tool: &str) -> String {
    format!("man8/{tool}.8")
}

/// A completion script's path under the output directory; its file name is the one each
/// shell looks up (`make install-files` copies `completions/<shell>/*` to the shell's
/// directory).
pub fn completion_path(shell: Shell, tool: &str) -> String {
    match shell {
        Shell::Zsh => format!("completions/zsh/_{tool}"),
        Shell::Fish => format!("completions/fish/{tool}.fish"),
        _ => format!("completions/{shell}/{tool}"),
    }
}

/// Writes every man page and completion script under `out`; returns the files written.
pub fn generate(out: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for tool in TOOLS {
        let mut files = vec![(man_path(tool.name), man_page(tool)?)];
        for shell in SHELLS {
            files.push((completion_path(shell, tool.name), completion(tool, shell)));
        }
        for (relative, content) in files {
            let path = out.join(relative);
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::write(&path, content)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// A completion script for `shell`.
pub fn completion(tool: &Tool, shell: Shell) -> Vec<u8> {
    let mut cmd = (tool.command)();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, tool.name, &mut script);
    script
}

/// The man page, section 8: clap's NAME, SYNOPSIS, OPTIONS and VERSION around the
/// tool's prose, EXAMPLES from its `--help`, and what every tool needs of the kernel.
pub fn man_page(tool: &Tool) -> io::Result<Vec<u8>> {
    let man = Man::new((tool.command)())
        .section("8")
        .source(format!("tcptools {}", env!("CARGO_PKG_VERSION")))
        .manual("System Administration");
    let cmd = (tool.command)();
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    description(tool, &cmd).to_writer(&mut page)?;
    man.render_options_section(&mut page)?;
    command_line().to_writer(&mut page)?;
    let json = "With --json, one object per line with these fields:";
    let names = tool.man.json_names.then_some(crate::pods::JSON_FIELDS);
    let fields = tool
        .man
        .json_fields
        .iter()
        .chain(names.into_iter().flatten());
    tagged_list("JSON FIELDS", json, fields.copied()).to_writer(&mut page)?;
    let metrics = tool.man.metrics.map(|served| served()).unwrap_or_default();
    let served = "Served at GET /metrics with these HELP lines, beside the process_* metrics \
        of the exporter's CPU, memory, file descriptors and threads. family is ipv4 or ipv6 \
        and states are named as by tcpstates; with --group-by every tcp_* family also has the \
        label cgroup or netns, or the labels namespace, pod and container that --group-by \
        namespace, pod or container names (namespace; namespace and pod; all three).";
    let metrics = metrics
        .iter()
        .map(|(name, help)| (name.as_str(), help.as_str()));
    tagged_list("METRICS", served, metrics).to_writer(&mut page)?;
    examples(tool).to_writer(&mut page)?;
    requirements(tool).to_writer(&mut page)?;
    environment(tool).to_writer(&mut page)?;
    exit_status().to_writer(&mut page)?;
    diagnostics(tool).to_writer(&mut page)?;
    differences(tool).to_writer(&mut page)?;
    see_also(tool).to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

fn description(tool: &Tool, cmd: &Command) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    let about = cmd.get_long_about().or(cmd.get_about());
    let mut paragraphs: Vec<String> = about
        .map(|text| text.to_string().split("\n\n").map(str::to_owned).collect())
        .unwrap_or_default();
    paragraphs.extend(
        tool.man
            .description
            .split('\n')
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
    );
    for (i, paragraph) in paragraphs.into_iter().enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(paragraph)]);
    }
    roff
}

/// A section of terms, each with what it means; nothing when there are none.
fn tagged_list<'a>(
    title: &str,
    intro: &str,
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Roff {
    let mut roff = Roff::new();
    let mut items = items.into_iter().peekable();
    if items.peek().is_none() {
        return roff;
    }
    roff.control("SH", [title]);
    roff.text([roman(intro)]);
    for (term, meaning) in items {
        roff.control("TP", []);
        roff.text([bold(term)]);
        roff.text([roman(meaning)]);
    }
    roff
}

/// `--help`'s EXAMPLES block (`    command   # what it does`): each command, its purpose below.
fn examples(tool: &Tool) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    for line in tool.examples.lines().skip(1) {
        let (command, what) = line.split_once('#').unwrap_or((line, ""));
        // Not .TP: it puts a description beside a command shorter than its indent.
        roff.control("PP", []);
        roff.text([bold(command.trim())]);
        roff.control("RS", ["4"]);
        roff.text([roman(what.trim())]);
        roff.control("RE", []);
    }
    roff
}

fn requirements(tool: &Tool) -> Roff {
    let mut items = vec![
        vec![
            roman("Kernel BTF at "),
            italic("/sys/kernel/btf/vmlinux"),
            roman(
                " (CONFIG_DEBUG_INFO_BTF=y): the BPF programs are compiled once and \
                relocated to the running kernel (CO-RE).",
            ),
        ],
        vec![roman(format!(
            "The kernel tracepoint {}, attached with tp_btf, which needs Linux 5.5 or \
             later; where that cannot load, with raw_tp (Linux 4.17 or later). Neither \
             kprobes nor fentry nor a mounted tracefs is needed.",
            tool.man.tracepoints
        ))],
    ];
    if tool.man.event_stream {
        items.push(vec![roman(
            "Events reach user space through a BPF ring buffer per CPU where the kernel holds \
             ring buffers in a map of maps (probed at start), else through one shared \
             ring buffer on Linux 5.8 or later, else a perf buffer; -v says which. Whichever \
             carries them, lines are printed in the order of the events' kernel times, each \
             at most 20 ms after its event. Per-socket state lives in a slot table and socket \
             storage, which the tp_btf programs need Linux 5.12 or later for; where the \
             kernel refuses them (as Linux 5.10 does), the raw_tp programs keep it in a \
             fixed table of sockets.",
        )]);
    }
    items.push(vec![roman(
        "Root, or the capabilities CAP_BPF and CAP_PERFMON (Linux 5.8 or later; before \
         that, CAP_SYS_ADMIN). Without them the tool exits 1 saying so.",
    )]);
    let mut roff = Roff::new();
    roff.control("SH", ["REQUIREMENTS"]);
    for item in items {
        roff.control("IP", ["\\(bu", "2"]);
        roff.text(item);
    }
    roff
}

fn environment(tool: &Tool) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["ENVIRONMENT"]);
    roff.control("TP", []);
    roff.text([bold(format!("{}=1", crate::attach::FORCE_RAW_TP_ENV))]);
    roff.text([roman(
        "Attach with raw_tp even where tp_btf works, as Linux 5.10 does for the tools that \
         keep per-socket state (which then lives in a fixed table).",
    )]);
    roff.control("TP", []);
    roff.text([bold(format!("{}=1", crate::nested::CATCHERS_ONLY_ENV))]);
    roff.text([roman(
        "Attach only the catcher programs, which then handle every event (a test of the \
         path that handles the events the kernel skips a main program for).",
    )]);
    if tool.man.event_stream {
        roff.control("TP", []);
        roff.text([bold(format!("{}=1", crate::stream::FORCE_PERF_ENV))]);
        roff.text([roman(
            "Use a perf buffer even where the kernel has a ring buffer.",
        )]);
        roff.control("TP", []);
        roff.text([bold(format!("{}=1", crate::stream::FORCE_SHARED_RING_ENV))]);
        roff.text([roman(
            "Use one ring buffer shared by every CPU even where the kernel takes one per CPU.",
        )]);
    }
    if tool.man.slot_table {
        roff.control("TP", []);
        roff.text([bold(format!("{}=N", crate::sk_store::SLOT_BITS_ENV))]);
        roff.text([roman(
            "Give the slot table that holds per-socket state before socket storage 2^N \
             buckets of 8 sockets (N from 1 to 20; the tests use 1 to send sockets to socket \
             storage).",
        )]);
    }
    roff
}

/// bcc's (argp's) ways with a command line, which `cli::command` gives every tool.
fn command_line() -> Roff {
    let mut roff = Roff::new();
    roff.control("PP", []);
    roff.text([roman(
        "As with bcc's tools, short flags may be grouped, an option's value may be attached \
         (-xVALUE, --name=VALUE) and may begin with -, a long name may be shortened to any \
         unambiguous prefix, and a repeated option keeps its last value.",
    )]);
    roff
}

/// What a tool reports on standard error while it runs (src/stream.rs); nothing for the
/// exporter, whose metrics say it.
fn diagnostics(tool: &Tool) -> Roff {
    let mut items = Vec::new();
    if tool.man.event_stream {
        items.extend([
            (
                "lost N events on CPU #C",
                "The perf buffer of CPU C had no room for N events (bcc's words).",
            ),
            ("lost N events", "The ring buffer had no room for N events."),
            (
                "socket table full: N sockets not tracked (their next change has no start)",
                "Without socket storage (raw_tp, Linux 5.10), the fixed table of sockets was \
                 full.",
            ),
            (
                "Error: packet too small",
                "A record shorter than the tool's (bcc's words); it is not printed.",
            ),
        ]);
    }
    if !tool.man.differences.is_empty() {
        items.push((
            "kernel skipped N events",
            "Events the kernel ran neither a tool's program nor its catcher for.",
        ));
    }
    let intro = "Reported on standard error as they happen:";
    tagged_list("DIAGNOSTICS", intro, items)
}

fn exit_status() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        (
            crate::cli::EXIT_OK,
            "Normal end, Ctrl-C (SIGINT), SIGTERM or a closed standard output.",
        ),
        (
            crate::cli::EXIT_FAILURE,
            "A runtime or BPF failure, described in one line on standard error.",
        ),
        (
            crate::cli::EXIT_USAGE,
            "A usage error: one line on standard error naming the bad argument.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(code.to_string())]);
        roff.text([roman(meaning)]);
    }
    roff
}

/// Empty for a tool bcc does not have.
fn differences(tool: &Tool) -> Roff {
    let mut roff = Roff::new();
    let differences = tool.man.all_differences();
    if differences.is_empty() {
        return roff;
    }
    roff.control("SH", ["DIFFERENCES FROM BCC"]);
    roff.text([roman(format!(
        "Output is byte-identical to bcc's libbpf-tools {}, except:",
        tool.name
    ))]);
    for item in differences {
        roff.control("IP", ["\\(bu", "2"]);
        roff.text([roman(item)]);
    }
    roff
}

fn see_also(tool: &Tool) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    let mut refs = Vec::new();
    for other in TOOLS.iter().filter(|other| other.name != tool.name) {
        refs.push(bold(other.name));
        refs.push(roman("(8), "));
    }
    refs.push(bold("bpftool"));
    refs.push(roman("(8)"));
    roff.text(refs);
    roff
}
