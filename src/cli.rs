//! Command-line conventions shared by the tools: the flags they share, bcc's parsing, exit
//! codes and one-line errors, and what `--help` and the man pages say beyond the arguments.

use std::fmt::{self, Display};
use std::process;

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{ArgAction, Args, Command, FromArgMatches};

use crate::container::ContainerFlags;
use crate::net::{PortFilter, PortList, AF_INET, AF_INET6};

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

/// A tool's clap options, validated into what the tool runs with. The derive holds only the
/// tool's own arguments and flattened shared flags; [`command`] adds the rest from `MAN`.
pub trait IntoConfig: Args {
    type Config;
    /// The tool's name, usage, examples and man page prose.
    const MAN: &'static ManPage;
    fn into_config(self) -> Result<Self::Config, UsageError>;
}

/// The tool's command line as it parses and as its man page and completions show it: its
/// clap definition, named and described from its [`ManPage`], with bcc's conventions (argp's
/// own `-h`/`-?`, unambiguous long prefixes, a repeated option keeps its last value, and an
/// option's value is the next word whatever it starts with: `-L -1` is a bad port list).
pub fn command<O: IntoConfig>() -> Command {
    let man = O::MAN;
    O::augment_args(Command::new(man.name))
        .mut_args(|arg| {
            let option = !arg.is_positional() && arg.get_action().takes_values();
            arg.allow_hyphen_values(option)
        })
        .version(env!("CARGO_PKG_VERSION"))
        .about(man.about)
        .long_about(man.long_about)
        .override_usage(man.usage)
        .after_help(man.examples)
        .disable_help_flag(true)
        .infer_long_args(true)
        .args_override_self(true)
}

/// Every tool's life: parse and validate the command line, check the privilege to trace,
/// route libbpf's log, end on SIGINT/SIGTERM, then `body`; exit 0, or 1 with one line
/// saying what failed.
pub fn main<O: IntoConfig>(body: impl FnOnce(&O::Config) -> anyhow::Result<()>) -> ! {
    let (config, common) = parse::<O>();
    run(O::MAN.name, || {
        crate::privilege::require_bpf()?;
        crate::attach::libbpf_logging(common.verbose);
        crate::signal::install()?;
        body(&config)
    })
}

/// Why a command line does not run the tool: clap stopped (help, version, or an argument it
/// refuses), or validation refused it.
pub enum Refusal {
    Clap(clap::Error),
    Usage(UsageError),
}

impl Refusal {
    fn into_usage_error(self, tool: &str) -> UsageError {
        match self {
            Refusal::Clap(err) => UsageError::new(format!("{tool}: {}", clap_message(&err))),
            Refusal::Usage(refused) => refused,
        }
    }
}

/// Parses and validates a command line (`argv[0]` first) as the tool does.
pub fn try_parse_from<O: IntoConfig, T: Into<OsString> + Clone>(
    argv: impl IntoIterator<Item = T>,
) -> Result<(O::Config, CommonFlags), Refusal> {
    let matches = command::<O>()
        .try_get_matches_from(argv)
        .map_err(Refusal::Clap)?;
    let options = O::from_arg_matches(&matches).map_err(Refusal::Clap)?;
    let common = CommonFlags::from_arg_matches(&matches).map_err(Refusal::Clap)?;
    let config = options.into_config().map_err(Refusal::Usage)?;
    Ok((config, common))
}

/// The config that `args` (the words after the tool's name) validate into, or the one line
/// refusing them.
pub fn config_of<O: IntoConfig>(args: &[&str]) -> Result<O::Config, UsageError> {
    let argv = std::iter::once(O::MAN.name).chain(args.iter().copied());
    match try_parse_from::<O, _>(argv) {
        Ok((config, _)) => Ok(config),
        Err(refusal) => Err(refusal.into_usage_error(O::MAN.name)),
    }
}

/// Parses and validates the command line: help and version exit 0, a usage error exits with
/// one line on stderr.
pub fn parse<O: IntoConfig>() -> (O::Config, CommonFlags) {
    let refused = match try_parse_from::<O, _>(std::env::args_os()) {
        Ok(parsed) => return parsed,
        Err(Refusal::Clap(err))
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            // clap writes help and version to stdout; a closed pipe is no failure here.
            let _ = err.print();
            process::exit(EXIT_OK)
        }
        Err(refusal) => refusal.into_usage_error(O::MAN.name),
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

/// `-v` and `-h`, which every tool has, the exporter too.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct CommonFlags {
    /// Verbose debug output
    ///
    /// libbpf's debug messages on standard error, and the BPF programs attached and the
    /// hook they attached with (tp_btf or raw_tp).
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Give this help list
    ///
    /// -h, -? and --help print the same help on standard output and exit 0, as bcc's
    /// --help does.
    // The short help even for --help: bcc's -h and --help are one text, and the long help
    // here is the man page's.
    #[arg(short = 'h', long = "help", short_alias = '?', action = ArgAction::HelpShort)]
    help: Option<bool>,
}

/// The flags of the three tracing tools: the family, JSON output, the container filters and
/// [`CommonFlags`].
#[derive(Args, Clone, Debug, Default)]
pub struct TraceFlags {
    #[command(flatten)]
    pub family: FamilyFlags,
    /// One JSON object per line
    ///
    /// One JSON object per line instead of columns, with the fields listed under JSON
    /// FIELDS.
    #[arg(long = "json")]
    pub json: bool,
    #[command(flatten)]
    pub container: ContainerFlags,
    #[command(flatten)]
    pub common: CommonFlags,
}

