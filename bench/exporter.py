"""tcptools-exporter in `make bench`: its variants beside tcpstates in the same storms (a
scrape after each storm checks its counts), the soak that watches its memory while it is
scraped every second, and their part of BENCHMARKS.md.

A plug-in of bench/run.py, which imports it and whose helpers (Proc, bpf_progs, cpu_ns,
run_loadgen, mmm, fmm, ...) it uses. Python 3.11, standard library only.
"""

from __future__ import annotations

import atexit
import http.client
import os
import re
import signal
import socket
import statistics
import threading
import time
from pathlib import Path

# run.py registers itself under this name before it imports this module, so this is the
# running harness (its Proc.live, its calibrated rates), not a second copy.
import run

# Variants of the tcpstates storms: the exporter as deployed (no filter, no groups), and
# with --group-by cgroup, the heavier configuration.
VARIANTS = ["exporter", "exporter-cgroup"]
# With `run.py --before DIR`: the exporter built from the commit before a refactor, as
# deployed (no filter, no groups), in the same storms; BENCHMARKS.md shows it only in its
# "Before and after" section.
BEFORE = "exporter-before"
# ... and with --group-by cgroup, beside exporter-cgroup.
BEFORE_CGROUP = "exporter-cgroup-before"
GROUPED = ("exporter-cgroup", BEFORE_CGROUP)
BINARY = "tcptools-exporter"

# The storm's sockets for the exporter-cgroup variant and the soak live in this child of
# the harness's own cgroup v2, so their series can be told from all other traffic.
STORM_CGROUP = "tcptools-bench-storm"

# The loopback storm's state changes (bench/loadgen.rs; peer-baseline.md): each connection
# once through every client and server transition, each listener opened and closed.
CLIENT = ["CLOSE>SYN_SENT", "SYN_SENT>ESTABLISHED", "ESTABLISHED>FIN_WAIT1",
          "FIN_WAIT1>FIN_WAIT2", "FIN_WAIT2>CLOSE"]
SERVER = ["LISTEN>SYN_RECV", "SYN_RECV>ESTABLISHED", "ESTABLISHED>CLOSE_WAIT",
          "CLOSE_WAIT>LAST_ACK", "LAST_ACK>CLOSE"]
PER_CONN = CLIENT + SERVER
PER_LISTENER = ["CLOSE>LISTEN", "LISTEN>CLOSE"]

SCRAPE_TIMEOUT = 10.0
# The soak: its storm's paced rate, how often it scrapes and samples, and what "flat" is.
SOAK_SECONDS, SOAK_SECONDS_QUICK = 600, 60
SOAK_RATE = 2000
SOAK_SCRAPE_EVERY = 1.0
SOAK_SAMPLE_EVERY = 5.0
SOAK_WINDOW = 60.0            # the first and the last minute (a quarter of a shorter soak)
FLAT_GROWTH_KIB = 1024        # flat: the last window's peak RSS < 1 MiB above the first's


def variants_beside(tool: str) -> list[str]:
    """The exporter's variants in `tool`'s storms: beside tcpstates, which it replaces."""
    return VARIANTS if tool == "tcpstates" else []


def is_exporter(variant: str) -> bool:
    """Whether a variant runs the exporter (today's or, with --before, the earlier one)."""
    return variant in VARIANTS or variant in (BEFORE, BEFORE_CGROUP)


# ---------------------------------------------------------------- the process and its scrape

def binary(release: Path | None = None) -> Path:
    return (release or run.RELEASE) / BINARY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def argv(variant: str, extra: tuple[str, ...] = ()) -> list[str]:
    earlier = variant in (BEFORE, BEFORE_CGROUP)
    args = [str(binary(run.BEFORE if earlier else None)), "-l",
            f"127.0.0.1:{free_port()}", *extra]
    return args + (["--group-by", "cgroup"] if variant in GROUPED else [])


def listen_address(proc: run.Proc) -> str:
    return proc.argv[proc.argv.index("-l") + 1]


