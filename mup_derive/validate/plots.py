"""Matplotlib figures for coordinate checks and LR sweeps."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .records import CheckReport, SweepReport  # noqa: E402

PANELS = (("rms", 0, "activation RMS at init"), ("delta", -1, "change since init, last step"),
          ("dwx", -1, "own update dW.x0, last step"))


def plot_coord_check(report: CheckReport, path: Path) -> None:
    """Rows: axes; columns: activation RMS at init, its change and each layer's own dW.x at the
    last step (seed means); the legend gives the slope at that step, dashed lines failed."""
    axes = report.axes
    fig, grid = plt.subplots(len(axes), len(PANELS), figsize=(15, 3.8 * len(axes)), squeeze=False)
    for row, (axis, res) in zip(grid, axes.items(), strict=True):
        for ax, (metric, step, title) in zip(row, PANELS, strict=True):
            for label, lab in res.labels.items():
                m = lab.metrics.get(metric)
                if m is None:
                    continue
                ys = [per_value[step] for per_value in m.mean]
                ax.plot(res.values, ys, marker="o", label=f"{label} ({m.slope[step]:+.2f})",
                        linestyle="-" if all(m.passed) else "--")
            ax.set(xscale="log", yscale="log", xlabel=axis, title=f"{title} vs {axis}")
            ax.minorticks_off()
            ax.set_xticks(res.values, [str(v) for v in res.values])
            ax.legend(fontsize=6, ncol=2)
    verdict = "PASS" if report.passed else "FAIL"
    name = report.parametrization + (f" + control {report.control}" if report.control else "")
    fig.suptitle(f"{report.target} {name}: coordinate check, {report.steps} AdamW steps at lr {report.lr}, "
                 f"{report.seeds} seeds: {verdict}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _octaves(x: float | None) -> str:
    return "undefined (too few converged runs)" if x is None else f"{x:.2f} octaves"


def plot_sweep(report: SweepReport, path: Path) -> None:
    """Final loss against base LR (several LRs), one line per axis value and WD, optimum marked;
    with several WDs a panel of best-LR loss over the first WD's against WD, WD scale marked."""
    lrs = report.runs[0].lrs
    panels = [p for p, on in (("lr", len(lrs) > 1), ("wd", report.wd is not None)) if on] or ["lr"]
    fig, grid = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    name = report.parametrization + (f" + {report.control}" if report.control else "")
    fig.suptitle(f"{report.target}: {name} across {report.axis}, {report.steps} steps, "
                 f"{report.seeds} seed(s)")
    if "lr" in panels:
        _lr_panel(grid[0, 0], report, lrs)
    if "wd" in panels:
        _wd_panel(grid[0, -1], report)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _lr_panel(ax: Any, report: SweepReport, lrs: list[float]) -> None:
    for run in report.runs:
        losses = [float("nan") if x is None else x for x in run.losses]
        line, = ax.plot(run.lrs, losses, marker="o", label=f"{report.axis}={run.value}, wd={run.wd}")
        if run.best_lr is not None:
            ax.axvline(run.best_lr, color=line.get_color(), alpha=0.3)
    ax.set_xlim(min(lrs) / 1.3, max(lrs) * 1.3)
    ax.set_xscale("log")
    ax.set(xlabel="base learning rate", ylabel="held-out loss",
           title=f"optimal LR shift {_octaves(report.shift_log2)}")
    ax.minorticks_off()
    ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs])
    ax.legend(fontsize=7)


def _wd_panel(ax: Any, report: SweepReport) -> None:
    assert report.wd is not None
    wds = sorted({r.wd for r in report.runs})
    for v, scale in zip(report.values, report.wd.wd_scale["mean_curve"], strict=True):
        runs = [r for r in report.runs if r.value == v]
        line, = ax.plot(wds, [r.best_loss - runs[0].best_loss for r in runs], marker="o",
                        label=f"{report.axis}={v}: scale {'beyond grid' if scale is None else f'{scale:.3g}'}")
        if scale is not None:
            ax.axvline(scale, color=line.get_color(), alpha=0.3)
    ax.axhline(report.wd.wd_penalty, color="k", linestyle=":", label=f"+{report.wd.wd_penalty:g} nats")
    ax.set_xscale("symlog", linthresh=min(w for w in wds if w > 0))
    ax.set(xlabel="base weight decay", ylabel=f"loss - loss at wd {wds[0]:g}",
           title=f"WD scale shift {_octaves(report.wd.wd_shift_log2)}")
    ax.legend(fontsize=7)
