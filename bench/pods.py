#!/usr/bin/env python3
"""tcptools benchmarks with pods: a containerd of the bench's own with 100 pods (bench/pods.rs,
through the CRI as kubelet runs them), and two measurements with them:

1. the kernel filter of `tcpstates --pod NS/NAME` against `tcpstates -c` on that pod's cgroup
   directory (and unfiltered `tcpstates`), in the same storms, whose load generator runs in
   a child of the pod's cgroup: BPF ns per event, as bench/run.py measures it;
2. tcptools-exporter with 100 pods' traffic, `--group-by pod --max-groups 100` against
   `--group-by cgroup --max-groups 100` and no grouping: scrape time (median of N scrapes),
   series, bytes, and the exporter's RSS.

Writes bench/results/pods.json and its section of BENCHMARKS.md (bench/run.py's report
puts the same section in from that file). Run as root after `cargo build --release --bins
--examples` (`make bench-pods`). Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# This file is the module `pods` also when it runs as a script: bench/run.py imports it.
sys.modules.setdefault("pods", sys.modules[__name__])
import run  # noqa: E402
import exporter  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PODS_EXAMPLE = ROOT / "target" / "release" / "examples" / "pods"  # run.RELEASE's
RESULTS = ROOT / "bench" / "results" / "pods.json"
SECTION = "## Pods (a containerd of the bench's own)"

NAMESPACE = "tcpt-bench"
PODS = 100
# The storm's loadgen runs in this child of a pod's cgroup directory ("below" the pod: the
# pod directory itself holds the sandbox's container directory).
STORM_DIR = "storm"
# How long the example may take to start containerd and run the pods.
PODS_TIMEOUT = 600.0

# 1: the filter. Variants of tcpstates, in the same storms (the order rotates per rep).
FILTER_VARIANTS = ["pod", "cgroup", "none"]
FILTER_RATES = [20000, 0]
# 2: the exporter. Connections each pod's loadgen makes before the scrapes (10 state changes
# each: busier than any other cgroup of the machine in that time, so the pods win the groups).
EXPORTER_VARIANTS = ["pod", "cgroup", "none"]
CONNS_PER_POD = 200
MAX_GROUPS = 100
SCRAPES = 20
# Between the traffic and the first scrape: the runtime's names reach the exporter's cache.
NAMES_SETTLE = 2.0


def log(msg: str) -> None:
    print(f"[bench-pods {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the pods

class Pods:
    """bench/pods.rs: containerd and the pods while it runs; closing its stdin removes them."""

    def __init__(self, count: int, tmp: Path):
        self.err_path = tmp / "pods.err"
        t0 = time.monotonic()
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([str(PODS_EXAMPLE), str(count), NAMESPACE],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], PODS_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("bench/pods.rs gave no pods: "
                               + self.err_path.read_text(errors="replace")[-1500:])
        self.info = json.loads(line)
        self.info["wall_s"] = time.monotonic() - t0
        self.made: list[Path] = []

    @property
    def endpoint(self) -> str:
        return self.info["endpoint"]

    def pod(self, i: int) -> dict:
        return self.info["pods"][i]

    def dir(self, i: int) -> Path:
        return Path(self.info["cgroup2"]) / self.pod(i)["dir"].lstrip("/")

    def storm_dir(self, i: int) -> Path:
        path = self.dir(i) / STORM_DIR
        if not path.exists():
            path.mkdir()
            self.made.append(path)
        return path

    def close(self) -> dict:
        for path in self.made:
            try:
                path.rmdir()
            except OSError as err:
                log(f"could not remove {path}: {err}")
        # EOF on its stdin: the example removes the pods and containerd (its drop) and
        # prints how long that took. Not killed on a slow teardown: that would leave them.
        try:
            out, _ = self.proc.communicate(input="", timeout=300)
            return json.loads(out.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            return {"error": f"teardown: bench/pods.rs (pid {self.proc.pid}) still removing "
                    "the pods after 300 s"}
        except (ValueError, IndexError):
            return {"error": "teardown: " + self.err_path.read_text(errors="replace")[-500:]}


# ---------------------------------------------------------------- 1: the kernel filter

def filter_argv(variant: str, pods: Pods) -> list[str]:
    tool = str(run.RELEASE / "tcpstates")
    if variant == "pod":
        return [tool, "--pod", f"{NAMESPACE}/{pods.pod(0)['name']}",
                "--runtime-endpoint", pods.endpoint]
    if variant == "cgroup":
        return [tool, "-c", str(pods.dir(0))]
    return [tool]


def filter_trial(variant: str, rate: int, pods: Pods, ports: run.Ports, tmp: Path,
                 seconds: float) -> dict:
    """As bench/run.py's trial of tcpstates (floor beside it, fdinfo deltas over the storm),
    with the storm's loadgen in the first pod's storm directory."""
    conns, bound = run.storm_size(rate, 0, seconds)
    base = ports.take()
    rec: dict = {"variant": variant, "rate": rate, "conns_asked": conns, "base_port": base}
    floor = tracer = None
    try:
        floor = run.Proc([str(run.FLOOR)], tmp / "floor.out", tmp / "floor.err")
        if run.wait_ready(floor, "line") is None:
            rec["error"] = "floor not ready"
            return rec
        tracer = run.Proc(filter_argv(variant, pods), tmp / "tracer.out", tmp / "tracer.err")
        ready = run.wait_ready(tracer, "line")
        if ready is None:
            rec["error"] = "tracer not ready: " + (tmp / "tracer.err").read_text()[:300]
            return rec
        rec["ready_ms"] = round(ready, 2)
        progs0, floor0 = run.bpf_progs(tracer.pid), run.bpf_progs(floor.pid)
        rec["load"] = run.run_loadgen(base, conns, rate, 0, bound, cgroup=pods.storm_dir(0))
        run.wait_quiet(tracer.pid)
        progs1, floor1 = run.bpf_progs(tracer.pid), run.bpf_progs(floor.pid)
        tracer.stop()
        floor.stop()
        progs, fl = run.prog_delta(progs0, progs1), run.prog_delta(floor0, floor1)
        main = [p for n, p in progs.items() if not n.startswith(run.CATCHER_PREFIX)]
        ns = sum(p["run_time_ns"] for p in progs.values())
        runs = sum(p["run_cnt"] + p["recursion_misses"] for p in main)
        rec["progs"] = progs
        rec["bpf_runs"] = runs
        rec["bpf_ns_per_event"] = ns / runs if runs else None
        fprog = next((p for n, p in fl.items() if "set_state" in n), None)
        if fprog and fprog["run_cnt"]:
            rec["floor_ns_per_run"] = fprog["run_time_ns"] / fprog["run_cnt"]
            if rec["bpf_ns_per_event"]:
                rec["x_floor"] = rec["bpf_ns_per_event"] / rec["floor_ns_per_run"]
                rec["over_floor_ns"] = rec["bpf_ns_per_event"] - rec["floor_ns_per_run"]
        out = run.count_output("tcpstates", tmp / "tracer.out", base,
                               base + run.PORTS_PER_TRIAL - 1)
        rec["achieved"] = rec["load"].get("rate")
        rec["conns"] = rec["load"].get("conns")
        rec["expected"] = (rec["conns"] or 0) * run.EVENTS_PER_CONN + \
            run.EVENTS_PER_LISTENER * run.PORTS_PER_TRIAL
        rec["printed"] = out["storm_lines"]
        rec["foreign_lines"] = out["lines"] - out["storm_lines"]
        rec["lost_reported"], rec["skipped_reported"], rec["stderr_other"] = \
            run.stderr_losses(tmp / "tracer.err")
        return rec
    finally:
        for proc in (tracer, floor):
            if proc is not None:
                proc.stop()
        for name in ("floor.out", "floor.err", "tracer.out", "tracer.err"):
            (tmp / name).unlink(missing_ok=True)


# ---------------------------------------------------------------- 2: the exporter

def exporter_argv(variant: str, pods: Pods) -> list[str]:
    args = [str(exporter.binary()), "-l", f"127.0.0.1:{exporter.free_port()}"]
    if variant == "pod":
        args += ["--group-by", "pod", "--max-groups", str(MAX_GROUPS),
                 "--runtime-endpoint", pods.endpoint]
    elif variant == "cgroup":
        args += ["--group-by", "cgroup", "--max-groups", str(MAX_GROUPS)]
    return args


def status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def groups_of(body: str, variant: str) -> dict:
    """The series of a scrape and the groups its TCP metrics carry: how many, how many are
    the bench's pods (by name, or by their storm cgroup), and whether "other" is one."""
    samples = exporter.parse(body)
    groups = set()
    for name, labels, _ in samples:
        if not name.startswith("tcp_"):
            continue
        if variant == "pod":
            groups.add((labels.get("namespace", ""), labels.get("pod", "")))
        elif variant == "cgroup":
            groups.add(labels.get("cgroup", ""))
    if variant == "pod":
        ours = {g for g in groups if g[0] == NAMESPACE}
        other = ("other", "other") in groups
    elif variant == "cgroup":
        ours = {g for g in groups if g.endswith("/" + STORM_DIR) and "/kubepods/" in g}
        other = "other" in groups
    else:
        ours, other = set(), False
    return {"series": len(samples), "tcp_series": sum(1 for s in samples
                                                      if s[0].startswith("tcp_")),
            "groups": len(groups), "pod_groups": len(ours), "other_group": other}