def harness_cgroup() -> str:
    """The harness's own cgroup v2 path ("0::PATH" in /proc/self/cgroup)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return "/"


def storm_cgroup_label() -> str:
    return harness_cgroup().rstrip("/") + "/" + STORM_CGROUP


_made_cgroup: Path | None = None


def storm_cgroup(variant: str) -> Path | None:
    """Where the storm's loadgen runs: for exporter-cgroup, a child of the harness's
    cgroup v2 that enables no controllers (so its accounting, and the storm's cost, stay
    the harness's); None (the harness's cgroup) for every other variant."""
    global _made_cgroup
    if variant not in GROUPED:
        return None
    path = Path(run.cgroup2_root()) / storm_cgroup_label().lstrip("/")
    if _made_cgroup is None:
        path.mkdir(exist_ok=True)
        _made_cgroup = path
        atexit.register(remove_cgroup, path)
    return path


def remove_cgroup(path: Path) -> None:
    """At exit: ends a storm still in the cgroup (an interrupted soak's loadgen, which
    runs in a thread), then removes it."""
    try:
        for pid in (path / "cgroup.procs").read_text().split():
            os.kill(int(pid), signal.SIGKILL)
        run.wait_until(lambda: not (path / "cgroup.procs").read_text().strip(), 5.0, 0.05)
        path.rmdir()
    except OSError as err:
        run.log(f"could not remove {path}: {err}")


def scrape(addr: str) -> tuple[str | None, str | None]:
    """GET /metrics over plain HTTP: (body, None) or (None, error). http.client, not urllib:
    no proxy from the environment."""
    host, _, port = addr.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=SCRAPE_TIMEOUT)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        if resp.status != 200:
            return None, f"HTTP {resp.status}: {body[:200]}"
        return body, None
    except (OSError, http.client.HTTPException) as err:
        return None, f"{type(err).__name__}: {err}"
    finally:
        conn.close()


SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(body: str) -> list[tuple[str, dict, float]]:
    """The samples of a text-format exposition: (name, labels, value)."""
    out = []
    for line in body.splitlines():
        if line.startswith("#") or not (m := SAMPLE_RE.match(line)):
            continue
        labels = dict(LABEL_RE.findall(m.group(2) or ""))
        try:
            out.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            continue
    return out


def counts(body: str) -> dict:
    """What one scrape says: state changes by group and transition (families summed),
    connect attempts by group and outcome, and the exporter's own figures."""
    out: dict = {"transitions": {}, "attempts": {}, "programs": {}, "own": {}}
    for name, labels, value in parse(body):
        group = labels.get("cgroup", "")
        if name == "tcp_state_transitions_total":
            key = f"{labels.get('old_state')}>{labels.get('new_state')}"
            by = out["transitions"].setdefault(group, {})
            by[key] = by.get(key, 0) + int(value)
        elif name == "tcp_connect_attempts_total":
            by = out["attempts"].setdefault(group, {})
            by[labels.get("outcome")] = by.get(labels.get("outcome"), 0) + int(value)
        elif name in ("tcptools_exporter_bpf_runs_total", "tcptools_exporter_bpf_run_seconds_total"):
            key = name.removeprefix("tcptools_exporter_").removesuffix("_total")
            out["programs"].setdefault(labels.get("program", "?"), {})[key] = value
        elif name in ("tcptools_exporter_group_overflow_total", "process_resident_memory_bytes",
                      "process_cpu_seconds_total", "tcptools_exporter_events_caught_total",
                      "tcptools_exporter_events_skipped_total"):
            out["own"][name] = value
        elif name == "tcptools_exporter_groups":
            out["own"][f"groups_{labels.get('kind')}"] = value
    return out


def after_storm(proc: run.Proc) -> dict:
    """One scrape after the storm (the BPF and CPU figures are already taken): its time,
    its CPU and what it counted."""
    runs_before = prog_sum(run.bpf_progs(proc.pid), "set_state")["run_cnt"]
    cpu0, t0 = run.cpu_ns(proc.pid), time.monotonic()
    body, error = scrape(listen_address(proc))
    ms = (time.monotonic() - t0) * 1000.0
    cpu1 = run.cpu_ns(proc.pid)
    rec: dict = {"scrape_ms": round(ms, 2), "runs_before": runs_before,
                 "scrape_cpu_us": (cpu1 - cpu0) / 1000 if None not in (cpu0, cpu1) else None}
    if error:
        rec["error"] = error
        return rec
    rec["scrape_bytes"] = len(body)
    rec["storm_group"] = storm_cgroup_label() if "--group-by" in proc.argv else None
    return rec | counts(body)


# ---------------------------------------------------------------- derived figures

def prog_sum(progs: dict, prefix: str) -> dict:
    """The run figures of the exporter's programs on one tracepoint: set_state_btf and
    set_state_raw are both loaded, one attached."""
    keys = ("run_time_ns", "run_cnt", "recursion_misses")
    sel = [p for name, p in progs.items() if name.startswith(prefix)]
    return {k: sum(p.get(k, 0) for p in sel) for k in keys}


def check_counts(scraped: dict, conns: int, filtered: bool = False) -> dict:
    """What a scrape's counts say.

    *unreported*: state changes its set_state program ran for but the series do not hold,
    or hold twice. Other traffic runs while the exporter reads its maps, so the count is
    bracketed: at least the program's runs read from fdinfo just before the request, at
    most its runs as the exporter read them after its maps (its own metric, same scrape).
    A run the kernel skipped is not a run, but its catcher counts it instead
    (tcptools_exporter_events_caught_total, on both tracepoints: a looser upper bound).

    *storm*: for a grouped scrape, the storm cgroup's counts against the loadgen model:
    10 per connection and 2 per listener (`filtered`, -L with the storm's ports: the
    server side, 5 per connection), and its established connects against the connections."""
    out: dict = {}
    counted = sum(sum(by.values()) for by in scraped["transitions"].values())
    ss = scraped["programs"].get("set_state", {})
    own = scraped.get("own", {})
    out["skipped_since_load"] = int(own.get("tcptools_exporter_events_skipped_total", 0))
    caught = int(own.get("tcptools_exporter_events_caught_total", 0))
    if not filtered and "bpf_runs" in ss and scraped.get("runs_before") is not None:
        out["unreported"] = max(0, scraped["runs_before"] - counted) + \
            max(0, counted - int(ss["bpf_runs"]) - caught)
    group = scraped.get("storm_group")
    if group:
        per_conn = SERVER if filtered else PER_CONN
        got = scraped["transitions"].get(group, {})
        out["storm_counted"] = sum(got.values())
        out["storm_model"] = conns * len(per_conn) + run.PORTS_PER_TRIAL * len(PER_LISTENER)
        out["storm_shortfall"] = out["storm_model"] - out["storm_counted"]
        out["storm_unexpected"] = sum(n for k, n in got.items()
                                      if k not in per_conn and k not in PER_LISTENER)
        if not filtered:
            established = scraped["attempts"].get(group, {}).get("established", 0)
            out["storm_connects_short"] = conns - established
    return out


