#!/usr/bin/env python3
"""Series per node and scrape time of tcptools-exporter at 1, 10 and 100 pods, classic
(text) and native (protobuf), at the DaemonSet's flags and with every histogram per pod.

Needs root. Pods are cgroups laid out as kubelet's cgroupfs driver does
(`tcpt-series-bench/kubepods/besteffort/pod<uid>/<container>`, no runtime: pods are named
by uid); traffic is loopback in a network namespace of its own: from each pod's container,
2 connections over IPv4 and 2 over IPv6 (a byte each way) and as many refused connects.
Each exporter starts fresh, scrapes once (the groups are placed), then SCRAPES times in
each format. Writes bench/results/series.json and its section of BENCHMARKS.md
(bench/run.py puts it back when it rewrites the file).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "series.json"
REPORT = ROOT / "BENCHMARKS.md"
SECTION = "## Series per node (classic and native)"
NETNS = "tcpt-series-bench"
PORT = 48380
SERVER_PORT = 48381
REFUSED_PORT = 48382
PODS = (1, 10, 100)
# The kernel memory column computed for a node this big (possible CPUs).
BIG_NODE_CPUS = 192
SCRAPES = 10
PROTOBUF = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
            "encoding=delimited")
HIST_FAMILIES = ("tcp_rtt_seconds", "tcp_connect_latency_seconds", "tcp_state_duration_seconds")

# The same traffic as tests/exporter_series_live.rs: one script for both.
TRAFFIC = (Path(__file__).resolve().parent.parent / "tests/series/traffic.py").read_text()

SERVER = r"""
import socket, sys, threading
port = int(sys.argv[1])
def serve(host, family):
    l = socket.socket(family)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, port))
    l.listen(128)
    def loop():
        while True:
            c, _ = l.accept()
            c.recv(1)
            c.sendall(b'y')
            c.close()
    threading.Thread(target=loop, daemon=True).start()
serve('127.0.0.1', socket.AF_INET)
serve('::1', socket.AF_INET6)
print('ready', flush=True)
sys.stdin.readline()
"""


def cgroup2_mount() -> Path:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    sys.exit("series.py: no cgroup2 mount")


def daemonset_args() -> list[str]:
    text = (ROOT / "contrib" / "kubernetes" / "daemonset.yaml").read_text()
    line = next(l.strip() for l in text.splitlines() if l.strip().startswith("args: ["))
    args = line.split('"')[1::2]  # every argument is quoted
    return args[2:]  # after --listen ADDRESS


def remove_tree(path: Path) -> None:
    if not path.exists():
        return
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        sub.rmdir()
    path.rmdir()


def in_netns(*argv: str) -> list[str]:
    return ["ip", "netns", "exec", NETNS, *argv]


def get(accept: str | None) -> tuple[float, bytes]:
    """A scrape from inside the namespace: (ms to the last byte, body)."""
    code = ("import sys, time, urllib.request\n"
            "r = urllib.request.Request(sys.argv[1])\n"
            "if sys.argv[2]: r.add_header('Accept', sys.argv[2])\n"
            "t = time.monotonic(); b = urllib.request.urlopen(r, timeout=30).read()\n"
            "sys.stderr.write(str((time.monotonic() - t) * 1000)); sys.stdout.buffer.write(b)\n")
    out = subprocess.run(in_netns("python3", "-c", code, f"http://127.0.0.1:{PORT}/metrics",
                                  accept or ""), capture_output=True, check=True)
    return float(out.stderr), out.stdout


def series(text: str) -> tuple[int, int]:
    """The samples of a text scrape, and the series of the same scrape in the protobuf
    format: a histogram's buckets, sum and count are one native histogram."""
    samples = [l for l in text.splitlines() if l and not l.startswith("#")]
    hist_lines = [l for l in samples if l.startswith(HIST_FAMILIES)]
    histograms = [l for l in hist_lines if l.split("{")[0].endswith("_count")]
    return len(samples), len(samples) - len(hist_lines) + len(histograms)