def exporter_trial(variant: str, pods: Pods, ports: run.Ports, tmp: Path, scrapes: int) -> dict:
    rec: dict = {"variant": variant}
    proc = run.Proc(exporter_argv(variant, pods), tmp / "exp.out", tmp / "exp.err")
    try:
        ready = run.wait_ready(proc, "line")
        if ready is None:
            rec["error"] = "exporter not ready: " + (tmp / "exp.err").read_text()[:300]
            return rec
        rec["ready_ms"] = round(ready, 2)
        addr = exporter.listen_address(proc)
        t0 = time.monotonic()
        conns = 0
        for i in range(len(pods.info["pods"])):
            load = run.run_loadgen(ports.take(), CONNS_PER_POD, 0, 0, 30.0,
                                   cgroup=pods.storm_dir(i))
            if "error" in load:
                rec["error"] = f"loadgen in pod {i}: {load['error']}"
                return rec
            conns += load.get("conns") or 0
        rec["traffic_s"] = time.monotonic() - t0
        rec["conns"] = conns
        time.sleep(NAMES_SETTLE)
        # The first scrape chooses the groups (the busiest it sees); timed on its own.
        t1 = time.monotonic()
        body, error = exporter.scrape(addr)
        rec["first_scrape_ms"] = (time.monotonic() - t1) * 1000.0
        if error:
            rec["error"] = f"first scrape: {error}"
            return rec
        cpu0 = run.cpu_ns(proc.pid)
        times, sizes = [], []
        for _ in range(scrapes):
            t = time.monotonic()
            body, error = exporter.scrape(addr)
            times.append((time.monotonic() - t) * 1000.0)
            if error:
                rec["error"] = f"scrape: {error}"
                return rec
            sizes.append(len(body.encode()))
        cpu1 = run.cpu_ns(proc.pid)
        rec["scrape_ms"] = times
        rec["scrape_ms_median"] = statistics.median(times)
        rec["cpu_ms_per_scrape"] = (cpu1 - cpu0) / 1e6 / scrapes \
            if None not in (cpu0, cpu1) else None
        rec["bytes"] = sizes[-1]
        rec.update(groups_of(body, variant))
        rec["vmrss_kib"] = status_kib(proc.pid, "VmRSS")
        rec["vmhwm_kib"] = status_kib(proc.pid, "VmHWM")
        rec["stderr"] = (tmp / "exp.err").read_text(errors="replace")[:500]
        return rec
    finally:
        proc.stop()
        for name in ("exp.out", "exp.err"):
            (tmp / name).unlink(missing_ok=True)


