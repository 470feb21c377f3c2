//! Packaging: `make install-files` and `make uninstall` into a temporary DESTDIR, the
//! generated man pages and completions, and the Makefile's ldd check.
//!
//! Nothing here runs cargo: the docs are generated in-process by the generator's own code
//! (tcptools::docs), and `make install-files` only copies, so no nested build waits for the
//! build directory lock that `cargo test` holds.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use clap_complete::Shell;
use tcptools::docs;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const TIMEOUT: Duration = Duration::from_secs(60);

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("tcptools-packaging-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs a command to its end, killed after TIMEOUT.
fn run(program: &str, args: &[&str]) -> Ran {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} ran over {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ran {
        ok: status.success(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn make(args: &[&str]) -> Ran {
    let mut all = vec!["-C", ROOT, "--no-print-directory"];
    all.extend_from_slice(args);
    run("make", &all)
}

/// The `[[bin]]` names in Cargo.toml, which the Makefile installs.
fn cargo_bins() -> BTreeSet<String> {
    let manifest = fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).expect("Cargo.toml");
    let mut bins = BTreeSet::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if let Some(value) = line.strip_prefix("name") {
            if in_bin {
                let name = value.trim_start().trim_start_matches('=').trim();
                bins.insert(name.trim_matches('"').to_owned());
            }
        }
    }
    bins
}

/// Where cargo put the binaries this test was built with.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_tcpstates"))
        .parent()
        .expect("binary directory")
        .to_owned()
}

/// Every regular file under `dir`, relative to it.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("under dir");
                found.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// The files `make install` puts under PREFIX (relative, without the leading slash).
fn expected_install(prefix: &str) -> BTreeSet<String> {
    let prefix = prefix.trim_start_matches('/');
    let mut expected = BTreeSet::new();
    for tool in cargo_bins() {
        expected.insert(format!("{prefix}/sbin/{tool}"));
        expected.insert(format!("{prefix}/share/man/man8/{tool}.8"));
        expected.insert(format!("{prefix}/share/bash-completion/completions/{tool}"));
        expected.insert(format!("{prefix}/share/zsh/site-functions/_{tool}"));
        expected.insert(format!(
            "{prefix}/share/fish/vendor_completions.d/{tool}.fish"
        ));
    }
    expected
}

/// The roff source with the escapes clap_mangen and roff write undone, for searching.
fn plain_roff(page: &[u8]) -> String {
    String::from_utf8_lossy(page)
        .replace("\\-", "-")
        .replace("\\(aq", "'")
        .replace("\\*(Aq", "'")
        .replace("\\(bu", "*")
        .replace("\\\\", "\\")
}

/// Every argument's long and short names, `--version` included (clap adds it at build).
fn flags(tool: &docs::Tool) -> Vec<(Option<String>, Option<char>)> {
    let mut cmd = (tool.command)();
    cmd.build();
    cmd.get_arguments()
        .filter(|arg| !arg.is_positional())
        .map(|arg| (arg.get_long().map(str::to_owned), arg.get_short()))
        .collect()
}

#[test]
fn every_installed_binary_has_docs() {
    let documented: BTreeSet<String> = docs::TOOLS.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(
        documented,
        cargo_bins(),
        "src/docs.rs TOOLS must list every [[bin]] of Cargo.toml (with its options in the library)"
    );
    for tool in docs::TOOLS {
        assert_eq!((tool.command)().get_name(), tool.name);
    }
}

#[test]
fn install_then_uninstall_into_destdir() {
    let tmp = TempDir::new("install");
    let docs_dir = tmp.0.join("docs");
    docs::generate(&docs_dir).expect("generate docs");
    let root = tmp.0.join("root");
    let destdir = format!("DESTDIR={}", root.display());
    let docs_var = format!("DOCS={}", docs_dir.display());
    let bins_var = format!("BINDIR={}", bin_dir().display());

    let done = make(&[
        "install-files",
        &destdir,
        "PREFIX=/usr",
        &docs_var,
        &bins_var,
    ]);
    assert!(done.ok, "make install-files failed: {}", done.stderr);
    assert_eq!(files_under(&root), expected_install("/usr"));

    for tool in cargo_bins() {
        let installed = root.join("usr/sbin").join(&tool);
        let mode = fs::metadata(&installed)
            .expect("binary")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{tool}");
        assert_eq!(
            fs::read(&installed).expect("installed binary"),
            fs::read(bin_dir().join(&tool)).expect("built binary"),
            "{tool}"
        );
        let page = root.join(format!("usr/share/man/man8/{tool}.8"));
        let mode = fs::metadata(&page).expect("man page").permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "{tool}.8");
        assert_eq!(
            fs::read(&page).expect("installed page"),
            fs::read(docs_dir.join(format!("man8/{tool}.8"))).expect("generated page")
        );
    }

    let done = make(&["uninstall", &destdir, "PREFIX=/usr"]);
    assert!(done.ok, "make uninstall failed: {}", done.stderr);
    assert_eq!(files_under(&root), BTreeSet::new(), "left behind");
}