def derive(trials: list[dict]) -> None:
    """The exporter's figures per trial, and its ratios to tcpstates (`ours`) in the same
    repetition and rate. Overrides the tracer figures that mean nothing here (lines)."""
    ours = {(t["rep"], t["rate"]): t for t in trials
            if t["tool"] == "tcpstates" and t["variant"] == "ours"}
    for t in trials:
        if not is_exporter(t["variant"]) or "progs" not in t:
            continue
        state, probe = prog_sum(t["progs"], "set_state"), prog_sum(t["progs"], "tcp_probe")
        # The catchers (bpf/nested.bpf.h) run for every event too, as tcpstates' does.
        catch_state = prog_sum(t["progs"], "catch_state")
        catch_probe = prog_sum(t["progs"], "catch_probe")
        changes = state["run_cnt"]
        t["state_changes"] = changes
        if changes:
            t["set_state_ns"] = (state["run_time_ns"] + catch_state["run_time_ns"]) / changes
            t["all_ns"] = (state["run_time_ns"] + catch_state["run_time_ns"]
                           + probe["run_time_ns"] + catch_probe["run_time_ns"]) / changes
            t["tcp_probe_per_change"] = probe["run_cnt"] / changes
            t["tcp_probe_ns_per_run"] = probe["run_time_ns"] / probe["run_cnt"] \
                if probe["run_cnt"] else None
            t["cpu_us_per_change"] = t["cpu_us"] / changes if t.get("cpu_us") is not None \
                else None
        t["recursion_misses"] = state["recursion_misses"] + probe["recursion_misses"]
        t["cpu_us_per_event"] = t.get("cpu_us_per_change")
        sc = t.get("exporter", {})
        t["scrape_ms"] = sc.get("scrape_ms")
        t["scrape_cpu_ms"] = sc["scrape_cpu_us"] / 1000 if sc.get("scrape_cpu_us") is not None \
            else None
        t["unreported"] = t["printed"] = t["missing"] = None
        if "transitions" in sc and t.get("conns"):
            t.update(check_counts(sc, t["conns"]))
        # Lost: the main program's misses its catcher did not catch, as the exporter says.
        t["skipped"] = t.get("skipped_since_load", state["recursion_misses"])
        if "floor_fired" in t and t.get("storm_model"):
            t["not_fired"] = t["storm_model"] - t["floor_fired"]
        # The exporter's own metrics since load against /proc/PID/fdinfo since load.
        own = sc.get("programs", {}).get("set_state", {})
        life = prog_sum(t.get("progs_since_load", {}), "set_state")
        if own.get("bpf_runs") and life["run_cnt"]:
            t["self_reported_ns"] = own["bpf_run_seconds"] * 1e9 / own["bpf_runs"]
            t["fdinfo_ns_since_load"] = life["run_time_ns"] / life["run_cnt"]
        o = ours.get((t["rep"], t["rate"]))
        if o:
            t["ratio_set_state_ns"] = run.ratio(t.get("set_state_ns"), o.get("bpf_ns_per_event"))
            t["ratio_all_ns"] = run.ratio(t.get("all_ns"), o.get("bpf_ns_per_event"))
            t["ratio_cpu"] = run.ratio(t.get("cpu_us_per_change"), o.get("cpu_us_per_event"))


KEYS = ["achieved", "slowdown", "state_changes", "set_state_ns", "all_ns",
        "tcp_probe_per_change", "tcp_probe_ns_per_run", "floor_ns_per_run", "recursion_misses",
        "cpu_us_per_change", "scrape_ms", "scrape_cpu_ms", "rss_mib", "unreported",
        "skipped", "storm_counted", "storm_model", "storm_shortfall",
        "storm_unexpected", "storm_connects_short", "not_fired", "self_reported_ns",
        "fdinfo_ns_since_load", "ratio_set_state_ns", "ratio_all_ns", "ratio_cpu"]