def served_series(text: str) -> int:
    line = next(l for l in text.splitlines() if l.startswith("tcptools_exporter_series "))
    return int(float(line.split()[1]))


def possible_cpus() -> int:
    """The count in /sys/devices/system/cpu/possible ("0-1", "0-3,8-11")."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    ranges = [r.split("-") for r in text.split(",")]
    return sum(int(r[-1]) - int(r[0]) + 1 for r in ranges)


def map_memory(text: str) -> tuple[int, int]:
    """The exporter's kernel map memory from its scrape (`tcptools_exporter_map_memory_bytes`,
    each map's memlock), split into the per-CPU maps' and the shared maps' bytes by the
    maps' types as bpftool lists them (names truncated to 15 characters there)."""
    types = {m.get("name", ""): m["type"] for m in
             json.loads(subprocess.run(["bpftool", "-j", "map", "show"], capture_output=True,
                                       check=True, text=True).stdout)}
    per_cpu = shared = 0
    for line in text.splitlines():
        if not line.startswith("tcptools_exporter_map_memory_bytes{"):
            continue
        name = line.split('map="', 1)[1].split('"', 1)[0]
        value = int(float(line.split()[-1]))
        if types.get(name[:15], "").startswith("percpu"):
            per_cpu += value
        else:
            shared += value
    return per_cpu, shared


