"""LR (and WD) transfer sweeps across widths, group ratios or depths: grid -> optima -> report.

:func:`train_grid` trains every (value, wd, lr, seed) of a :class:`~.settings.SweepGrid`;
:func:`optima` finds, per value and WD, the optimal base LR of the seed-mean curve and of every
seed; :func:`summarize` measures the optimum's shift across the axis (and, with several WDs,
each value's WD scale and its shift) into a :class:`~.records.SweepReport`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np

from .controls import CONTROLS, with_control
from .data import batches
from .pool import check_runner, run_all
from .preflight import PreflightError, preflight
from .records import Spread, SweepReport, SweepRun, WDScales
from .settings import AXES, SweepGrid
from .target import Target
from .train import Diverged, build, evaluate, optimizer, train

HELD_OUT_SEED = 10_000
Echo = Callable[[str], object]
Job = tuple[int, float, float, int]                      # value, wd, lr, seed
Losses = dict[Job, list[float]]                          # loss after each checkpoint (inf once diverged)


class SweepError(ValueError):
    """A sweep that cannot run as asked."""


def best_lr(lrs: list[float], losses: list[float]) -> float | None:
    """Optimum of a parabola in log2(lr) through the best grid point and its neighbours (in LR
    order, whatever the order given); None where every run diverged."""
    finite = sorted((lr, loss) for lr, loss in zip(lrs, losses, strict=True)
                    if loss is not None and math.isfinite(loss))
    if not finite:
        return None
    xs, ys = np.log2([lr for lr, _ in finite]), np.array([loss for _, loss in finite])
    i = int(np.argmin(ys))
    if 0 < i < len(xs) - 1:
        a, b, _ = np.polyfit(xs[i - 1:i + 2], ys[i - 1:i + 2], 2)
        if a > 0:
            return float(2 ** np.clip(-b / (2 * a), xs[i - 1], xs[i + 1]))
    return float(2 ** xs[i])


def shift(optima: list[float | None]) -> float | None:
    """Spread of the optimal LRs in octaves; None unless every point has one (a point whose runs all
    diverged has no optimum, and a shift without it would understate the spread)."""
    if len(optima) < 2 or any(o is None for o in optima):
        return None
    found = [o for o in optima if o is not None]
    return float(np.log2(max(found) / min(found)))


def wd_scale(wds: list[float], losses: list[float], penalty: float) -> float | None:
    """The WD at which the loss first exceeds the first WD's loss by ``penalty`` nats, interpolated
    between grid points (in log WD; linearly from a first WD of 0); None if no WD on the grid does."""
    ref = losses[0]
    if not math.isfinite(ref):
        return None
    for (lo, l_lo), (hi, l_hi) in pairwise(zip(wds, losses, strict=True)):
        if l_hi - ref >= penalty:
            if not math.isfinite(l_hi):
                return hi
            t = (penalty - (l_lo - ref)) / (l_hi - l_lo)
            return lo + t * (hi - lo) if lo == 0 else lo * (hi / lo) ** t
    return None


def transfer_regret(runs: list[SweepRun]) -> float | None:
    """Loss at the largest axis value with the LR tuned at the smallest, over the best loss there (nats;
    the loss is interpolated linearly in log2 LR between grid points).  None where an optimum is missing."""
    small, large = runs[0], runs[-1]
    tuned = small.best_lr
    grid = [(math.log2(lr), loss) for lr, loss in zip(large.lrs, large.losses, strict=True) if loss is not None]
    if tuned is None or len(grid) < 1:
        return None
    x = math.log2(tuned)
    below = [(gx, gy) for gx, gy in grid if gx <= x]
    above = [(gx, gy) for gx, gy in grid if gx >= x]
    if not below or not above:
        return None                       # the tuned LR lies off the largest value's grid
    (x0, y0), (x1, y1) = below[-1], above[0]
    at_tuned = y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return float(at_tuned - min(gy for _, gy in grid))


def spread(values: list[float | None]) -> Spread:
    """Mean and sd of the values that exist (None where too few do)."""
    found = [v for v in values if v is not None]
    return Spread(values, float(np.mean(found)) if found else None,
                  float(np.std(found, ddof=1)) if len(found) > 1 else None)


def _largest(shifts: list[float | None]) -> float | None:
    return None if any(s is None for s in shifts) else max(s for s in shifts if s is not None)


# --- grid: train every run --------------------------------------------------------------------
def run_one(target: Target, shape: dict[str, int], lr: float, wd: float, seed: int, steps: int,
            checkpoints: list[int], device: str) -> tuple[list[float], str | None]:
    """Held-out loss after each checkpoint's number of steps (inf once diverged), and a note if it did."""
    data, held_out = batches(target.sample, steps, seed=seed), batches(target.sample, 4, seed=HELD_OUT_SEED)
    model = build(target, shape, seed, device)
    opt, losses, done = optimizer(target, model, shape, lr, wd), [], 0
    for stop in checkpoints:
        try:
            train(target, model, opt, data[done:stop], device)
            losses.append(evaluate(target, model, held_out, device))
        except Diverged as exc:
            note = f"  {shape} lr={lr:g} wd={wd:g} seed {seed}: diverged ({exc})"
            return losses + [math.inf] * (len(checkpoints) - len(losses)), note
        done = stop
    return [loss if math.isfinite(loss) else math.inf for loss in losses], None


