"""Matplotlib figures for coordinate checks and LR sweeps."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .records import AxisResult, CheckReport, SweepReport  # noqa: E402
from .settings import AXES  # noqa: E402

PANELS = (("rms", 0, "activation RMS at init"), ("delta", -1, "change since init, last step"),
          ("dwx", -1, "own update (W_t - W_0) x_0, last step"))
STYLES = ("-", "--", ":", "-.")


def _style(i: int) -> dict[str, Any]:
    """A distinct colour per layer (20 colours)."""
    return {"color": plt.get_cmap("tab20")(i % 20)}


def _line(i: int) -> dict[str, Any]:
    """A distinct colour and, past 20 layers, line style."""
    return {**_style(i), "linestyle": STYLES[(i // 20) % len(STYLES)]}


def _panel(ax: Any, axis: str, res: AxisResult, metric: str, step: int, title: str, band: float) -> None:
    """Each layer's seed-mean value relative to its value at the smallest axis value, on log-log axes, with
    the Θ(1) band (slope 0 ± band) shaded; a failing layer is drawn thick and marked in the legend."""
    xs = res.values
    ax.fill_between(xs, [(x / xs[0]) ** -band for x in xs], [(x / xs[0]) ** band for x in xs], color="0.85",
                    label=f"Θ(1) ± {band:g}")
    for i, (label, lab) in enumerate(res.labels.items()):
        m = lab.metrics.get(metric)
        if m is None or not m.mean or m.mean[0][step] <= 0:
            continue
        ys = [per_value[step] / m.mean[0][step] for per_value in m.mean]
        verdict = m.verdict[step]
        mark = {"fail": " ✗ FAIL", "inconclusive": " ? INCONCLUSIVE"}.get(verdict, "")
        ax.plot(xs, ys, marker="o", lw=2.8 if verdict == "fail" else 1.2,
                label=f"{label} {m.slope[step]:+.2f}{mark}", **_line(i))
    ax.set(xscale="log", yscale="log", xlabel=f"{axis} ({AXES[axis]})", ylabel="seed mean / value at smallest",
           title=f"{title} vs {axis}")
    ax.minorticks_off()
    ax.set_xticks(xs, [str(v) for v in xs])
    ax.legend(fontsize=6, ncol=2)


def plot_coord_check(report: CheckReport, path: Path, per_step: bool = False) -> None:
    """Rows: axes; columns: activation RMS at init, its change and each layer's own update at the last
    step (``per_step``: the change at every step instead); the legend gives each slope and marks failures."""
    axes = report.axes
    panels = ([("delta", t, f"change since init, step {t}") for t in range(1, report.steps + 1)]
              if per_step else list(PANELS))
    fig, grid = plt.subplots(len(axes), len(panels), figsize=(5 * len(panels), 4.2 * len(axes)), squeeze=False)
    for row, (axis, res) in zip(grid, axes.items(), strict=True):
        for ax, (metric, step, title) in zip(row, panels, strict=True):
            _panel(ax, axis, res, metric, step, title, report.band)
    name = report.parametrization + (f" + control {report.control}" if report.control else "")
    fig.suptitle(f"{report.target} {name}: coordinate check, {report.steps} AdamW steps at lr {report.lr}, "
                 f"seeds {report.seed_offset}..: {report.verdict.upper()}")
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


def plot_calibration(report: Any, path: Path) -> None:
    """μP's false-fail rate per cell and axis, and each control's false-pass rate per cell, with the
    95% Wilson upper bound as a whisker and the 5% target as a line; the inconclusive rate is stacked on
    top, hatched."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.5))
    panels = ((left, "mup_fail", "mup_inconclusive", "muP judged FAIL (false fail)"),
              (right, "control_pass", "control_inconclusive", "control judged PASS (false pass)"))
    for ax, attr, unsure, title in panels:
        keys = sorted({k for c in report.cells for k in getattr(c, attr)})
        width = 0.8 / max(1, len(report.cells))
        for i, c in enumerate(report.cells):
            rates, open_ = getattr(c, attr), getattr(c, unsure)
            xs = [j + i * width for j in range(len(keys))]
            ys = [rates[k].count / rates[k].runs if k in rates else 0.0 for k in keys]
            up = [rates[k].upper95 - y if k in rates else 0.0 for k, y in zip(keys, ys, strict=True)]
            runs = max((r.runs for r in rates.values()), default=0)
            ax.bar(xs, ys, width, yerr=[[0.0] * len(ys), up], capsize=2, label=f"{c.cell} ({runs} seed sets)",
                   **_style(i))
            ax.bar(xs, [open_[k].count / open_[k].runs if k in open_ else 0.0 for k in keys], width, bottom=ys,
                   hatch="//", alpha=0.35, **_style(i))
        ax.axhline(0.05, color="k", linestyle=":", label="5%")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))], keys, rotation=20, fontsize=7)
        ax.set(ylim=(0, 1), ylabel="rate over the seed sets run (hatched: inconclusive)", title=title)
        ax.legend(fontsize=6)
    fig.suptitle(f"coordinate-check calibration ({report.profile})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