def summarize(trials: list[dict], soak: dict | None) -> dict:
    rows: dict = {}
    for t in trials:
        if is_exporter(t["variant"]):
            rows.setdefault(str(t["rate"]), {}).setdefault(t["variant"], []).append(t)
    out: dict = {"storms": {}}
    for rate, by_variant in rows.items():
        for variant, sel in by_variant.items():
            row = {k: run.mmm(t.get(k) for t in sel) for k in KEYS}
            row["held"] = [t.get("held") for t in sel]
            row["errors"] = [t["error"] for t in sel if "error" in t] + \
                [t["exporter"]["error"] for t in sel if "error" in t.get("exporter", {})]
            out["storms"].setdefault(rate, {})[variant] = row
    if soak:
        out["soak"] = summarize_soak(soak)
    return out


# ---------------------------------------------------------------- the soak

def vm_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def soak_seconds(requested: float | None, quick: bool, tools: list[str]) -> float:
    """--soak, or its default: 600 s (60 with --quick) when tcpstates' storms run, so that
    a run of another tool alone is not held up."""
    if requested is not None:
        return requested
    if "tcpstates" not in tools:
        return 0
    return SOAK_SECONDS_QUICK if quick else SOAK_SECONDS


def soak(seconds: float, rate: int, ports: run.Ports, tmp: Path) -> dict:
    """A paced storm of `seconds` in the storm cgroup under `tcptools-exporter --group-by
    cgroup`, scraped every second; RSS, CPU and BPF runs sampled every few seconds.

    The exporter counts only the storm's listening ports (-L): every cgroup with TCP
    traffic is a group, and on a shared machine other processes' cgroups come and go
    (a removed one keeps its series, as a number), so without the filter its memory
    follows their number (up to --max-groups) and says nothing about a leak."""
    cgroup = storm_cgroup("exporter-cgroup")
    base = ports.take()
    conns = int(rate * seconds)
    rec: dict = {"seconds": seconds, "rate": rate, "conns_asked": conns, "base_port": base,
                 "argv": None, "samples": [], "scrapes": []}
    storm_ports = ",".join(str(p) for p in range(base, base + run.PORTS_PER_TRIAL))
    proc = run.Proc(argv("exporter-cgroup", ("-L", storm_ports)), tmp / "soak.out",
                    tmp / "soak.err")
    rec["argv"] = proc.argv
    try:
        if run.wait_ready(proc, "line") is None:
            rec["error"] = "exporter not ready: " + (tmp / "soak.err").read_text()[:300]
            return rec
        addr, group, load = listen_address(proc), storm_cgroup_label(), {}
        storm = threading.Thread(daemon=True, target=lambda: load.update(
            run.run_loadgen(base, conns, rate, 0, seconds + 10, cgroup=cgroup)))
        t0 = time.monotonic()
        storm.start()
        next_scrape = next_sample = t0
        last_total = 0
        rec["count_decreases"] = 0
        while storm.is_alive():
            now = time.monotonic()
            if now >= next_sample:
                rec["samples"].append(soak_sample(proc.pid, now - t0))
                next_sample += SOAK_SAMPLE_EVERY
            if now >= next_scrape:
                s0 = time.monotonic()
                body, error = scrape(addr)
                entry = {"t": round(s0 - t0, 2), "ms": round((time.monotonic() - s0) * 1000, 2)}
                if error:
                    entry["error"] = error
                else:
                    scraped = counts(body)
                    total = sum(scraped["transitions"].get(group, {}).values())
                    rec["count_decreases"] += total < last_total
                    last_total = total
                    entry |= {"storm_counted": total, "bytes": len(body),
                              "groups": len(scraped["transitions"])}
                rec["scrapes"].append(entry)
                next_scrape += SOAK_SCRAPE_EVERY
            storm.join(timeout=max(0.0, min(next_scrape, next_sample) - time.monotonic()))
        rec["load"] = load
        run.wait_quiet(proc.pid)
        rec["samples"].append(soak_sample(proc.pid, time.monotonic() - t0))
        final = after_storm(proc)
        rec["final"] = final
        rec["vmhwm_kib"] = run.vm_hwm_kib(proc.pid)
        return rec
    finally:
        proc.stop()
        for name in ("soak.out", "soak.err"):
            (tmp / name).unlink(missing_ok=True)


def soak_sample(pid: int, t: float) -> dict:
    progs = run.bpf_progs(pid)
    state, probe = prog_sum(progs, "set_state"), prog_sum(progs, "tcp_probe")
    return {"t": round(t, 2), "rss_kib": vm_rss_kib(pid), "cpu_ns": run.cpu_ns(pid),
            "set_state_runs": state["run_cnt"], "set_state_ns": state["run_time_ns"],
            "tcp_probe_ns": probe["run_time_ns"]}


