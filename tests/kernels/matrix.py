#!/usr/bin/env python3
"""The kernel matrix: boots Debian's cloud kernels in qemu (TCG) and runs every tool inside each, via tests/kernels/init.sh."""

import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = ["tcpstates", "tcprtt", "tcpconnlat", "tcptools-exporter"]

# Kernel series -> the Debian suite whose cloud kernel it is, and the part of the package name
# (linux-image-<abi>-cloud-amd64) that varies: the newest ABI or patch number is booted.
SERIES = {
    "5.10": ("bullseye", r"5\.10\.0-(\d+)"),
    "6.1": ("bookworm", r"6\.1\.0-(\d+)"),
    "6.12": ("trixie", r"6\.12\.(\d+)\+deb13"),
}
# Any other series (the running kernel's, say "6.18") is looked for in trixie-backports.
BACKPORTS = "trixie-backports"


def suite_of(series):
    if series in SERIES:
        return SERIES[series]
    if not re.fullmatch(r"\d+\.\d+", series):
        raise SetupError(f"not a kernel series: {series!r} (want e.g. 6.18)")
    return BACKPORTS, re.escape(series) + r"\.(\d+)\+deb\d+"


def running_series():
    """The running kernel's MAJOR.MINOR."""
    return ".".join(os.uname().release.split(".")[:2])


# Checks init.sh reports per kernel, by tool: tcpstates on tp_btf and raw_tp, each over the
# ring buffer and the perf buffer; tcpconnlat on tp_btf + ring buffer and raw_tp + perf
# buffer; tcprtt on tp_btf and raw_tp; the exporter on tp_btf and raw_tp, grouped by cgroup,
# and grouped by pod (keyed by the parent of the socket's cgroup); tcpstates -c, tcpconnlat
# -c and tcprtt -c on tp_btf and raw_tp; each tool once more without vmlinux BTF. Unforced, tcpstates, tcpconnlat and the exporter attach with raw_tp
# before Linux 5.12 (5.10 here).
EXPECTED_CHECKS = {"tcpstates": 5, "tcpconnlat": 3, "tcprtt": 3, "exporter": 2,
                   "exporter --group-by cgroup": 1,
                   "exporter --group-by pod": 1, "tcptools-exporter": 1, "tcpstates -c": 2,
                   "tcpconnlat -c": 2, "tcprtt -c": 2}


class SetupError(Exception):
    """The matrix could not set itself up: a failure, never a skip."""


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def debian_mirror():
    """The Debian archive URI this machine's apt uses (never hard-coded)."""
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*"))
    for name in files:
        try:
            text = Path(name).read_text()
        except OSError:
            continue
        uris = re.findall(r"^URIs:\s*(\S+)", text, re.M)
        uris += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s", text, re.M)
        for uri in uris:
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    raise SetupError("no Debian archive (a URI ending in /debian) in the machine's apt sources")


class PrivateApt:
    """apt with its own sources file, lists and cache under WORK: the machine's apt config is
    read for nothing but the mirror's address and is never written."""

    def __init__(self, work):
        self.dir = work / "apt"
        for d in ["lists/partial", "cache/archives/partial", "sources.d", "preferences.d"]:
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        self.opts = []
        for key, val in [
            ("Dir::Etc::SourceList", self.dir / "sources.list"),
            ("Dir::Etc::SourceParts", self.dir / "sources.d"),
            ("Dir::Etc::PreferencesParts", self.dir / "preferences.d"),
            ("Dir::State::Lists", self.dir / "lists"),
            ("Dir::Cache", self.dir / "cache"),
            ("APT::Get::List-Cleanup", "0"),
        ]:
            self.opts += ["-o", f"{key}={val}"]

    def update(self, mirror, suites):
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        lines = [f"deb [signed-by={keyring}] {mirror} {suite} main\n" for suite in suites]
        (self.dir / "sources.list").write_text("".join(lines))
        res = subprocess.run(["apt-get", *self.opts, "-qq", "update"], capture_output=True, text=True)
        if res.returncode != 0:
            raise SetupError(f"private apt-get update failed: {res.stderr.strip()[:300]}")

    def kernel_packages(self):
        res = run(["apt-cache", *self.opts, "search", "--names-only", r"^linux-image-.*-cloud-amd64$"],
                  capture_output=True, text=True)
        return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]

    def download(self, package, dest):
        run(["apt-get", *self.opts, "-qq", "download", package], cwd=dest, capture_output=True)


