//! Command-line conventions shared by the tools: bcc's exit codes, one-line errors, help.

use std::fmt::Display;
use std::process;

use clap::error::ErrorKind;
use clap::Parser;

use crate::net::PortList;

/// Normal end, or ended by Ctrl-C, SIGTERM or a closed stdout.
pub const EXIT_OK: i32 = 0;
/// A runtime or BPF failure.
pub const EXIT_FAILURE: i32 = 1;
/// A usage error (argp's EX_USAGE, which bcc's tools exit with).
pub const EXIT_USAGE: i32 = 64;

/// Parses the command line; help and version exit 0, any error exits 64 with one line.
pub fn parse<T: Parser>(tool: &str) -> T {
    match T::try_parse() {
        Ok(options) => options,
        Err(err) => match err.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                // clap writes help and version to stdout; a closed pipe is no failure here.
                let _ = err.print();
                process::exit(EXIT_OK)
            }
            _ => usage_error(format!("{tool}: {}", clap_message(&err))),
        },
    }
}

/// The first line of a clap error, without clap's `error: ` prefix and styling.
fn clap_message(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let message = first.strip_prefix("error: ").unwrap_or(first);
    format!("{message} (see --help)")
}

/// Prints `message` (bcc's wording, e.g. `Invalid ports: 80abc`) on stderr and exits 64.
pub fn usage_error(message: impl Display) -> ! {
    eprintln!("{message}");
    process::exit(EXIT_USAGE)
}

/// A `-L`/`-D` port list, or bcc's `Invalid ports: ARG` and exit 64.
pub fn port_list(arg: Option<String>) -> Option<PortList> {
    arg.map(|a| PortList::parse(&a).unwrap_or_else(|| usage_error(format!("Invalid ports: {a}"))))
}

/// Runs a tool's body; an error becomes one line on stderr and exit 1.
pub fn run(tool: &str, body: impl FnOnce() -> anyhow::Result<()>) -> ! {
    match body() {
        Ok(()) => process::exit(EXIT_OK),
        Err(err) => {
            eprintln!("{tool}: {err:#}");
            process::exit(EXIT_FAILURE)
        }
    }
}

/// What a tool's man page says beyond its options, kept beside its clap definition.
pub struct ManPage {
    /// DESCRIPTION: paragraphs separated by `\n`.
    pub description: &'static str,
    /// The kernel tracepoint(s) the tool attaches to.
    pub tracepoints: &'static str,
    /// Whether events stream to user space (ring buffer or perf buffer), not only maps.
    pub event_stream: bool,
    /// How the tool differs from bcc's, one item each.
    pub differences: &'static [&'static str],
}
