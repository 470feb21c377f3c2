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
import gzip
import struct
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "kernels"))
import matrix  # noqa: E402  (arch_of, PrivateApt, fetch_kernels)

BTF_MAGIC = b"\x9f\xeb"  # 0xeB9F, little-endian
BTF_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type/str off/len


def fetch_vmlinuz(work, arch, series):
    """Downloads the kernel (or finds it in WORK from an earlier run) and returns its
    vmlinuz's bytes."""
    arch = matrix.arch_of(arch)
    apt = matrix.PrivateApt(work, [arch])
    [(_, kver, vmlinuz)] = matrix.fetch_kernels(work, apt, [arch], [series])
    print(f"kernel-btf: linux-image-{kver}", file=sys.stderr)
    image = vmlinuz.read_bytes()
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