/// `-4`/`-6`, which every tool has; clap lets the later one win.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct FamilyFlags {
    /// Trace IPv4 family only
    ///
    /// Only AF_INET sockets (an IPv4-mapped address on an IPv6 socket is IPv6); of -4 and
    /// -6, the last one given wins.
    #[arg(short = '4', long = "ipv4", overrides_with = "ipv6")]
    pub ipv4: bool,
    /// Trace IPv6 family only
    ///
    /// Only AF_INET6 sockets; of -4 and -6, the last one given wins.
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
fn port_list(arg: Option<String>) -> Result<Option<PortList>, UsageError> {
    arg.map(|a| PortList::parse(&a).ok_or_else(|| UsageError::new(format!("Invalid ports: {a}"))))
        .transpose()
}

/// `-L`/`--localport` and `-D`/`--remoteport`: the port lists of tcpstates and the exporter.
#[derive(Args, Clone, Debug, Default)]
pub struct PortFlags {
    /// Comma-separated list of remote ports to trace.
    ///
    /// Only sockets whose remote port is in this comma-separated list (each 1 to 65535);
    /// with -L, both must match.
    #[arg(short = 'D', long = "remoteport")]
    #[arg(verbatim_doc_comment)]
    pub dport: Option<String>,
    /// Comma-separated list of local ports to trace.
    ///
    /// Only sockets whose local port is in this comma-separated list (each 1 to 65535);
    /// with -D, both must match.
    #[arg(short = 'L', long = "localport")]
    #[arg(verbatim_doc_comment)]
    pub lport: Option<String>,
}

impl PortFlags {
    /// bcc's `Invalid ports: ARG` for a list that is not one, the local list checked first.
    pub fn into_filter(self) -> Result<PortFilter, UsageError> {
        Ok(PortFilter {
            local: port_list(self.lport)?,
            remote: port_list(self.dport)?,
        })
    }
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

/// A term a man page lists, and what it means.
pub type Term = (String, String);

/// What a tool says of itself beyond its arguments, kept beside its clap definition: its
/// `--help` and its man page come from these and the arguments' help.
pub struct ManPage {
    pub name: &'static str,
    /// One line, the first of `--help` and the man page's NAME.
    pub about: &'static str,
    /// A longer account for the man page's DESCRIPTION, before `description`.
    pub long_about: Option<&'static str>,
    /// bcc's usage line.
    pub usage: &'static str,
    /// `--help`'s EXAMPLES block (`    command   # what it does`), also the man page's.
    pub examples: &'static str,
    /// DESCRIPTION: paragraphs separated by `\n`.
    pub description: &'static str,
    /// JSON FIELDS: each `--json` field and what it holds (empty without `--json`).
    pub json_fields: &'static [(&'static str, &'static str)],
    /// Whether JSON also names pods and containers (`pods::JSON_FIELDS`, after json_fields).
    pub json_names: bool,
    /// METRICS: each metric family served and what it holds (the exporter's).
    pub metrics: Option<fn() -> Vec<Term>>,
    /// The kernel tracepoint(s) the tool attaches to.
    pub tracepoints: &'static str,
    /// Whether events stream to user space (ring buffer or perf buffer), not only maps.
    pub event_stream: bool,
    /// Whether per-socket state goes to a slot table before socket storage (bpf/slots.bpf.h).
    pub slot_table: bool,
    /// How the tool differs from bcc's, one item each, before those it shares with the
    /// other tools ([`ManPage::all_differences`]).
    pub differences: &'static [&'static str],
}

impl ManPage {
    /// How the tool differs from bcc's: its own differences, then those of every bcc tool
    /// here (the container filters, the catchers) and of every tool that prints events.
    pub fn all_differences(&self) -> Vec<&'static str> {
        let mut all = self.differences.to_vec();
        if all.is_empty() {
            return all;
        }
        all.push(differences::CONTAINER_FILTERS);
        if self.event_stream {
            all.extend([differences::FLUSHED, differences::SAFE_COMM]);
        }
        all.push(differences::KERNEL_SKIPS);
        all
    }
}

/// What several tools do otherwise than bcc, in the same words on each one's man page.
pub mod differences {
    /// -c and --netns.
    pub const CONTAINER_FILTERS: &str =
        "Added: -c/--cgroup PATH and --netns NS filter in the kernel on the socket's own \
cgroup v2 (PATH or any cgroup below it) and network namespace (a path such as \
/run/netns/NAME or /proc/PID/ns/net, or an inode number), not on the task on the CPU, so \
they hold in softirq context and for accepted sockets.";
    /// Flushing (src/out.rs).
    pub const FLUSHED: &str =
        "Output is flushed after each batch of events, so a pipe or the journal sees it at \
once.";
    /// Process names (src/comm.rs).
    pub const SAFE_COMM: &str = "Control characters in process names are printed as ?.";
    /// The catchers (bpf/nested.bpf.h).
    pub const KERNEL_SKIPS: &str =
        "The kernel does not run a BPF program on a CPU where it is already running (a \
softirq that interrupts it): a second program on the same tracepoint runs the same code for \
those events. Events neither could run for are reported on standard error (kernel skipped N \
events). With -v the tool names its programs when they are attached.";
}
