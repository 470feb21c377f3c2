#!/usr/bin/env python3
"""Renders the Grafana dashboard's panels from a real run into one PNG (matplotlib).

The data are the series that tests/delivery_dashboard_live.rs asked Prometheus for with
each panel's own PromQL while the exporter counted loopback traffic (target/dashboard/
ranges.json). This is a rendering of the panels' queries, not a Grafana screenshot.
usage: python3 bench/dashboard.py [RANGES_JSON] [OUT_PNG]
"""
import json
import math
import re
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCALE = {"s": (1e3, "ms"), "ns": (1, "ns"), "bytes": (1 / 2**20, "MiB"), "percentunit": (100, "%"),
         "reqps": (1, "per s"), "ops": (1, "per s")}


def legend(fmt, metric):
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt)
    return text or ",".join(f"{k}={v}" for k, v in metric.items()) or "value"


def main(src="target/dashboard/ranges.json", out="contrib/grafana/tcptools.png"):
    data = json.load(open(src))
    panels = OrderedDict()
    for target in data["panels"]:
        panels.setdefault(target["title"], (target["unit"], []))[1].append(target)
    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 6, rows * 3.2), squeeze=False)
    for ax, (title, (unit, targets)) in zip(axes.flat, panels.items()):
        factor, label = SCALE.get(unit, (1, unit))
        t0 = None
        for target in targets:
            for series in target["result"] or []:
                points = [(float(t), float(v)) for t, v in series["values"] if v not in ("NaN", "+Inf", "-Inf")]
                if not points:
                    continue
                t0 = t0 or points[0][0]
                ax.plot([t - t0 for t, _ in points], [v * factor for _, v in points], linewidth=1,
                        label=legend(target["legend"], series["metric"])[:40])
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(label, fontsize=8)
        ax.set_xlabel("seconds", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=6, loc="upper left", ncol=2 if len(ax.lines) > 6 else 1)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"tcptools dashboard: the panels' PromQL over a {data['seconds']} s run of the "
                 "exporter (--group-by cgroup) under loopback traffic; rendered with matplotlib, "
                 "not a Grafana screenshot", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out, dpi=80)
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