def measure(binary: Path, pods: int, args: list[str], scrapes: int, base: Path) -> dict:
    containers = []
    for n in range(pods):
        pod = base / "kubepods" / "besteffort" / f"pod00000000-0000-4000-8000-{n:012d}"
        container = pod / ("c" * 64)
        container.mkdir(parents=True)
        containers.append(container)
    exporter = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{NETNS}", str(binary), "--listen",
         f"127.0.0.1:{PORT}", *args, *(["--runtime-endpoint", "none"] if args else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = subprocess.Popen(in_netns("python3", "-c", SERVER, str(SERVER_PORT)),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if not exporter.stdout.readline().startswith("Serving metrics"):
            sys.exit(f"series.py: the exporter did not start: {exporter.stderr.read()}")
        server.stdout.readline()
        procs = [str(c / "cgroup.procs") for c in containers]
        # nsenter, not `ip netns exec`, which remounts /sys and hides the cgroups.
        subprocess.run(["nsenter", f"--net=/run/netns/{NETNS}", "python3", "-c", TRAFFIC,
                        str(SERVER_PORT), str(REFUSED_PORT), "2", *procs],
                       check=True, timeout=300)
        time.sleep(1)
        get(None)  # places the groups
        text_ms, native_ms = [], []
        for _ in range(scrapes):
            ms, body = get(None)
            text_ms.append(ms)
            ms, native = get(PROTOBUF)
            native_ms.append(ms)
        text = body.decode()
        classic, native_series = series(text)
        if served_series(text) != classic:
            sys.exit(f"series.py: tcptools_exporter_series {served_series(text)}, "
                     f"but {classic} samples")
        per_cpu, shared = map_memory(text)
        return {
            "map_bytes_per_cpu_maps": per_cpu, "map_bytes_shared_maps": shared,
            "pods": pods, "args": args, "classic_series": classic,
            "native_series": native_series, "served": served_series(text),
            "classic_bytes": len(body), "native_bytes": len(native),
            "classic_ms": statistics.median(text_ms), "native_ms": statistics.median(native_ms),
        }
    finally:
        for p in (exporter, server):
            p.terminate()
            p.wait(timeout=10)
        for c in containers:
            remove_tree(c.parent)


def report_section(data: dict | None = None) -> str:
    if data is None:
        try:
            data = json.loads(RESULTS.read_text())
        except (OSError, ValueError):
            return ""
    L = [SECTION, "",
         f"Generated by `python3 bench/series.py` on {data['date']} (`make bench-series`, also in "
         f"`make bench`) with `{data['binary']}`, load average at the end {data['loadavg']}. Pods are cgroups in kubelet's cgroupfs layout with no runtime (named by "
         "uid); from each pod's container 2 connections over IPv4 and 2 over IPv6, a byte each "
         "way, and 4 refused connects: every family, both answered outcomes. *classic*: the "
         "samples of a text scrape (`tcptools_exporter_series` agrees); *native*: the series "
         "of the protobuf scrape (a native histogram is one); ms: the median of "
         f"{data['scrapes']} scrapes, request to last byte, no gzip. `daemonset` = the "
         f"DaemonSet's flags (`{' '.join(data['daemonset'])}`); `all per pod` = "
         "`--group-by pod` alone (every histogram per pod, the default); `no groups`: no "
         "flags. *kernel MiB*: the exporter's BPF maps as its "
         "`tcptools_exporter_map_memory_bytes` has them (each map's memlock, what the "
         f"kernel charges), here with {data['possible_cpus']} possible CPUs; *at "
         f"{BIG_NODE_CPUS} CPUs*: computed from the same figures, the per-CPU maps' bytes "
         f"(bpftool's map types) times {BIG_NODE_CPUS} / {data['possible_cpus']}, the shared "
         "maps' as they are (preallocated by --max-groups, 100 here; not by the pods "
         "seen).", "",
         "| flags | pods | classic series | native series | classic bytes | native bytes | "
         f"classic ms | native ms | kernel MiB | at {BIG_NODE_CPUS} CPUs |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["runs"]:
        here = r["map_bytes_per_cpu_maps"] + r["map_bytes_shared_maps"]
        big = (r["map_bytes_per_cpu_maps"] * BIG_NODE_CPUS / data["possible_cpus"]
               + r["map_bytes_shared_maps"])
        L.append(f"| {r['variant']} | {r['pods']} | {r['classic_series']} | "
                 f"{r['native_series']} | {r['classic_bytes']} | {r['native_bytes']} | "
                 f"{r['classic_ms']:.1f} | {r['native_ms']:.1f} | {here / 2**20:.1f} | "
                 f"{big / 2**20:.1f} |")
    L.append("")
    return "\n".join(L)


def splice(report: str, section: str) -> str:
    lines = report.split("\n")
    start = next((i for i, l in enumerate(lines) if l == SECTION), None)
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
    else:
        start = end = next((i for i, l in enumerate(lines) if l == "## Targets"), len(lines))
    return "\n".join(lines[:start] + section.rstrip("\n").split("\n") + [""] + lines[end:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "tcptools-exporter")
    ap.add_argument("--scrapes", type=int, default=SCRAPES)
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("series.py: needs root (BPF, cgroups, a network namespace)")
    if not opts.binary.exists():
        sys.exit(f"series.py: no {opts.binary} (make build)")
    base = cgroup2_mount() / "tcpt-series-bench"
    remove_tree(base)
    subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    subprocess.run(in_netns("ip", "link", "set", "lo", "up"), check=True)
    daemonset = daemonset_args()
    variants = [("daemonset", daemonset, PODS), ("all per pod", ["--group-by", "pod"], PODS),
                ("no groups", [], (100,))]
    runs = []
    try:
        for variant, args, pod_counts in variants:
            for pods in pod_counts:
                r = measure(opts.binary, pods, args, opts.scrapes, base)
                r["variant"] = variant
                print(f"{variant} {pods} pods: {r['classic_series']} classic, "
                      f"{r['native_series']} native series", flush=True)
                runs.append(r)
    finally:
        remove_tree(base)
        subprocess.run(["ip", "netns", "del", NETNS])
    data = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "scrapes": opts.scrapes,
            "possible_cpus": possible_cpus(),
            "daemonset": daemonset, "runs": runs,
            "binary": str(opts.binary.resolve().relative_to(ROOT)),
            "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3])}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")
    REPORT.write_text(splice(REPORT.read_text(), report_section(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
