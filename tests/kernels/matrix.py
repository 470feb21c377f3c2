#!/usr/bin/env python3
"""The kernel matrix: boots Debian's cloud kernels in qemu (TCG) and runs every tool inside each, via tests/kernels/init.sh."""

import argparse
import fcntl
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
# (linux-image-<abi>-cloud-<arch>) that varies: the newest ABI or patch number is booted.
SERIES = {
    "5.10": ("bullseye", r"5\.10\.0-(\d+)"),
    "6.1": ("bookworm", r"6\.1\.0-(\d+)"),
    "6.12": ("trixie", r"6\.12\.(\d+)\+deb13"),
}
# Any other series (6.18, the last 6.x LTS, say) is looked for in trixie-backports, and so is
# "newest": the highest series there by version, whatever it is when the matrix runs.
BACKPORTS = "trixie-backports"
NEWEST = "newest"
BACKPORTED = r"(\d+)\.(\d+)\.(\d+)\+deb\d+"


class Arch:
    """An architecture the matrix boots: Debian's name for it, the machine qemu emulates and
    its serial console, and where the C library of its binaries lies on this host."""

    def __init__(self, name, machine, deb, qemu, console):
        self.name, self.machine, self.deb, self.qemu, self.console = name, machine, deb, qemu, console
        # Debian's cross C library (libc6-<deb>-cross) for another architecture's binaries.
        self.sysroot = Path(f"/usr/{machine}-linux-gnu")

    def host(self):
        return self.machine == os.uname().machine


# The arm64 machine: qemu's generic "virt" board with a Cortex-A72 (ARMv8.0). Debian's arm64
# kernels run on any ARMv8.0 CPU; "-cpu max" would emulate pointer authentication and the
# rest in software, which made a boot about three times as long here.
ARCHES = {
    "x86_64": Arch("x86_64", "x86_64", "amd64", ["qemu-system-x86_64"], "ttyS0"),
    "arm64": Arch("arm64", "aarch64", "arm64", ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72"],
                  "ttyAMA0"),
}
ARCH_ALIASES = {"aarch64": "arm64", "amd64": "x86_64"}


def arch_of(name):
    arch = ARCHES.get(ARCH_ALIASES.get(name, name))
    if not arch:
        raise SetupError(f"not an architecture the matrix boots: {name!r} (want one of {', '.join(ARCHES)})")
    return arch


def suite_of(series):
    if series in SERIES:
        return SERIES[series]
    if series == NEWEST:
        return BACKPORTS, BACKPORTED
    if not re.fullmatch(r"\d+\.\d+", series):
        raise SetupError(f"not a kernel series: {series!r} (want e.g. 6.18, or {NEWEST})")
    return BACKPORTS, re.escape(series) + r"\.(\d+)\+deb\d+"


