//! Test support for the live BPF tests: private network namespaces with real loopback
//! traffic, and tools run as child processes. Live tests need root; without it they fail.
#![allow(dead_code)]

pub mod cri;
pub mod elf;
pub mod host;
pub mod web;

#[allow(unused_imports)]
pub use host::{
    cgroup2_mount, cgroup_of_pid, mounts_of_type, remove_cgroup_tree, run_in_netns, sh,
};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A network namespace of this test's own, with loopback up; removed on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `tcpt-TAG-PID`. Fails the test (never skips) when it cannot.
    pub fn new(tag: &str) -> Netns {
        assert!(
            nix::unistd::geteuid().is_root(),
            "live BPF tests need root (run `sudo make test`)"
        );
        let name = format!("tcpt-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        sh("ip", &["-n", &ns.name, "link", "set", "lo", "up"]);
        // Tracepoints see every namespace: keep this one's ephemeral ports (the clients'
        // local ports) away from the fixed ports tests filter on, all below 50000.
        ns.exec(
            "sysctl",
            &["-qw", "net.ipv4.ip_local_port_range=50000 60999"],
        );
        ns
    }

    /// Runs `f` on a thread named `comm` that has entered this namespace; its sockets live
    /// there, and the kernel sees this process's pid with `comm` as the task name.
    pub fn run<T: Send + 'static>(&self, comm: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        run_in_netns(&format!("/run/netns/{}", self.name), comm, f)
    }

    /// `tc`/`nft`/`ip` inside the namespace.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        sh("ip", &all);
    }

    pub fn exec(&self, program: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        sh("ip", &all);
    }

    /// Shapes loopback with tbf so a round trip takes about 8 ms.
    pub fn slow_loopback(&self) {
        self.exec(
            "tc",
            &[
                "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "2mbit", "burst", "3000",
                "latency", "200ms",
            ],
        );
    }

    /// Drops every other SYN to `port`, so each connect there takes about 1 s.
    pub fn drop_every_other_syn(&self, port: u16) {
        let rule = format!(
            "add table inet tcpt; add chain inet tcpt input {{ type filter hook input priority 0; }}; \
             add rule inet tcpt input tcp dport {port} tcp flags & (syn|ack) == syn numgen inc mod 2 == 0 drop"
        );
        self.exec("nft", &[&rule]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// One complete connection on loopback: listen, connect, accept, client closes first,
/// server reads EOF and closes, listener closes. `rounds` request/response exchanges.
pub fn connection(listen: SocketAddr, rounds: usize) -> SocketAddr {
    let listener = TcpListener::bind(listen).expect("bind listener");
    let (client_addr, accepted) = connection_on(&listener, rounds);
    // Give the client's FIN_WAIT2 -> CLOSE (it follows the server's FIN) time to happen.
    drop(accepted);
    thread::sleep(Duration::from_millis(50));
    drop(listener);
    client_addr
}

/// A connection to `listener`: connect, accept, `rounds` one-byte exchanges, the client
/// closes first and the server reads EOF (every read bounded by 10 s). The client's
/// address, and the server's socket, still open.
pub fn connection_on(listener: &TcpListener, rounds: usize) -> (SocketAddr, TcpStream) {
    use std::io::Write;
    let listen = listener.local_addr().expect("listener address");
    let mut client = TcpStream::connect(listen).expect("connect");
    let client_addr = client.local_addr().expect("client address");
    let (mut accepted, _) = listener.accept().expect("accept");
    for s in [&client, &accepted] {
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
    }
    let mut byte = [0u8; 1];
    for _ in 0..rounds {
        client.write_all(b"x").expect("client write");
        accepted.read_exact(&mut byte).expect("server read");
        accepted.write_all(b"y").expect("server write");
        client.read_exact(&mut byte).expect("client read");
    }
    drop(client);
    let mut rest = Vec::new();
    accepted.read_to_end(&mut rest).expect("server reads EOF");
    (client_addr, accepted)
}

/// A tool running as a child process, its stdout collected line by line.
pub struct Tool {
    child: KilledOnDrop,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: thread::JoinHandle<String>,
}

/// A test's child process, killed when dropped while still running (or when its state
/// cannot be read): a test that panics between start and stop leaves no tool behind (one
/// holding the live tests' lock, say). [`Tool`] and [`Proc`] hold theirs in one.
struct KilledOnDrop(Child);

impl std::ops::Deref for KilledOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KilledOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What a tool printed and how it ended.
pub struct Finished {
    pub stdout: Vec<String>,
    pub stderr: String,
    pub status: ExitStatus,
}

impl Tool {
    /// Starts `bin` and waits until it printed `ready_lines` lines (its header), at most 30 s.
    pub fn start(bin: &str, args: &[&str], env: &[(&str, &str)], ready_lines: usize) -> Tool {
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut tool = Tool {
            child: KilledOnDrop(child),
            lines,
            seen: Vec::new(),
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tool.seen.len() < ready_lines {
            let left = deadline.saturating_duration_since(Instant::now());
            match tool.lines.recv_timeout(left) {
                Ok(line) => tool.seen.push(line),
                Err(_) => {
                    let _ = tool.child.kill();
                    let status = tool.child.wait().ok();
                    let stderr = tool.stderr.join().unwrap_or_default();
                    panic!("{bin} {args:?} did not become ready ({status:?}); stderr: {stderr}");
                }
            }
        }
        tool
    }

    /// Waits until a line matching `pred` appears (at most `timeout`).
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        self.wait_for_count(timeout, 1, pred)
    }

    /// Waits until `count` lines match `pred` (at most `timeout`); true if they did.
    pub fn wait_for_count(
        &mut self,
        timeout: Duration,
        count: usize,
        pred: impl Fn(&str) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut matched = self.seen.iter().filter(|l| pred(l)).count();
        while matched < count {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.lines.recv_timeout(deadline - now) {
                Ok(line) => {
                    matched += usize::from(pred(&line));
                    self.seen.push(line);
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// The lines printed so far (the header first).
    pub fn lines(&self) -> &[String] {
        &self.seen
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` and collects everything the tool printed; fails after 20 s.
    pub fn stop_with(self, signal: Signal) -> Finished {
        let _ = kill(Pid::from_raw(self.child.id() as i32), signal);
        self.finish()
    }

    /// Waits (at most 20 s) for the tool to end by itself.
    pub fn finish(mut self) -> Finished {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for tool") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("tool did not end within 20 s");
            }
            thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        Finished {
            stdout: self.seen,
            stderr: self.stderr.join().unwrap_or_default(),
            status,
        }
    }
}

/// Runs a tool to completion with a time bound and returns what it printed.
pub fn run_tool(bin: &str, args: &[&str]) -> Finished {
    run_tool_env(bin, args, &[])
}

/// `run_tool` with extra environment variables.
pub fn run_tool_env(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Finished {
    let child = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let out = child.wait_with_output().expect("tool output");
    Finished {
        stdout: String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status,
    }
}

/// The primary path must work on this kernel: with `-v` the tool says it attached its
/// `tp_btf` programs, not that the kernel refused them and `raw_tp` took over.
pub fn assert_attaches_with_tp_btf(bin: &str, args: &[&str], ready_lines: usize) {
    let mut all = vec!["-v"];
    all.extend_from_slice(args);
    let done = Tool::start(bin, &all, &[], ready_lines).stop_with(Signal::SIGINT);
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert!(
        done.stderr.contains("attached with tp_btf\n"),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains("refused"), "{}", done.stderr);
}

/// Runs `bin` with `args` and checks it fails as the tools must on bad input: exit `code`,
/// nothing on stdout, exactly one line on stderr, containing `expected`.
pub fn assert_one_line_failure(bin: &str, args: &[&str], code: i32, expected: &str) -> Finished {
    let done = run_tool(bin, args);
    assert_eq!(done.status.code(), Some(code), "{args:?}: {}", done.stderr);
    assert!(
        done.stdout.is_empty(),
        "{args:?} printed on stdout: {:?}",
        done.stdout
    );
    assert_eq!(
        done.stderr.lines().count(),
        1,
        "{args:?}: {:?}",
        done.stderr
    );
    assert!(
        done.stderr.contains(expected),
        "{args:?}: {:?} lacks {expected:?}",
        done.stderr
    );
    done
}

/// The bytes of a BPF record type from the skeleton, as the program sends them.
pub fn record_bytes<T: plain::Plain>(record: &T) -> &[u8] {
    // SAFETY: a Plain type is a C struct of plain integers and byte arrays (src/lib.rs);
    // the slice covers exactly its bytes and borrows it.
    unsafe {
        std::slice::from_raw_parts((record as *const T).cast::<u8>(), std::mem::size_of::<T>())
    }
}

/// An IPv4 address as the BPF records hold it: the first 4 of 16 bytes.
pub fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&a);
    addr
}

/// An IPv6 address as the BPF records hold it.
pub fn v6(text: &str) -> [u8; 16] {
    text.parse::<std::net::Ipv6Addr>()
        .expect("IPv6 text")
        .octets()
}

/// A cgroup v2 directory of this test's own, `tcpt-TAG-PID` under the cgroup2 mount.
/// Dropping it moves the processes still in it (or in the directories below it) back to the
/// root cgroup and removes the directories, deepest first.
pub struct Cgroup {
    /// The directory.
    pub dir: std::path::PathBuf,
    /// Its path from the hierarchy's root, as /proc/PID/cgroup shows it (`/tcpt-...`).
    pub rel: String,
}

impl Cgroup {
    /// Creates `tcpt-TAG-PID` (removing a stale one first). Fails the test when it cannot.
    pub fn new(tag: &str) -> Cgroup {
        assert!(
            nix::unistd::geteuid().is_root(),
            "live BPF tests need root (run `sudo make test`)"
        );
        let name = format!("tcpt-{tag}-{}", std::process::id());
        let dir = cgroup2_mount().join(&name);
        if dir.exists() {
            remove_cgroup_tree(&dir);
        }
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Cgroup {
            dir,
            rel: format!("/{name}"),
        }
    }

    /// Creates the child cgroup `name` below this one (removed with it).
    pub fn child(&self, name: &str) -> Cgroup {
        let dir = self.dir.join(name);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Cgroup {
            dir,
            rel: format!("{}/{name}", self.rel),
        }
    }

    /// Its cgroup.procs: writing a pid there moves that process in.
    pub fn procs(&self) -> std::path::PathBuf {
        self.dir.join("cgroup.procs")
    }

    pub fn dir_str(&self) -> &str {
        self.dir.to_str().expect("UTF-8 cgroup path")
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        remove_cgroup_tree(&self.dir);
    }
}

/// The inode of a namespace file (what `stat -L -c %i` prints), e.g. /proc/PID/ns/net.
pub fn inode_of(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {path}: {e}"))
        .ino()
}

/// Waits (at most 30 s) until process `pid` holds at least `count` BPF link fds: its
/// programs are attached. For tools whose output has no header to wait for.
pub fn wait_for_bpf_links(pid: u32, count: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let links = std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| {
                        std::fs::read_to_string(e.path())
                            .is_ok_and(|t| t.lines().any(|l| l.starts_with("link_id:")))
                    })
                    .count()
            })
            .unwrap_or(0);
        if links >= count {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A process started by a test (in a cgroup and a network namespace of its own, say), its
/// stdout collected line by line. Killed on drop if still running.
pub struct Proc {
    child: KilledOnDrop,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    /// Runs `program args` inside netns `ns`, first moving itself into `cgroup` when given:
    /// `sh` writes its own pid into cgroup.procs, then `ip netns exec` execs the program in
    /// place, so the child's pid is the program's. The test process itself never moves.
    pub fn spawn(cgroup: Option<&Cgroup>, ns: &Netns, program: &str, args: &[&str]) -> Proc {
        let procs = cgroup.map(|c| c.procs().to_str().expect("UTF-8").to_owned());
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"if [ -n "$1" ]; then echo $$ > "$1" || exit 99; fi; shift; exec ip netns exec "$@""#)
            .arg("sh")
            .arg(procs.unwrap_or_default())
            .arg(&ns.name)
            .arg(program)
            .args(args);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child: KilledOnDrop(child),
            lines,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `timeout`) for the line `expected`; panics if it does not come.
    pub fn expect_line(&mut self, expected: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == expected => {
                    self.seen.push(line);
                    return;
                }
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no line {expected:?} within {timeout:?}; saw {:?}, status {:?}",
                    self.seen,
                    self.child.try_wait()
                ),
            }
        }
    }

    /// Writes one line to its stdin.
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{line}").expect("write to the process");
        stdin.flush().expect("flush");
    }

    /// Waits (at most `timeout`) for it to end, and checks it succeeded.
    pub fn finish(mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "{status:?}; printed {:?}", self.seen);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "did not end within {timeout:?}; printed {:?}",
                self.seen
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The ids after `key` (`prog_id:`, `map_id:`) in process `pid`'s fdinfo, sorted, once each.
fn fdinfo_ids(pid: u32, key: &str) -> Vec<u32> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .expect("fdinfo")
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        ids.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix(key))
                .filter_map(|id| id.trim().parse::<u32>().ok()),
        );
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The BPF programs process `pid` holds open, from its fdinfo.
pub fn prog_ids_of(pid: u32) -> Vec<u32> {
    fdinfo_ids(pid, "prog_id:")
}

/// The state changes of `n` complete connections (client closes first), each as
/// "OLD -> NEW" with its count: the clients' sockets with `client`, and with `listeners`
/// above 0 the servers' (accepted sockets, and each listener opened and closed).
pub fn transitions_of(n: usize, client: bool, listeners: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    if client {
        for t in [
            "CLOSE -> SYN_SENT",
            "SYN_SENT -> ESTABLISHED",
            "ESTABLISHED -> FIN_WAIT1",
            "FIN_WAIT1 -> FIN_WAIT2",
            "FIN_WAIT2 -> CLOSE",
        ] {
            counts.insert(t.to_owned(), n);
        }
    }
    if listeners > 0 {
        for t in [
            "LISTEN -> SYN_RECV",
            "SYN_RECV -> ESTABLISHED",
            "ESTABLISHED -> CLOSE_WAIT",
            "CLOSE_WAIT -> LAST_ACK",
            "LAST_ACK -> CLOSE",
        ] {
            counts.insert(t.to_owned(), n);
        }
        counts.insert("CLOSE -> LISTEN".to_owned(), listeners);
        counts.insert("LISTEN -> CLOSE".to_owned(), listeners);
    }
    counts
}

/// bpftool's JSON about one BPF object (`prog show`, `map show`, `map dump`); null when
/// it printed none.
pub fn bpftool_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .expect("run bpftool");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// The BPF maps process `pid` holds open, from its fdinfo.
pub fn map_ids_of(pid: u32) -> Vec<u32> {
    fdinfo_ids(pid, "map_id:")
}

/// The bytes of an entry's `value` in `bpftool -j map dump` output (hex strings).
pub fn value_bytes(entry: &serde_json::Value) -> Vec<u8> {
    entry["value"]
        .as_array()
        .expect("raw value bytes")
        .iter()
        .filter_map(|b| b.as_str())
        .filter_map(|b| u8::from_str_radix(b.trim_start_matches("0x"), 16).ok())
        .collect()
}

/// The id of the one BPF map called `name` that process `pid` holds.
pub fn map_named(pid: u32, name: &str) -> u32 {
    let ids: Vec<u32> = map_ids_of(pid)
        .into_iter()
        .filter(|id| bpftool_json(&["map", "show", "id", &id.to_string()])["name"] == name)
        .collect();
    assert_eq!(ids.len(), 1, "maps called {name} of process {pid}: {ids:?}");
    ids[0]
}

/// What the kernel skipped of a tool's programs, as bpftool shows it, and what the catcher
/// programs (bpf/nested.bpf.h) ran the handler for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkipAccount {
    /// `recursion_misses` of the main programs: events they were not run for.
    pub main_misses: u64,
    /// `recursion_misses` of the catchers: events the main program ran for, so not lost.
    pub catcher_misses: u64,
    /// The `catches` of the `nested_*` maps, summed over CPUs.
    pub catches: u64,
    /// Catcher programs attached.
    pub catchers: usize,
}

impl SkipAccount {
    /// Events neither the main programs nor the catchers ran the handler for (none where
    /// the catchers run alone, and catch everything).
    pub fn lost(&self) -> u64 {
        self.main_misses.saturating_sub(self.catches)
    }
}

/// The [`SkipAccount`] of process `pid`. Read the misses before the catches, as the tools
/// do: a catch follows its miss.
pub fn skip_account(pid: u32) -> SkipAccount {
    let mut account = SkipAccount::default();
    for id in prog_ids_of(pid) {
        let info = bpftool_json(&["prog", "show", "id", &id.to_string()]);
        let misses = info["recursion_misses"].as_u64().unwrap_or(0);
        if info["name"].as_str().unwrap_or("").starts_with("catch_") {
            account.catcher_misses += misses;
            account.catchers += 1;
        } else {
            account.main_misses += misses;
        }
    }
    for id in map_ids_of(pid) {
        let id = id.to_string();
        let info = bpftool_json(&["map", "show", "id", &id]);
        if !info["name"].as_str().unwrap_or("").starts_with("nested_") {
            continue;
        }
        let dump = bpftool_json(&["map", "dump", "id", &id]);
        let entry = &dump[0];
        let values = entry
            .get("formatted")
            .unwrap_or(entry)
            .get("values")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        account.catches += values
            .iter()
            .map(|v| {
                v["value"]["catches"]
                    .as_u64()
                    .expect("catches in a nested_ map")
            })
            .sum::<u64>();
    }
    account
}

/// How many times the kernel skipped the programs of process `pid` because one was already
/// running on that CPU (`recursion_misses`, as bpftool shows it), catchers included. 0
/// where the kernel does not count them.
pub fn recursion_misses(pid: u32) -> u64 {
    prog_ids_of(pid)
        .iter()
        .map(|id| {
            bpftool_json(&["prog", "show", "id", &id.to_string()])["recursion_misses"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum()
}

/// A tracefs instance of the test's own with one trace event enabled under a filter: the
/// kernel's count of that event, to check a tool against. Removed on drop.
pub struct TraceCount {
    dir: std::path::PathBuf,
    event: String,
}

impl TraceCount {
    /// Enables `event` (`tcp/tcp_probe`) with `filter` in instance `tcpt-TAG-PID`.
    pub fn start(tag: &str, event: &str, filter: &str) -> TraceCount {
        let root = std::path::Path::new("/sys/kernel/tracing");
        if !root.join("instances").is_dir() {
            sh(
                "mount",
                &["-t", "tracefs", "tracefs", "/sys/kernel/tracing"],
            );
        }
        let dir = root
            .join("instances")
            .join(format!("tcpt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).expect("create a tracefs instance");
        let count = TraceCount {
            dir,
            event: event.to_owned(),
        };
        // Room for every event of the test: an overrun would undercount.
        std::fs::write(count.dir.join("buffer_size_kb"), "65536").expect("size the trace buffer");
        let ev = count.dir.join("events").join(event);
        std::fs::write(ev.join("filter"), filter).expect("set the event filter");
        std::fs::write(ev.join("enable"), "1").expect("enable the event");
        count
    }

    /// Stops tracing and returns the events recorded; fails if the buffer overran.
    pub fn finish(self) -> u64 {
        let ev = self.dir.join("events").join(&self.event);
        std::fs::write(ev.join("enable"), "0").expect("disable the event");
        let mut total = 0;
        for cpu in std::fs::read_dir(self.dir.join("per_cpu"))
            .expect("per_cpu")
            .flatten()
        {
            let stats = std::fs::read_to_string(cpu.path().join("stats")).unwrap_or_default();
            let field = |name: &str| {
                stats
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            assert_eq!(field("overrun:"), 0, "trace buffer overran: {stats}");
            assert_eq!(field("dropped events:"), 0, "trace events dropped: {stats}");
            total += field("entries:");
        }
        total
    }
}

impl Drop for TraceCount {
    fn drop(&mut self) {
        let _ = std::fs::write(
            self.dir.join("events").join(&self.event).join("enable"),
            "0",
        );
        let _ = std::fs::remove_dir(&self.dir);
    }
}