#[test]
fn uninstall_removes_only_what_install_put() {
    let tmp = TempDir::new("keep");
    let docs_dir = tmp.0.join("docs");
    docs::generate(&docs_dir).expect("generate docs");
    let root = tmp.0.join("root");
    // Another package's files in the same directories survive.
    let neighbours = [
        "usr/local/sbin/ss",
        "usr/local/share/man/man8/ss.8",
        "usr/local/share/bash-completion/completions/ss",
        "usr/local/share/zsh/site-functions/_ss",
        "usr/local/share/fish/vendor_completions.d/ss.fish",
    ];
    for file in neighbours {
        let path = root.join(file);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, "other package").expect("write");
    }
    let destdir = format!("DESTDIR={}", root.display());
    let docs_var = format!("DOCS={}", docs_dir.display());
    let bins_var = format!("BINDIR={}", bin_dir().display());

    // No PREFIX: the default is /usr/local.
    let done = make(&["install-files", &destdir, &docs_var, &bins_var]);
    assert!(done.ok, "make install-files failed: {}", done.stderr);
    let mut expected = expected_install("/usr/local");
    expected.extend(neighbours.iter().map(|f| f.to_string()));
    assert_eq!(files_under(&root), expected);

    let done = make(&["uninstall", &destdir]);
    assert!(done.ok, "make uninstall failed: {}", done.stderr);
    let kept: BTreeSet<String> = neighbours.iter().map(|f| f.to_string()).collect();
    assert_eq!(files_under(&root), kept);
}

#[test]
fn install_fails_when_a_file_is_missing() {
    let tmp = TempDir::new("missing");
    let docs_dir = tmp.0.join("docs");
    docs::generate(&docs_dir).expect("generate docs");
    fs::remove_file(docs_dir.join("completions/zsh/_tcprtt")).expect("remove");
    let root = tmp.0.join("root");
    let done = make(&[
        "install-files",
        &format!("DESTDIR={}", root.display()),
        &format!("DOCS={}", docs_dir.display()),
        &format!("BINDIR={}", bin_dir().display()),
    ]);
    assert!(!done.ok, "install-files succeeded without _tcprtt");
    assert!(done.stderr.contains("_tcprtt"), "{}", done.stderr);
}

#[test]
fn man_pages_have_every_section_option_and_example() {
    for tool in docs::TOOLS {
        let page = plain_roff(&docs::man_page(tool).expect("render"));
        let name = tool.name;
        assert!(
            page.starts_with(".ie \\n(.g .ds Aq"),
            "{name}: roff preamble"
        );
        assert!(page.contains(&format!(".TH {name} 8 ")), "{name}: .TH");
        let mut sections = vec![
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "EXAMPLES",
            "REQUIREMENTS",
            "ENVIRONMENT",
            "\"EXIT STATUS\"",
            "\"SEE ALSO\"",
            "VERSION",
        ];
        if !tool.man.differences.is_empty() {
            sections.push("\"DIFFERENCES FROM BCC\"");
        }
        for section in sections {
            assert!(
                page.contains(&format!("\n.SH {section}\n")),
                "{name}: no {section}"
            );
        }
        for (long, short) in flags(tool) {
            if let Some(long) = long {
                assert!(page.contains(&format!("--{long}")), "{name}: --{long}");
            }
            if let Some(short) = short {
                assert!(page.contains(&format!("-{short}")), "{name}: -{short}");
            }
        }
        for line in tool.examples.lines().skip(1) {
            let (command, what) = line.split_once('#').expect("# in every example");
            assert!(page.contains(command.trim()), "{name}: {line}");
            assert!(page.contains(what.trim()), "{name}: {line}");
        }
        for needed in [
            "/sys/kernel/btf/vmlinux",
            "tp_btf",
            "Linux 5.5",
            "raw_tp (Linux 4.17",
            "CAP_BPF and CAP_PERFMON",
            tool.man.tracepoints,
        ] {
            assert!(page.contains(needed), "{name}: {needed}");
        }
        assert_eq!(
            page.contains("ring buffer on Linux 5.8 or later, else"),
            tool.man.event_stream,
            "{name}: ring buffer"
        );
        for difference in tool.man.differences {
            assert!(page.contains(difference), "{name}: {difference}");
        }
        for paragraph in tool.man.description.split('\n') {
            assert!(page.contains(paragraph), "{name}: {paragraph}");
        }
        assert!(page.contains(env!("CARGO_PKG_VERSION")), "{name}: version");
    }
}