# Checks init.sh reports per kernel, by tool: tcpstates on tp_btf and raw_tp, each over the
# ring buffer and the perf buffer; tcpconnlat on tp_btf + ring buffer and raw_tp + perf
# buffer; tcprtt on tp_btf and raw_tp; the exporter on tp_btf and raw_tp, grouped by cgroup,
# and grouped by pod (keyed by the parent of the socket's cgroup); tcpstates -c, tcpconnlat
# -c and tcprtt -c on tp_btf and raw_tp; with the catchers attached alone (bpf/nested.bpf.h),
# tcpstates on tp_btf and raw_tp, tcpconnlat, tcprtt and the exporter; each tool once more
# without vmlinux BTF. Unforced, tcpstates, tcpconnlat and the exporter attach with raw_tp
# before Linux 5.12 (5.10 here).
CATCHERS = " (catchers only)"
EXPECTED_CHECKS = {"tcpstates": 5, "tcpconnlat": 3, "tcprtt": 3, "exporter": 2,
                   "exporter --group-by cgroup": 1,
                   "exporter --group-by pod": 1, "tcptools-exporter": 1, "tcpstates -c": 2,
                   "tcpconnlat -c": 2, "tcprtt -c": 2, "tcpstates" + CATCHERS: 2,
                   "tcpconnlat" + CATCHERS: 1, "tcprtt" + CATCHERS: 1, "exporter" + CATCHERS: 1}


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

    def __init__(self, work, arches):
        self.dir = work / "apt"
        self.arches = [a.deb for a in arches]
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
        # The lists of exactly these architectures, whatever dpkg's own are.
        self.opts += ["-o", "APT::Architectures="]
        for deb in self.arches:
            self.opts += ["-o", f"APT::Architectures::={deb}"]

    def update(self, mirror, suites):
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        arch = ",".join(self.arches)
        lines = [f"deb [arch={arch} signed-by={keyring}] {mirror} {suite} main\n" for suite in suites]
        (self.dir / "sources.list").write_text("".join(lines))
        res = subprocess.run(["apt-get", *self.opts, "-qq", "update"], capture_output=True, text=True)
        if res.returncode != 0:
            raise SetupError(f"private apt-get update failed: {res.stderr.strip()[:300]}")

    def kernel_packages(self):
        res = run(["apt-cache", *self.opts, "search", "--names-only", r"^linux-image-.*-cloud-[a-z0-9]*$"],
                  capture_output=True, text=True)
        return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]

    def download(self, package, arch, dest, suite=None):
        """The .deb of PACKAGE for ARCH (from SUITE, else the newest) in DEST, a directory of
        its own."""
        name = f"{package}:{arch.deb}" + (f"/{suite}" if suite else "")
        res = subprocess.run(["apt-get", *self.opts, "-qq", "download", name], cwd=dest,
                             capture_output=True, text=True)
        debs = glob.glob(f"{dest}/*.deb")
        if res.returncode != 0 or len(debs) != 1:
            raise SetupError(f"apt-get download {package}:{arch.deb} gave {debs}: {res.stderr.strip()[:300]}")
        return debs[0]


def newest(packages, pattern, arch):
    """The newest package of a series for ARCH: the highest ABI or patch number, or with
    BACKPORTED ("newest") the highest version of all."""
    best = None
    for p in packages:
        m = re.fullmatch(rf"linux-image-({pattern})-cloud-{arch.deb}", p)
        if m:
            version = tuple(int(n) for n in m.groups()[1:])
            if best is None or version > best[0]:
                best = (version, m.group(1))
    return best and f"{best[1]}-cloud-{arch.deb}"


def fetch_kernels(work, apt, arches, series_wanted):
    """Resolves the newest cloud kernel of each series and architecture, and caches its
    vmlinuz under WORK. Returns [(arch, kver, vmlinuz)], architecture by architecture."""
    cache = work / "boot"
    cache.mkdir(parents=True, exist_ok=True)
    wanted = [(series, *suite_of(series)) for series in series_wanted]
    try:
        apt.update(debian_mirror(), sorted({suite for _, suite, _ in wanted} | {BUSYBOX_SUITE}))
        packages = apt.kernel_packages()
    except SetupError as e:
        # Offline rerun: the kernels cached by an earlier run, if every series has one.
        packages = [f"linux-image-{d.name}" for d in cache.iterdir() if (d / "vmlinuz").exists()]
        if not all(newest(packages, pattern, arch) for _, _, pattern in wanted for arch in arches):
            raise
        print(f"test-kernels: {e}; booting the kernels cached in {cache}", flush=True)
    kernels = []
    for arch in arches:
        for series, suite, pattern in wanted:
            kver = newest(packages, pattern, arch)
            if not kver:
                raise SetupError(f"no linux-image-{series}*-cloud-{arch.deb} in {suite} "
                                 f"(choose the series with --series or KERNEL_SERIES)")
            kernels.append((arch, kver, fetch_kernel(work, apt, arch, kver)))
    return list(dict.fromkeys(kernels))