def summarize_soak(rec: dict) -> dict:
    out: dict = {k: rec.get(k) for k in ("seconds", "rate", "error", "count_decreases")}
    load = rec.get("load", {})
    if "transitions" in rec.get("final", {}) and load.get("conns"):
        out["check"] = check_counts(rec["final"], load["conns"],
                                    filtered="-L" in (rec.get("argv") or []))
    out["achieved"], out["conns"], out["load_errors"] = \
        load.get("rate"), load.get("conns"), load.get("errors")
    samples = [s for s in rec.get("samples", []) if s.get("rss_kib")]
    scrapes = rec.get("scrapes", [])
    ok = sorted(s["ms"] for s in scrapes if "error" not in s)
    out["scrapes"], out["scrape_errors"] = len(scrapes), len(scrapes) - len(ok)
    if ok:
        out["scrape_ms"] = {"min": ok[0], "median": statistics.median(ok),
                            "p99": ok[min(len(ok) - 1, int(len(ok) * 0.99))], "max": ok[-1]}
    if len(samples) < 2:
        return out
    span = samples[-1]["t"]
    window = min(SOAK_WINDOW, span / 4)
    first = [s["rss_kib"] for s in samples if s["t"] <= window]
    last = [s["rss_kib"] for s in samples if s["t"] >= span - window]
    rss = [s["rss_kib"] for s in samples]
    out["window_s"] = window
    out["rss_kib"] = {"start": rss[0], "end": rss[-1], "max": max(rss),
                      "first_window_peak": max(first), "last_window_peak": max(last)}
    growth = max(last) - max(first)
    out["growth_kib"], out["growth_pct"] = growth, growth / max(first) * 100
    out["flat"] = growth < FLAT_GROWTH_KIB
    out["slope_kib_per_min"] = slope([(s["t"] / 60, s["rss_kib"]) for s in samples
                                      if s["t"] >= window])
    out["vmhwm_kib"] = rec.get("vmhwm_kib")
    a, b = samples[0], samples[-1]
    changes = b["set_state_runs"] - a["set_state_runs"]
    out["state_changes"] = changes
    if changes and None not in (a["cpu_ns"], b["cpu_ns"]):
        out["cpu_pct"] = (b["cpu_ns"] - a["cpu_ns"]) / ((b["t"] - a["t"]) * 1e9) * 100
        out["cpu_us_per_change"] = (b["cpu_ns"] - a["cpu_ns"]) / 1000 / changes
        out["set_state_ns"] = (b["set_state_ns"] - a["set_state_ns"]) / changes
        out["all_ns"] = (b["set_state_ns"] + b["tcp_probe_ns"] - a["set_state_ns"]
                         - a["tcp_probe_ns"]) / changes
    out["minutes"] = per_minute(samples, scrapes)
    return out


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x."""
    if len(points) < 3:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else None


def per_minute(samples: list[dict], scrapes: list[dict]) -> list[dict]:
    """One row per minute of the soak (per window of a shorter one): RSS range, CPU,
    state changes per second and scrape times."""
    span = samples[-1]["t"]
    step = 60.0 if span >= 240 else max(span / 4, 1.0)
    rows = []
    start = 0.0
    while start + step <= span + 1e-9:
        end = start + step
        sel = [s for s in samples if start <= s["t"] <= end]
        scr = sorted(s["ms"] for s in scrapes if start <= s["t"] < end and "error" not in s)
        if len(sel) >= 2:
            a, b = sel[0], sel[-1]
            dt = b["t"] - a["t"]
            rows.append({
                "from_s": start, "to_s": min(end, span),
                "rss_min_kib": min(s["rss_kib"] for s in sel),
                "rss_max_kib": max(s["rss_kib"] for s in sel),
                "cpu_pct": (b["cpu_ns"] - a["cpu_ns"]) / (dt * 1e9) * 100
                if dt and None not in (a["cpu_ns"], b["cpu_ns"]) else None,
                "changes_per_s": (b["set_state_runs"] - a["set_state_runs"]) / dt if dt else None,
                "scrapes": len(scr),
                "groups_max": max((s.get("groups", 0) for s in scrapes if start <= s["t"] < end),
                                  default=None),
                "bytes_max": max((s.get("bytes", 0) for s in scrapes if start <= s["t"] < end),
                                 default=None),
                "scrape_ms_median": statistics.median(scr) if scr else None,
                "scrape_ms_max": scr[-1] if scr else None,
            })
        start = end
    return rows


# ---------------------------------------------------------------- report

def rows_at(summary: dict, rate: int) -> dict:
    return summary.get("exporter", {}).get("storms", {}).get(str(rate), {})


def measured_rows(summary: dict, rate: int) -> list[dict]:
    """The rows of today's exporter variants at a rate (not the --before one)."""
    rows = rows_at(summary, rate)
    return [rows[v] for v in VARIANTS if v in rows]