#[test]
fn man_pages_render_without_warnings() {
    if run("sh", &["-c", "command -v groff"]).stdout.is_empty() {
        eprintln!("skipped: groff is not installed");
        return;
    }
    let tmp = TempDir::new("groff");
    for tool in docs::TOOLS {
        let path = tmp.0.join(format!("{}.8", tool.name));
        fs::write(&path, docs::man_page(tool).expect("render")).expect("write");
        let path = path.to_string_lossy();
        let lint = run("groff", &["-man", "-Tutf8", "-ww", "-z", &path]);
        assert!(lint.ok && lint.stderr.is_empty(), "{path}: {}", lint.stderr);
        let text = run("groff", &["-man", "-Tascii", "-P-cbou", &path]);
        assert!(text.ok, "{path}: {}", text.stderr);
        assert_eq!(
            text.stdout.contains("DIFFERENCES FROM BCC"),
            !tool.man.differences.is_empty(),
            "{path}"
        );
        assert!(text.stdout.contains("REQUIREMENTS"), "{path}");
    }
}

#[test]
fn completions_offer_every_option() {
    for tool in docs::TOOLS {
        let name = tool.name;
        let bash = String::from_utf8(docs::completion(tool, Shell::Bash)).expect("utf8");
        let zsh = String::from_utf8(docs::completion(tool, Shell::Zsh)).expect("utf8");
        let fish = String::from_utf8(docs::completion(tool, Shell::Fish)).expect("utf8");
        assert!(
            zsh.starts_with(&format!("#compdef {name}\n")),
            "{name}: zsh"
        );
        assert!(
            bash.contains(&format!(" {name}\n")),
            "{name}: bash complete"
        );
        for (long, short) in flags(tool) {
            if let Some(long) = long {
                assert!(bash.contains(&format!("--{long}")), "{name} bash: --{long}");
                // An option that excludes others is preceded by their list: `(-b ...)--x[`;
                // one that may be repeated by a star: `'*--x=[`.
                assert!(
                    ["'", ")", "'*", ")*"].iter().any(|before| {
                        zsh.contains(&format!("{before}--{long}["))
                            || zsh.contains(&format!("{before}--{long}=["))
                    }),
                    "{name} zsh: --{long}"
                );
                assert!(
                    fish.contains(&format!(" -l {long}")),
                    "{name} fish: --{long}"
                );
            }
            if let Some(short) = short {
                assert!(bash.contains(&format!("-{short}")), "{name} bash: -{short}");
                assert!(
                    ["'", "'*"].iter().any(|before| {
                        zsh.contains(&format!("{before}-{short}["))
                            || zsh.contains(&format!("{before}-{short}+["))
                    }),
                    "{name} zsh: -{short}"
                );
                assert!(
                    fish.contains(&format!("complete -c {name} -s {short} ")),
                    "{name} fish: -{short}"
                );
            }
        }
    }
}