# Where the kernel image lies in a package: /boot until Debian's 7.x kernels, which moved
# it, with the modules' folder, into a package of its own that linux-image-* depends on.
IMAGE_PATHS = ["./boot/vmlinuz-{kver}", "./usr/lib/modules/{kver}/vmlinuz"]


def fetch_kernel(work, apt, arch, kver):
    """WORK/boot/KVER/vmlinuz, downloaded unless an earlier run did: from linux-image-KVER,
    or else from linux-binary-KVER when linux-image-KVER depends on it."""
    vmlinuz = work / "boot" / kver / "vmlinuz"
    if vmlinuz.exists():
        return vmlinuz
    t0 = time.monotonic()
    package, binary = f"linux-image-{kver}", f"linux-binary-{kver}"
    while True:
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            deb = apt.download(package, arch, tmp)
            files = run(["dpkg-deb", "--fsys-tarfile", deb], capture_output=True).stdout
            names = set(run(["tar", "-t"], input=files, capture_output=True).stdout.decode().split())
            image = next((p.format(kver=kver) for p in IMAGE_PATHS if p.format(kver=kver) in names), None)
            if image:
                run(["tar", "-x", "-C", tmp, image], input=files)
                vmlinuz.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(f"{tmp}/{image}", vmlinuz)
                print(f"fetched {package} ({time.monotonic() - t0:.0f} s)", flush=True)
                return vmlinuz
            depends = run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True).stdout
        if package == binary or not re.search(rf"(^|[ ,]){re.escape(binary)}([ ,(]|$)", depends):
            break
        package = binary
    raise SetupError(f"no kernel image ({' or '.join(p.format(kver=kver) for p in IMAGE_PATHS)}) "
                     f"in linux-image-{kver} or the linux-binary-{kver} it depends on")


# The suite of another architecture's busybox-static (the host's is `make deps`' own).
BUSYBOX_SUITE = "bookworm"


def busybox_of(work, apt, arch):
    """A static busybox for ARCH: the host's, or Debian's busybox-static for ARCH, unpacked
    once into WORK/busybox/ARCH."""
    if arch.host():
        busybox = shutil.which("busybox")
        if not busybox or libraries(busybox, arch, check=False):
            raise SetupError("busybox missing or not static: install busybox-static")
        return Path(busybox)
    busybox = work / "busybox" / arch.name / "busybox"
    if not busybox.exists():
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            deb = apt.download("busybox-static", arch, tmp, BUSYBOX_SUITE)
            run(["dpkg-deb", "-x", deb, tmp])
            found = [p for p in [f"{tmp}/bin/busybox", f"{tmp}/usr/bin/busybox"] if os.path.isfile(p)]
            if not found:
                raise SetupError(f"no bin/busybox or usr/bin/busybox in {Path(deb).name}")
            busybox.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(found[0], busybox)
    return busybox


def libraries(binary, arch, check=True):
    """The shared libraries a binary loads, as absolute paths: ldd's for the host's
    architecture; for another, its ELF interpreter and NEEDED entries (readelf), found under
    the architecture's cross sysroot."""
    if arch.host():
        out = subprocess.run(["ldd", binary], check=check, capture_output=True, text=True).stdout
        return sorted(set(re.findall(r"(/\S+\.so[.\d]*)", out)))
    out = run(["readelf", "-d", "-l", "-W", binary], capture_output=True, text=True).stdout
    interp = re.findall(r"program interpreter: (/\S+)\]", out)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", out)
    libs = [(path, arch.sysroot / "lib" / Path(path).name) for path in interp]
    for name in needed:
        src = arch.sysroot / "lib" / name
        if not src.exists():
            raise SetupError(f"{binary} needs {name}, not in {src.parent}: install libc6-{arch.deb}-cross")
        libs.append((f"/lib/{name}", src))
    return libs


