"""LR (and WD) transfer sweeps across widths, group ratios or depths."""
from __future__ import annotations

import math

import numpy as np
from tqdm import tqdm

from .data import batches
from .report import write_report
from .target import Target
from .train import AXES, Diverged, build, evaluate, optimizer, train


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


def _run(target: Target, shape: dict, lr: float, wd: float, seed: int, data: list, held_out: list,
         checkpoints: list[int], device: str, echo) -> list[float]:
    """Held-out loss after each checkpoint's number of steps (inf once diverged)."""
    model = build(target, shape, seed, device)
    opt, losses, done = optimizer(target, model, shape, lr, wd), [], 0
    for stop in checkpoints:
        try:
            train(target, model, opt, data[done:stop], device)
            losses.append(evaluate(target, model, held_out, device))
        except Diverged as exc:
            echo(f"  {shape} lr={lr:g} wd={wd:g} seed {seed}: diverged ({exc})")
            return losses + [math.inf] * (len(checkpoints) - len(losses))
        done = stop
    return [l if math.isfinite(l) else math.inf for l in losses]


def _finite(xs):
    return [None if not math.isfinite(x) else round(float(x), 5) for x in xs]


def run_sweep(target: Target, axis: str, values: list[int], lrs: list[float], wds: list[float], shape: dict,
              steps: int = 100, seeds: int = 1, device: str = "cpu", out_dir: str | None = None,
              name: str | None = None, command: str = "", echo=print) -> dict:
    """Train every (value, wd, lr, seed) for ``steps`` AdamW steps.  Per value and WD: the optimal
    base LR of the seed-mean curve and of every seed, after ``steps // 2`` and ``steps`` steps; the
    shift of the optimum across the axis in octaves, with its spread over seeds.  Diverged runs
    count as loss = inf."""
    key = AXES[axis]
    held_out = batches(target.sample, 4, seed=10_000)
    data = {s: batches(target.sample, steps, seed=s) for s in range(seeds)}
    checkpoints = sorted({max(1, steps // 2), steps})
    loss = {}
    jobs = [(v, wd, lr, s) for v in values for wd in wds for lr in lrs for s in range(seeds)]
    for v, wd, lr, s in tqdm(jobs, desc=f"sweep {axis}", disable=None):
        loss[v, wd, lr, s] = _run(target, {**shape, key: v}, lr, wd, s, data[s], held_out, checkpoints,
                                  device, echo)
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
    seed_shift = {wd: [shift([r["seed_best_lr"][s] for r in rs]) for s in range(seeds)] for wd, rs in by_wd.items()}
    report = {"command": command, "target": target.name, "source": target.source,
              "parametrization": target.parametrization, "axis": axis, "values": values, "shape": shape,
              "steps": steps, "checkpoints": checkpoints, "seeds": seeds, "runs": runs,
              "shift_log2": max(shift([r["best_lr"] for r in rs]) for rs in by_wd.values()),
              "shift_log2_half": max(shift([r["best_lr_half"] for r in rs]) for rs in by_wd.values()),
              "shift_log2_seeds": {str(wd): {"values": v, "mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1))
                                             if len(v) > 1 else 0.0} for wd, v in seed_shift.items()}}
    for r in runs:
        echo(f"  {axis}={r['value']:<5} wd={r['wd']:<6g} best lr {r['best_lr'] or float('nan'):.3g} "
             f"(at {checkpoints[0]} steps {r['best_lr_half'] or float('nan'):.3g})  loss {r['best_loss']:.4f}")
    for wd, s in report["shift_log2_seeds"].items():
        echo(f"[{target.parametrization}] optimal LR shift across {axis} {values} (wd {wd}): "
             f"seed-mean curve {shift([r['best_lr'] for r in by_wd[float(wd)]]):.2f} octaves; "
             f"per seed {s['mean']:.2f} ± {s['sd']:.2f}")
    if out_dir:
        from .plots import plot_sweep
        path = write_report(out_dir, name or f"sweep_{target.name}_{target.parametrization}_{axis}", report,
                            plot_sweep)
        echo(f"wrote {path} and .png")
    return report