def report_section(summary: dict) -> str:
    fmm, med, rl = run.fmm, run.med, run.rate_label
    st = summary.get("tcpstates", {})
    ex = summary.get("exporter", {})
    L: list[str] = []
    a = L.append
    a("## tcptools-exporter (beside tcpstates, same storms)")
    a("")
    a("- Variants `exporter` (`tcptools-exporter -l 127.0.0.1:PORT`: no filter, no groups) "
      "and `exporter-cgroup` (`--group-by cgroup`) run in the tcpstates storms above: same "
      "repetitions, rates, rotation and floor as `ours` (tcpstates). For `exporter-cgroup` the "
      f"storm's loadgen runs in `{STORM_CGROUP}`, a child of the harness's cgroup v2 that "
      "enables no controllers (no cost), so its series can be told from other traffic.")
    a("- *BPF ns/change*: its `sock:inet_sock_set_state` program's and that program's "
      "catcher's `run_time_ns` / the program's `run_cnt` over the storm "
      "(`/proc/PID/fdinfo`, as for the tracers, whose figure includes their catcher too). "
      "*all programs*: its `tcp:tcp_probe` program's and catcher's run time added, still "
      "per state change (it runs "
      "*probe runs/change* times per state change in these storms). CPU: the process's "
      "schedstat from ready until quiet after the storm, as for the tracers, per state "
      "change; tcpstates' figure is per line printed (one per state change).")
    a("- After the storm and its figures, one `GET /metrics`: its time, its CPU and its counts. "
      "*unreported*: state changes its set_state program ran for that the series (all of "
      "them) do not hold, or hold twice — 0 when the maps lose nothing and count nothing "
      "twice. Other processes' traffic runs during the scrape, so the count must lie between "
      "the program's `run_cnt` read just before the request and "
      "`tcptools_exporter_bpf_runs_total` of the same scrape; *unreported* is the distance "
      "outside that range. *kernel skips*: the main program's `recursion_misses` its catcher "
      "did not catch (bpf/nested.bpf.h), which the exporter reports as "
      "`tcptools_exporter_events_skipped_total`; those state changes "
      "are missing from its counts, as they are from every tracer's output.")
    a("- *storm counted* (`exporter-cgroup`): the storm cgroup's `tcp_state_transitions_total` "
      "against the loadgen model (each of 10 transitions once per connection, CLOSE→LISTEN "
      "and LISTEN→CLOSE once per listener). *other*: transitions outside the model, the "
      "storm's own deviations: at the max rate some server sockets are reset in CLOSE_WAIT "
      "(CLOSE_WAIT→CLOSE, one fewer CLOSE_WAIT→LAST_ACK→CLOSE each). The "
      "*shortfall* is kernel skips (in pairs: FIN_WAIT1→FIN_WAIT2 and FIN_WAIT2→CLOSE of a "
      "client socket, handled in a softirq that interrupted the program on that CPU) and, "
      "in some storms at high rates, the same pairs missing for every program: the floor's "
      "runs and skips fall short of the model too (`not_fired` in the JSON, which other "
      "traffic offsets).")
    a("")
    a("| offered | variant | achieved conn/s | slowdown / rate | state changes | BPF ns/change "
      "| all programs ns/change | probe runs/change | floor ns/run | CPU µs/change | "
      "scrape ms | scrape CPU ms | peak RSS MiB | unreported | kernel skips | "
      "storm counted / model | shortfall | other |")
    a("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for rate in run.TOOLS["tcpstates"]["rates"]:
        rows = rows_at(summary, rate)
        o = st.get(str(rate), {}).get("ours")
        if o and rows:
            a(f"| {rl(rate)} | ours (tcpstates) | {fmm(o['achieved'])} | "
              f"{slowdown_text(o, rate)} | {fmm(o['events'])} | {fmm(o['bpf_ns_per_event'])} | "
              f"{fmm(o['bpf_ns_per_event'])} | – | {fmm(o['floor_ns_per_run'])} | "
              f"{fmm(o['cpu_us_per_event'], 2)} | – | – | {fmm(o['rss_mib'], 1)} | "
              f"{fmm(o['unreported'])} | {fmm(o['recursion_misses'])} | – | – | – |")
        for variant in VARIANTS:
            r = rows.get(variant)
            if not r:
                continue
            storm = f"{fmm(r['storm_counted'])} / {fmm(r['storm_model'])}" \
                if r["storm_counted"] else "–"
            a(f"| {rl(rate)} | {variant} | {fmm(r['achieved'])} | {slowdown_text(r, rate)} | "
              f"{fmm(r['state_changes'])} | {fmm(r['set_state_ns'])} | {fmm(r['all_ns'])} | "
              f"{fmm(r['tcp_probe_per_change'], 2)} | {fmm(r['floor_ns_per_run'])} | "
              f"{fmm(r['cpu_us_per_change'], 3)} | {fmm(r['scrape_ms'], 1)} | "
              f"{fmm(r['scrape_cpu_ms'], 1)} | {fmm(r['rss_mib'], 1)} | "
              f"{fmm(r['unreported'])} | {fmm(r['skipped'])} | {storm} | "
              f"{fmm(r['storm_shortfall']) if r['storm_counted'] else '–'} | "
              f"{fmm(r['storm_unexpected']) if r['storm_counted'] else '–'} |")
    a("")
    a("*ours (tcpstates)* rows: its figures from the table above (state changes = lines "
      "printed, all traffic; its *unreported* as defined there).")
    a("")
    a("Ratios to tcpstates (`ours`) in the same run: medians per rate, and in brackets the "
      "range of the ratios within each repetition. Targets: BPF ns per state change ≤ 0.6, "
      "process CPU ≤ 0.1.")
    a("")
    a("| offered | variant | BPF ns/change (set_state) | all programs | CPU | slowdown ours → exporter |")
    a("|---|---|---|---|---|---|")
    for rate in run.TOOLS["tcpstates"]["rates"]:
        o = st.get(str(rate), {}).get("ours")
        for variant in VARIANTS:
            r = rows_at(summary, rate).get(variant)
            if not (o and r):
                continue
            a(f"| {rl(rate)} | {variant} | "
              f"{ratio_text(med(r, 'set_state_ns'), med(o, 'bpf_ns_per_event'), r['ratio_set_state_ns'])} | "
              f"{ratio_text(med(r, 'all_ns'), med(o, 'bpf_ns_per_event'), r['ratio_all_ns'])} | "
              f"{ratio_text(med(r, 'cpu_us_per_change'), med(o, 'cpu_us_per_event'), r['ratio_cpu'])} | "
              f"{pct(med(o, 'slowdown'))} → {pct(med(r, 'slowdown'))} |")
    a("")
    agree = [abs(med(r, "self_reported_ns") / med(r, "fdinfo_ns_since_load") - 1)
             for rate in run.TOOLS["tcpstates"]["rates"] for r in measured_rows(summary, rate)
             if med(r, "self_reported_ns") and med(r, "fdinfo_ns_since_load")]
    if agree:
        a("Its own `tcptools_exporter_bpf_run_seconds_total / _bpf_runs_total` for set_state "
          f"(since load) agrees with `/proc/PID/fdinfo` within {max(agree) * 100:.1f}% "
          "(medians per rate and variant).")
        a("")
    a(soak_section(ex.get("soak")))
    return "\n".join(L)


def pct(v) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def slowdown_text(row: dict, rate: int) -> str:
    slow = run.fmm(row.get("slowdown"), 1, pct=True)
    return f"{run.held_text(row)}; {slow}" if rate else slow


def ratio_text(a, b, per_rep) -> str:
    r = run.ratio(a, b)
    if r is None:
        return "–"
    rng = f" [{per_rep['min']:.2f}–{per_rep['max']:.2f}]" if per_rep and per_rep["n"] > 1 else ""
    return f"**{r:.2f}**{rng}"


def soak_section(s: dict | None) -> str:
    L: list[str] = ["### Soak: memory under a scrape a second", ""]
    a = L.append
    if not s:
        a("Not run (`--soak 0`, or tcpstates' storms not in this run).")
        a("")
        return "\n".join(L)
    if s.get("error"):
        a(f"Failed: {s['error']}")
        a("")
        return "\n".join(L)
    mib = lambda kib: "–" if kib is None else f"{kib / 1024:.2f}"  # noqa: E731
    r = s.get("rss_kib", {})
    a(f"`tcptools-exporter --group-by cgroup -L PORTS` for {s['seconds']:g} s under a storm "
      f"paced at {s['rate']} conn/s in `{STORM_CGROUP}` ({run.fmt(s.get('achieved'))} conn/s "
      f"achieved, {s.get('conns') or 0:,} connections; {s.get('state_changes') or 0:,} "
      f"state changes of all traffic ran its program), scraped every {SOAK_SCRAPE_EVERY:g} s "
      f"by the harness over HTTP; `VmRSS` sampled every {SOAK_SAMPLE_EVERY:g} s. `-L` with "
      "the storm's 16 listening ports keeps the set of series fixed: every cgroup with TCP "
      "traffic is a group, other processes' cgroups come and go on this shared machine (a "
      "removed one keeps its series until it is retired, quiet for a scrape), and without "
      "the filter the "
      "exporter's memory follows their number up to `--max-groups` (100) rather than "
      f"showing a leak. *Flat*: the peak RSS of the last {s.get('window_s', SOAK_WINDOW):.0f} "
      f"s at most {FLAT_GROWTH_KIB // 1024} MiB above the peak of the first (a minute each; "
      "a quarter of a soak shorter than 4 minutes).")
    a("")
    check = s.get("check") or {}
    sm = s.get("scrape_ms") or {}
    down = s.get("count_decreases")
    never_down = "yes" if down == 0 else f"no ({down} decreases)"
    a("| RSS start MiB | end | max | first-window peak | last-window peak | growth | slope "
      "after the first window | peak (VmHWM) | flat |")
    a("|---|---|---|---|---|---|---|---|---|")
    sl = s.get("slope_kib_per_min")
    a(f"| {mib(r.get('start'))} | {mib(r.get('end'))} | {mib(r.get('max'))} | "
      f"{mib(r.get('first_window_peak'))} | {mib(r.get('last_window_peak'))} | "
      f"{s.get('growth_kib', 0) / 1024:+.2f} MiB ({s.get('growth_pct', 0):+.1f}%) | "
      f"{'–' if sl is None else f'{sl:+.1f} KiB/min'} | {mib(s.get('vmhwm_kib'))} | "
      f"{run.verdict(s.get('flat'))} |")
    a("")
    a(f"Scrapes: {s['scrapes']}, failed {s['scrape_errors']}; "
      f"{sm.get('min', 0):.1f}/**{sm.get('median', 0):.1f}**/{sm.get('max', 0):.1f} ms "
      f"(p99 {sm.get('p99', 0):.1f}). Storm counts never went down between scrapes: "
      f"{never_down}. "
      f"At the end: storm counted {check.get('storm_counted', 0):,} of the model's "
      f"{check.get('storm_model', 0):,} (server side: 5 per connection, 2 per listener), "
      f"kernel skips since load {check.get('skipped_since_load', '–')}. CPU {fmt_num(s.get('cpu_pct'), 2)}% of "
      f"one CPU, {fmt_num(s.get('cpu_us_per_change'), 3)} µs per state change with the "
      f"scrapes; BPF {fmt_num(s.get('set_state_ns'), 0)} ns per state change (filtered) "
      f"({fmt_num(s.get('all_ns'), 0)} with tcp_probe). Loadgen errors: "
      f"{s.get('load_errors', '–')}.")
    a("")
    a("| minute | RSS MiB (min–max) | CPU % | set_state runs/s (all traffic) | scrapes | scrape ms median / "
      "max | groups | scrape KiB |")
    a("|---|---|---|---|---|---|---|---|")
    for m in s.get("minutes", []):
        kib = m.get("bytes_max")
        a(f"| {m['from_s'] / 60:.1f}–{m['to_s'] / 60:.1f} | {mib(m['rss_min_kib'])}–"
          f"{mib(m['rss_max_kib'])} | {fmt_num(m['cpu_pct'], 2)} | "
          f"{fmt_num(m['changes_per_s'], 0)} | {m['scrapes']} | "
          f"{fmt_num(m['scrape_ms_median'], 1)} / {fmt_num(m['scrape_ms_max'], 1)} | "
          f"{m.get('groups_max', '–')} | {fmt_num(kib / 1024 if kib else None, 0)} |")
    a("")
    return "\n".join(L)


def fmt_num(v, digits) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def targets(summary: dict) -> list[tuple[str, str, bool | None]]:
    out = []
    st = summary.get("tcpstates", {})
    rates = run.TOOLS["tcpstates"]["rates"]
    for key, ours_key, label, bound in (
            ("set_state_ns", "bpf_ns_per_event", "BPF ns per state change (its set_state program and catcher)", 0.6),
            ("all_ns", "bpf_ns_per_event", "BPF ns per state change (all its programs)", 0.6),
            ("cpu_us_per_change", "cpu_us_per_event", "process CPU per state change", 0.1)):
        cells, oks = [], []
        for rate in rates:
            o = st.get(str(rate), {}).get("ours")
            rows = rows_at(summary, rate)
            r = run.ratio(run.med(rows.get("exporter"), key), run.med(o, ours_key))
            c = run.ratio(run.med(rows.get("exporter-cgroup"), key), run.med(o, ours_key))
            if r is None:
                continue
            oks.append(r <= bound)
            cells.append(f"{run.rate_label(rate)} {r:.2f}" + (f" ({c:.2f})" if c is not None else ""))
        if cells:
            out.append((f"exporter: {label} ≤ {bound}× tcpstates'",
                        ", ".join(cells) + "; --group-by cgroup in brackets", all(oks)))
    rows = [r for rate in rates for r in measured_rows(summary, rate)]
    if rows:
        worst = max((r["unreported"]["max"] for r in rows if r["unreported"]), default=None)
        complete = all(r["unreported"] and r["unreported"]["n"] == len(r["held"]) for r in rows)
        storm = [r for r in rows if r["storm_model"]]
        share = min((r["storm_counted"]["min"] / r["storm_model"]["max"] for r in storm),
                    default=None)
        skips = max((r["skipped"]["max"] for r in rows if r["skipped"]), default=0)
        other = max((r["storm_unexpected"]["max"] for r in storm if r["storm_unexpected"]),
                    default=0)
        out.append(("exporter: counts exact in every storm (unreported 0)",
                    f"largest unreported {worst}"
                    f"{'' if complete else ' (some trials without a scrape)'}; storm cgroup: "
                    f"at least {share * 100:.2f}% of the loadgen model counted (short by "
                    f"kernel skips, reported, up to {skips} a storm, and unfired pairs); up "
                    f"to {other} other transitions (sockets reset at the max rate)"
                    if share is not None else
                    f"largest unreported {worst}",
                    None if worst is None or not complete else worst == 0))
    s = summary.get("exporter", {}).get("soak")
    if s and "flat" in s:
        out.append((f"exporter: RSS flat over a {s['seconds']:g} s storm with a scrape a second "
                    f"(--group-by cgroup)",
                    f"{s['growth_kib'] / 1024:+.2f} MiB last vs first window peak "
                    f"({s['rss_kib']['first_window_peak'] / 1024:.2f} → "
                    f"{s['rss_kib']['last_window_peak'] / 1024:.2f} MiB); "
                    f"{s['scrape_errors']} of {s['scrapes']} scrapes failed", s["flat"]))
    return out