def newest(packages, pattern):
    """The newest package of a series: the highest ABI or patch number."""
    best = None
    for p in packages:
        m = re.fullmatch(rf"linux-image-({pattern})-cloud-amd64", p)
        if m and (best is None or int(m.group(2)) > best[0]):
            best = (int(m.group(2)), m.group(1))
    return best and best[1] + "-cloud-amd64"


def fetch_kernels(work, series_wanted):
    """Resolves the newest cloud kernel of each series and caches its vmlinuz under WORK."""
    cache = work / "boot"
    cache.mkdir(parents=True, exist_ok=True)
    apt = PrivateApt(work)
    wanted = [(series, *suite_of(series)) for series in series_wanted]
    try:
        apt.update(debian_mirror(), sorted({suite for _, suite, _ in wanted}))
        packages = apt.kernel_packages()
    except SetupError as e:
        # Offline rerun: the kernels cached by an earlier run, if every series has one.
        packages = [f"linux-image-{d.name}" for d in cache.iterdir() if (d / "vmlinuz").exists()]
        if not all(newest(packages, pattern) for _, _, pattern in wanted):
            raise
        print(f"test-kernels: {e}; booting the kernels cached in {cache}", flush=True)
    kernels = []
    for series, suite, pattern in wanted:
        kver = newest(packages, pattern)
        if not kver:
            raise SetupError(f"no linux-image-{series}*-cloud-amd64 in {suite} "
                             f"(choose the series with --series or KERNEL_SERIES)")
        vmlinuz = cache / kver / "vmlinuz"
        if not vmlinuz.exists():
            with tempfile.TemporaryDirectory(dir=work) as tmp:
                t0 = time.monotonic()
                apt.download(f"linux-image-{kver}", tmp)
                debs = glob.glob(f"{tmp}/*.deb")
                if len(debs) != 1:
                    raise SetupError(f"apt-get download linux-image-{kver} gave {debs}")
                run(f"dpkg-deb --fsys-tarfile {debs[0]} | tar -x -C {tmp} ./boot/vmlinuz-{kver}",
                    shell=True)
                vmlinuz.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(f"{tmp}/boot/vmlinuz-{kver}", vmlinuz)
                print(f"fetched linux-image-{kver} ({time.monotonic() - t0:.0f} s)", flush=True)
        kernels.append((kver, vmlinuz))
    return kernels


def libraries(binary, check=True):
    """The shared libraries a binary loads (ldd), as absolute paths."""
    out = subprocess.run(["ldd", binary], check=check, capture_output=True, text=True).stdout
    return sorted(set(re.findall(r"(/\S+\.so[.\d]*)", out)))


def build_initramfs(work, bindir, traffic):
    """An uncompressed newc cpio: busybox, the tools, the libc they still link, traffic, init."""
    out = work / "initramfs.cpio"
    busybox = shutil.which("busybox")
    if not busybox or libraries(busybox, check=False):
        raise SetupError("busybox missing or not static: install busybox-static")
    with tempfile.TemporaryDirectory(dir=work) as root:
        root = Path(root)
        for d in ["bin", "dev", "proc", "sys", "tmp", "lib64", "lib/x86_64-linux-gnu"]:
            (root / d).mkdir(parents=True)
        shutil.copy(busybox, root / "bin/busybox")
        os.symlink("busybox", root / "bin/sh")
        shutil.copy(HERE / "init.sh", root / "init")
        os.chmod(root / "init", 0o755)
        shutil.copy(traffic, root / "bin/traffic")
        libs = set()
        for tool in TOOLS:
            src = bindir / tool
            if not src.exists():
                raise SetupError(f"{src} missing: run make release")
            shutil.copy(src, root / "bin" / tool)
            libs.update(libraries(src))
        for lib in libs:
            dest = root / lib.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.realpath(lib), dest)
        names = run("find . -mindepth 1 | sort", shell=True, cwd=root, capture_output=True).stdout
        with open(out, "wb") as f:
            run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=root, input=names, stdout=f)
    return out


# A VM the guest kernel itself reports stuck ("soft lockup") is ended at once instead of
# waiting out the timeout. With multi-threaded TCG that happened about once in ten boots
# (and a panic on an int3 in live-patched code), while a BPF program or the tcp_probe trace
# event was being attached; boots now run single-threaded TCG (see boot()). A boot that
# hangs, times out or dies before the tests end is still retried (RETRIES times at most),
# and the output says so.
LOCKUP = -1000
HANG = "VM hung"