# ---------------------------------------------------------------- summary and report

def summarize(filter_trials: list[dict], exporter_trials: list[dict]) -> dict:
    mmm = run.mmm
    out: dict = {"filter": {}, "exporter": {}}
    for rate in sorted({t["rate"] for t in filter_trials}, key=lambda r: r or 1 << 30):
        rows = {}
        for v in FILTER_VARIANTS:
            sel = [t for t in filter_trials if (t["rate"], t["variant"]) == (rate, v)]
            rows[v] = {k: mmm(t.get(k) for t in sel) for k in
                       ("bpf_ns_per_event", "floor_ns_per_run", "x_floor", "over_floor_ns",
                        "achieved", "printed", "expected", "foreign_lines", "ready_ms")}
            rows[v]["errors"] = [t["error"] for t in sel if "error" in t]
        # pod / cgroup within each repetition (the two back to back in the same rep).
        pairs = []
        for rep in sorted({t["rep"] for t in filter_trials}):
            a = {t["variant"]: t for t in filter_trials if (t["rep"], t["rate"]) == (rep, rate)}
            p, c = a.get("pod", {}), a.get("cgroup", {})
            if p.get("bpf_ns_per_event") and c.get("bpf_ns_per_event"):
                pairs.append(p["bpf_ns_per_event"] / c["bpf_ns_per_event"])
        rows["pod_over_cgroup"] = mmm(pairs)
        out["filter"][str(rate)] = rows
    for v in EXPORTER_VARIANTS:
        sel = [t for t in exporter_trials if t["variant"] == v]
        out["exporter"][v] = {k: mmm(t.get(k) for t in sel) for k in
                              ("scrape_ms_median", "first_scrape_ms", "cpu_ms_per_scrape",
                               "series", "tcp_series", "bytes", "groups", "pod_groups",
                               "vmrss_kib", "vmhwm_kib", "traffic_s", "conns")}
        out["exporter"][v]["other_group"] = [t.get("other_group") for t in sel]
        out["exporter"][v]["errors"] = [t["error"] for t in sel if "error" in t]
    return out


