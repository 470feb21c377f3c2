#!/usr/bin/env python3
"""tcptools benchmark harness: runs the loopback storm untraced, under our tools, under
Debian's tcpstates, under the empty floor programs and under the pieces of the tools' work
(bench/pieces.rs, the cost breakdown), and writes BENCHMARKS.md and
bench/results/latest.json.

Run as root from anywhere (`make bench`, or `python3 bench/run.py [--quick]`) after
`cargo build --release --bins --examples`. Python 3.11, standard library only.

Method (see BENCHMARKS.md): every repetition runs, for every tool and offered rate, the
untraced baseline and then each tracer on the same storm, back to back (the order of
the variants rotates between repetitions). Each traced trial also loads the floor (empty
tp_btf programs on the same tracepoints) so that both ns/run figures come from identical
load. Tracers run without port filters and write to a file; only the storm's own ports
are counted against the expected events. At max, tcpstates also runs with its output
through a pipe (`ours-pipe`), and under the scaling figure's variants (`scale-*`: the storm
on one CPU or on every CPU, one shared ring or a ring per CPU, with the kernel's lock
contention counted).

With `--before DIR` (release binaries of an earlier commit, `make bench-before REV=...`),
the earlier tools and exporter run as variants of the same storms, and BENCHMARKS.md sets
their BPF ns per event over the floor beside today's ("Before and after").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/exporter.py (the exporter's variants, soak and report) uses this module's helpers
# under the name `run`: the same module object, also when this file runs as a script.
sys.modules.setdefault("run", sys.modules[__name__])
import exporter  # noqa: E402
# bench/pods.py (containerd's pods: the --pod filter, the exporter grouped by pod) runs on its
# own (`make bench-pods`, also after this in `make bench`); its section comes from its file.
import pods  # noqa: E402
import series  # noqa: E402  (bench/series.py: series per node, classic and native)

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
LOADGEN = RELEASE / "examples" / "loadgen"
FLOOR = RELEASE / "examples" / "floor"
PIECES = RELEASE / "examples" / "pieces"
PEER_TCPSTATES = Path("/usr/sbin/tcpstates")
RESULTS = ROOT / "bench" / "results" / "latest.json"
REPORT = ROOT / "BENCHMARKS.md"
# --before DIR: release binaries built from the commit before a refactor (`make
# bench-before REV=...`). They run as the variants "before" (each tool) and
# exporter.BEFORE in the same storms as today's binaries, for BENCHMARKS.md's "Before and
# after"; the other sections leave them out.
BEFORE: Path | None = None
BEFORE_VARIANT = "before"
# File the Makefile writes beside the before binaries: the commit they were built from.
BEFORE_COMMIT_FILE = "COMMIT"

# The storm's ports: blocks of PORTS_PER_TRIAL inside 45000-45099, rotated per trial.
PORT_LOW, PORT_HIGH = 45000, 45099
PORTS_PER_TRIAL = 16
RESERVED_PORTS_SYSCTL = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
BPF_STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")
TRACEFS = Path("/sys/kernel/tracing")

# Untraced maximum rates on this machine kind (peer-baseline.md), to size the max trials.
EST_MAX_RATE = {0: 52_000, 10: 10_500}
EVENTS_PER_CONN = 10
EVENTS_PER_LISTENER = 2
# The bound on BPF ns per event of all a tool's programs, over the floor, at every rate
# (issue 24's for tcpstates, issue 11's for the others).
FLOOR_FACTOR = {"tcpstates": 7.0, "tcpconnlat": 2.5, "tcprtt": 2.5}
# Issue 24's bounds: tcpstates' workload slowdown at max as a share of the peer's; tcpconnlat's
# BPF ns per event over bcc's handler writing the same record; exec-to-ready over the
# peer's (tools not named keep issue 11's: at most the peer's).
SLOWDOWN_VS_PEER = 0.2
BCC_FACTOR = {"tcpconnlat": 1.5, "tcprtt": 1.0}
READY_VS_PEER = {"tcpstates": 0.8, "tcpconnlat": 0.8, "tcprtt": 1.0}
# A paced rate "held" when the storm achieved at least this share of it.
RATE_HELD = 0.95

# Bounds on every wait.
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
QUIET_TIMEOUT = 5.0
QUIET_POLL = 0.1
PORT_WAIT = 70.0
EPOLL_SYSCALLS = {"232", "281", "441"}  # x86_64 epoll_wait, epoll_pwait, epoll_pwait2
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Reference figures of the peer, measured on a machine of the same kind (2 cores) and
# quoted here so BENCHMARKS.md can set today's run beside them.
PEER_BASELINE = {
    "tcpstates": {
        "rss_mib": 13.5, "ready_ms": 18.5,
        "rows": {
            5000: "held; BPF 1716–2406 ns/event; 2.8–4.1 µs/event",
            20000: "held; lost 612; BPF 1684 ns/event; 2.1 µs/event",
            40000: "28.7k achieved (28%); lost 10.5k; BPF 1325 ns/event; 1.7 µs/event",
            0: "29.7k achieved (45%); lost 32.5k (≈1.1%); BPF 1508 ns/event; 1.4 µs/event",
        },
    },
    "tcpconnlat": {
        "rss_mib": 13.7, "ready_ms": 30.8,
        "slowdown_max": 0.14,
        "set_state_ns": {1000: 587, 10000: 379, 0: 309},
        "cpu_us": {1000: 16.6, 10000: 6.6, 0: 3.3},
    },
    "tcprtt": {
        "rss_mib": 13.65, "ready_ms": 35.4,
        "slowdown_max": 0.06,
        "ns_per_run": {1000: 317, 5000: 277, 0: 246},
    },
}

# The scaling figure (tcpstates at max): the storm on CPU 0 alone (`taskset -c 0` on
# loadgen: its clients, its servers and so the loopback softirqs) or spread over every CPU,
# against one shared ring (TCPTOOLS_SHARED_RING=1) or a ring per CPU (the default), and
# against no ring at all (the floor's empty program as the tracer: the storm's own lock
# contention). Each trial's floor also counts lock contention (bench/bpf/contention.bpf.c).
SCALE_STORMS = {"cpu0": "CPU 0 only", "spread": f"every CPU ({os.cpu_count()})"}
SCALE_BUFFERS = {"floor": "none (empty program)", "shared": "one shared ring",
                 "percpu": "a ring per CPU"}
SCALE_VARIANTS = [f"scale-{storm}-{buf}" for storm in SCALE_STORMS for buf in SCALE_BUFFERS]
SCALE_ENV = {"shared": {"TCPTOOLS_SHARED_RING": "1"}}
# Variants run at some rates only (the rest at every rate of their tool): the targets and
# the scaling figure are at max.
VARIANT_RATES = {"ours-pipe": [0]} | {v: [0] for v in SCALE_VARIANTS}

TOOLS = {
    # rounds: request/response round trips per connection; rates: offered conn/s, 0 = max;
    # tracepoint: the floor program to compare with.
    # pieces: one program per piece of the tools' work (bench/bpf/pieces.bpf.c), the cost
    # breakdown.
    "tcpstates": {"rounds": 0, "rates": [5000, 20000, 40000, 0], "tracepoint": "set_state",
                  "variants": ["baseline", "ours", "ours-pipe", "ours-table", "ours-cgroup",
                               "peer", "pieces"]
                  + exporter.variants_beside("tcpstates") + SCALE_VARIANTS},
    # bcc: what bcc's handler does, on tp_btf (bench/bpf/bench_bcc.bpf.c), the reference.
    "tcpconnlat": {"rounds": 0, "rates": [1000, 10000, 0], "tracepoint": "set_state",
                   "variants": ["baseline", "ours", "ours-table", "bcc"]},
    "tcprtt": {"rounds": 10, "rates": [1000, 5000, 0], "tracepoint": "tcp_probe",
               "variants": ["baseline", "ours", "bcc"]},
}

# bench/bpf/pieces.bpf.c's programs, grouped as BENCHMARKS.md lists them: what each does alone.
PIECES_GROUPS = {
    "dispatch, clock, task": {
        "p_empty": "nothing, as the floor's program: ≈ 0, a check on the method",
        "p_ktime": "`bpf_ktime_get_ns()`",
        "p_pidtgid": "`bpf_get_current_pid_tgid()`",
        "p_comm": "`bpf_get_current_comm()` into 16 bytes",
        "p_task_stack": "the catcher's context level before (bpf/nested.bpf.h): "
                        "`bpf_get_current_task_btf()` twice, `bpf_get_current_task()`",
        "p_task_stack2": "the catcher's context level (bpf/nested.bpf.h): one task pointer "
                         "for the distance and the stack base, `bpf_get_current_task()`",
    },
    "socket reads": {
        "p_direct_fields": "plain BTF loads from `struct sock`: protocol (a bitfield), family, "
                           "dport, daddr, rcv_saddr",
        "p_probe_sport": "the local port by probe read (`inet_sport`, beyond `struct sock`), "
                         "as the tools read it",
        "p_sport_cast": "the local port by a plain load after `bpf_rdonly_cast()` to "
                        "`inet_sock`",
        "p_sport_tcp_sock": "the local port by a plain load after `bpf_skc_to_tcp_sock()`",
        "p_cgroup": "the socket's cgroup v2 id (bpf/container.bpf.h) by three CO-RE probe "
                    "reads, as raw_tp programs read it",
        "p_cgroup_btf": "the socket's cgroup v2 id by plain BTF loads, as tp_btf programs "
                        "read it (`-c`, `--bycgroup`, `--group-by cgroup`)",
    },
    "per-socket state": {
        "p_storage8": "socket storage get-or-create of 8 bytes (creates on each socket's "
                      "first change)",
        "p_storage8_get": "socket storage lookup of 8 bytes, no create (finds what p_storage8, "
                          "attached before it, created)",
        "p_storage120": "socket storage get-or-create of 120 bytes",
        "p_slot": "slot table (bpf/slots.bpf.h, 2^13 buckets as the exporter's): find, "
                  "claim, free at CLOSE; the value in the array beside it",
        "p_hash": "hash map keyed by the socket: lookup, then add one, insert, or delete at "
                  "CLOSE",
    },
    "ring buffer": {
        "p_rb_output": "`bpf_ringbuf_output()` of a 120-byte record built on the stack, "
                       "no wakeup",
        "p_rb_reserve": "`bpf_ringbuf_reserve()` of 120 bytes, zeroed and filled in place, "
                        "submitted, no wakeup",
        "p_rb_full": "`bpf_ringbuf_output()` into a ring never read, so full: what a record "
                     "costs before its bytes (the call, the ring's lock)",
        "p_rb_percpu": "`bpf_ringbuf_output()` of 120 bytes into this CPU's own ring (an "
                       "array of rings, one per CPU): no lock or line shared by CPUs",
    },
    "counting": {
        "p_percpu_add": "per-CPU array: lookup, `+= 1`",
        "p_percpu_atomic": "per-CPU array: lookup, atomic add",
        "p_shared_atomic": "array shared by the CPUs: lookup, atomic add",
        "p_group_hash": "`--group-by`'s part once the group is known: the group's entry for "
                        "the state left in a hash shared by the CPUs (16-byte key), found or "
                        "made, and one atomic add (bpf/exporter.bpf.c)",
        "p_div": "a 64-bit division (by 1000, as ns to µs)",
        "p_log2": "`log2_u64()` (bpf/hist.bpf.h): a histogram's slot",
    },
}
PIECES_LIST = [name for group in PIECES_GROUPS.values() for name in group]

# What "Before and after" compares: (row label, the tool whose storms, today's variant, the
# earlier binary's variant, the BPF ns per event it takes from a trial). The exporter's is
# its set_state program and catcher per state change, as its own section reports it.
BEFORE_AFTER = [
    ("tcpstates", "tcpstates", "ours", BEFORE_VARIANT, "bpf_ns_per_event"),
    ("tcptools-exporter", "tcpstates", "exporter", exporter.BEFORE, "set_state_ns"),
    ("tcptools-exporter --group-by cgroup", "tcpstates", "exporter-cgroup",
     exporter.BEFORE_CGROUP, "set_state_ns"),
    ("tcpconnlat", "tcpconnlat", "ours", BEFORE_VARIANT, "bpf_ns_per_event"),
    ("tcprtt", "tcprtt", "ours", BEFORE_VARIANT, "bpf_ns_per_event"),
]
# The rate whose net cost BENCHMARKS.md also gives in floors.
PIECES_FLOOR_RATE = 0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

class Proc:
    """A started process, stopped with SIGINT then SIGKILL, reaped with its rusage. With
    pipe, its stdout is a pipe to `cat`, which writes the file (an operator's `tool | cat >
    file`); stop() then also waits for cat to write the rest."""

    live: list["Proc"] = []

    def __init__(self, argv: list[str], stdout: Path, stderr: Path, env=None,
                 pipe: bool = False):
        self.argv = argv
        self.stdout_path = stdout
        self.stderr_path = stderr
        self.reader = None
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            if pipe:
                self.reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=out,
                                               stderr=subprocess.DEVNULL)
                out = self.reader.stdin
            self.t0 = time.monotonic()
            self.popen = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                          env=env)
            if self.reader is not None:
                self.reader.stdin.close()  # cat sees EOF when the tracer is gone
        self.pid = self.popen.pid
        self.rusage = None
        self.status = None
        Proc.live.append(self)

    def alive(self) -> bool:
        if self.status is not None:
            return False
        pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self._reaped(status, rusage)
        return False

    def _reaped(self, status, rusage) -> None:
        self.status = status
        self.rusage = rusage
        self.popen.returncode = os.waitstatus_to_exitcode(status)
        if self in Proc.live:
            Proc.live.remove(self)

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGINT, wait up to timeout, then SIGKILL. True if it stopped on SIGINT."""
        stopped = self._stop(timeout)
        if self.reader is not None:
            try:
                self.reader.wait(timeout)
            except subprocess.TimeoutExpired:
                self.reader.kill()
                self.reader.wait()
        return stopped

    def _stop(self, timeout: float) -> bool:
        if not self.alive():
            return True
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.01)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status, rusage = os.wait4(self.pid, 0)
        self._reaped(status, rusage)
        return False

    @classmethod
    def stop_all(cls) -> None:
        for proc in list(cls.live):
            proc.stop(timeout=3.0)


def wait_until(predicate, timeout: float, poll: float = 0.0005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


def file_has_line(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return b"\n" in f.read(4096)
    except OSError:
        return False


def in_epoll_wait(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split(" ", 1)[0] in EPOLL_SYSCALLS
    except OSError:
        return False


def wait_ready(proc: Proc, how: str) -> float | None:
    """Milliseconds from spawn to ready, or None. how: 'line' (first line in the output
    file) or 'epoll' (blocked in epoll_wait: the block-buffered peer's readiness)."""
    if how == "line":
        check = lambda: file_has_line(proc.stdout_path)  # noqa: E731
    else:
        check = lambda: in_epoll_wait(proc.pid)  # noqa: E731
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return (time.monotonic() - proc.t0) * 1000.0
        if not proc.alive():
            return None
        time.sleep(0.0005)
    return None


def cpu_ticks(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def cpu_ns(pid: int) -> int | None:
    """On-CPU nanoseconds of all the process's threads (schedstat: exact, where
    /proc/PID/stat counts clock ticks); None if the kernel has no schedstat."""
    total, seen = 0, False
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            seen = True
        except (OSError, ValueError, IndexError):
            continue
    return total if seen else None


def wait_quiet(pid: int) -> None:
    """Waits until the tracer has drained its buffers: it used under 2% of a CPU for three
    polls in a row (idle timers may still wake it)."""
    read = cpu_ns if cpu_ns(pid) is not None else (lambda p: (cpu_ticks(p) or 0) * 1e9 / CLK_TCK)
    deadline = time.monotonic() + QUIET_TIMEOUT
    last, calm = read(pid), 0
    while time.monotonic() < deadline and calm < 3:
        time.sleep(QUIET_POLL)
        now = read(pid)
        if now is None or last is None:
            return
        calm = calm + 1 if now - last < 0.02 * QUIET_POLL * 1e9 else 0
        last = now


_prog_names: dict[int, str] = {}


def prog_name(prog_id: int) -> str:
    if prog_id not in _prog_names:
        name = f"id{prog_id}"
        bpftool = shutil.which("bpftool")
        if bpftool:
            try:
                out = subprocess.run([bpftool, "prog", "show", "id", str(prog_id), "--json"],
                                     capture_output=True, timeout=10, text=True)
                name = json.loads(out.stdout).get("name", name)
            except (subprocess.SubprocessError, ValueError, OSError):
                pass
        _prog_names[prog_id] = name
    return _prog_names[prog_id]


def bpf_progs(pid: int) -> dict[str, dict]:
    """The BPF programs a process holds, by name: run_time_ns, run_cnt, recursion_misses."""
    progs: dict[str, dict] = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return progs
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        info = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("prog_id", "run_time_ns", "run_cnt", "recursion_misses"):
                info[key] = int(value.strip())
        if "prog_id" in info:
            progs[prog_name(info["prog_id"])] = info
    return progs


def prog_delta(before: dict, after: dict) -> dict[str, dict]:
    delta = {}
    for name, a in after.items():
        b = before.get(name, {})
        delta[name] = {k: a.get(k, 0) - b.get(k, 0)
                       for k in ("run_time_ns", "run_cnt", "recursion_misses")}
    return delta


def vm_hwm_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- system settings

class System:
    """Sysctls and mounts the run changes, restored at the end."""

    def __init__(self):
        self.bpf_stats_before: str | None = None
        self.reserved_before: str | None = None
        self.mounted_tracefs = False

    def setup(self, need_tracefs: bool) -> None:
        self.bpf_stats_before = BPF_STATS_SYSCTL.read_text().strip()
        if self.bpf_stats_before != "1":
            BPF_STATS_SYSCTL.write_text("1\n")
        # Keep the kernel from handing the storm's ports to client sockets (any
        # process's): a client socket in TIME_WAIT on such a port would block the bind.
        self.reserved_before = RESERVED_PORTS_SYSCTL.read_text().strip()
        ours = f"{PORT_LOW}-{PORT_HIGH}"
        if ours not in self.reserved_before.split(","):
            wanted = ",".join(x for x in [self.reserved_before, ours] if x)
            RESERVED_PORTS_SYSCTL.write_text(wanted + "\n")
        if need_tracefs and not (TRACEFS / "events").is_dir():
            subprocess.run(["mount", "-t", "tracefs", "tracefs", str(TRACEFS)], check=True,
                           timeout=10)
            self.mounted_tracefs = True

    def restore(self) -> None:
        if self.bpf_stats_before is not None:
            BPF_STATS_SYSCTL.write_text(self.bpf_stats_before + "\n")
        if self.reserved_before is not None:
            RESERVED_PORTS_SYSCTL.write_text(self.reserved_before + "\n")
        if self.mounted_tracefs:
            subprocess.run(["umount", str(TRACEFS)], timeout=10)


def block_bindable(base: int) -> bool:
    socks = []
    try:
        for port in range(base, base + PORTS_PER_TRIAL):
            s = socket.socket()
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


class Ports:
    """Rotates the storm over the blocks of 45000-45099 whose ports are all free."""

    def __init__(self):
        self.bases = list(range(PORT_LOW, PORT_HIGH + 2 - PORTS_PER_TRIAL, PORTS_PER_TRIAL))
        self.next = 0
        self.warned = False

    def take(self) -> int:
        deadline = time.monotonic() + PORT_WAIT
        while True:
            for _ in range(len(self.bases)):
                base = self.bases[self.next]
                self.next = (self.next + 1) % len(self.bases)
                if block_bindable(base):
                    return base
            if time.monotonic() > deadline:
                raise RuntimeError(f"no free block of {PORTS_PER_TRIAL} ports in "
                                   f"{PORT_LOW}-{PORT_HIGH} after {PORT_WAIT:.0f} s")
            if not self.warned:
                log("waiting (up to 70 s) for a free port block: client sockets of other "
                    "storms in TIME_WAIT hold ports of it")
                self.warned = True
            time.sleep(2.0)


# ---------------------------------------------------------------- output parsing

LOST_RE = re.compile(rb"^lost (\d+) events")
SKIP_RE = re.compile(rb"^kernel skipped (\d+) events")
HIST_RE = re.compile(rb"^\s*\d+ -> \d+\s*:\s*(\d+)")


def stderr_losses(path: Path) -> tuple[int, int, list[str]]:
    lost = skipped = 0
    other = []
    try:
        data = path.read_bytes()
    except OSError:
        return 0, 0, []
    for line in data.splitlines():
        if m := LOST_RE.match(line):
            lost += int(m.group(1))
        elif m := SKIP_RE.match(line):
            skipped += int(m.group(1))
        elif line.strip() and len(other) < 5:
            other.append(line.decode(errors="replace")[:200])
    return lost, skipped, other


def count_output(tool: str, path: Path, lo: int, hi: int) -> dict:
    """Lines printed (all) and lines of the storm's ports; tcprtt: histogram samples."""
    ports = {str(p).encode() for p in range(lo, hi + 1)}
    lines = mine = samples = 0
    with open(path, "rb") as f:
        header = f.readline()
        for line in f:
            if tool == "tcprtt":
                if m := HIST_RE.match(line):
                    samples += int(m.group(1))
                continue
            lines += 1
            fields = line.split()
            if tool == "tcpstates":
                # ... LPORT RADDR RPORT OLDSTATE -> NEWSTATE MS
                if len(fields) >= 8 and (fields[-7] in ports or fields[-5] in ports):
                    mine += 1
            elif tool == "tcpconnlat":
                # PID COMM IP SADDR DADDR DPORT LAT(ms)
                if len(fields) >= 7 and fields[-2] in ports:
                    mine += 1
    out = {"header": header.decode(errors="replace").rstrip("\n")[:120]}
    if tool == "tcprtt":
        out["samples"] = samples
    else:
        out["lines"] = lines
        out["storm_lines"] = mine
    return out


# ---------------------------------------------------------------- trials

# Name prefix of the catcher programs (bpf/nested.bpf.h): they run on every event beside
# the tool's main program and run its handler for the events the kernel skipped it for.
CATCHER_PREFIX = "catch_"


def variant_kind(variant: str) -> str:
    """'baseline' (untraced), 'reference' (no lines counted: bcc's handlers, bench/floor.rs; the
    pieces, bench/pieces.rs; the scaling figure's empty program), 'peer' (Debian's
    tcpstates), or 'ours'."""
    if variant in ("baseline", "peer"):
        return variant
    if variant in ("bcc", "pieces") or scale_parts(variant)[1] == "floor":
        return "reference"
    return "ours"


def scale_parts(variant: str) -> tuple[str | None, str | None]:
    """A scaling variant's (storm, buffer), e.g. ("cpu0", "shared"); (None, None) else."""
    if variant not in SCALE_VARIANTS:
        return None, None
    _, storm, buf = variant.split("-")
    return storm, buf


def variant_rates(tool: str, variant: str) -> list[int]:
    return VARIANT_RATES.get(variant, TOOLS[tool]["rates"])


# Our tools' variants beyond the default: "ours-table" runs the raw_tp programs, which keep
# per-socket state in the fixed table instead of socket storage (what Linux 5.10 runs);
# "ours-cgroup" adds the -c filter on the root of the cgroup v2 hierarchy, which every
# socket passes (the filter's own cost).
VARIANT_ENV = {"ours-table": {"TCPTOOLS_RAW_TP": "1"}}


def cgroup2_root() -> str:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return fields[1]
    raise SystemExit("bench: no cgroup v2 hierarchy mounted (needed by the ours-cgroup variant)")


def add_before_variants() -> None:
    """Runs the earlier binaries (--before) in every storm of BEFORE_AFTER's tools, each
    listed after today's, so the rotation mostly runs the two back to back."""
    for _, tool, after, before, _ in BEFORE_AFTER:
        variants = TOOLS[tool]["variants"]
        if before not in variants:
            variants.insert(variants.index(after) + 1, before)


def is_before(variant: str) -> bool:
    return variant in (BEFORE_VARIANT, exporter.BEFORE, exporter.BEFORE_CGROUP)


def before_commit(directory: Path) -> str:
    """The commit the before binaries were built from, as the Makefile noted it, else
    the directory."""
    try:
        return (directory / BEFORE_COMMIT_FILE).read_text().strip()
    except OSError:
        return str(directory)


def tracer_argv(tool: str, variant: str, startup: bool = False) -> tuple[list[str], str]:
    if variant == BEFORE_VARIANT:
        return [str(BEFORE / tool)], "line"
    if variant == "bcc":
        return [str(FLOOR), f"bcc-{tool}"], "line"
    if variant == "pieces":
        return [str(PIECES)], "line"
    if variant == "peer":
        if startup:
            return ["stdbuf", "-oL", str(PEER_TCPSTATES)], "line"
        return [str(PEER_TCPSTATES)], "epoll"
    if variant == "ours-cgroup":
        return [str(RELEASE / tool), "-c", cgroup2_root()], "line"
    if exporter.is_exporter(variant):
        return exporter.argv(variant), "line"
    if scale_parts(variant)[1] == "floor":
        return [str(FLOOR)], "line"
    return [str(RELEASE / tool)], "line"


def tracer_env(variant: str) -> dict | None:
    extra = VARIANT_ENV.get(variant) or SCALE_ENV.get(scale_parts(variant)[1])
    return {**os.environ, **extra} if extra else None


def run_loadgen(base: int, conns: int, rate: int, rounds: int, bound: float,
                cgroup: Path | None = None, cpu0: bool = False) -> dict:
    argv = [str(LOADGEN), "--addr", "127.0.0.1", "--base-port", str(base),
            "--ports", str(PORTS_PER_TRIAL), "--conns", str(conns), "--rate", str(rate),
            "--rounds", str(rounds), "--max-seconds", f"{bound:.1f}", "--json"]
    if cpu0:
        # Every thread of loadgen (clients and servers) inherits the affinity.
        argv = ["taskset", "-c", "0"] + argv
    if cgroup is not None:
        # The shell joins the cgroup and becomes loadgen, so every storm socket is the cgroup's.
        argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup)] + argv
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=bound + 30)
    except subprocess.TimeoutExpired:
        return {"error": "loadgen did not finish within its bound + 30 s"}
    result: dict = {"stderr": out.stderr.strip()[:500]}
    try:
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        result["error"] = f"loadgen exit {out.returncode}: {out.stderr.strip()[:300]}"
    return result


# Untraced maximum conn/s measured at the start of the run, by rounds per connection.
MAX_RATE: dict[int, float] = dict(EST_MAX_RATE)


def calibrate(rounds: int, ports: "Ports") -> float:
    """The untraced maximum now (a 1 s storm): sizes the max trials to ~--seconds."""
    result = run_loadgen(ports.take(), EST_MAX_RATE[rounds], 0, rounds, 5.0)
    rate = result.get("rate") or EST_MAX_RATE[rounds]
    MAX_RATE[rounds] = rate
    return rate


def storm_size(rate: int, rounds: int, seconds: float) -> tuple[int, float]:
    """Connections and the loadgen time bound for one trial: a paced storm that cannot
    keep up stops at twice its length; a max storm (fixed work) at 4x (+ slack)."""
    if rate:
        return max(100, int(rate * seconds)), seconds * 2 + 5
    return max(1000, int(MAX_RATE[rounds] * seconds)), seconds * 4 + 10


def trial(tool: str, variant: str, rate: int, ports: Ports, tmp: Path, seconds: float) -> dict:
    spec = TOOLS[tool]
    rounds = spec["rounds"]
    conns, bound = storm_size(rate, rounds, seconds)
    base = ports.take()
    rec: dict = {"tool": tool, "variant": variant, "rate": rate, "rounds": rounds,
                 "conns_asked": conns, "base_port": base}
    if variant == "baseline":
        rec["load"] = run_loadgen(base, conns, rate, rounds, bound)
        return rec

    storm, buf = scale_parts(variant)
    floor = tracer = None
    try:
        floor = Proc([str(FLOOR)] + (["contention"] if storm else []), tmp / "floor.out",
                     tmp / "floor.err")
        if wait_ready(floor, "line") is None:
            rec["error"] = "floor not ready: " + (tmp / "floor.err").read_text()[:300]
            return rec
        argv, how = tracer_argv(tool, variant)
        tracer = Proc(argv, tmp / "tracer.out", tmp / "tracer.err", env=tracer_env(variant),
                      pipe=variant == "ours-pipe")
        ready = wait_ready(tracer, how)
        if ready is None:
            rec["error"] = "tracer not ready: " + (tmp / "tracer.err").read_text()[:300]
            return rec
        rec["ready_ms_under_test"] = round(ready, 2)
        cpu0, sched0 = cpu_ticks(tracer.pid), cpu_ns(tracer.pid)
        progs0, floor0 = bpf_progs(tracer.pid), bpf_progs(floor.pid)
        rec["load"] = run_loadgen(base, conns, rate, rounds, bound,
                                  cgroup=exporter.storm_cgroup(variant), cpu0=storm == "cpu0")
        wait_quiet(tracer.pid)
        cpu1, sched1 = cpu_ticks(tracer.pid), cpu_ns(tracer.pid)
        progs1, floor1 = bpf_progs(tracer.pid), bpf_progs(floor.pid)
        if exporter.is_exporter(variant):
            rec["exporter"] = exporter.after_storm(tracer)
        hwm = vm_hwm_kib(tracer.pid)
        rec["stopped_on_sigint"] = tracer.stop()
        floor.stop()
        if storm:
            rec["contention"] = contention_counts(tmp / "floor.out")
        if variant == "bcc" and tool == "tcpconnlat":
            rec["reference_records"] = reference_records(tmp / "tracer.out")
        rec["exit"] = tracer.popen.returncode
        rec["cpu_us_stat"] = ((cpu1 - cpu0) * 1e6 / CLK_TCK) if None not in (cpu0, cpu1) \
            else None
        rec["cpu_us_schedstat"] = (sched1 - sched0) / 1000 if None not in (sched0, sched1) \
            else None
        rec["cpu_us"] = rec["cpu_us_schedstat"] if rec["cpu_us_schedstat"] is not None \
            else rec["cpu_us_stat"]
        rec["progs"] = prog_delta(progs0, progs1)
        rec["progs_since_load"] = progs1
        rec["floor"] = prog_delta(floor0, floor1)
        rec["vmhwm_kib"] = hwm
        rec["lost_reported"], rec["skipped_reported"], rec["stderr_other"] = \
            stderr_losses(tmp / "tracer.err")
        if variant_kind(variant) != "reference":
            rec["output"] = count_output(tool, tmp / "tracer.out", base,
                                         base + PORTS_PER_TRIAL - 1)
        return rec
    finally:
        for proc in (tracer, floor):
            if proc is not None:
                proc.stop()
        for name in ("floor.out", "floor.err", "tracer.out", "tracer.err"):
            (tmp / name).unlink(missing_ok=True)


CONTENTION_KEYS = ("all", "spins", "spin_ns", "nested", "ring", "ring_ns")


def contention_counts(path: Path) -> dict | None:
    """`floor contention`'s last line: lock contentions over its life, summed over the
    CPUs (bench/bpf/contention.bpf.c); the ring's two None where the kernel did not say
    where its ring buffer's reserve is."""
    for line in reversed(path.read_text().splitlines()):
        fields = line.split()
        if fields and fields[0] == "contention" and len(fields) == 1 + len(CONTENTION_KEYS):
            return {k: None if v == "-" else int(v) for k, v in zip(CONTENTION_KEYS, fields[1:])}
    return None


def reference_records(path: Path) -> int | None:
    """`floor bcc-tcpconnlat`'s last line: the records it drained from the reference's
    ring (every connection's, when the ring never filled)."""
    for line in reversed(path.read_text().splitlines()):
        fields = line.split()
        if len(fields) == 2 and fields[0] == "records":
            return int(fields[1])
    return None


def startup_probe(tool: str, variant: str, tmp: Path) -> dict:
    """Exec-to-ready (header printed) and peak RSS of an idle start and stop."""
    argv, how = tracer_argv(tool, variant, startup=True)
    proc = Proc(argv, tmp / "probe.out", tmp / "probe.err")
    try:
        ready = wait_ready(proc, how)
        hwm = vm_hwm_kib(proc.pid)
        proc.stop()
        return {"tool": tool, "variant": variant, "ready_ms": ready, "vmhwm_kib": hwm}
    finally:
        proc.stop()
        (tmp / "probe.out").unlink(missing_ok=True)
        (tmp / "probe.err").unlink(missing_ok=True)


# ---------------------------------------------------------------- derived figures

def derive(trials: list[dict]) -> None:
    """Adds the per-trial figures: rates, slowdown vs the same repetition's baseline,
    events, BPF ns/run, floor ratio, CPU per event, RSS."""
    for t in trials:
        load = t.get("load", {})
        t["achieved"] = load.get("rate")
        t["conns"] = load.get("conns")
        if t["rate"] and t["achieved"] is not None:
            t["held"] = t["achieved"] >= RATE_HELD * t["rate"]
    baselines = {(t["rep"], t["tool"], t["rate"]): t for t in trials if t["variant"] == "baseline"}
    for t in trials:
        base = baselines.get((t["rep"], t["tool"], t["rate"]))
        if t["variant"] != "baseline" and base and base.get("achieved") and t["achieved"]:
            t["slowdown"] = 1.0 - t["achieved"] / base["achieved"]
        if t["variant"] == "baseline" or "progs" not in t:
            continue
        if t["variant"] == "pieces":
            derive_pieces(t)
            continue
        tool = t["tool"]
        # Every program of the tool counts (catchers included), per event of the tracepoint:
        # each event runs the main program or is one of its recursion misses.
        main = [p for n, p in t["progs"].items() if not n.startswith(CATCHER_PREFIX)]
        catchers = [p for n, p in t["progs"].items() if n.startswith(CATCHER_PREFIX)]
        ns = sum(p["run_time_ns"] for p in t["progs"].values())
        runs = sum(p["run_cnt"] + p["recursion_misses"] for p in main)
        t["bpf_runs"] = runs
        t["recursion_misses"] = sum(p["recursion_misses"] for p in main)
        t["catcher_misses"] = sum(p["recursion_misses"] for p in catchers)
        t["catchers"] = len(catchers)
        t["bpf_ns_per_event"] = ns / runs if runs else None
        fl = floor_program(t)
        if fl and fl["run_cnt"]:
            t["floor_ns_per_run"] = fl["run_time_ns"] / fl["run_cnt"]
            t["floor_runs"] = fl["run_cnt"]
            t["floor_misses"] = fl["recursion_misses"]
            if t["bpf_ns_per_event"]:
                t["x_floor"] = t["bpf_ns_per_event"] / t["floor_ns_per_run"]
        derive_contention(t)
        if variant_kind(t["variant"]) == "reference":
            continue
        out = t.get("output", {})
        # What the tool's main program was offered since it was loaded (all traffic): every
        # one must come out as a line/sample or be reported as lost or skipped.
        life = [p for n, p in t.get("progs_since_load", {}).items()
                if not n.startswith(CATCHER_PREFIX)]
        offered = sum(p.get("run_cnt", 0) + p.get("recursion_misses", 0) for p in life)
        reported = t.get("lost_reported", 0) + t.get("skipped_reported", 0)
        if tool == "tcprtt":
            events = out.get("samples", 0)
            t["expected"] = offered
            t["printed"] = events
            t["unreported"] = offered - events - reported
        elif tool == "tcpstates":
            events = out.get("lines", 0)
            t["expected"] = (t["conns"] or 0) * EVENTS_PER_CONN + \
                EVENTS_PER_LISTENER * PORTS_PER_TRIAL
            t["printed"] = out.get("storm_lines", 0)
            t["unreported"] = offered - events - reported
            t["foreign_events"] = events - t["printed"]
        else:
            events = out.get("lines", 0)
            t["expected"] = t["conns"] or 0
            t["printed"] = out.get("storm_lines", 0)
            t["unreported"] = t["expected"] - t["printed"] - reported
            t["foreign_events"] = events - t["printed"]
        if "floor_runs" in t:
            t["floor_fired"] = t["floor_runs"] + t.get("floor_misses", 0)
        t["events"] = events
        t["missing"] = t["expected"] - t["printed"]
        t["cpu_us_per_event"] = t["cpu_us"] / events if events and t.get("cpu_us") is not None \
            else None
        if tool == "tcpconnlat" and t["conns"]:
            t["bpf_ns_per_line"] = ns / events if events else None
        t["rss_mib"] = t["vmhwm_kib"] / 1024 if t.get("vmhwm_kib") else None
    exporter.derive(trials)


def derive_contention(t: dict) -> None:
    """Lock contention per event of the tracepoint (the floor's runs and misses): all
    contentions and spinning ones per 1,000 events, ns spun per event; waits for a ring
    buffer's lock and the µs they spun, per storm."""
    c = t.get("contention")
    events = t.get("floor_runs", 0) + t.get("floor_misses", 0)
    if not c or not events:
        return
    t["contentions_per_kevent"] = c["all"] * 1000 / events
    t["spins_per_kevent"] = c["spins"] * 1000 / events
    t["spin_ns_per_event"] = c["spin_ns"] / events
    t["storm_events"] = events
    if c["ring"] is not None:
        # Rare on a few CPUs: whole counts per storm say more than a rate per event.
        t["ring_waits"] = c["ring"]
        t["ring_spin_us"] = c["ring_ns"] / 1000


def floor_program(t: dict) -> dict | None:
    """The floor's empty program on the trial's tracepoint: its counts over the storm."""
    floor_name = "floor_" + TOOLS[t["tool"]]["tracepoint"]
    return next((p for n, p in t["floor"].items() if n.startswith(floor_name)), None)


def piece_name(prog: str) -> str:
    """The piece a program is: the kernel keeps 15 characters of a program's name, and
    bpftool may not give the rest back."""
    if prog in PIECES_LIST or len(prog) != 15:
        return prog
    return next((p for p in PIECES_LIST if p.startswith(prog)), prog)


def derive_pieces(t: dict) -> None:
    """Each piece's ns/run and its net cost: that minus the floor's empty program's ns/run,
    which ran for the same events in the same trial. Net × floor puts it in the unit of a
    tool's bound (FLOOR_FACTOR). The mean over all the pieces (bpf_ns_per_event) would mean
    nothing, so the tools' figures are left out."""
    fl = floor_program(t)
    floor_ns = fl["run_time_ns"] / fl["run_cnt"] if fl and fl["run_cnt"] else None
    if fl:
        t["floor_ns_per_run"], t["floor_runs"] = floor_ns, fl["run_cnt"]
        t["floor_misses"] = fl["recursion_misses"]
    t["pieces"] = {}
    for prog, p in t["progs"].items():
        if not p["run_cnt"]:
            continue
        ns = p["run_time_ns"] / p["run_cnt"]
        net = ns - floor_ns if floor_ns else None
        t["pieces"][piece_name(prog)] = {
            "ns_per_run": ns, "net_ns": net, "x_floor": ratio(net, floor_ns),
            "runs": p["run_cnt"], "recursion_misses": p["recursion_misses"]}


def mmm(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    return {"min": vals[0], "median": statistics.median(vals), "max": vals[-1], "n": len(vals)}


def summarize(trials: list[dict], probes: list[dict], soak: dict | None = None) -> dict:
    keys = ["achieved", "slowdown", "expected", "printed", "missing", "unreported",
            "foreign_events", "floor_fired",
            "lost_reported", "skipped_reported", "recursion_misses", "catcher_misses",
            "catchers", "bpf_ns_per_event",
            "bpf_ns_per_line", "floor_ns_per_run", "x_floor", "cpu_us_per_event", "rss_mib",
            "ready_ms_under_test", "bpf_runs", "floor_runs", "events",
            "contentions_per_kevent", "spins_per_kevent", "spin_ns_per_event",
            "storm_events", "ring_waits", "ring_spin_us",
            "reference_records"]
    summary: dict = {}
    for tool, spec in TOOLS.items():
        for rate in spec["rates"]:
            for variant in spec["variants"]:
                if rate not in variant_rates(tool, variant):
                    continue
                sel = [t for t in trials if (t["tool"], t["rate"], t["variant"]) ==
                       (tool, rate, variant)]
                if not sel:
                    continue
                row = {k: mmm(t.get(k) for t in sel) for k in keys}
                row["held"] = [t.get("held") for t in sel]
                row["errors"] = [t["error"] for t in sel if "error" in t] + \
                    [t["load"]["error"] for t in sel if "error" in t.get("load", {})]
                summary.setdefault(tool, {}).setdefault(str(rate), {})[variant] = row
    summary["startup"] = {}
    for key in {(p["tool"], p["variant"]) for p in probes}:
        sel = [p for p in probes if (p["tool"], p["variant"]) == key]
        summary["startup"][f"{key[0]}/{key[1]}"] = {
            "ready_ms": mmm(p["ready_ms"] for p in sel),
            "rss_mib": mmm(p["vmhwm_kib"] / 1024 if p["vmhwm_kib"] else None for p in sel),
        }
    summary["exporter"] = exporter.summarize(trials, soak)
    summary["pieces"] = summarize_pieces(trials)
    summary["before_after"] = summarize_before_after(trials)
    return summary


def over_floor(t: dict, key: str) -> float | None:
    """A trial's BPF ns per event minus the floor's empty program's ns/run in that trial."""
    ns, floor = t.get(key), t.get("floor_ns_per_run")
    return ns - floor if ns is not None and floor is not None else None


def spread(s: dict | None) -> float | None:
    """(max - min) / median over the repetitions: the noise of one figure in this run."""
    if not s or s["n"] < 2 or not s["median"]:
        return None
    return (s["max"] - s["min"]) / abs(s["median"])


def summarize_before_after(trials: list[dict]) -> dict:
    """Per BEFORE_AFTER row and rate: BPF ns per event over the floor, before and after, over
    the repetitions; after / before (of the medians, and per repetition, where both ran the
    same repetition's storms); the noise, the larger spread of the two; and the
    workload's figures beside them."""
    out: dict = {}
    for label, tool, after, before, key in BEFORE_AFTER:
        for rate in TOOLS[tool]["rates"]:
            by_rep = {v: {t["rep"]: t for t in trials
                          if (t["tool"], t["rate"], t["variant"]) == (tool, rate, v)}
                      for v in (after, before)}
            if not by_rep[before] or not by_rep[after]:
                continue
            row: dict = {}
            for side, variant in (("before", before), ("after", after)):
                sel = by_rep[variant].values()
                row[side] = {"net_ns": mmm(over_floor(t, key) for t in sel),
                             "ns_per_event": mmm(t.get(key) for t in sel),
                             "floor_ns_per_run": mmm(t.get("floor_ns_per_run") for t in sel),
                             "slowdown": mmm(t.get("slowdown") for t in sel),
                             "cpu_us_per_event": mmm(t.get("cpu_us_per_event") for t in sel),
                             "rss_mib": mmm(t.get("rss_mib") for t in sel)}
            row["ratio"] = ratio(med(row["after"], "net_ns"), med(row["before"], "net_ns"))
            row["ratio_per_rep"] = mmm(
                ratio(over_floor(t, key), over_floor(by_rep[before][rep], key))
                for rep, t in by_rep[after].items() if rep in by_rep[before])
            noise = [x for x in (spread(row["before"]["net_ns"]), spread(row["after"]["net_ns"]))
                     if x is not None]
            row["noise"] = max(noise) if noise else None
            out.setdefault(label, {})[str(rate)] = row
    return out


PIECE_KEYS = ("ns_per_run", "net_ns", "x_floor")


def summarize_pieces(trials: list[dict]) -> dict:
    """Per rate, the storm the pieces saw (achieved conn/s), the floor's ns/run and each
    piece's figures over the repetitions, in BENCHMARKS.md's order; a program not in
    PIECES_GROUPS (a piece added since) at the end."""
    out: dict = {}
    for rate in TOOLS["tcpstates"]["rates"]:
        sel = [t for t in trials if t["variant"] == "pieces" and t["rate"] == rate
               and "pieces" in t]
        seen = {name for t in sel for name in t["pieces"]}
        if not seen:
            continue
        names = [n for n in PIECES_LIST if n in seen] + sorted(seen - set(PIECES_LIST))
        out[str(rate)] = {
            "achieved": mmm(t.get("achieved") for t in sel),
            "floor_ns_per_run": mmm(t.get("floor_ns_per_run") for t in sel),
            "programs": {n: {k: mmm(t["pieces"].get(n, {}).get(k) for t in sel)
                             for k in PIECE_KEYS} for n in names},
        }
    return out


# ---------------------------------------------------------------- report

def fmt(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, float) and digits == 0 and abs(v) >= 1000:
        return f"{v / 1000:.1f}k"
    if isinstance(v, int) and abs(v) >= 10000:
        return f"{v / 1000:.1f}k"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def fmm(s, digits=0, pct=False):
    """min/**median**/max."""
    if not s:
        return "–"
    conv = (lambda x: f"{x * 100:.{digits}f}%") if pct else (lambda x: fmt(x, digits))
    if s["n"] == 1:
        return conv(s["median"])
    return f"{conv(s['min'])}/**{conv(s['median'])}**/{conv(s['max'])}"


def med(row, key):
    s = row.get(key) if row else None
    return s["median"] if s else None


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def rate_label(rate: int) -> str:
    return "max" if rate == 0 else f"{rate // 1000}k" if rate >= 1000 else str(rate)


def verdict(ok) -> str:
    return "–" if ok is None else ("**met**" if ok else "**not met**")


def held_text(row) -> str:
    held = [h for h in row.get("held", []) if h is not None]
    if not held:
        return "–"
    return "held" if all(held) else f"not held {held.count(False)}/{len(held)}"


def report(meta: dict, summary: dict, quick: bool) -> str:
    L: list[str] = []
    a = L.append
    a("# tcptools benchmarks")
    a("")
    a(f"Generated by `{meta['command']}` on {meta['date']}"
      f"{' (--quick: 1 repetition, short storms; for development, not for quoting)' if quick else ''}.")
    a(f"Machine: {meta['cpus']} CPUs ({meta['cpu_model']}), {meta['mem_gib']:.1f} GiB, "
      f"Linux {meta['kernel']}. Run time {meta['runtime_s'] / 60:.1f} min, "
      f"{meta['reps']} repetition(s), storms of ~{meta['seconds']:g} s.")
    a("Figures are min/**median**/max over the repetitions. Raw data: "
      "`bench/results/latest.json`.")
    a("")
    a("## Method")
    a("")
    a("- Load: `bench/loadgen.rs` on 127.0.0.1, 4 client workers, 2 server threads, "
      f"{PORTS_PER_TRIAL} server ports (a block of {PORT_LOW}-{PORT_HIGH}, rotated per trial; "
      "those ports are put in `ip_local_reserved_ports` for the run). Client closes first: "
      f"{EVENTS_PER_CONN} `inet_sock_set_state` events per connection + "
      f"{EVENTS_PER_LISTENER} per listener. tcprtt: 10 one-byte round trips per connection. "
      "Paced rates: connections at that rate for the storm length; max: a fixed number "
      "of connections as fast as possible.")
    a("- Every repetition runs each rate untraced (baseline), then under each tracer, back to "
      "back; the order of the variants rotates between repetitions. Slowdown = 1 − achieved "
      "conn/s / the same repetition's baseline. A paced rate is *held* when ≥ "
      f"{RATE_HELD:.0%} of it was achieved.")
    a("- Tracers run as an operator would: no port filter, stdout to a file in a temp dir. "
      "Ours print their header after attaching (tcprtt its banner); Debian's tcpstates "
      "block-buffers, so in the storms its readiness is its first `epoll_wait`. Printed "
      "events are the lines of the storm's ports (tcprtt: histogram samples vs program runs "
      "− recursion misses).")
    a("- BPF ns/event: the run time of all of a tool's programs on the tracepoint (its main "
      "program and the catcher beside it, `bpf/nested.bpf.h`) divided by the events of the "
      "tracepoint (main program runs + its recursion misses). × floor: that over the empty "
      "program's ns/run in the same trial.")
    a("- Every traced trial also loads the floor (`bench/floor.rs`, empty `tp_btf` programs on "
      "`inet_sock_set_state` and `tcp_probe`) so the tool's and the floor's ns/run come from "
      "the same events. The floor adds its ~40 ns/event to the traced storms (both ours "
      "and the peer), not to the baseline.")
    a("- BPF ns/run: `run_time_ns / run_cnt` deltas over the storm from `/proc/PID/fdinfo` of "
      "each program fd (`kernel.bpf_stats_enabled=1` for the run, restored after); kernel "
      "skips = `recursion_misses` deltas. Tracer CPU = utime+stime from `/proc/PID/stat` from "
      "ready until its CPU time stops growing after the storm (summed from "
      "`/proc/PID/task/*/schedstat`, exact, where `/proc/PID/stat` counts 10 ms ticks; both "
      "in the JSON), per printed event. Peak RSS = `VmHWM` just before SIGINT. Exec-to-ready: separate idle starts, spawn until the header "
      "line is in the file (peer under `stdbuf -oL`).")
    a("- `ours-pipe` (tcpstates, at max only): the tool's stdout is a pipe to `cat`, which "
      "writes the file (`tcpstates | cat > file`); counted as `ours`. The scaling figure's "
      "variants (`scale-*`, its section) also run at max only: the 7 trials a repetition "
      "they add take about 3 minutes in all (the storm on one CPU runs at half the rate, "
      "so its fixed number of connections takes twice as long), which keeps `make bench` "
      "under 25 minutes.")
    a("- bcc's tcpconnlat reference (`bench/bpf/bench_bcc.bpf.c`) writes bcc's record, "
      "padded to the size of ours (88 bytes), with `bpf_ringbuf_reserve`/`submit` into a "
      "4 MiB ring of its own, without a wakeup (as ours, which wakes its reader at most "
      "every 5 ms). `bench/floor.rs` drains that ring every 5 ms, so every reserve finds "
      "room and the handler does a record's full work: a ring left to fill would measure "
      "a failed reserve, cheaper than a write. Draining costs the floor process CPU, "
      "not BPF run time, which is what the comparison counts.")
    a("- Classic-tracepoint caveat: the peer's BPF ns/run does not include the "
      "`perf_trace_*` record building of the classic tracepoint it attaches to; the "
      "slowdown column includes it.")
    a("")

    a("## Noise in this run")
    a("")
    cal = meta.get("calibrated_max_rate", {})
    a("- Untraced maximum at the start (1 s storm): " + ", ".join(
        f"{v:.0f} conn/s with {k} round trips" for k, v in cal.items()) +
      " (peer-baseline.md: 52.4k and 10.5k on a quiet machine).")
    if meta.get("other_tracers_running"):
        a(f"- Other tracers or storms were running (pids {meta['other_tracers_running']}); "
          "their BPF programs and traffic load every trial.")
    foreign = meta.get("foreign_events", 0)
    a(f"- Foreign events (other processes' connections) printed during traced trials: "
      f"{foreign}.")
    a(f"- Load average at the end: {meta.get('loadavg', '?')}.")
    a("")
    if summary.get("before_after"):
        a(before_after_section(meta, summary["before_after"]))
    st = summary.get("tcpstates", {})
    a("## tcpstates (Debian libbpf-tools 0.26 as the peer, same storms)")
    a("")
    a("| offered | variant | achieved conn/s | slowdown / rate | events expected | printed | "
      "lost (reported) | skipped (reported) | recursion_misses | unreported | BPF ns/event | "
      "floor ns/run | × floor | CPU µs/event | peak RSS MiB |")
    a("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for rate in TOOLS["tcpstates"]["rates"]:
        for variant in TOOLS["tcpstates"]["variants"]:
            row = st.get(str(rate), {}).get(variant)
            if not row or exporter.is_exporter(variant) or is_before(variant) \
                    or variant_kind(variant) == "reference" or scale_parts(variant)[0]:
                continue
            slow = held_text(row) if rate else fmm(row["slowdown"], 1, pct=True)
            if rate and variant != "baseline":
                slow = f"{held_text(row)}; {fmm(row['slowdown'], 1, pct=True)}"
            a(f"| {rate_label(rate)} | {variant} | {fmm(row['achieved'])} | "
              f"{slow if variant != 'baseline' else (held_text(row) if rate else '–')} | "
              f"{fmm(row['expected'])} | {fmm(row['printed'])} | {fmm(row['lost_reported'])} | "
              f"{fmm(row['skipped_reported'])} | {fmm(row['recursion_misses'])} | "
              f"{fmm(row['unreported'])} | "
              f"{fmm(row['bpf_ns_per_event'])} | {fmm(row['floor_ns_per_run'])} | "
              f"{fmm(row['x_floor'], 2)} | {fmm(row['cpu_us_per_event'], 2)} | "
              f"{fmm(row['rss_mib'], 1)} |")
    a("")
    a("*printed*: lines of the storm's ports. *recursion_misses*: events the kernel skipped "
      "the tool's main program for; each one not in *skipped (reported)* was caught by its "
      "catcher program (bpf/nested.bpf.h). *unreported*: events the main program was "
      "offered since load (all traffic: run_cnt + recursion_misses) minus lines printed, "
      "lost and skipped reported — what vanished without a word. *BPF ns/event*: the run "
      "time of all the tool's programs (main and catcher) per event of the tracepoint. "
      "*floor ns/run*: the empty program on the same tracepoint in the same trial. CPU per "
      "event: per line printed (all traffic).")
    a("")
    a("Ratios ours/peer (medians):")
    a("")
    a("| offered | slowdown | BPF ns/event | CPU µs/event | peak RSS |")
    a("|---|---|---|---|---|")
    for rate in TOOLS["tcpstates"]["rates"]:
        o, p = st.get(str(rate), {}).get("ours"), st.get(str(rate), {}).get("peer")
        if not (o and p):
            continue
        sl = ratio(med(o, "slowdown"), med(p, "slowdown"))
        a(f"| {rate_label(rate)} | {fmt(sl, 2) if sl is not None and med(p, 'slowdown') > 0.02 else '– (peer < 2%)'} | "
          f"{fmt(ratio(med(o, 'bpf_ns_per_event'), med(p, 'bpf_ns_per_event')), 2)} | "
          f"{fmt(ratio(med(o, 'cpu_us_per_event'), med(p, 'cpu_us_per_event')), 2)} | "
          f"{fmt(ratio(med(o, 'rss_mib'), med(p, 'rss_mib')), 2)} |")
    a("")
    a("Per-socket state and the container filter, ratios to `ours` (medians of BPF ns/run): "
      "`ours-table` runs the `raw_tp` programs (`TCPTOOLS_RAW_TP=1`), which keep state in the "
      "fixed 10,240-socket table: what Linux 5.10 runs; `ours-cgroup` adds `-c` on the "
      "hierarchy's root, so every socket is read for its cgroup and passes.")
    a("")
    a("| offered | ours BPF ns/run | ours-table | table / ours | ours-cgroup | cgroup / ours |")
    a("|---|---|---|---|---|---|")
    for rate in TOOLS["tcpstates"]["rates"]:
        rows = st.get(str(rate), {})
        o, t, c = rows.get("ours"), rows.get("ours-table"), rows.get("ours-cgroup")
        if not (o and t and c):
            continue
        on, tn, cn = (med(r, "bpf_ns_per_event") for r in (o, t, c))
        a(f"| {rate_label(rate)} | {fmt(on)} | {fmt(tn)} | {fmt(ratio(tn, on), 2)} | "
          f"{fmt(cn)} | {fmt(ratio(cn, on), 2)} |")
    a("")
    a("peer-baseline.md (Debian 0.26, earlier runs on this machine kind): " + "; ".join(
        f"{rate_label(r)}: {t}" for r, t in PEER_BASELINE["tcpstates"]["rows"].items()) + ".")
    a("")
    if st.get("0") and any(v in st["0"] for v in SCALE_VARIANTS):
        a(scaling_section(st["0"]))
    if summary.get("pieces"):
        a(pieces_section(summary["pieces"]))

    a(exporter.report_section(summary))
    for tool, title, pb_key in (("tcpconnlat", "tcpconnlat (1 event per connection)", "set_state_ns"),
                                ("tcprtt", "tcprtt (10 round trips per connection; events = tcp_probe runs)",
                                 "ns_per_run")):
        s = summary.get(tool, {})
        a(f"## {title}")
        a("")
        a("bcc's tools cannot attach on this kernel (kprobe/fentry only): compared with the "
          "floor and with *bcc (reference)*, bcc's handler rewritten for `tp_btf` "
          "(`bench/bpf/bench_bcc.bpf.c`), measured in the same trials, and with bcc HEAD's "
          "figures from peer-baseline.md." + (" `ours-table`: the `raw_tp` program "
                                      "(`TCPTOOLS_RAW_TP=1`), whose connect starts live in "
                                      "the fixed hash table instead of socket storage, as on "
                                      "Linux 5.10."
                                      if "ours-table" in TOOLS[tool]["variants"] else ""))
        a("")
        a("| offered | variant | achieved conn/s | slowdown / rate | events expected | printed | "
          "lost (reported) | skipped (reported) | recursion_misses | unreported | BPF ns/event | "
          "floor ns/run | × floor | bcc ns/run (peer-baseline.md) | CPU µs/event | "
          "peak RSS MiB |")
        a("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for rate in TOOLS[tool]["rates"]:
            for variant in TOOLS[tool]["variants"]:
                row = s.get(str(rate), {}).get(variant)
                if not row or is_before(variant):
                    continue
                if variant == "baseline":
                    a(f"| {rate_label(rate)} | baseline | {fmm(row['achieved'])} | "
                      f"{held_text(row) if rate else '–'} | | | | | | | | | | | | |")
                    continue
                slow = fmm(row["slowdown"], 1, pct=True)
                if rate:
                    slow = f"{held_text(row)}; {slow}"
                if variant_kind(variant) == "reference":
                    a(f"| {rate_label(rate)} | bcc (reference) | {fmm(row['achieved'])} | {slow} | "
                      f"| {fmm(row['reference_records'])} | | | | | {fmm(row['bpf_ns_per_event'])} | "
                      f"{fmm(row['floor_ns_per_run'])} | {fmm(row['x_floor'], 2)} | | | |")
                    continue
                a(f"| {rate_label(rate)} | {variant} | {fmm(row['achieved'])} | {slow} | "
                  f"{fmm(row['expected'])} | {fmm(row['printed'])} | "
                  f"{fmm(row['lost_reported'])} | "
                  f"{fmm(row['skipped_reported'])} | {fmm(row['recursion_misses'])} | "
                  f"{fmm(row['unreported'])} | "
                  f"{fmm(row['bpf_ns_per_event'])} | {fmm(row['floor_ns_per_run'])} | "
                  f"{fmm(row['x_floor'], 2)} | {PEER_BASELINE[tool][pb_key].get(rate, '–')} | "
                  f"{fmm(row['cpu_us_per_event'], 2)} | {fmm(row['rss_mib'], 1)} |")
        a("")
        a("Ours / bcc's handler (bench/bpf/bench_bcc.bpf.c on tp_btf), BPF ns per event, "
          "medians of the same run:")
        a("")
        a("| offered | ours | bcc | ours / bcc | ours × floor | bcc × floor |")
        a("|---|---|---|---|---|---|")
        for rate in TOOLS[tool]["rates"]:
            o, b = s.get(str(rate), {}).get("ours"), s.get(str(rate), {}).get("bcc")
            if not (o and b):
                continue
            on, bn = med(o, "bpf_ns_per_event"), med(b, "bpf_ns_per_event")
            a(f"| {rate_label(rate)} | {fmt(on)} | {fmt(bn)} | {fmt(ratio(on, bn), 2)} | "
              f"{fmt(med(o, 'x_floor'), 2)} | {fmt(med(b, 'x_floor'), 2)} |")
        a("")
        if tool == "tcpconnlat":
            a("The reference writes bcc's record, padded to the size of ours, into a ring "
              "of its own that the bench drains (Method): the two do the same work per "
              "connection. Its *printed*: the records drained from that ring (all "
              "traffic's connects).")
            a("")
            a("*expected*: one per connection of the storm; *printed*: lines with the storm's "
              "DPORT; *unreported* = expected − printed − lost and skips reported (a skipped "
              "run need not lose a line, so it can go negative).")
            a("")
            a("bcc's tcpconnlat (peer-baseline.md): slowdown at max 14%; destroy_sock "
              "107–183 ns/run on top (2 per connection); CPU 16.6 / 6.6 / 3.3 µs per event "
              "at 1k / 10k / max; peak RSS 13.6–13.8 MiB; exec to header 30.8 ms. "
              "Our tcpconnlat attaches only `inet_sock_set_state`.")
        else:
            a("*expected*: `tcp_probe` runs + recursion misses of the tool's program since "
              "load (all traffic, unfiltered); *printed*: histogram samples.")
            a("")
            a("bcc's tcprtt (peer-baseline.md): slowdown at max 6% (within noise); peak RSS "
              "13.6–13.7 MiB; exec to header 35.4 ms.")
        a("")

    su = summary.get("startup", {})
    a("## Start-up (idle, separate starts, interleaved)")
    a("")
    a("| tool | exec to ready ms | peak RSS MiB |")
    a("|---|---|---|")
    for key in ("tcpstates/ours", "tcpstates/peer", "tcpconnlat/ours", "tcprtt/ours"):
        if key in su:
            a(f"| {key.replace('/ours', '').replace('tcpstates/peer', 'Debian tcpstates (peer)')} | "
              f"{fmm(su[key]['ready_ms'], 1)} | {fmm(su[key]['rss_mib'], 1)} |")
    a("")
    if section := pods.report_section():
        a(section)
    if section := series.report_section():
        a(section)

    a("## Targets")
    a("")
    a("| target | measured | |")
    a("|---|---|---|")
    for name, measured, ok in targets(summary):
        a(f"| {name} | {measured} | {verdict(ok)} |")
    a("")
    a(bounds_section())
    return "\n".join(L)


def scaling_section(rows: dict) -> str:
    """tcpstates at max with the storm on one CPU and on every CPU, into one shared ring, a
    ring per CPU, or none: BPF ns per event and the kernel's lock contention."""
    L = ["## Scaling: one CPU against every CPU, one shared ring against a ring per CPU", ""]
    a = L.append
    a("tcpstates at max. *Storm*: loadgen (clients, servers, and so the loopback softirqs "
      "that run the tracepoint) under `taskset -c 0`, or free on every CPU. *Buffer*: "
      "`TCPTOOLS_SHARED_RING=1` (one ring for every CPU), the default (a ring per CPU, "
      "merged in time order), or no tracer but a second empty program (the storm's own "
      "contention). *BPF ns/event*: the tool's main program and catcher per event, as in "
      "the tables above. Lock contention: `lock:contention_begin`/`contention_end` "
      "(`tp_btf`, `bench/bpf/contention.bpf.c`, loaded with the floor) counted over the "
      "floor's life (the tracer's start and drain included) per event of the tracepoint: "
      "every kernel lock that had to wait (socket locks, accept queues, timers, the "
      "rings' spinlocks), machine-wide (other load on the machine counts too), so the "
      "ring's lock is only part of it. *Spins*: spinlock and rwlock waits alone (the kind "
      "a ring's lock is), with the ns they spun. *Ring-lock waits*: the spins whose kernel "
      "stack passes through `__bpf_ringbuf_reserve` (its address range from "
      "`/proc/kallsyms`; `–` where it has none): a ring's own lock, any ring's (the "
      "tool's, or another tracer's on the machine), with the ns they spun.")
    a("")
    a("| storm | buffer | achieved conn/s | BPF ns/event | × floor | lost (reported) | "
      "contentions / 1k events | spins / 1k events | ns spun / event | events in the "
      "storm | ring-lock waits in the storm | µs spun on a ring's lock in the storm |")
    a("|---" * 12 + "|")
    for storm, storm_text in SCALE_STORMS.items():
        for buf, buf_text in SCALE_BUFFERS.items():
            row = rows.get(f"scale-{storm}-{buf}")
            if not row:
                continue
            tool_cells = ("– | – | –" if buf == "floor" else
                          f"{fmm(row['bpf_ns_per_event'])} | {fmm(row['x_floor'], 2)} | "
                          f"{fmm(row['lost_reported'])}")
            a(f"| {storm_text} | {buf_text} | {fmm(row['achieved'])} | {tool_cells} | "
              f"{fmm(row['contentions_per_kevent'], 1)} | {fmm(row['spins_per_kevent'], 1)} | "
              f"{fmm(row['spin_ns_per_event'], 1)} | {fmm(row['storm_events'])} | "
              f"{fmm(row['ring_waits'])} | {fmm(row['ring_spin_us'], 1)} |")
    a("")
    a("What 2 CPUs can show and what they cannot. In the kernel's ring buffer "
      "(kernel/bpf/ringbuf.c) every record is reserved under the ring's one spinlock, "
      "taken with interrupts off in `__bpf_ringbuf_reserve`, which reads the consumer "
      "position and writes the producer position and the record's header; the commit "
      "writes the header again. With the storm on CPU 0 one CPU writes the ring: the lock "
      "and those lines stay in its cache, so shared and per-CPU rings differ by the "
      "lookup of the CPU's ring alone. Spread over 2 CPUs, at most one other CPU can wait "
      "for the lock or pull its lines: the table shows the onset (contention per event "
      "and the ns per event of the shared ring against the per-CPU rings), not the "
      "growth. On a many-core host every CPU that changes a socket's state takes the same "
      "lock and writes the same producer line: the lock's busy share grows with the "
      "number of producers, waits lengthen as it nears saturation, and every reserve "
      "moves the lines between cores (further across sockets and NUMA nodes), so the "
      "cost per event of a shared ring rises with the cores while a ring per CPU keeps "
      "its lock and lines on its CPU (the reader's consumer position is the only line "
      "shared, written once per batch). Measuring that growth needs a host with many "
      "cores; this machine bounds only its first step.")
    a("")
    shared = rows.get("scale-spread-shared")
    if shared and shared.get("ring_waits") is not None and shared.get("storm_events"):
        a(f"In this run, with the storm on every CPU, the shared ring's lock was waited for "
          f"{fmt(med(shared, 'ring_waits'))} times (median) in a storm of "
          f"{fmt(med(shared, 'storm_events'))} events, {fmt(med(shared, 'ring_spin_us'), 1)} "
          "µs in all: on 2 CPUs the lock is almost never taken by both at once, so the "
          "difference between the two buffers here is the per-CPU ring's lookup and the "
          "lines the CPUs share, not waiting.")
        a("")
    return "\n".join(L)


def before_after_section(meta: dict, rows: dict) -> str:
    """The earlier binaries (--before) against today's, in the same storms: BPF ns per event
    over the floor, and whether their difference is beyond this run's noise."""
    before = meta.get("before", {})
    L = ["## Before and after", ""]
    a = L.append
    a(f"*Before*: the release binaries of `{before.get('commit', '?')}` (`--before "
      f"{before.get('dir', '?')}`); *after*: this tree's. Both ran as variants of the same "
      "storms: same repetitions, rates, rotation (the earlier binary listed after today's) "
      f"and floor (variants `before` and `{exporter.BEFORE}` in the JSON). *ns/event over "
      "the floor*: a tool's BPF ns per event (all its programs, as in its section; the "
      "exporter's set_state program and catcher per state change, as in its section) minus "
      "the floor's empty program's ns/run in the same trial. *after / before*: of the medians; in brackets the range of the "
      "ratios within each repetition. *noise*: (max − min) / median of the repetitions, the "
      "larger of before's and after's; a difference is *beyond noise* when after / before "
      "is further from 1 than that.")
    a("")
    a("| tool | offered | before ns/event over floor | after | after / before | noise | |")
    a("|---|---|---|---|---|---|---|")
    for label, by_rate in rows.items():
        for rate, row in by_rate.items():
            r, noise = row["ratio"], row["noise"]
            per_rep = row["ratio_per_rep"]
            rng = f" [{per_rep['min']:.2f}–{per_rep['max']:.2f}]" \
                if per_rep and per_rep["n"] > 1 else ""
            a(f"| {label} | {rate_label(int(rate))} | {fmm(row['before']['net_ns'])} | "
              f"{fmm(row['after']['net_ns'])} | "
              f"{'–' if r is None else f'**{r:.2f}**'}{rng} | "
              f"{'–' if noise is None else f'{noise * 100:.0f}%'} | "
              f"{change_verdict(r, noise)} |")
    a("")
    a("The same trials' workload figures, medians before → after: slowdown of the storm, "
      "tracer CPU per event (the exporter: per state change) and peak RSS.")
    a("")
    a("| tool | offered | slowdown | CPU µs/event | peak RSS MiB |")
    a("|---|---|---|---|---|")
    pct = exporter.pct
    for label, by_rate in rows.items():
        for rate, row in by_rate.items():
            b, f = row["before"], row["after"]
            a(f"| {label} | {rate_label(int(rate))} | "
              f"{pct(med(b, 'slowdown'))} → {pct(med(f, 'slowdown'))} | "
              f"{fmt(med(b, 'cpu_us_per_event'), 2)} → {fmt(med(f, 'cpu_us_per_event'), 2)} | "
              f"{fmt(med(b, 'rss_mib'), 1)} → {fmt(med(f, 'rss_mib'), 1)} |")
    a("")
    return "\n".join(L)


def change_verdict(r: float | None, noise: float | None) -> str:
    if r is None or noise is None:
        return "–"
    if abs(r - 1) <= noise:
        return "within noise"
    return "worse beyond noise" if r > 1 else "better beyond noise"


def pieces_section(pieces: dict) -> str:
    """The cost breakdown: what each piece of the tools' work costs alone, net of the
    floor, so a reader can see where a tool's ns over the floor go."""
    rates = TOOLS["tcpstates"]["rates"]
    at = rate_label(PIECES_FLOOR_RATE)
    L = ["### What each piece costs (bench/bpf/pieces.bpf.c, tcpstates storms)", ""]
    a = L.append
    a("`bench/pieces.rs` attaches one `tp_btf` program per piece of the work the tools do on "
      "`inet_sock_set_state`, each doing that piece alone, side by side in the tcpstates "
      "storms (same rates, repetitions, rotation and floor as the other variants; a "
      "reference: nothing printed, nothing counted). Each piece is its own program, so every "
      "piece pays a dispatch of its own; its *net* cost is its ns/run minus the floor's empty "
      "program's (`floor_set_state`) in the same trial, which saw the same events. A piece "
      "stands for one step of a handler taken alone: in one program the steps share a "
      "dispatch, registers and cache lines, so a tool costs roughly, not exactly, the floor "
      f"plus its pieces' net. *× floor ({at})*: net over the floor's ns/run, per trial, at "
      f"{at}: the unit of the tools' bounds (a tool at {FLOOR_FACTOR['tcpstates']:g}× the floor "
      f"spends {FLOOR_FACTOR['tcpstates'] - 1:g} floors on its pieces). Medians over the "
      "repetitions, ns per event; min and max in the JSON.")
    a("")
    a("| group | piece | what it does | " + " | ".join(f"{rate_label(r)} net ns" for r in rates)
      + f" | × floor ({at}) |")
    a("|---|---|---|" + "---|" * len(rates) + "---|")
    for group, name, what in piece_rows(pieces):
        cells = [net_text(med(pieces.get(str(r), {}).get("programs", {}).get(name), "net_ns"))
                 for r in rates]
        x = med(pieces.get(str(PIECES_FLOOR_RATE), {}).get("programs", {}).get(name), "x_floor")
        a(f"| {group} | {name} | {what} | " + " | ".join(cells) + f" | {net_text(x, 2)} |")
    a("")
    done = [r for r in rates if str(r) in pieces]
    a("The floor itself (`floor_set_state`, ns/run, the same trials): " + ", ".join(
        f"{rate_label(r)} {fmm(pieces[str(r)]['floor_ns_per_run'])}" for r in done) + ". "
      "All the pieces together slow the storm, so the fast columns saw fewer conn/s than the "
      "tools' trials; achieved: " + ", ".join(
          f"{rate_label(r)} {fmm(pieces[str(r)].get('achieved'))}" for r in done) + ".")
    a("")
    return "\n".join(L)


def net_text(v, digits=0) -> str:
    """A net cost as fmt() gives it, but 0 where it rounds to 0: a piece that costs nothing
    comes out a hair either side of the floor, and "-0" reads as a finding."""
    return fmt(0.0 if v is not None and round(v, digits) == 0 else v, digits)


def piece_rows(pieces: dict) -> list[tuple[str, str, str]]:
    """(group, piece, what it does) in PIECES_GROUPS' order, the group named on its first
    row only; then the programs of the run that the table does not know."""
    rows = []
    for group, members in PIECES_GROUPS.items():
        for i, (name, what) in enumerate(members.items()):
            rows.append((group if i == 0 else "", name, what))
    seen = {n for r in pieces.values() for n in r.get("programs", {})}
    rows += [("other", n, "–") for n in sorted(seen - set(PIECES_LIST))]
    return rows


BOUNDS_HEADING = "## What bounds it"


def bounds_section() -> str:
    """The hand-written closing section of the current BENCHMARKS.md, kept across runs."""
    try:
        text = REPORT.read_text()
    except OSError:
        text = ""
    at = text.find("\n" + BOUNDS_HEADING)
    if at >= 0:
        return text[at + 1:].rstrip("\n") + "\n"
    return BOUNDS_HEADING + "\n\n_To be written by the lead._\n"


def targets(summary: dict) -> list[tuple[str, str, bool | None]]:
    out = []
    st = summary.get("tcpstates", {}).get("0", {})
    o, p = st.get("ours"), st.get("peer")
    for variant, where in (("ours", "a file"), ("ours-pipe", "a pipe (`| cat > file`)")):
        row = st.get(variant)
        if not row:
            continue
        lost = row["lost_reported"]["max"] if row["lost_reported"] else None
        unacc = row["unreported"]["max"] if row["unreported"] else None
        ok = None if lost is None or unacc is None else (lost == 0 and unacc <= 0)
        out.append((f"tcpstates max, output to {where}: 0 records lost in every repetition "
                    "(none unreported)",
                    f"lost {fmm(row['lost_reported'])}; unreported {fmm(row['unreported'])}; "
                    f"printed {fmm(row['printed'])} of {fmm(row['expected'])} expected", ok))
    if o and p:
        mo, mp = med(o, "slowdown"), med(p, "slowdown")
        out.append((f"tcpstates max: workload slowdown ≤ {SLOWDOWN_VS_PEER:g}× peer's",
                    f"ours {fmm(o['slowdown'], 1, True)} vs peer {fmm(p['slowdown'], 1, True)} "
                    f"(ratio {fmt(ratio(mo, mp), 2)})",
                    None if mo is None or mp is None else mo <= SLOWDOWN_VS_PEER * mp))
        for key, label, digits, pct in (("bpf_ns_per_event", "BPF ns/event", 0, False),
                                        ("cpu_us_per_event", "tracer CPU/event", 2, False)):
            mo, mp = med(o, key), med(p, key)
            ok = None if mo is None or mp is None else mo <= 0.5 * mp
            out.append((f"tcpstates max: {label} ≤ ½ peer's",
                        f"ours {fmm(o[key], digits, pct)} vs peer {fmm(p[key], digits, pct)} "
                        f"(ratio {fmt(ratio(mo, mp), 2)})", ok))
    su = summary.get("startup", {})
    peer_su = su.get("tcpstates/peer")
    peer_rss = med(p, "rss_mib") if p else None
    peer_rss = peer_rss or (med(peer_su, "rss_mib") if peer_su else None) or 13.5
    peer_ready = med(peer_su, "ready_ms") if peer_su else None
    peer_ready = peer_ready or 18.5
    for tool in TOOLS:
        rows = summary.get(tool, {})
        rss = [med(rows.get(str(r), {}).get("ours"), "rss_mib") for r in TOOLS[tool]["rates"]]
        rss = max((x for x in rss if x is not None), default=None)
        if rss is not None:
            out.append((f"{tool}: peak RSS ≤ peer's", f"{fmt(rss, 1)} MiB (highest median over "
                        f"rates) vs {fmt(peer_rss, 1)} MiB (Debian tcpstates, this run)",
                        rss <= peer_rss))
        sr = su.get(f"{tool}/ours")
        if sr and sr["ready_ms"]:
            r, k = med(sr, "ready_ms"), READY_VS_PEER[tool]
            out.append((f"{tool}: exec-to-ready ≤ {'peer' if k == 1 else f'{k:g}× peer'}'s "
                        "(interleaved starts)",
                        f"{fmt(r, 1)} ms vs {fmt(peer_ready, 1)} ms (Debian tcpstates, this "
                        f"run; ratio {fmt(ratio(r, peer_ready), 2)})", r <= k * peer_ready))
        xs = [(r, med(rows.get(str(r), {}).get("ours"), "x_floor")) for r in TOOLS[tool]["rates"]]
        xs = [(r, x) for r, x in xs if x is not None]
        limit = FLOOR_FACTOR[tool]
        if xs:
            out.append((f"{tool}: BPF ns/event of all its programs ≤ {limit:g}× the floor "
                        "at every rate",
                        ", ".join(f"{rate_label(r)} {x:.2f}×" for r, x in xs),
                        all(x <= limit for _, x in xs)))
        sk = [(r, rows.get(str(r), {}).get("ours")) for r in TOOLS[tool]["rates"]]
        sk = [(r, row) for r, row in sk if row and row.get("skipped_reported")]
        if sk:
            out.append((f"{tool}: zero events skipped at every rate (kernel skips all caught)",
                        ", ".join(f"{rate_label(r)} {fmm(row['skipped_reported'])} of "
                                  f"{fmm(row['recursion_misses'])} misses" for r, row in sk),
                        all(row["skipped_reported"]["max"] == 0 for _, row in sk)))
        bc = [(r, ratio(med(rows.get(str(r), {}).get("ours"), "bpf_ns_per_event"),
                        med(rows.get(str(r), {}).get("bcc"), "bpf_ns_per_event")))
              for r in TOOLS[tool]["rates"]]
        bc = [(r, x) for r, x in bc if x is not None]
        k = BCC_FACTOR.get(tool, 1.0)
        if bc:
            out.append((f"{tool}: BPF ns/event ≤ "
                        + ("bcc's handler's" if k == 1 else
                           f"{k:g}× bcc's handler's writing the same record")
                        + " (same run)",
                        ", ".join(f"{rate_label(r)} {x:.2f}" for r, x in bc),
                        all(x <= k for _, x in bc)))
    out += scaling_target(st)
    cl = summary.get("tcpconnlat", {}).get("0", {}).get("ours")
    if cl:
        s = med(cl, "slowdown")
        out.append(("tcpconnlat max: slowdown ≤ ½ of bcc's 14% (7%)", fmm(cl["slowdown"], 1, True),
                    None if s is None else s <= 0.07))
    return out + exporter.targets(summary)


def scaling_target(st: dict) -> list[tuple[str, str, bool | None]]:
    """The scaling figure is a measurement to show, not a bound: met when all four of
    tcpstates' rows (one CPU and every CPU, shared and per-CPU rings) have their figures."""
    cells, complete = [], True
    for storm in SCALE_STORMS:
        pair = [med(st.get(f"scale-{storm}-{buf}"), "bpf_ns_per_event")
                for buf in ("shared", "percpu")]
        spins = [med(st.get(f"scale-{storm}-{buf}"), "ring_waits")
                 for buf in ("shared", "percpu")]
        complete = complete and None not in pair + spins
        cells.append(f"{storm}: shared {fmt(pair[0])} / per-CPU {fmt(pair[1])} ns/event, "
                     f"ring-lock waits {fmt(spins[0])} / {fmt(spins[1])} a storm")
    if not any(f"scale-{s}-shared" in st for s in SCALE_STORMS):
        return []
    return [("tcpstates: a scaling figure (BPF ns/event and lock contention, one CPU against "
             "every CPU, shared ring against per-CPU rings; see Scaling)", "; ".join(cells),
             complete)]


# ---------------------------------------------------------------- main

def machine_meta() -> dict:
    cpu_model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    return {"cpus": os.cpu_count(), "cpu_model": cpu_model, "mem_gib": mem_kib / 2**20,
            "kernel": platform.release()}


def check_inputs(need_peer: bool, tools: list[str]) -> None:
    missing = [str(p) for p in [LOADGEN, FLOOR, PIECES, exporter.binary()]
               + [RELEASE / t for t in TOOLS] if not p.exists()]
    if BEFORE is not None:
        wanted = tools + ([exporter.BINARY] if "tcpstates" in tools else [])
        gone = [str(BEFORE / b) for b in wanted if not (BEFORE / b).exists()]
        if gone:
            sys.exit("bench: missing: " + ", ".join(gone) + " (run `make bench-before REV=...`)")
    if need_peer and not PEER_TCPSTATES.exists():
        missing.append(f"{PEER_TCPSTATES} (apt-get install libbpf-tools)")
    if need_peer and not shutil.which("stdbuf"):
        missing.append("stdbuf (coreutils)")
    if "tcpstates" in tools and not shutil.which("taskset"):
        missing.append("taskset (util-linux; the scaling figure's storm on one CPU)")
    if missing:
        sys.exit("bench: missing: " + ", ".join(missing) +
                 " (run `cargo build --release --bins --examples`)")
    if os.geteuid() != 0:
        sys.exit("bench: must run as root (BPF, sysctls)")


def main() -> int:
    global BEFORE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition, short storms (development)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3; --quick: 1)")
    ap.add_argument("--seconds", type=float, help="storm length (default 4; --quick: 1.5)")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset")
    ap.add_argument("--startups", type=int, help="idle starts per tool (default 10; --quick: 5)")
    ap.add_argument("--soak", type=float, metavar="SECONDS",
                    help="the exporter's memory soak (default 600, --quick 60, when tcpstates "
                    "runs; 0: none)")
    ap.add_argument("--soak-rate", type=int, default=exporter.SOAK_RATE,
                    help=f"the soak storm's paced conn/s (default {exporter.SOAK_RATE})")
    ap.add_argument("--before", type=Path, metavar="DIR",
                    help="release binaries built from the commit before a refactor (`make "
                    "bench-before REV=...`), run beside today's in the same storms")
    ap.add_argument("--no-report", action="store_true",
                    help="write only bench/results/latest.json, not BENCHMARKS.md")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite BENCHMARKS.md from bench/results/latest.json, run nothing")
    args = ap.parse_args()
    if args.report_only:
        data = json.loads(RESULTS.read_text())
        if "before" in data["meta"]:
            add_before_variants()
        derive(data["trials"])
        summary = summarize(data["trials"], data["startup_probes"], data.get("soak"))
        REPORT.write_text(report(data["meta"], summary, "--quick" in data["meta"]["command"]))
        log(f"rewrote {REPORT.relative_to(ROOT)} from {RESULTS.relative_to(ROOT)}")
        return 0
    reps = args.reps or (1 if args.quick else 3)
    seconds = args.seconds or (1.5 if args.quick else 4.0)
    startups = args.startups or (5 if args.quick else 10)
    tools = [t for t in args.tools.split(",") if t]
    soak_seconds = exporter.soak_seconds(args.soak, args.quick, tools)
    for t in tools:
        if t not in TOOLS:
            sys.exit(f"bench: unknown tool {t!r}")
    if args.before:
        BEFORE = args.before.resolve()
        add_before_variants()
    check_inputs(need_peer="tcpstates" in tools, tools=tools)

    started = time.monotonic()
    meta = machine_meta() | {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python3 bench/run.py" + (" --quick" if args.quick else "")
        + (f" --before {args.before}" if args.before else ""),
        "reps": reps, "seconds": seconds, "startups": startups,
    }
    if BEFORE is not None:
        meta["before"] = {"dir": str(args.before), "commit": before_commit(BEFORE)}
    system = System()
    trials: list[dict] = []
    probes: list[dict] = []
    soak = None

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    tmp = Path(tempfile.mkdtemp(prefix="tcptools-bench-"))
    try:
        system.setup(need_tracefs="tcpstates" in tools)
        others = [int(p) for p in os.listdir("/proc") if p.isdigit()
                  and Path(f"/proc/{p}/comm").exists()
                  and Path(f"/proc/{p}/comm").read_text().strip() in
                  ("floor", "pieces", "tcpstates", "tcprtt", "tcpconnlat", "loadgen",
                   "tcptools-export")]
        if others:
            log(f"note: other tracers/storms already running (pids {others}): they add "
                "noise to every trial")
            meta["other_tracers_running"] = others
        ports = Ports()
        # Start-up probes, interleaved.
        probe_set = [(t, "ours") for t in tools]
        if "tcpstates" in tools:
            probe_set.append(("tcpstates", "peer"))
        for i in range(startups):
            for tool, variant in probe_set:
                probes.append(startup_probe(tool, variant, tmp))
        log(f"start-up probes done ({len(probes)})")
        meta["calibrated_max_rate"] = {}
        for rounds in sorted({TOOLS[t]["rounds"] for t in tools}):
            meta["calibrated_max_rate"][rounds] = calibrate(rounds, ports)
            log(f"untraced max with {rounds} rounds: {MAX_RATE[rounds]:.0f} conn/s")
        total = reps * sum(len(variant_rates(t, v)) for t in tools for v in TOOLS[t]["variants"])
        n = 0
        for rep in range(reps):
            for tool in tools:
                spec = TOOLS[tool]
                for rate in spec["rates"]:
                    variants = [v for v in spec["variants"] if rate in variant_rates(tool, v)]
                    k = rep % len(variants)
                    for variant in variants[k:] + variants[:k]:
                        n += 1
                        t0 = time.monotonic()
                        rec = trial(tool, variant, rate, ports, tmp, seconds)
                        rec["rep"] = rep
                        trials.append(rec)
                        load = rec.get("load", {})
                        log(f"{n}/{total} rep {rep + 1} {tool} {rate_label(rate)} {variant}: "
                            f"{load.get('rate', '-')} conn/s"
                            f"{' ERROR ' + rec['error'] if 'error' in rec else ''}"
                            f"{' LOADGEN ' + load['error'] if 'error' in load else ''}"
                            f" ({time.monotonic() - t0:.1f} s)")
        if soak_seconds:
            log(f"exporter soak: {soak_seconds:g} s at {args.soak_rate} conn/s")
            soak = exporter.soak(soak_seconds, args.soak_rate, ports, tmp)
            log(f"exporter soak done{': ERROR ' + soak['error'] if 'error' in soak else ''}")
    except KeyboardInterrupt:
        log("interrupted: stopping processes, restoring settings, no report")
        return 130
    finally:
        Proc.stop_all()
        system.restore()
        shutil.rmtree(tmp, ignore_errors=True)

    meta["runtime_s"] = time.monotonic() - started
    derive(trials)
    meta["foreign_events"] = sum(t.get("foreign_events", 0) for t in trials)
    meta["loadavg"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    summary = summarize(trials, probes, soak)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "summary": summary, "trials": trials,
                                   "startup_probes": probes, "soak": soak},
                                  indent=1, default=str) + "\n")
    if not args.no_report:
        REPORT.write_text(report(meta, summary, args.quick))
    log(f"done in {meta['runtime_s']:.0f} s: wrote {RESULTS.relative_to(ROOT)}"
        f"{'' if args.no_report else ' and ' + str(REPORT.relative_to(ROOT))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