/// Loads the bash completion into bash and asks it to complete `NAME --`.
#[test]
fn bash_completes_long_options() {
    let tmp = TempDir::new("bash");
    for tool in docs::TOOLS {
        let name = tool.name;
        let script = tmp.0.join(name);
        fs::write(&script, docs::completion(tool, Shell::Bash)).expect("write");
        let program = format!(
            r#"set -e
source '{script}'
func=$(complete -p {name} | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
COMP_WORDS=({name} --); COMP_CWORD=1; COMP_LINE='{name} --'; COMP_POINT=${{#COMP_LINE}}
"$func" {name} -- {name}
printf '%s\n' "${{COMPREPLY[@]}}""#,
            script = script.display()
        );
        let done = run("bash", &["--norc", "--noprofile", "-c", &program]);
        assert!(done.ok, "{name}: {}", done.stderr);
        let offered: BTreeSet<&str> = done.stdout.lines().collect();
        for (long, _) in flags(tool) {
            if let Some(long) = long {
                let flag = format!("--{long}");
                assert!(
                    offered.contains(flag.as_str()),
                    "{name}: {flag} in {offered:?}"
                );
            }
        }
    }
}

#[test]
fn shells_accept_the_completion_syntax() {
    let tmp = TempDir::new("syntax");
    docs::generate(&tmp.0).expect("generate docs");
    for (shell, check) in [
        ("bash", vec!["-n"]),
        ("zsh", vec!["-n"]),
        ("fish", vec!["--no-execute"]),
    ] {
        if run("sh", &["-c", &format!("command -v {shell}")])
            .stdout
            .is_empty()
        {
            eprintln!("skipped {shell}: not installed");
            continue;
        }
        let parsed = match shell {
            "bash" => Shell::Bash,
            "zsh" => Shell::Zsh,
            _ => Shell::Fish,
        };
        for tool in docs::TOOLS {
            let path = tmp.0.join(docs::completion_path(parsed, tool.name));
            let path = path.to_string_lossy().into_owned();
            let mut args = check.clone();
            args.push(&path);
            let done = run(shell, &args);
            assert!(done.ok, "{shell} {path}: {}", done.stderr);
        }
    }
}

#[test]
fn generator_writes_the_layout_make_install_copies() {
    let tmp = TempDir::new("layout");
    let written = docs::generate(&tmp.0).expect("generate docs");
    let mut expected = BTreeSet::new();
    for tool in docs::TOOLS {
        expected.insert(format!("man8/{}.8", tool.name));
        expected.insert(format!("completions/bash/{}", tool.name));
        expected.insert(format!("completions/zsh/_{}", tool.name));
        expected.insert(format!("completions/fish/{}.fish", tool.name));
    }
    assert_eq!(files_under(&tmp.0), expected);
    assert_eq!(written.len(), expected.len());

    // The example binary (`make docs`) runs the same code; cargo test builds it, a
    // `cargo test --test packaging` alone does not.
    let example = bin_dir().join("examples/gendocs");
    if !example.exists() {
        eprintln!("skipped the gendocs example: not built");
        return;
    }
    let out = tmp.0.join("example");
    let done = run(&example.to_string_lossy(), &[&out.to_string_lossy()]);
    assert!(done.ok, "gendocs: {}", done.stderr);
    assert_eq!(files_under(&out), expected);
    let usage = run(&example.to_string_lossy(), &[]);
    assert!(!usage.ok && usage.stderr.contains("usage: gendocs OUTDIR"));
}

/// The check `make static-check` runs must reject a binary that needs libelf: the default
/// (dynamic) build does.
#[cfg(not(feature = "static"))]
#[test]
fn ldd_check_rejects_the_dynamic_build() {
    let done = make(&["ldd-check", &format!("LDD_DIR={}", bin_dir().display())]);
    assert!(
        !done.ok,
        "ldd-check passed a dynamic build: {}",
        done.stdout
    );
    assert!(done.stderr.contains("libelf"), "{}", done.stderr);
}

/// The arm64 check reads NEEDED entries (readelf) rather than running ldd, and must still
/// reject a binary that needs libelf: the dynamic build's entries, read the same way.
#[cfg(not(feature = "static"))]
#[test]
fn arm64_ldd_check_rejects_the_dynamic_build() {
    let done = make(&[
        "ldd-check",
        "ARCH=arm64",
        &format!("LDD_DIR={}", bin_dir().display()),
    ]);
    assert!(!done.ok, "passed a dynamic build: {}", done.stdout);
    assert!(done.stderr.contains("libelf.so.1"), "{}", done.stderr);
}

/// The arm64 cross build (`make release ARCH=arm64`, which `make test` runs before cargo
/// test): its binaries need only the libc family, by their NEEDED entries.
#[test]
fn ldd_check_passes_the_arm64_build() {
    let dir = Path::new(ROOT).join("target/static-arm64/release");
    assert!(
        cargo_bins().iter().all(|tool| dir.join(tool).exists()),
        "no arm64 build: run `make release ARCH=arm64` (make test runs it first)"
    );
    let done = make(&[
        "ldd-check",
        "ARCH=arm64",
        &format!("LDD_DIR={}", dir.display()),
    ]);
    assert!(done.ok, "{}", done.stderr);
    for tool in cargo_bins() {
        let line = done
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("ldd-check: {tool} needs only ")))
            .unwrap_or_else(|| panic!("{tool}: {}", done.stdout));
        let libs: BTreeSet<&str> = line.split(' ').collect();
        assert!(libs.contains("libc.so.6"), "{tool}: {line}");
        assert!(libs.contains("ld-linux-aarch64.so.1"), "{tool}: {line}");
    }
}

/// The static release build (`make release`, run by `make test` after cargo test), when
/// it has been built: only the libc family.
#[test]
fn ldd_check_passes_the_static_build() {
    let dir = Path::new(ROOT).join("target/static/release");
    if !cargo_bins().iter().all(|tool| dir.join(tool).exists()) {
        eprintln!("skipped: no static build yet (make release; make test runs static-check)");
        return;
    }
    let done = make(&["ldd-check", &format!("LDD_DIR={}", dir.display())]);
    assert!(done.ok, "{}", done.stderr);
    for tool in cargo_bins() {
        assert!(done
            .stdout
            .contains(&format!("ldd-check: {tool} needs only")));
        let ldd = run("ldd", &[&dir.join(&tool).to_string_lossy()]);
        for lib in ["libelf", "libz.", "libzstd", "libbpf"] {
            assert!(
                !ldd.stdout.contains(lib),
                "{tool} needs {lib}: {}",
                ldd.stdout
            );
        }
    }
}