def watch(vm, log):
    """Waits for qemu; returns its exit code, or LOCKUP after ending it."""
    while vm.poll() is None:
        time.sleep(1)
        if b"soft lockup" in log.read_bytes():
            os.killpg(vm.pid, signal.SIGKILL)
            vm.wait()
            return LOCKUP
    return vm.returncode


RETRIES = 2


def boot_with_retry(kver, vmlinuz, initramfs, logdir, args):
    """boot(), up to RETRIES more times while the VM hangs or times out; each such failure
    is a `retry` row."""
    rows, error, seconds = boot(kver, vmlinuz, initramfs, logdir, args)
    hangs = []
    while error and error.startswith((HANG, "boot timed out", "VM ended")) and len(hangs) < RETRIES:
        hangs.append(error)
        rows, error, more = boot(kver, vmlinuz, initramfs, logdir, args)
        seconds += more
    retries = [("retry", "-", f"ok (boot {i + 1} failed: {hang})") for i, hang in enumerate(hangs)]
    return [*rows, *retries], error, seconds


def boot(kver, vmlinuz, initramfs, logdir, args):
    """Boots one kernel, returns (rows, error, seconds); rows are (tool, hook_buffer, result)."""
    log = logdir / f"{kver}.log"
    cmd = [
        "timeout", "-k", "10", str(args.timeout),
        # thread=single: both vCPUs on one host thread. Multi-threaded TCG mis-executes the
        # kernel's live code patching across vCPUs (static keys flipped when a BPF program
        # or a trace event is attached): seen as "Oops: int3" in patched code, and as soft
        # lockups, in about one boot in ten.
        "qemu-system-x86_64", "-accel", "tcg,thread=single", "-m", "1024", "-smp", str(args.smp),
        "-nographic", "-no-reboot", "-kernel", str(vmlinuz), "-initrd", str(initramfs),
        "-append", f"console=ttyS0 panic=-1 quiet loglevel=1 "
                   f"matrix.conns={args.conns} matrix.rounds={args.rounds}",
    ]
    t0 = time.monotonic()
    with open(log, "wb") as f:
        # Its own session: ending it ends `timeout` and the qemu below it together.
        vm = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                              start_new_session=True)
        rc = watch(vm, log)
    seconds = time.monotonic() - t0
    text = log.read_text(errors="replace").replace("\r", "")
    rows = [tuple(line.split("|", 3)[1:]) for line in text.splitlines()
            if line.startswith("MATRIX|") and line.count("|") >= 3]
    running = re.search(r"MATRIX-KERNEL (\S+)", text)
    error = None
    if rc == LOCKUP:
        error = f"{HANG}: the guest kernel reported a soft lockup (log: {log})"
    elif rc == 124 or rc == 137:
        error = f"boot timed out after {args.timeout} s (log: {log})"
    elif "MATRIX-END" not in text:
        error = f"VM ended (qemu exit {rc}) before the tests finished (log: {log})"
    elif not running or running.group(1) != kver:
        error = f"VM ran kernel {running and running.group(1)}, not {kver}"
    return rows, error, seconds


# The markdown table of a run goes between these two lines of the page given with --doc.
DOC_BEGIN = "<!-- kernel matrix: generated by tests/kernels/matrix.py, do not edit -->"
DOC_END = "<!-- end of kernel matrix -->"
BUFFERS = {"ringbuf": "ring", "perfbuf": "perf", "-": "none"}


def hook_and_buffer(field):
    """A check's "HOOK BUFFER" field (init.sh) as the table's two cells."""
    if field == "no BTF":
        return "none (BTF hidden)", "none"
    hook, _, buffer = field.partition(" ")
    return hook, BUFFERS.get(buffer, buffer or "-")


def markdown_table(results, started, seconds, failed):
    """The run as a markdown table (kernel, tool, hook, buffer, result), one row per check,
    and a line saying when it ran and what it took."""
    lines = ["| kernel | tool | hook | buffer | result |", "|---|---|---|---|---|"]
    for kver, rows, error, _ in results:
        first = True
        cells = [(tool, *hook_and_buffer(field), result) for tool, field, result in rows]
        if error:
            cells.append(("boot", "-", "-", f"FAIL: {error}"))
        for tool, hook, buffer, result in cells:
            result = result.replace("|", "\\|")
            lines.append(f"| {f'`{kver}`' if first else ''} | `{tool}` | {hook} | {buffer} | {result} |")
            first = False
    boots = ", ".join(f"{kver} {secs:.0f} s" for kver, _, _, secs in results)
    lines += ["", f"Generated by `make test-kernels` on {started} ({os.uname().machine}, qemu TCG): "
                  f"{len(results)} kernels, {failed} failures, {seconds:.0f} s in all "
                  f"(boot and checks: {boots})."]
    return "\n".join(lines) + "\n"


