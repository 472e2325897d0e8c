"""LR (and WD) transfer sweeps across widths, group ratios or depths."""
from __future__ import annotations

import math
import multiprocessing
from functools import lru_cache

import numpy as np
from tqdm import tqdm

from .data import batches
from .report import write_report
from .controls import CONTROLS, apply
from .target import Target, resolve
from .defaults import AXES
from .train import Diverged, build, evaluate, optimizer, train


RUNNERS = ("local", "processes", "ray")


def best_lr(lrs: list[float], losses: list[float]) -> float | None:
    """Optimum of a parabola in log2(lr) through the best grid point and its neighbours."""
    finite = [(lr, l) for lr, l in zip(lrs, losses) if l is not None and math.isfinite(l)]
    if not finite:
        return None
    xs, ys = np.log2([lr for lr, _ in finite]), np.array([l for _, l in finite])
    i = int(np.argmin(ys))
    if 0 < i < len(xs) - 1:
        a, b, _ = np.polyfit(xs[i - 1:i + 2], ys[i - 1:i + 2], 2)
        if a > 0:
            return float(2 ** np.clip(-b / (2 * a), xs[i - 1], xs[i + 1]))
    return float(2 ** xs[i])


def shift(optima: list) -> float:
    """Spread of the optimal LRs in octaves (0 for fewer than two finite optima)."""
    optima = [o for o in optima if o is not None]
    return float(np.log2(max(optima) / min(optima))) if len(optima) > 1 else 0.0


def wd_scale(wds: list[float], losses: list[float], penalty: float) -> float | None:
    """The WD at which the loss first exceeds the first WD's loss by ``penalty`` nats, interpolated
    between grid points (in log WD; linearly from a first WD of 0); None if no WD on the grid does."""
    ref = losses[0]
    if not math.isfinite(ref):
        return None
    for (lo, l_lo), (hi, l_hi) in zip(zip(wds, losses), zip(wds[1:], losses[1:])):
        if l_hi - ref >= penalty:
            if not math.isfinite(l_hi):
                return hi
            t = (penalty - (l_lo - ref)) / (l_hi - l_lo)
            return lo + t * (hi - lo) if lo == 0 else lo * (hi / lo) ** t
    return None


HELD_OUT_SEED = 10_000


def _run(target: Target, shape: dict, lr: float, wd: float, seed: int, steps: int, checkpoints: list[int],
         device: str) -> tuple[list[float], str | None]:
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
    return [l if math.isfinite(l) else math.inf for l in losses], None


@lru_cache(maxsize=None)
def _rebuilt(spec: tuple, control: str | None) -> Target:
    path, parametrization, gqa = spec
    return apply(resolve(path, parametrization, **dict(gqa)), control)


def _job(args):
    """One sweep run in a worker process: the target is rebuilt there from its spec."""
    spec, control, *rest = args
    return _run(_rebuilt(spec, control), *rest)


def _pool(runner: str, workers: int):
    """A process pool for ``runner``: ``processes`` (this machine) or ``ray`` (an existing Ray cluster)."""
    if runner == "processes":
        return multiprocessing.get_context("spawn").Pool(workers or None)
    try:
        from ray.util.multiprocessing import Pool
    except ImportError:
        raise SweepError("runner 'ray' needs Ray: pip install 'mup-derive[ray]'") from None
    return Pool(workers or None)


class SweepError(ValueError):
    """A sweep that cannot run as asked."""


def _finite(xs):
    return [None if not math.isfinite(x) else round(float(x), 5) for x in xs]


