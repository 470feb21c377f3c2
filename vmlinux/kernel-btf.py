#!/usr/bin/env python3
"""The BTF of another architecture's kernel, for `make vmlinux ARCH=arm64`.

Fetches Debian's newest cloud kernel of a series for that architecture (apt with a private
configuration, as the kernel matrix does: tests/kernels/matrix.py) and cuts the .BTF section
out of its vmlinuz, which on arm64 is the kernel's raw Image: the section is there as the
kernel loads it, a BTF header (magic 0xeB9F, version 1, 24 bytes long) followed by its type
and string sections. Writes the blob to OUT; bpftool checks it when it dumps vmlinux.h.

    kernel-btf.py --arch arm64 --series 6.18 --work target/vmlinux-arm64 --out FILE
"""

import argparse
import glob
import gzip
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "kernels"))
import matrix  # noqa: E402  (PrivateApt, debian_mirror, suite_of)

BTF_MAGIC = b"\x9f\xeb"  # 0xeB9F, little-endian
BTF_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type/str off/len


def newest_kernel(apt, arch, pattern):
    """The package of the newest cloud kernel whose version matches PATTERN."""
    res = matrix.run(["apt-cache", *apt.opts, "search", "--names-only",
                      rf"^linux-image-.*-cloud-{arch}$"], capture_output=True, text=True)
    best = None
    for line in res.stdout.splitlines():
        name = line.split()[0]
        m = re.fullmatch(rf"linux-image-({pattern})-cloud-{arch}", name)
        if m and (best is None or int(m.group(2)) > best[0]):
            best = (int(m.group(2)), name)
    if best is None:
        raise matrix.SetupError(f"no cloud-{arch} kernel matching {pattern} in Debian's archive")
    return best[1]


def fetch_vmlinuz(work, arch, series):
    """Downloads the kernel package and returns its vmlinuz's bytes."""
    suite, pattern = matrix.suite_of(series)
    apt = matrix.PrivateApt(work)
    apt.opts += ["-o", f"APT::Architecture={arch}", "-o", f"APT::Architectures={arch}"]
    apt.update(matrix.debian_mirror(), [suite])
    package = newest_kernel(apt, arch, pattern)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        apt.download(package, tmp)
        debs = glob.glob(f"{tmp}/*.deb")
        if len(debs) != 1:
            raise matrix.SetupError(f"apt-get download {package} gave {debs}")
        kver = package.removeprefix("linux-image-")
        matrix.run(f"dpkg-deb --fsys-tarfile {debs[0]} | tar -x -C {tmp} ./boot/vmlinuz-{kver}",
                   shell=True)
        image = Path(f"{tmp}/boot/vmlinuz-{kver}").read_bytes()
    print(f"kernel-btf: {package}", file=sys.stderr)
    # Some architectures' vmlinuz is a gzip'd Image.
    return gzip.decompress(image) if image[:2] == b"\x1f\x8b" else image


def btf_blobs(image):
    """Every well-formed BTF blob in IMAGE: the header's lengths fit, the type section comes
    first and the string section right after it, starting and ending with a NUL."""
    at = image.find(BTF_MAGIC)
    while at >= 0:
        if at + BTF_HEADER.size <= len(image):
            _, version, _, hdr_len, type_off, type_len, str_off, str_len = \
                BTF_HEADER.unpack_from(image, at)
            end = at + hdr_len + str_off + str_len
            strings = image[at + hdr_len + str_off:end]
            if (version == 1 and hdr_len == BTF_HEADER.size and type_off == 0 and type_len > 0
                    and str_off == type_len and str_len > 0 and end <= len(image)
                    and strings[:1] == b"\0" and strings[-1:] == b"\0"):
                yield image[at:end]
        at = image.find(BTF_MAGIC, at + 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", required=True, help="Debian's name: arm64")
    ap.add_argument("--series", required=True, help="kernel series, e.g. 6.18")
    ap.add_argument("--work", required=True, type=Path, help="apt's lists and downloads")
    ap.add_argument("--out", required=True, type=Path, help="the BTF blob")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        blobs = list(btf_blobs(fetch_vmlinuz(args.work.resolve(), args.arch, args.series)))
    except (matrix.SetupError, subprocess.CalledProcessError) as e:
        print(f"kernel-btf: {e}", file=sys.stderr)
        return 1
    if len(blobs) != 1:
        print(f"kernel-btf: {len(blobs)} BTF blobs in the kernel image, want exactly 1",
              file=sys.stderr)
        return 1
    args.out.write_bytes(blobs[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