def doc_parts(doc):
    """DOC's text before the table (through DOC_BEGIN) and after it (from DOC_END)."""
    text = doc.read_text()
    begin, end = text.find(DOC_BEGIN), text.find(DOC_END)
    if begin < 0 or end < begin:
        raise SetupError(f"{doc} has no lines {DOC_BEGIN!r} and {DOC_END!r} to put the table between")
    return text[:begin + len(DOC_BEGIN)] + "\n", text[end:]


def write_doc(doc, table):
    """Puts TABLE between DOC_BEGIN and DOC_END in DOC, leaving the rest of the page as it is."""
    before, after = doc_parts(doc)
    doc.write_text(before + table + after)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bindir", type=Path, default=Path("target/static/release"))
    ap.add_argument("--traffic", type=Path, default=Path("target/kernels/traffic"))
    ap.add_argument("--work", type=Path, default=Path("target/kernels"))
    ap.add_argument("--series", default=" ".join([*SERIES, "running"]),
                    help="kernel series to boot, e.g. '5.10 6.12'; 'running' is the running "
                         "kernel's series (from trixie-backports unless listed above)")
    ap.add_argument("--jobs", type=int, default=1, help="VMs booted at the same time")
    ap.add_argument("--smp", type=int, default=2,
                    help="vCPUs per VM (2: per-CPU perf buffers see events from both)")
    ap.add_argument("--timeout", type=int, default=300, help="seconds one boot may take")
    ap.add_argument("--conns", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--table", type=Path,
                    help="where to write the run as a markdown table (default WORK/matrix.md)")
    ap.add_argument("--doc", type=Path,
                    help="also put the table into this page, between its marker comments "
                         "(make kernels-doc: docs/kernels.md)")
    args = ap.parse_args()

    t0 = time.monotonic()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    logdir = work / "logs"
    logdir.mkdir(exist_ok=True)
    try:
        series = list(dict.fromkeys(running_series() if s == "running" else s
                                    for s in args.series.split()))
        if args.doc:
            doc_parts(args.doc)  # before the boots: a page without the markers fails at once
        kernels = fetch_kernels(work, series)
        initramfs = build_initramfs(work, args.bindir, args.traffic)
    except (SetupError, subprocess.CalledProcessError, OSError) as e:
        print(f"test-kernels: setup failed: {e}", file=sys.stderr)
        return 1

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(
            lambda k: (k[0], *boot_with_retry(k[0], k[1], initramfs, logdir, args)), kernels))

    failed = 0
    width = max(len(k) for k, *_ in results)
    checked = []
    for kver, rows, error, seconds in results:
        for tool, hook, result in rows:
            print(f"{kver:<{width}}  {tool:<17}  {hook:<14}  {result}")
            failed += not result.startswith("ok")
        counts = {}
        for tool, hook, _ in rows:
            if tool != "retry":
                counts[tool] = counts.get(tool, 0) + 1
        if not error and counts != EXPECTED_CHECKS:
            error = f"checks missing: got {counts}, want {EXPECTED_CHECKS}"
        checked.append((kver, rows, error, seconds))
        if error:
            print(f"{kver:<{width}}  FAIL: {error}")
            failed += 1
            # The end of the console log says why (a panic, a dead init, a hung tool).
            tail = (logdir / f"{kver}.log").read_text(errors="replace").replace("\r", "").splitlines()[-40:]
            print("\n".join(f"    console: {line}" for line in tail))
        print(f"{kver:<{width}}  boot and checks took {seconds:.0f} s")
    seconds = time.monotonic() - t0
    print(f"test-kernels: {len(results)} kernels, {failed} failures, {seconds:.0f} s")
    table = markdown_table(checked, started, seconds, failed)
    table_path = args.table or work / "matrix.md"
    table_path.write_text(table)
    print(f"test-kernels: the table is in {table_path}")
    if args.doc:
        try:
            write_doc(args.doc, table)
        except (SetupError, OSError) as e:
            print(f"test-kernels: {e}", file=sys.stderr)
            return 1
        print(f"test-kernels: the table is in {args.doc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
