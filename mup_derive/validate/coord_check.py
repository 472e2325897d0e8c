"""Coordinate check: do activations, their changes and every layer's own update stay Θ(1)?

For each shape along an axis (width n, group ratio r, depth L) and each seed, the target's
model trains ``steps`` AdamW steps with the derived param groups on one batch (drawn per seed,
the same at every shape), recorded before training and after every step (:mod:`.trace`).
Each metric is fitted against the axis on log-log scales, one slope per seed; a label passes
when, at every recorded step, the 95% confidence interval of the mean slope meets the band of
slopes μP theory predicts (:mod:`.expect`) widened by ± ``band``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
from tqdm import tqdm

from .controls import CONTROLS, with_control
from .expect import expected, slope
from .preflight import PreflightError, check_device, check_outputs, check_shapes
from .records import AxisResult, CheckReport, LabelResult, MetricFit
from .settings import AXES, CheckSettings
from .target import Target
from .trace import CheckError, Series, trace

Echo = Callable[[str], object]

# two-sided 95% Student-t quantiles by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
       10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t95(df: int) -> float:
    return T95[max(k for k in T95 if k <= df)] if df <= 30 else 1.96


def fit(target: Target, label: str, metric: str, runs: list[list[Series]], axis: str, base: dict[str, int],
        s: CheckSettings) -> MetricFit:
    """Per-seed slopes of one metric along the axis at every step, their CI, and the verdict per step."""
    values, steps, seeds = s.values(axis), s.steps, s.seeds
    first = 1 if metric != "rms" else 0           # a change is zero at init
    y = np.array([[r[label][metric] for r in per] for per in runs])              # value, seed, step
    slopes = np.array([[slope(values, y[:, i, t]) if t >= first else 0.0 for t in range(steps + 1)]
                       for i in range(seeds)])                                  # seed, step
    mean, sd = slopes.mean(0), slopes.std(0, ddof=1)
    half = t95(seeds - 1) * sd / math.sqrt(seeds)
    ci = np.stack([mean - half, mean + half], 1)
    decl = target.rules.DECLARED.get(label)
    exp = [expected(decl, metric, t, axis, values, base, s.alpha) for t in range(steps + 1)]
    ok = [bool(t < first or (ci[t, 0] <= exp[t][1] + s.band and ci[t, 1] >= exp[t][0] - s.band))
          for t in range(steps + 1)]
    return MetricFit(mean=y.mean(1).tolist(), slope=mean.tolist(), ci=ci.tolist(), seed_slopes=slopes.tolist(),
                     expected=[list(e) for e in exp], judged_from_step=first, passed=ok, seed_values=y.tolist())


def run_axis(target: Target, axis: str, s: CheckSettings, device: str = "cpu") -> AxisResult:
    """Trace every (value, seed) along ``axis`` and fit every label's metrics."""
    values, base, key = s.values(axis), s.base(axis), AXES[axis]
    jobs = tqdm([(v, i) for v in values for i in range(s.seeds)], desc=f"coord-check {axis}", disable=None)
    traced = [trace(target, {**base, key: v}, s.steps, s.lr, i, device) for v, i in jobs]
    res = AxisResult(values=values, base=base, diverged=[t for t in traced if isinstance(t, str)])
    if res.diverged:
        return res
    series = [t for t in traced if not isinstance(t, str)]
    runs = [series[i * s.seeds:(i + 1) * s.seeds] for i in range(len(values))]
    for label, metrics in runs[0][0].items():
        fits = {m: fit(target, label, m, runs, axis, base, s) for m in metrics}
        res.labels[label] = LabelResult(fits, passed=all(all(f.passed) for f in fits.values()))
    res.passed = all(lab.passed for lab in res.labels.values())
    return res


def describe(m: MetricFit, band: float) -> str:
    """Slope, CI and allowed range at the first failing step (the last step if none fails)."""
    t = next((i for i, ok in enumerate(m.passed) if not ok), len(m.passed) - 1)
    lo, hi = m.ci[t]
    elo, ehi = m.expected[t]
    return (f"{m.slope[t]:+.2f} [{lo:+.2f},{hi:+.2f}] vs [{elo - band:+.2f},{ehi + band:+.2f}]"
            + ("" if m.passed[t] else f" FAIL@{t}"))


def check_arguments(axes: Iterable[str], s: CheckSettings) -> list[str]:
    """The axes to run, after checking that the settings can give a verdict on them."""
    chosen = list(axes)
    if s.steps < 1 or s.seeds < 2:
        raise CheckError("a coordinate check needs steps >= 1 and seeds >= 2 (for a confidence interval)")
    for axis in chosen:
        if axis not in AXES:
            raise CheckError(f"unknown axis {axis!r}; one of {sorted(AXES)}")
        values = s.values(axis)
        if len(set(values)) < 2 or min(values) < 1:
            raise CheckError(f"the {axis} axis needs at least two distinct positive values, got {values}")
    return chosen


def _echo_axis(echo: Echo, name: str, axis: str, res: AxisResult, band: float) -> None:
    echo(f"[{name}] {axis} {res.values} (others {res.base}): slope, 95% CI vs allowed, at the last or first "
         f"failing step" + (f"  DIVERGED: {res.diverged[0]}" if res.diverged else ""))
    for label, lab in res.labels.items():
        cols = "  ".join(f"{m} {describe(v, band)}" for m, v in lab.metrics.items())
        echo(f"  {label:12s} {'pass' if lab.passed else 'FAIL'}  {cols}")


def _preflight(target: Target, axes: list[str], s: CheckSettings, device: str, out_dir: str | None,
               stem: str) -> None:
    """Before any training: the device computes, every shape builds, the report can be written."""
    try:
        check_device(device)
        check_shapes(target, [{**s.base(a), AXES[a]: v} for a in axes for v in s.values(a)], s.lr)
        if out_dir:
            check_outputs(out_dir, stem, [target.source])
    except PreflightError as exc:
        raise CheckError(str(exc)) from None


def run_coord_check(target: Target, axes: Iterable[str] = tuple(AXES), settings: CheckSettings | None = None, *,
                    device: str = "cpu", control: str | None = None, out_dir: str | None = None, command: str = "",
                    echo: Echo = print) -> CheckReport:
    """Coordinate check of ``target`` along each of ``axes`` with the values in ``settings``;
    ``control`` breaks one rule first (:mod:`mup_derive.validate.controls`).  Writes JSON + PNG to ``out_dir``."""
    s = settings or CheckSettings()
    chosen = check_arguments(axes, s)
    try:
        target = with_control(target, control)
    except ValueError as exc:
        raise CheckError(str(exc)) from None
    name = target.parametrization + (f"_{control}" if control else "")
    stem = f"coord_check_{target.name}_{name}"
    _preflight(target, chosen, s, device, out_dir, stem)
    report = CheckReport(command=command, target=target.name, source=target.source,
                         parametrization=target.parametrization, control=control,
                         control_effect=CONTROLS[control].effect if control else None, steps=s.steps, lr=s.lr,
                         seeds=s.seeds, alpha=s.alpha, band=s.band)
    for axis in chosen:
        report.axes[axis] = run_axis(target, axis, s, device)
        _echo_axis(echo, name, axis, report.axes[axis], s.band)
    report.passed = all(a.passed for a in report.axes.values())
    echo(f"[{name}] coordinate check {'PASSED' if report.passed else 'FAILED'}")
    if out_dir:
        from .plots import plot_coord_check
        from .report import write_report
        path = write_report(out_dir, stem, report, plot_coord_check, inputs=[target.source])
        echo(f"wrote {path}, .csv and .png")
    return report