def mixed_sides(f: dict) -> bool:
    """Whether the pod / cgroup ratios fall on both sides of 1 across rates, or hold 1."""
    r = [rows["pod_over_cgroup"] for rows in f.values() if rows.get("pod_over_cgroup")]
    return any(x["min"] <= 1 <= x["max"] for x in r) or \
        (any(x["median"] > 1 for x in r) and any(x["median"] < 1 for x in r))


def mib(s):
    return {k: (v / 1024 if k != "n" else v) for k, v in s.items()} if s else None


def report_section(data: dict | None = None) -> str:
    """The section of BENCHMARKS.md, from bench/results/pods.json (or `data`); empty when
    there is none."""
    if data is None:
        try:
            data = json.loads(RESULTS.read_text())
        except (OSError, ValueError):
            return ""
    meta, s = data["meta"], data["summary"]
    fmm, rl = run.fmm, run.rate_label
    cd = meta.get("containerd", {})
    L: list[str] = []
    a = L.append
    a(SECTION)
    a("")
    a(f"Generated by `{meta['command']}` on {meta['date']}, separately from the sections above "
      f"(its own run: {meta['runtime_s'] / 60:.1f} min, {meta['reps']} repetition(s), storms of "
      f"~{meta['seconds']:g} s; load average at the end {meta['loadavg']}). Raw data: "
      "`bench/results/pods.json`.")
    a("")
    a(f"- Pods: `bench/pods.rs` starts Debian's containerd with a config, root and socket of "
      "its own and the pause image of `tests/pods/pause.c`, as the pod tests do "
      "(`tests/common/cri.rs`), and runs "
      f"{meta['pods']} host-network pods (`{NAMESPACE}/pod-000` …) through the CRI as kubelet "
      "would: RunPodSandbox with kubelet's labels and a cgroup_parent in its cgroupfs layout, "
      f"`PREFIX/kubepods/besteffort/pod<uid>`. Start (images built, containerd up, images "
      f"imported): {cd.get('start_s', 0):.1f} s; {meta['pods']} sandboxes: "
      f"{cd.get('run_total_s', 0):.1f} s ({cd.get('run_s_median', 0) * 1000:.0f} ms median "
      f"each, max {cd.get('run_s_max', 0) * 1000:.0f} ms); removal of all: "
      f"{cd.get('teardown_s', 0):.1f} s.")
    a(f"- Traffic in a pod: the storm's loadgen (`bench/loadgen.rs`, as above) is moved into "
      f"`<pod dir>/{STORM_DIR}`, a child of the pod's cgroup v2 directory that enables no "
      "controllers: below the pod, as a container's directory is.")
    a("")
    a("### The kernel filter: `--pod` against `-c` on the pod's directory")
    a("")
    a(f"tcpstates in the same storms, whose sockets are all the first pod's: `pod` = `tcpstates "
      f"--pod {NAMESPACE}/pod-000 --runtime-endpoint unix://SOCK` (the pod's directory found "
      "through the CRI's names), `cgroup` = `tcpstates -c <v2 mount><pod dir>`, `none` = "
      "`tcpstates` unfiltered. Both filters are the same kernel mechanism (the cgroup set, "
      "`bpf/container.bpf.h`); the question is whether `--pod` costs more per event. BPF "
      "ns/event and the floor as in the tcpstates section (all programs, per event of the "
      "tracepoint, the empty program beside them in the same trial); the variants rotate per "
      "repetition. *pod / cgroup*: the ratio of the two within each repetition. *printed*: the "
      "storm's state changes in the output against the expected "
      f"({run.EVENTS_PER_CONN} per connection + {run.EVENTS_PER_LISTENER} per listener): "
      "medians; the JSON has each trial's, and `lost_reported` (tcpstates' own loss lines).")
    a("")
    f = s["filter"]
    ratios = "; ".join(f"{rl(int(r))}: {fmm(rows['pod_over_cgroup'], 2)}"
                       for r, rows in f.items() if rows.get("pod_over_cgroup"))
    a(f"*What it says*: `--pod` / `-c` on the same directory, per repetition: {ratios}. "
      + ("Medians on both sides of 1 (or ranges holding 1): no consistent difference this "
         "run can see. " if mixed_sides(f) else "One side of 1 at every rate: see the spread "
         "before reading it as a cost (the machine is shared). ")
      + "Both load the same "
      "set (`cgroup_set`, `cgroup_set_levels`), so the kernel does the same work per event; "
      "`--pod` costs only its start (names asked of the runtime) and the thread that follows "
      "the runtime. Both filters cost more per event than no filter (the socket's cgroup read "
      "and the set's lookups, as `p_cgroup` in the pieces). A few storm lines short of the "
      "expected count in some trials, with no loss reported, occur in the unfiltered variant "
      "too, so they are not the filter's.")
    a("")
    a("| rate | variant | achieved conn/s | BPF ns/event | floor ns/run | over floor ns | "
      "× floor | printed / expected | pod / cgroup |")
    a("|---|---|---|---|---|---|---|---|---|")
    for rate, rows in s["filter"].items():
        for v in FILTER_VARIANTS:
            r = rows.get(v)
            if not r:
                continue
            pe = f"{run.fmt(run.med(r, 'printed'))} / {run.fmt(run.med(r, 'expected'))}"
            a(f"| {rl(int(rate))} | {v} | {fmm(r['achieved'])} | {fmm(r['bpf_ns_per_event'])} | "
              f"{fmm(r['floor_ns_per_run'])} | {fmm(r['over_floor_ns'])} | "
              f"{fmm(r['x_floor'], 2)} | {pe} | "
              f"{fmm(rows['pod_over_cgroup'], 3) if v == 'pod' else ''} |")
    a("")
    a(f"### tcptools-exporter with {meta['pods']} pods' traffic")
    a("")
    a(f"One exporter per variant, started fresh: then a loadgen of {CONNS_PER_POD} connections "
      f"in each pod's `{STORM_DIR}` directory in turn ({meta['pods']} cgroups with traffic), "
      f"{NAMES_SETTLE:g} s for the runtime's names, one scrape (it chooses the groups: the "
      f"busiest it sees), then {meta['scrapes']} `GET /metrics` back to back. `pod` = "
      f"`--group-by pod --max-groups {MAX_GROUPS} --runtime-endpoint unix://SOCK`, `cgroup` = "
      f"`--group-by cgroup --max-groups {MAX_GROUPS}`, `none` = no grouping. *scrape ms*: the "
      "median of the scrapes (request to last byte, plain HTTP, no gzip); *CPU*: the "
      "exporter's schedstat over them, per scrape. *series*: the samples of the last scrape "
      "(all families); *TCP*: of the `tcp_*` families. *groups*: distinct label sets of the "
      "TCP series (\"other\" and the group of sockets in no pod included); *pods*: of them, "
      "the bench's pods (by name; `cgroup`: by their storm directory). RSS: `VmRSS` and "
      "`VmHWM` after the scrapes. Other processes of the machine add their own groups.")
    a("")
    a("| variant | scrape ms | first scrape ms | CPU ms/scrape | series | TCP series | bytes | "
      "groups | pods | VmRSS MiB | VmHWM MiB |")
    a("|---|---|---|---|---|---|---|---|---|---|---|")
    for v in EXPORTER_VARIANTS:
        r = s["exporter"].get(v)
        if not r:
            continue
        a(f"| {v} | {fmm(r['scrape_ms_median'], 2)} | {fmm(r['first_scrape_ms'], 1)} | "
          f"{fmm(r['cpu_ms_per_scrape'], 2)} | {fmm(r['series'])} | {fmm(r['tcp_series'])} | "
          f"{fmm(r['bytes'])} | {fmm(r['groups'])} | {fmm(r['pod_groups'])} | "
          f"{fmm(mib(r['vmrss_kib']), 1)} | {fmm(mib(r['vmhwm_kib']), 1)} |")
    a("*What it says*: with 100 pods labeled, a scrape is ~38k series (the TCP families "
      "times ~101 groups) and takes tens of ms of the exporter's CPU, about 20× the ungrouped "
      "scrape; `--group-by pod` serves the same number of series as `--group-by cgroup` in "
      "fewer bytes (shorter labels), and its RSS stays within a few MiB of it: the names cache "
      "adds less than the longer cgroup strings. Bounded by `--max-groups`: at most that many "
      "groups plus \"other\", whatever the number of pods.")
    a("")
    return "\n".join(L)


