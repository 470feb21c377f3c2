#!/usr/bin/env python3
"""Writes a seccomp profile that allows bpf() to CAP_BPF and perf_event_open() to CAP_PERFMON.

Older container seccomp profiles (Debian 12's containers-common, used by podman 4.3 and
CRI-O) allow both system calls only to CAP_SYS_ADMIN, so the exporter with CAP_BPF and
CAP_PERFMON alone gets EPERM loading its programs. Newer profiles (moby, containerd's
RuntimeDefault) have these two rules already. This copies a profile (default:
/usr/share/containers/seccomp.json), takes the two calls out of its CAP_SYS_ADMIN-only
rules, and adds one rule each for their own capability; everything else is unchanged.
usage: seccomp-bpf.py [IN] OUT
"""
import json
import sys

GRANTS = {"bpf": "CAP_BPF", "perf_event_open": "CAP_PERFMON"}


def widen(profile):
    for rule in profile["syscalls"]:
        caps = rule.get("includes", {}).get("caps", []) + rule.get("excludes", {}).get("caps", [])
        if caps == ["CAP_SYS_ADMIN"]:
            rule["names"] = [n for n in rule["names"] if n not in GRANTS]
    profile["syscalls"] = [r for r in profile["syscalls"] if r["names"]]
    for name, cap in GRANTS.items():
        profile["syscalls"].append(
            {"names": [name], "action": "SCMP_ACT_ALLOW", "args": [], "includes": {"caps": [cap]}}
        )
    return profile


if __name__ == "__main__":
    args = sys.argv[1:]
    source = args[0] if len(args) == 2 else "/usr/share/containers/seccomp.json"
    with open(source) as f:
        profile = widen(json.load(f))
    with open(args[-1], "w") as f:
        json.dump(profile, f, indent=1)
