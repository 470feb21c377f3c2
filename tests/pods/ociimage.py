#!/usr/bin/env python3
"""An OCI image archive without a registry or a builder, for the pod tests (tests/common/cri.rs).

    ociimage.py OUT.tar REF ENTRYPOINT FILE...

Writes an OCI image layout as a tar (what `ctr images import` reads): one uncompressed
layer holding each FILE at /<its name> (mode 0755, owner root), a config whose entrypoint
is ENTRYPOINT and whose platform is this machine's, and an index naming the image REF
(`io.containerd.image.name`). Python's standard library only.
"""
import hashlib
import io
import json
import os
import platform
import sys
import tarfile

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
        "s390x": "s390x", "riscv64": "riscv64"}


def layer(files):
    """An uncompressed tar holding each file at its name, with fixed times and owners."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            info = tarfile.TarInfo(os.path.basename(path))
            info.size = os.path.getsize(path)
            info.mode = 0o755
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return out.getvalue()


def blob(blobs, media_type, data):
    """Stores `data` as a blob; its descriptor."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def to_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def image(ref, entrypoint, files):
    """The layout's files: name -> bytes."""
    blobs = {}
    data = layer(files)
    layer_desc = blob(blobs, "application/vnd.oci.image.layer.v1.tar", data)
    config = {
        "architecture": ARCH.get(platform.machine(), platform.machine()),
        "os": "linux",
        "config": {"Entrypoint": [entrypoint]},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob(blobs, "application/vnd.oci.image.config.v1+json", to_json(config)),
        "layers": [layer_desc],
    }
    manifest_desc = blob(blobs, manifest["mediaType"], to_json(manifest))
    manifest_desc["annotations"] = {
        "io.containerd.image.name": ref,
        "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1],
    }
    index = {"schemaVersion": 2, "manifests": [manifest_desc]}
    layout = {"oci-layout": to_json({"imageLayoutVersion": "1.0.0"}), "index.json": to_json(index)}
    for digest, data in blobs.items():
        layout["blobs/sha256/" + digest.split(":", 1)[1]] = data
    return layout


def main():
    if len(sys.argv) < 5:
        sys.exit("usage: ociimage.py OUT.tar REF ENTRYPOINT FILE...")
    out, ref, entrypoint, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in image(ref, entrypoint, files).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