def splice(report: str, section: str) -> str:
    """BENCHMARKS.md with its pods section replaced by `section` (or put before the
    Targets section, or at the end)."""
    lines = report.split("\n")
    start = next((i for i, l in enumerate(lines) if l == SECTION), None)
    if start is not None:
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i].startswith("## ")), len(lines))
    else:
        start = end = next((i for i, l in enumerate(lines) if l == "## Targets"), len(lines))
    return "\n".join(lines[:start] + section.rstrip("\n").split("\n") + [""] + lines[end:])


# ---------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=PODS, help=f"pods to run (default {PODS})")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--seconds", type=float, default=3.0, help="storm length (default 3)")
    ap.add_argument("--scrapes", type=int, default=SCRAPES,
                    help=f"timed scrapes per exporter (default {SCRAPES})")
    ap.add_argument("--no-report", action="store_true",
                    help="write only bench/results/pods.json, not BENCHMARKS.md")
    args = ap.parse_args()
    missing = [str(p) for p in (PODS_EXAMPLE, run.LOADGEN, run.FLOOR, exporter.binary(),
                                run.RELEASE / "tcpstates") if not p.exists()]
    if missing:
        sys.exit("bench-pods: missing " + ", ".join(missing)
                 + " (cargo build --release --bins --examples)")
    for tool in ("containerd", "runc", "gcc", "ctr"):
        if not shutil.which(tool):
            sys.exit(f"bench-pods: {tool} not found (make deps)")

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    started = time.monotonic()
    meta = run.machine_meta() | {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python3 bench/pods.py", "pods": args.pods, "reps": args.reps,
        "seconds": args.seconds, "scrapes": args.scrapes,
    }
    system = run.System()
    tmp = Path(tempfile.mkdtemp(prefix="tcptools-bench-pods-"))
    pods = None
    filter_trials: list[dict] = []
    exporter_trials: list[dict] = []
    try:
        system.setup(need_tracefs=False)
        ports = run.Ports()
        log(f"containerd and {args.pods} pods (bench/pods.rs)")
        pods = Pods(args.pods, tmp)
        runs = [p["run_s"] for p in pods.info["pods"]]
        meta["containerd"] = {"start_s": pods.info["start_s"],
                              "run_total_s": pods.info["run_total_s"],
                              "run_s_median": statistics.median(runs), "run_s_max": max(runs),
                              "wall_s": pods.info["wall_s"]}
        log(f"containerd up in {pods.info['start_s']:.1f} s, {args.pods} pods in "
            f"{pods.info['run_total_s']:.1f} s")
        meta["calibrated_max_rate"] = run.calibrate(0, ports)
        log(f"untraced max: {run.MAX_RATE[0]:.0f} conn/s")
        for rep in range(args.reps):
            k = rep % len(FILTER_VARIANTS)
            for rate in FILTER_RATES:
                for variant in FILTER_VARIANTS[k:] + FILTER_VARIANTS[:k]:
                    rec = filter_trial(variant, rate, pods, ports, tmp, args.seconds)
                    rec["rep"] = rep
                    filter_trials.append(rec)
                    log(f"filter rep {rep + 1} {run.rate_label(rate)} {variant}: "
                        f"{rec.get('achieved', '-')} conn/s, "
                        f"{run.fmt(rec.get('bpf_ns_per_event'))} ns/event, printed "
                        f"{rec.get('printed')}/{rec.get('expected')}"
                        f"{' ERROR ' + rec['error'] if 'error' in rec else ''}")
            k = rep % len(EXPORTER_VARIANTS)
            for variant in EXPORTER_VARIANTS[k:] + EXPORTER_VARIANTS[:k]:
                rec = exporter_trial(variant, pods, ports, tmp, args.scrapes)
                rec["rep"] = rep
                exporter_trials.append(rec)
                log(f"exporter rep {rep + 1} {variant}: scrape "
                    f"{run.fmt(rec.get('scrape_ms_median'), 2)} ms, {rec.get('series')} series, "
                    f"{rec.get('bytes')} bytes, groups {rec.get('groups')} "
                    f"(pods {rec.get('pod_groups')}), VmHWM {rec.get('vmhwm_kib')} KiB"
                    f"{' ERROR ' + rec['error'] if 'error' in rec else ''}")
    except KeyboardInterrupt:
        log("interrupted: stopping processes, removing the pods, no report")
        return 130
    finally:
        run.Proc.stop_all()
        if pods is not None:
            t = pods.close()
            meta.setdefault("containerd", {})["teardown_s"] = t.get("teardown_s")
            if "error" in t:
                log(t["error"])
        system.restore()
        shutil.rmtree(tmp, ignore_errors=True)

    meta["runtime_s"] = time.monotonic() - started
    meta["loadavg"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    summary = summarize(filter_trials, exporter_trials)
    data = {"meta": meta, "summary": summary, "filter_trials": filter_trials,
            "exporter_trials": exporter_trials}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=1, default=str) + "\n")
    if not args.no_report:
        run.REPORT.write_text(splice(run.REPORT.read_text(), report_section(data)))
    log(f"done in {meta['runtime_s']:.0f} s: wrote {RESULTS.relative_to(ROOT)}"
        f"{'' if args.no_report else ' and ' + str(run.REPORT.relative_to(ROOT))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