def build_initramfs(work, apt, arch, bindir, traffic):
    """An uncompressed newc cpio for ARCH: busybox, the tools, the libc they still link,
    traffic, init."""
    out = work / f"initramfs-{arch.name}.cpio"
    busybox = busybox_of(work, apt, arch)
    with tempfile.TemporaryDirectory(dir=work) as root:
        root = Path(root)
        for d in ["bin", "dev", "proc", "sys", "tmp", "lib"]:
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
                raise SetupError(f"{src} missing: run make release" + ("" if arch.host() else f" ARCH={arch.name}"))
            shutil.copy(src, root / "bin" / tool)
            if arch.host():
                libs.update((lib, os.path.realpath(lib)) for lib in libraries(src, arch))
            else:
                libs.update(libraries(src, arch))
        for lib, src in libs:
            dest = root / lib.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest)
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


def boot_with_retry(arch, kver, vmlinuz, initramfs, logdir, args):
    """boot(), up to RETRIES more times while the VM hangs or times out; each such failure
    is a `retry` row."""
    rows, error, seconds = boot(arch, kver, vmlinuz, initramfs, logdir, args)
    hangs = []
    while error and error.startswith((HANG, "boot timed out", "VM ended")) and len(hangs) < RETRIES:
        hangs.append(error)
        rows, error, more = boot(arch, kver, vmlinuz, initramfs, logdir, args)
        seconds += more
    retries = [("retry", "-", f"ok (boot {i + 1} failed: {hang})") for i, hang in enumerate(hangs)]
    return [*rows, *retries], error, seconds


