"""Matplotlib figures for coordinate checks and LR sweeps."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_coord_check(report: dict, path) -> None:
    """Rows: axes; columns: activation RMS and change from init at the last step, per layer."""
    axes = report["axes"]
    fig, grid = plt.subplots(len(axes), 2, figsize=(11, 3.6 * len(axes)), squeeze=False)
    for row, (axis, res) in zip(grid, axes.items()):
        for ax, metric, title in zip(row, ("rms", "delta"), ("activation RMS", "RMS change from init")):
            for label, layer in res["layers"].items():
                ys = [c[-1] for c in layer[metric]]
                slope = layer[f"slope_{metric}"]
                ax.plot(res["values"], ys, marker="o", label=f"{label} ({slope:+.2f})",
                        linestyle="-" if layer["passed"] else "--")
            ax.set(xscale="log", yscale="log", xlabel=axis, title=f"{title} vs {axis}")
            ax.minorticks_off()
            ax.set_xticks(res["values"], [str(v) for v in res["values"]])
            ax.legend(fontsize=7)
    verdict = "PASS" if report["passed"] else "FAIL"
    fig.suptitle(f"{report['parametrization']} coordinate check after {report['steps']} AdamW steps "
                 f"(lr {report['lr']}): {verdict}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
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
           title=f"{Path(path).stem}: {report['parametrization']} across {report['axis']}\n"
                 f"optimum shift {report['shift_log2']:+.2f} octaves")
    ax.minorticks_off()
    ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs])
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
