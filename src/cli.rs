//! Command-line conventions shared by the tools: bcc's exit codes, one-line errors, help.

use std::fmt::{self, Display};
use std::process;

use clap::error::ErrorKind;
use clap::{Args, Parser};

use crate::net::{PortList, AF_INET, AF_INET6};

/// Normal end, or ended by Ctrl-C, SIGTERM or a closed stdout.
pub const EXIT_OK: i32 = 0;
/// A runtime or BPF failure.
pub const EXIT_FAILURE: i32 = 1;
/// A usage error (argp's EX_USAGE, which bcc's tools exit with).
pub const EXIT_USAGE: i32 = 64;

/// A refused command line: one line in bcc's wording (e.g. `Invalid ports: 80abc`) and the
/// exit status bcc gives it, 64 (argp's EX_USAGE) unless bcc exits 1 for that case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    pub exit_code: i32,
}

impl UsageError {
    /// A usage error: exit 64.
    pub fn new(message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
            exit_code: EXIT_USAGE,
        }
    }

    /// Arguments that parse but that bcc refuses at run time: exit 1.
    pub fn runtime(message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
            exit_code: EXIT_FAILURE,
        }
    }
}

impl Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A tool's clap options, validated into what the tool runs with.
pub trait IntoConfig: Parser {
    type Config;
    fn into_config(self) -> Result<Self::Config, UsageError>;
    /// `-v`: libbpf's log on stderr, and which hook attached.
    fn verbose(config: &Self::Config) -> bool;
}

/// Every tool's life: parse and validate the command line, check the privilege to trace,
/// route libbpf's log, end on SIGINT/SIGTERM, then `body`; exit 0, or 1 with one line
/// saying what failed.
pub fn main<O: IntoConfig>(tool: &str, body: impl FnOnce(&O::Config) -> anyhow::Result<()>) -> ! {
    let config = parse::<O>(tool);
    run(tool, || {
        crate::privilege::require_bpf()?;
        crate::attach::libbpf_logging(O::verbose(&config));
        crate::signal::install()?;
        body(&config)
    })
}

/// Parses and validates the command line: help and version exit 0, a usage error exits with
/// one line on stderr.
pub fn parse<O: IntoConfig>(tool: &str) -> O::Config {
    let refused = match O::try_parse() {
        Ok(options) => match options.into_config() {
            Ok(config) => return config,
            Err(err) => err,
        },
        Err(err) => match err.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                // clap writes help and version to stdout; a closed pipe is no failure here.
                let _ = err.print();
                process::exit(EXIT_OK)
            }
            _ => UsageError::new(format!("{tool}: {}", clap_message(&err))),
        },
    };
    eprintln!("{refused}");
    process::exit(refused.exit_code)
}

/// The first line of a clap error, without clap's `error: ` prefix and styling.
fn clap_message(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let message = first.strip_prefix("error: ").unwrap_or(first);
    format!("{message} (see --help)")
}

/// `-4`/`-6`, which every tool has; clap lets the later one win.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct FamilyFlags {
    /// Trace IPv4 family only
    #[arg(short = '4', long = "ipv4", overrides_with = "ipv6")]
    pub ipv4: bool,
    /// Trace IPv6 family only
    #[arg(short = '6', long = "ipv6", overrides_with = "ipv4")]
    pub ipv6: bool,
}

impl FamilyFlags {
    /// The family the BPF side keeps, or 0 for both.
    pub fn family(self) -> u16 {
        if self.ipv4 {
            AF_INET
        } else if self.ipv6 {
            AF_INET6
        } else {
            0
        }
    }
}

/// A `-L`/`-D` port list; bcc's `Invalid ports: ARG` when it is not one.
pub fn port_list(arg: Option<String>) -> Result<Option<PortList>, UsageError> {
    arg.map(|a| PortList::parse(&a).ok_or_else(|| UsageError::new(format!("Invalid ports: {a}"))))
        .transpose()
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
    /// Whether per-socket state goes to a slot table before socket storage (bpf/slots.bpf.h).
    pub slot_table: bool,
    /// How the tool differs from bcc's, one item each.
    pub differences: &'static [&'static str],
}