def train_grid(target: Target, grid: SweepGrid, device: str = "cpu", runner: str = "local", workers: int = 0,
               echo: Echo = print) -> Losses:
    """Every (value, wd, lr, seed) trained (:func:`.pool.run_all`); divergences reported through ``echo``."""
    key = AXES[grid.axis]
    jobs: list[Job] = [(v, wd, lr, s) for v in grid.values for wd in grid.wds for lr in grid.lrs
                       for s in range(grid.seeds)]
    args = [({**grid.shape, key: v}, lr, wd, s, grid.steps, grid.checkpoints, device) for v, wd, lr, s in jobs]
    results = run_all(run_one, target, args, runner, workers, desc=f"sweep {grid.axis}")
    for _, note in results:
        if note:
            echo(note)
    return {job: losses for job, (losses, _) in zip(jobs, results, strict=True)}


# --- optima: the best LR per value and WD ------------------------------------------------------
def _finite(xs: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(x) else round(float(x), 5) for x in xs]


def optima(grid: SweepGrid, loss: Losses) -> list[SweepRun]:
    """Per value and WD: seed-mean and per-seed losses over the LRs and their optimal LRs."""
    runs, lrs = [], list(grid.lrs)
    for v in grid.values:
        for wd in grid.wds:
            per_seed = np.array([[loss[v, wd, lr, s] for lr in lrs] for s in range(grid.seeds)])  # seed, lr, ckpt
            mean = per_seed.mean(0)
            runs.append(SweepRun(value=v, wd=wd, lrs=lrs, losses=_finite(mean[:, -1]),
                                 seed_losses=[_finite(row[:, -1]) for row in per_seed],
                                 best_lr=best_lr(lrs, list(mean[:, -1])), best_loss=float(mean[:, -1].min()),
                                 best_lr_half=best_lr(lrs, list(mean[:, 0])),
                                 seed_best_lr=[best_lr(lrs, list(row[:, -1])) for row in per_seed]))
    return runs


# --- report: shifts across the axis -------------------------------------------------------------
def wd_scales(runs: list[SweepRun], grid: SweepGrid) -> WDScales:
    """Each value's WD scale from the seed-mean curve and per seed, and their shifts across values."""
    at = {(r.value, r.wd): r for r in runs}
    wds = list(grid.wds)

    def seed_best(v: int, wd: float, s: int) -> float:
        return min((x for x in at[v, wd].seed_losses[s] if x is not None), default=math.inf)

    mean_curve = [wd_scale(wds, [at[v, wd].best_loss for wd in wds], grid.wd_penalty) for v in grid.values]
    per_seed = [[wd_scale(wds, [seed_best(v, wd, s) for wd in wds], grid.wd_penalty) for v in grid.values]
                for s in range(grid.seeds)]
    return WDScales(wd_penalty=grid.wd_penalty, wd_scale={"mean_curve": mean_curve, "seeds": per_seed},
                    wd_shift_log2=shift(mean_curve),
                    wd_scale_beyond_grid=[v for v, x in zip(grid.values, mean_curve, strict=True) if x is None],
                    wd_shift_log2_seeds=spread([shift(row) for row in per_seed]))


