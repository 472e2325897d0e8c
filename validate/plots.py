"""Matplotlib figures for coordinate checks and LR sweeps."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


PANELS = (("rms", 0, "activation RMS at init"), ("delta", -1, "change since init, last step"),
          ("dwx", -1, "own update dW.x0, last step"))


def plot_coord_check(report: dict, path) -> None:
    """Rows: axes; columns: activation RMS at init, its change and each layer's own dW.x at the
    last step (seed means); the legend gives the slope at that step, dashed lines failed."""
    axes = report["axes"]
    fig, grid = plt.subplots(len(axes), len(PANELS), figsize=(15, 3.8 * len(axes)), squeeze=False)
    for row, (axis, res) in zip(grid, axes.items()):
        for ax, (metric, step, title) in zip(row, PANELS):
            for label, lab in res["labels"].items():
                m = lab["metrics"].get(metric)
                if m is None:
                    continue
                ys = [per_value[step] for per_value in m["mean"]]
                ax.plot(res["values"], ys, marker="o", label=f"{label} ({m['slope'][step]:+.2f})",
                        linestyle="-" if all(m["passed"]) else "--")
            ax.set(xscale="log", yscale="log", xlabel=axis, title=f"{title} vs {axis}")
            ax.minorticks_off()
            ax.set_xticks(res["values"], [str(v) for v in res["values"]])
            ax.legend(fontsize=6, ncol=2)
    verdict = "PASS" if report["passed"] else "FAIL"
    name = report["parametrization"] + (f" + control {report['control']}" if report["control"] else "")
    fig.suptitle(f"{report['target']} {name}: coordinate check, {report['steps']} AdamW steps at lr {report['lr']}, "
                 f"{report['seeds']} seeds: {verdict}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_sweep(report: dict, path) -> None:
    """Final loss against base LR, one line per axis value, optimum marked."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in report["runs"]:
        lrs, losses = run["lrs"], [float("nan") if l is None else l for l in run["losses"]]
        line, = ax.plot(lrs, losses, marker="o", label=f"{report['axis']}={run['value']}, wd={run['wd']}")
        if run["best_lr"] is not None:
            ax.axvline(run["best_lr"], color=line.get_color(), alpha=0.3)
    lrs = report["runs"][0]["lrs"]
    ax.set_xlim(min(lrs) / 1.3, max(lrs) * 1.3)
    ax.set_xscale("log")
    ax.set(xlabel="base learning rate", ylabel="held-out loss",
           title=f"{report['target']}: {report['parametrization']} across {report['axis']}, "
                 f"{report['steps']} steps, {report['seeds']} seed(s)\n"
                 f"optimum shift {report['shift_log2']:+.2f} octaves")
    ax.minorticks_off()
    ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs])
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