def run_sweep(target: Target, axis: str, values: list[int], lrs: list[float], wds: list[float], shape: dict,
              steps: int = 100, seeds: int = 1, device: str = "cpu", out_dir: str | None = None,
              name: str | None = None, command: str = "", runner: str = "local", workers: int = 0,
              control: str | None = None, wd_penalty: float = 0.05, echo=print) -> dict:
    """Train every (value, wd, lr, seed) for ``steps`` AdamW steps.  Per value and WD: the optimal
    base LR of the seed-mean curve and of every seed, after ``steps // 2`` and ``steps`` steps; the
    shift of the optimum across the axis in octaves, with its spread over seeds.  With several WDs
    (ascending), also each value's WD scale (:func:`wd_scale` of the best-LR loss against WD, at
    ``wd_penalty`` nats) and its shift: with eta*lambda held constant it should not move.
    Diverged runs count as loss = inf.  ``control`` breaks one muP rule first
    (:mod:`validate.controls`).  ``runner``: ``local`` (sequential, default), ``processes`` or
    ``ray`` (``workers`` at a time; the target must come from :func:`resolve`); results are identical."""
    if runner not in RUNNERS:
        raise SweepError(f"runner must be one of {RUNNERS}")
    if runner != "local" and target.spec is None:
        raise SweepError("a parallel sweep rebuilds the target in each worker: make it with validate.target.resolve")
    if list(wds) != sorted(set(wds)):
        raise SweepError(f"wds must be distinct and ascending, got {wds}")
    try:
        target = apply(target, control)
    except ValueError as exc:
        raise SweepError(str(exc)) from None
    key = AXES[axis]
    checkpoints = sorted({max(1, steps // 2), steps})
    jobs = [(v, wd, lr, s) for v in values for wd in wds for lr in lrs for s in range(seeds)]
    args = [({**shape, key: v}, lr, wd, s, steps, checkpoints, device) for v, wd, lr, s in jobs]
    progress = dict(total=len(jobs), desc=f"sweep {axis}", disable=None)
    if runner == "local":
        results = [_run(target, *a) for a in tqdm(args, **progress)]
    else:
        with _pool(runner, workers) as pool:
            results = list(tqdm(pool.imap(_job, [(target.spec, control, *a) for a in args]), **progress))
    loss = {}
    for job, (losses, note) in zip(jobs, results):
        loss[job] = losses
        if note:
            echo(note)
    runs = []
    for v in values:
        for wd in wds:
            per_seed = np.array([[loss[v, wd, lr, s] for lr in lrs] for s in range(seeds)])  # seed, lr, ckpt
            mean = per_seed.mean(0)
            runs.append({"value": v, "wd": wd, "lrs": lrs, "losses": _finite(mean[:, -1]),
                         "seed_losses": [_finite(row[:, -1]) for row in per_seed],
                         "best_lr": best_lr(lrs, list(mean[:, -1])), "best_loss": float(mean[:, -1].min()),
                         "best_lr_half": best_lr(lrs, list(mean[:, 0])),
                         "seed_best_lr": [best_lr(lrs, list(row[:, -1])) for row in per_seed]})
    by_wd = {wd: [r for r in runs if r["wd"] == wd] for wd in wds}
    mean_shift = {wd: shift([r["best_lr"] for r in rs]) for wd, rs in by_wd.items()}
    seed_shift = {wd: [shift([r["seed_best_lr"][s] for r in rs]) for s in range(seeds)] for wd, rs in by_wd.items()}
    report = {"command": command, "target": target.name, "source": target.source,
              "parametrization": target.parametrization, "control": control,
              "control_effect": control and CONTROLS[control][1], "axis": axis, "values": values, "shape": shape,
              "steps": steps, "checkpoints": checkpoints, "seeds": seeds, "runs": runs,
              "shift_log2": max(mean_shift.values()),
              "shift_log2_half": max(shift([r["best_lr_half"] for r in rs]) for rs in by_wd.values()),
              "shift_log2_seeds": {str(wd): {"values": v, "mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1))
                                             if len(v) > 1 else 0.0} for wd, v in seed_shift.items()}}
    label = target.parametrization + (f" + {control}" if control else "")
    if len(wds) > 1:
        report.update(_wd_scales(runs, values, wds, seeds, wd_penalty))
    for r in runs:
        echo(f"  {axis}={r['value']:<5} wd={r['wd']:<6g} best lr {r['best_lr'] or float('nan'):.3g} "
             f"(at {checkpoints[0]} steps {r['best_lr_half'] or float('nan'):.3g})  loss {r['best_loss']:.4f}")
    for wd in wds:
        s = report["shift_log2_seeds"][str(wd)]
        echo(f"[{label}] optimal LR shift across {axis} {values} (wd {wd}): "
             f"seed-mean curve {mean_shift[wd]:.2f} octaves; per seed {s['mean']:.2f} ± {s['sd']:.2f}")
    if len(wds) > 1:
        w, s = report["wd_scale"], report["wd_shift_log2_seeds"]
        scales = ", ".join("beyond the grid" if x is None else f"{x:.3g}" for x in w["mean_curve"])
        echo(f"[{label}] WD scale (loss +{wd_penalty:g} over wd {wds[0]:g}) across {axis} {values}: {scales}; "
             f"shift {report['wd_shift_log2']:.2f} octaves; per seed {s['mean']:.2f} ± {s['sd']:.2f}")
    if out_dir:
        from .plots import plot_sweep
        stem = f"sweep_{target.name}_{target.parametrization}{'_' + control if control else ''}_{axis}"
        path = write_report(out_dir, name or stem, report, plot_sweep)
        echo(f"wrote {path} and .png")
    return report


def _wd_scales(runs: list[dict], values: list, wds: list[float], seeds: int, penalty: float) -> dict:
    """Each value's WD scale from the seed-mean curve and per seed, and their shifts across values."""
    at = {(r["value"], r["wd"]): r for r in runs}

    def seed_best(v, wd, s):
        finite = [l for l in at[v, wd]["seed_losses"][s] if l is not None]
        return min(finite, default=math.inf)

    mean_curve = [wd_scale(wds, [at[v, wd]["best_loss"] for wd in wds], penalty) for v in values]
    per_seed = [[wd_scale(wds, [seed_best(v, wd, s) for wd in wds], penalty) for v in values] for s in range(seeds)]
    shifts = [shift(row) for row in per_seed]
    return {"wd_penalty": penalty, "wd_scale": {"mean_curve": mean_curve, "seeds": per_seed},
            "wd_shift_log2": shift(mean_curve),
            "wd_scale_beyond_grid": [v for v, x in zip(values, mean_curve) if x is None],
            "wd_shift_log2_seeds": {"values": shifts, "mean": float(np.mean(shifts)),
                                    "sd": float(np.std(shifts, ddof=1)) if seeds > 1 else 0.0}}