def summarize(target: Target, grid: SweepGrid, runs: list[SweepRun], control: str | None,
              command: str) -> SweepReport:
    """The optimum's shift across the axis per WD (seed-mean curve, half the steps, per seed)."""
    by_wd = {wd: [r for r in runs if r.wd == wd] for wd in grid.wds}
    seed_shift = {wd: [shift([r.seed_best_lr[s] for r in rs]) for s in range(grid.seeds)] for wd, rs in by_wd.items()}
    return SweepReport(
        command=command, target=target.name, source=target.source, parametrization=target.parametrization,
        control=control, control_effect=CONTROLS[control].effect if control else None, axis=grid.axis,
        values=list(grid.values), shape=dict(grid.shape), steps=grid.steps, checkpoints=grid.checkpoints,
        seeds=grid.seeds, runs=runs, shift_log2=_largest([shift([r.best_lr for r in rs]) for rs in by_wd.values()]),
        shift_log2_half=_largest([shift([r.best_lr_half for r in rs]) for rs in by_wd.values()]),
        shift_log2_seeds={str(wd): spread(v) for wd, v in seed_shift.items()},
        transfer_regret=transfer_regret(by_wd[grid.wds[0]]),
        wd=wd_scales(runs, grid) if len(grid.wds) > 1 else None)


def _octaves(x: float | None, sd: float | None = None) -> str:
    if x is None:
        return "none (too few converged runs)"
    return f"{x:.2f}" + ("" if sd is None else f" ± {sd:.2f}")


def _echo_report(echo: Echo, rep: SweepReport, grid: SweepGrid) -> None:
    label = rep.parametrization + (f" + {rep.control}" if rep.control else "")
    for r in rep.runs:
        echo(f"  {grid.axis}={r.value:<5} wd={r.wd:<6g} best lr {r.best_lr or float('nan'):.3g} "
             f"(at {rep.checkpoints[0]} steps {r.best_lr_half or float('nan'):.3g})  loss {r.best_loss:.4f}")
    for wd in grid.wds:
        s = rep.shift_log2_seeds[str(wd)]
        curve = shift([r.best_lr for r in rep.runs if r.wd == wd])
        echo(f"[{label}] optimal LR shift across {grid.axis} {list(grid.values)} (wd {wd}): "
             f"seed-mean curve {_octaves(curve)} octaves; per seed {_octaves(s.mean, s.sd)}")
    if rep.wd is not None:
        w = rep.wd
        scales = ", ".join("beyond the grid" if x is None else f"{x:.3g}" for x in w.wd_scale["mean_curve"])
        echo(f"[{label}] WD scale (loss +{grid.wd_penalty:g} over wd {grid.wds[0]:g}) across {grid.axis} "
             f"{list(grid.values)}: {scales}; shift {_octaves(w.wd_shift_log2)} octaves; per seed "
             f"{_octaves(w.wd_shift_log2_seeds.mean, w.wd_shift_log2_seeds.sd)}")


def run_sweep(target: Target, grid: SweepGrid, *, control: str | None = None, device: str = "cpu",
              runner: str = "local", workers: int = 0, out_dir: str | None = None, name: str | None = None,
              command: str = "", echo: Echo = print, inputs: Sequence[str | Path] = ()) -> SweepReport:
    """Sweep ``grid`` on ``target`` (``control`` breaks one μP rule first); ``runner`` is ``local``
    (sequential), ``processes`` or ``ray`` (``workers`` at a time, identical results).  Writes JSON, CSV
    and PNG to ``out_dir`` (never over the target's rules or ``inputs``, e.g. a text file it trains on)."""
    try:
        check_runner(target, runner)
        target = with_control(target, control)
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    stem = name or f"sweep_{target.name}_{target.parametrization}{'_' + control if control else ''}_{grid.axis}"
    protected = [target.source, *inputs]
    try:
        preflight(target, [{**grid.shape, AXES[grid.axis]: v} for v in grid.values], grid.lrs[0], device, out_dir,
                  stem, protected)
    except PreflightError as exc:
        raise SweepError(str(exc)) from None
    runs = optima(grid, train_grid(target, grid, device, runner, workers, echo))
    report = summarize(target, grid, runs, control, command)
    _echo_report(echo, report, grid)
    if out_dir:
        from .plots import plot_sweep
        from .report import write_report
        echo(f"wrote {write_report(out_dir, stem, report, plot_sweep, inputs=protected)}, .csv and .png")
    return report
