"""Coordinate check: do activations, their changes and every layer's own update stay Θ(1)?

For each shape along an axis (width n, group ratio r, depth L) and each seed, the target's
model trains ``steps`` AdamW steps with the derived param groups on one batch (drawn per seed,
the same at every shape), recorded before training and after every step (:mod:`.trace`).
Each metric is fitted against the axis on log-log scales, one slope per seed; a label passes
when, at every recorded step, the 95% confidence interval of the mean slope meets the band of
slopes μP theory predicts (:mod:`.expect`) widened by ± ``band``.

The verdict is an equivalence test: a step PASSES when the CI lies inside the band, FAILS when it
lies outside, and is INCONCLUSIVE otherwise; an inconclusive axis gets more seeds (up to
``max_seeds``) before the verdict.  Each report states the smallest deviation from the allowed
range that the run could have detected (the band plus the CI's width).
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial

import numpy as np

from .controls import CONTROLS, edited_ops, with_control
from .expect import expected, repeat_gain, slope
from .pool import check_runner, run_all
from .preflight import PreflightError, preflight
from .records import AxisResult, CheckReport, LabelResult, MetricFit
from .settings import AXES, CheckSettings
from .target import Target
from .trace import CheckError, Series, trace

Echo = Callable[[str], object]

# two-sided 95% Student-t quantiles by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
       10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


PASS, FAIL, INCONCLUSIVE, UNJUDGED = "pass", "fail", "inconclusive", "unjudged"
VERDICT_WORDS = {PASS: "PASSED", FAIL: "FAILED", INCONCLUSIVE: "INCONCLUSIVE"}


def t95(df: int) -> float:
    return T95[max(k for k in T95 if k <= df)] if df <= 30 else 1.96


def judge(ci: tuple[float, float], allowed: tuple[float, float], band: float) -> str:
    """Equivalence: PASS when the CI lies inside the band, FAIL when it lies outside, else INCONCLUSIVE."""
    lo, hi = allowed[0] - band, allowed[1] + band
    if lo <= ci[0] and ci[1] <= hi:
        return PASS
    if ci[1] < lo or ci[0] > hi:
        return FAIL
    return INCONCLUSIVE


def combine(verdicts: Iterable[str]) -> str:
    """FAIL if any fails, else INCONCLUSIVE if any is, else PASS (unjudged steps count for nothing)."""
    vs = set(verdicts)
    return FAIL if FAIL in vs else INCONCLUSIVE if INCONCLUSIVE in vs else PASS


def fit(target: Target, label: str, metric: str, runs: list[list[Series]], axis: str, base: dict[str, int],
        s: CheckSettings, alpha: float, gain: float) -> MetricFit:
    """Per-seed slopes of one metric along the axis at every step, their CI, and the verdict per step.
    A step where some value is exactly zero (a zero-initialised query's logits at init) has no scale
    to fit and is not judged, nor is a change at init.  ``gain`` is the target's :func:`repeat_gain` on the axis."""
    values, steps, seeds = s.values(axis), s.steps, len(runs[0])
    y = np.array([[r[label][metric] for r in per] for per in runs])              # value, seed, step
    judged = [t >= (1 if metric != "rms" else 0) and bool(np.all(y[:, :, t] > 0)) for t in range(steps + 1)]
    slopes = np.array([[slope(values, y[:, i, t]) if judged[t] else 0.0 for t in range(steps + 1)]
                       for i in range(seeds)])                                  # seed, step
    mean, sd = slopes.mean(0), slopes.std(0, ddof=1)
    half = t95(seeds - 1) * sd / math.sqrt(seeds)
    ci = np.stack([mean - half, mean + half], 1)
    decl = target.rules.DECLARED.get(label)
    exp = [expected(decl, metric, t, axis, values, base, alpha, gain) for t in range(steps + 1)]
    verdict = [judge((ci[t, 0], ci[t, 1]), exp[t], s.band) if judged[t] else UNJUDGED for t in range(steps + 1)]
    detectable = max((s.band + 2 * half[t] for t in range(steps + 1) if judged[t]), default=0.0)
    return MetricFit(mean=y.mean(1).tolist(), slope=mean.tolist(), ci=ci.tolist(), seed_slopes=slopes.tolist(),
                     expected=[list(e) for e in exp], verdict=verdict, detectable=float(detectable),
                     seed_values=y.tolist())


def _fit_all(target: Target, axis: str, s: CheckSettings, alpha: float, runs: list[list[Series]],
             res: AxisResult) -> None:
    gain = repeat_gain(target.rules.DECLARED, axis, s.values(axis), res.base)
    for label, metrics in runs[0][0].items():
        fits = {m: fit(target, label, m, runs, axis, res.base, s, alpha, gain) for m in metrics}
        res.labels[label] = LabelResult(fits, verdict=combine(v for f in fits.values() for v in f.verdict))
    res.verdict = combine(lab.verdict for lab in res.labels.values())
    res.detectable = max((f.detectable for lab in res.labels.values() for f in lab.metrics.values()), default=0.0)


def run_axis(target: Target, axis: str, s: CheckSettings, device: str = "cpu", echo: Echo = print,
             runner: str = "local", workers: int = 0) -> AxisResult:
    """Trace every (value, seed) along ``axis`` (:func:`.pool.run_all`) and fit every label's metrics; while
    the verdict is INCONCLUSIVE, trace ``s.seeds`` more seeds (up to ``s.max_seeds``) and fit again.  Each
    run's init and data come from its own seed alone, so no result depends on what ran before it, or where."""
    values, base, key = s.values(axis), s.base(axis), AXES[axis]
    alpha = s.alpha if s.alpha is not None else s.alpha_or(target)   # resolved once (given: not re-read)
    res = AxisResult(values=values, base=base, diverged=[])
    traced: dict[int, list[Series]] = {v: [] for v in values}
    seeds = 0
    while seeds < s.max_seeds and (seeds == 0 or res.verdict == INCONCLUSIVE):
        more = list(range(seeds, min(s.max_seeds, seeds + s.seeds)))
        jobs = [(v, i) for v in values for i in more]
        outs = run_all(trace, target, [({**base, key: v}, s.steps, s.lr, s.seed_offset + i, device, s.eps)
                                       for v, i in jobs], runner, workers, desc=f"coord-check {axis}")
        for (v, _), out in zip(jobs, outs, strict=True):
            if isinstance(out, str):
                res.diverged.append(out)
            else:
                traced[v].append(out)
        seeds += len(more)
        if not sys.stderr.isatty():
            echo(f"  {axis}: traced {len(jobs)} runs ({seeds} seeds per value)")
        if res.diverged:
            res.verdict = FAIL
            return res
        _fit_all(target, axis, s, alpha, [traced[v] for v in values], res)
    res.seeds = seeds
    return res


def describe(m: MetricFit, band: float) -> str:
    """Slope, CI and allowed range at the first failing (else inconclusive, else last judged) step."""
    judged = [t for t, v in enumerate(m.verdict) if v != UNJUDGED] or [len(m.verdict) - 1]
    t = next((t for t in judged if m.verdict[t] == FAIL), next((t for t in judged if m.verdict[t] == INCONCLUSIVE),
                                                               judged[-1]))
    lo, hi = m.ci[t]
    elo, ehi = m.expected[t]
    tag = {FAIL: f" FAIL@{t}", INCONCLUSIVE: f" INCONCLUSIVE@{t}"}.get(m.verdict[t], "")
    return f"{m.slope[t]:+.2f} [{lo:+.2f},{hi:+.2f}] vs [{elo - band:+.2f},{ehi + band:+.2f}]{tag}"


def check_arguments(axes: Iterable[str], s: CheckSettings) -> list[str]:
    """The axes to run, after checking that the settings can give a verdict on them."""
    chosen = list(axes)
    for axis in chosen:
        if axis not in AXES:
            raise CheckError(f"unknown axis {axis!r}; one of {sorted(AXES)}")
        values = s.values(axis)
        if len(set(values)) < 2 or min(values) < 1:
            raise CheckError(f"the {axis} axis needs at least two distinct positive values, got {values}")
    return chosen


def _echo_axis(echo: Echo, name: str, axis: str, res: AxisResult, band: float) -> None:
    echo(f"[{name}] {axis} {res.values} (others {res.base}), {res.seeds} seeds: slope, 95% CI vs allowed, at the "
         f"first failing step; smallest detectable deviation {res.detectable:.2f}"
         + (f"  DIVERGED: {res.diverged[0]}" if res.diverged else ""))
    for label, lab in res.labels.items():
        cols = "  ".join(f"{m} {describe(v, band)}" for m, v in lab.metrics.items())
        echo(f"  {label:12s} {lab.verdict.upper() if lab.verdict != PASS else 'pass':12s} {cols}")


def shown_by_target(target: Target, control: str, report: CheckReport) -> None:
    """A control must break something the check measures on this target; otherwise the run cannot show it."""
    measured = {label for res in report.axes.values() for label in res.labels}
    hit = edited_ops(target.rules, control)
    if measured and not set(hit) & measured:
        raise CheckError(f"control {control!r} breaks {hit}, which this target does not measure "
                         f"({sorted(measured)}): the check cannot show it here")


def run_coord_check(target: Target, axes: Iterable[str] = tuple(AXES), settings: CheckSettings | None = None, *,
                    device: str = "cpu", control: str | None = None, out_dir: str | None = None, command: str = "",
                    echo: Echo = print, per_step_plot: bool = False, runner: str = "local",
                    workers: int = 0) -> CheckReport:
    """Coordinate check of ``target`` along each of ``axes`` with the values in ``settings``;
    ``control`` breaks one rule first (:mod:`mup_derive.validate.controls`); ``runner`` and ``workers``
    spread the runs (:mod:`.pool`).  Writes JSON + PNG to ``out_dir``."""
    s = settings or CheckSettings()
    chosen = check_arguments(axes, s)
    try:
        check_runner(target, runner)
        alpha = s.alpha_or(target)                      # the module's own alpha, read before a control edits it
        s = replace(s, alpha=alpha)
        target = with_control(target, control)
    except ValueError as exc:
        raise CheckError(str(exc)) from None
    name = target.parametrization + (f"_{control}" if control else "")
    stem = f"coord_check_{target.name}_{name}"
    try:
        preflight(target, [{**s.base(a), AXES[a]: v} for a in chosen for v in s.values(a)], s.lr, device, out_dir,
                  stem, [target.source])
    except PreflightError as exc:
        raise CheckError(str(exc)) from None
    report = CheckReport(command=command, target=target.name, source=target.source,
                         parametrization=target.parametrization, control=control,
                         control_effect=CONTROLS[control].effect if control else None, steps=s.steps, lr=s.lr,
                         seeds=s.seeds, alpha=alpha, band=s.band, max_seeds=s.max_seeds,
                         seed_offset=s.seed_offset, eps=s.eps)
    for axis in chosen:
        report.axes[axis] = run_axis(target, axis, s, device, echo, runner, workers)
        _echo_axis(echo, name, axis, report.axes[axis], s.band)
    if control:
        shown_by_target(target, control, report)
    report.verdict = combine(a.verdict for a in report.axes.values())
    report.passed = report.verdict == PASS
    echo(f"[{name}] coordinate check {VERDICT_WORDS[report.verdict]}")
    if out_dir:
        from .plots import plot_coord_check
        from .report import write_report
        plot = partial(plot_coord_check, per_step=per_step_plot)
        path = write_report(out_dir, stem, report, plot, inputs=[target.source])
        echo(f"wrote {path}, .csv and .png")
    return report
