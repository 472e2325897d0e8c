"""LR (and WD) transfer sweeps across widths, group ratios or depths."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import MarkovTask, TextTask, batches
from .loader import load_module
from .train import AXES, Diverged, build, evaluate, optimizer, train


def best_lr(lrs: list[float], losses: list[float]) -> float | None:
    """Optimum of a parabola in log2(lr) through the best grid point and its neighbours."""
    finite = [(lr, l) for lr, l in zip(lrs, losses) if math.isfinite(l)]
    if not finite:
        return None
    xs, ys = np.log2([lr for lr, _ in finite]), np.array([l for _, l in finite])
    i = int(np.argmin(ys))
    if 0 < i < len(xs) - 1:
        a, b, _ = np.polyfit(xs[i - 1:i + 2], ys[i - 1:i + 2], 2)
        if a > 0:
            return float(2 ** np.clip(-b / (2 * a), xs[i - 1], xs[i + 1]))
    return float(2 ** xs[i])


def _shift(optima: list) -> float:
    """Spread of the optimal LRs in octaves (0 for fewer than two finite optima)."""
    optima = [o for o in optima if o is not None]
    return float(np.log2(max(optima) / min(optima))) if len(optima) > 1 else 0.0


def run_sweep(module: str, axis: str, values: list[int], lrs: list[float], wds: list[float], shape: dict,
              steps: int = 100, batch: int = 16, seq: int = 64, seeds: int = 1, text: str | None = None,
              parametrization: str = "mup", device: str = "cpu", out_dir: str | None = None,
              name: str | None = None, echo=print) -> dict:
    """Train every (value, wd, lr) for ``steps`` AdamW steps; report the optimal base LR per
    value and its largest shift (in octaves) across the axis at a fixed base WD.  Diverged
    runs count as loss = inf."""
    mod = load_module(module)
    key = AXES[axis]
    task = TextTask(text) if text else MarkovTask(vocab=mod.DIMS["vocab"], seed=1234)
    held_out = batches(task, 4, batch, seq, seed=10_000)
    runs, jobs = [], [(v, wd, lr) for v in values for wd in wds for lr in lrs]
    results = {}
    for v, wd, lr in tqdm(jobs, desc=f"sweep {axis}", disable=None):
        seed_losses = []
        for seed in range(seeds):
            _, model = build(mod, {**shape, key: v}, parametrization, seed, device)
            try:
                train(model, optimizer(mod, model, lr, wd), batches(task, steps, batch, seq, seed), device)
                seed_losses.append(evaluate(model, held_out, device))
            except Diverged as exc:
                echo(f"  {axis}={v} lr={lr:g} wd={wd:g}: diverged ({exc})")
                seed_losses.append(float("inf"))
        loss = float(np.mean(seed_losses))
        results[(v, wd, lr)] = loss if math.isfinite(loss) else float("inf")
    for v in values:
        for wd in wds:
            losses = [results[(v, wd, lr)] for lr in lrs]
            runs.append({"value": v, "wd": wd, "lrs": lrs, "losses": [l if math.isfinite(l) else None
                                                                      for l in losses],
                         "best_lr": best_lr(lrs, losses), "best_loss": min(losses)})
    shift = max(_shift([r["best_lr"] for r in runs if r["wd"] == wd]) for wd in wds)
    report = {"module": str(module), "parametrization": parametrization, "axis": axis, "values": values,
              "shape": shape, "steps": steps, "batch": batch, "seq": seq, "seeds": seeds,
              "data": text or "synthetic Markov + copy", "runs": runs, "shift_log2": shift}
    for r in runs:
        echo(f"  {axis}={r['value']:<5} wd={r['wd']:<6g} best lr {r['best_lr'] or float('nan'):.3g}  "
             f"loss {r['best_loss']:.4f}")
    echo(f"[{parametrization}] optimal LR shift across {axis} {values}: {shift:.2f} octaves")
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = name or f"sweep_{Path(module).stem}_{parametrization}_{axis}"
        for r in runs:
            r["losses"] = [None if l is None else round(l, 5) for l in r["losses"]]
        (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
        from .plots import plot_sweep
        plot_sweep(report, out / f"{stem}.png")
        echo(f"wrote {out / stem}.json and .png")
    return report