def boot(arch, kver, vmlinuz, initramfs, logdir, args):
    """Boots one kernel, returns (rows, error, seconds); rows are (tool, hook_buffer, result)."""
    log = logdir / f"{kver}.log"
    cmd = [
        "timeout", "-k", "10", str(args.timeout),
        # thread=single: both vCPUs on one host thread. Multi-threaded TCG mis-executes the
        # kernel's live code patching across vCPUs (static keys flipped when a BPF program
        # or a trace event is attached): seen as "Oops: int3" in patched code, and as soft
        # lockups, in about one boot in ten.
        *arch.qemu, "-accel", "tcg,thread=single", "-m", "1024", "-smp", str(args.smp),
        "-nographic", "-no-reboot", "-kernel", str(vmlinuz), "-initrd", str(initramfs),
        "-append", f"console={arch.console} panic=-1 quiet loglevel=1 "
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


def markdown_table(results, started, seconds, failed, jobs):
    """The run as a markdown table (architecture, kernel, tool, hook, buffer, result), one row
    per check, and a line saying when it ran and what it took."""
    lines = ["| arch | kernel | tool | hook | buffer | result |", "|---|---|---|---|---|---|"]
    for arch, kver, rows, error, _ in results:
        first = True
        cells = [(tool, *hook_and_buffer(field), result) for tool, field, result in rows]
        if error:
            cells.append(("boot", "-", "-", f"FAIL: {error}"))
        for tool, hook, buffer, result in cells:
            result = result.replace("|", "\\|")
            lead = f"{arch.name} | `{kver}`" if first else " | "
            lines.append(f"| {lead} | `{tool}` | {hook} | {buffer} | {result} |")
            first = False
    boots = ", ".join(f"{kver} {secs:.0f} s" for _, kver, _, _, secs in results)
    arches = ", ".join(dict.fromkeys(arch.name for arch, *_ in results))
    lines += ["", f"Generated by `make test-kernels` on {started} ({os.uname().machine} host, "
                  f"qemu TCG, {jobs} VM{'s' if jobs > 1 else ''} at a time): {arches}; "
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


def target(spec):
    """--arch ARCH:BINDIR:TRAFFIC: an architecture, its release build, its traffic program."""
    name, sep, rest = spec.partition(":")
    bindir, sep2, traffic = rest.partition(":")
    if not sep or not sep2 or not bindir or not traffic:
        raise argparse.ArgumentTypeError(f"want ARCH:BINDIR:TRAFFIC, got {spec!r}")
    try:
        return arch_of(name), Path(bindir), Path(traffic)
    except SetupError as e:
        raise argparse.ArgumentTypeError(str(e))


def report(checked, width):
    """Prints every check and each boot's failure and time; returns the failures."""
    failed = 0
    for arch, kver, rows, error, seconds in checked:
        for tool, hook, result in rows:
            print(f"{kver:<{width}}  {tool:<28}  {hook:<14}  {result}")
            failed += not result.startswith("ok")
        if error:
            print(f"{kver:<{width}}  FAIL: {error}")
            failed += 1
        print(f"{kver:<{width}}  boot and checks took {seconds:.0f} s")
    return failed


def verdict(logdir, kver, rows, error):
    """ERROR, or else a complaint when the checks are not exactly those expected; on either,
    the end of the console log (a panic, a dead init, a hung tool) is printed."""
    counts = {}
    for tool, _, _ in rows:
        if tool != "retry":
            counts[tool] = counts.get(tool, 0) + 1
    if not error and counts != EXPECTED_CHECKS:
        error = f"checks missing: got {counts}, want {EXPECTED_CHECKS}"
    if error:
        tail = (logdir / f"{kver}.log").read_text(errors="replace").replace("\r", "").splitlines()[-40:]
        print(f"{kver}: {error}\n" + "\n".join(f"    console: {line}" for line in tail))
    return error


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", type=target, action="append", metavar="ARCH:BINDIR:TRAFFIC",
                    help="boot ARCH's kernels (x86_64, arm64) with the release build in BINDIR and "
                         "the static traffic program TRAFFIC, both built for ARCH (repeatable; "
                         "default: the host's, target/static/release, target/kernels/traffic)")
    ap.add_argument("--work", type=Path, default=Path("target/kernels"))
    ap.add_argument("--series", default=" ".join([*SERIES, "6.18", NEWEST]),
                    help=f"kernel series to boot, e.g. '5.10 6.12'; '{NEWEST}' is the highest "
                         f"series {BACKPORTS} serves (where series not in SERIES are looked for)")
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
    targets = args.arch or [(arch_of(os.uname().machine), Path("target/static/release"),
                             Path("target/kernels/traffic"))]

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    # One run per work directory: a second would overwrite this one's initramfs and logs.
    lock = open(work / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"test-kernels: another run uses {work}; waiting for it to end", file=sys.stderr,
              flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    t0 = time.monotonic()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    logdir = work / "logs"
    logdir.mkdir(exist_ok=True)
    try:
        if args.doc:
            doc_parts(args.doc)  # before the boots: a page without the markers fails at once
        apt = PrivateApt(work, [arch for arch, _, _ in targets])
        kernels = fetch_kernels(work, apt, [arch for arch, _, _ in targets],
                                list(dict.fromkeys(args.series.split())))
        initramfs = {arch.name: build_initramfs(work, apt, arch, bindir, traffic)
                     for arch, bindir, traffic in targets}
    except (SetupError, subprocess.CalledProcessError, OSError) as e:
        print(f"test-kernels: setup failed: {e}", file=sys.stderr)
        return 1

    def boot_one(kernel):
        arch, kver, vmlinuz = kernel
        return arch, kver, *boot_with_retry(arch, kver, vmlinuz, initramfs[arch.name], logdir, args)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(boot_one, kernels))
    checked = [(arch, kver, rows, verdict(logdir, kver, rows, error), seconds)
               for arch, kver, rows, error, seconds in results]
    failed = report(checked, max(len(k) for _, k, *_ in checked))
    seconds = time.monotonic() - t0
    print(f"test-kernels: {len(results)} kernels, {failed} failures, {seconds:.0f} s")
    table = markdown_table(checked, started, seconds, failed, args.jobs)
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
