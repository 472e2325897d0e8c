"""Two finite-size effects behind the calibration's inconclusive runs (CPU, the shipped GQA module).

1. Depth at α = 1/2: o's own update (W_1 - W_0)·x_0 per layer after one AdamW step, at L = 2, 4, 8, 16 (width 128,
   12 seeds, the check's batch), for the module generated at α = 1/2 and, for contrast, at α = 1.  The check
   averages the L layers' values, so a first layer that differs from the rest weighs 1/L in the mean; then the
   check's fitted depth slope of o's and q's own update at L = 2-8 and at L = 4-16.
2. Width on text bytes: the fitted width slope of the changes of o's, mlp_down's and the stream's outputs, 24 seeds
   at widths 128-512 and 256-1024 on LICENSE bytes, and at 128-512 on the synthetic task.
3. Width after 10 steps (the calibration's 10-step cell): the same slopes of the outputs and their changes, 24 seeds,
   at widths 128-512 and 256-1024 on the synthetic task.

Run: python reports/check_finite_size.py > reports/check_finite_size.txt (all three parts; name some of depth,
width and steps to run only those).
"""
import sys
import tempfile
from pathlib import Path

import numpy as np
import sympy as sp
import torch

from mup_derive.derive.settings import Settings
from mup_derive.validate import CheckSettings, resolve, run_coord_check
from mup_derive.validate.target import Target, gqa_target
from mup_derive.validate.train import build, optimizer, train
from mup_derive.validate.variants import gqa_variant

ROOT = Path(__file__).resolve().parent.parent
SEED = 200_000                         # a seed set of its own, disjoint from the calibration's (1000 k, k < 200)


def own_update_per_layer(target: Target, op: str, depth: int, seeds: int) -> np.ndarray:
    """RMS of (W_1 - W_0)·x_0 for ``blocks.i.attn.{op}`` at each layer i, seed mean (width 128, r = 1)."""
    per = []
    for seed in range(SEED, SEED + seeds):
        shape = {"n": 128, "L": depth, "r": 1}
        model = build(target, shape, seed, "cpu")
        batch = target.sample(np.random.default_rng(seed))
        mods = [model.get_submodule(f"blocks.{i}.attn.{op}") for i in range(depth)]
        inputs: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda _m, i, _o, acc=inputs: acc.append(i[0].detach())) for m in mods]
        with torch.no_grad():
            target.loss(model, batch)
        for h in hooks:
            h.remove()
        w0 = [m.weight.detach().clone() for m in mods]
        with torch.enable_grad():
            train(target, model, optimizer(target, model, shape, 3e-3), [batch], "cpu")
        per.append([((m.weight.detach() - w) @ x.flatten(0, -2).T).pow(2).mean().sqrt().item()
                    for m, w, x in zip(mods, w0, inputs, strict=True)])
    return np.array(per).mean(0)


def fitted(target: Target, axis: str, values: tuple[int, ...], seeds: int, labels: list[str], metrics: list[str],
           steps: int = 4, shown: tuple[int, ...] = (1, 2, 3, 4)) -> None:
    """The check's fitted slope and 95% CI at the ``shown`` steps of ``steps``, with ``seeds`` seeds per shape and
    no more."""
    s = CheckSettings(seeds=seeds, max_seeds=seeds, seed_offset=SEED, steps=steps,
                      **{f"{axis}s": values})  # type: ignore[arg-type]
    rep = run_coord_check(target, (axis,), s, echo=lambda *_: None)
    for label in labels:
        for metric in metrics:
            m = rep.axes[axis].labels[label].metrics[metric]
            at = " ".join(f"{m.slope[t]:+.2f} [{m.ci[t][0]:+.2f},{m.ci[t][1]:+.2f}]" for t in shown)
            print(f"  {axis} {','.join(map(str, values))}: {label} {metric} expected {m.expected[1]}; "
                  f"steps {', '.join(map(str, shown))}: {at}")


def depth(folder: Path) -> None:
    print("## 1. Depth: o's own update per layer after one step (width 128, 12 seeds)\n")
    for alpha in (sp.Rational(1, 2), sp.Integer(1)):
        target = gqa_target(gqa_variant(folder, Settings(alpha=alpha)), "mup", batch=2, seq=16)
        print(f"alpha = {alpha}: L, layer mean, layer mean x L^(1-alpha), first layer / mean of the others, per layer")
        for L in (2, 4, 8, 16):
            a = own_update_per_layer(target, "o", L, 12)
            print(f"  L={L:2d}  {a.mean():.4f}  {a.mean() * L ** (1 - float(alpha)):.4f}  {a[0] / a[1:].mean():.2f}  "
                  + " ".join(f"{x:.4f}" for x in a))
    half = gqa_target(gqa_variant(folder, Settings(alpha=sp.Rational(1, 2))), "mup", batch=2, seq=16)
    print("\nThe check's depth fit at alpha = 1/2, 12 seeds:")
    for values in ((2, 4, 8), (4, 8, 16)):
        fitted(half, "depth", values, 12, ["q", "o"], "dwx")


def width() -> None:
    print("\n## 2. Width: the changes of the branch outputs and the stream (24 seeds, L = 2, r = 1)\n")
    for text, values in ((str(ROOT / "LICENSE"), (128, 256, 512)), (str(ROOT / "LICENSE"), (256, 512, 1024)),
                         (None, (128, 256, 512))):
        print(f"{'LICENSE bytes' if text else 'synthetic task'}:")
        fitted(resolve(str(ROOT / "generated" / "gqa_transformer.py"), "mup", text=text, batch=2, seq=16),
               "width", values, 24, ["o", "mlp_down", "residual"], ["delta"])


def steps() -> None:
    print("\n## 3. Width after 10 steps: the branch outputs and the stream (24 seeds, L = 2, r = 1, synthetic task)\n")
    for values in ((128, 256, 512), (256, 512, 1024)):
        fitted(resolve(str(ROOT / "generated" / "gqa_transformer.py"), "mup", batch=2, seq=16),
               "width", values, 24, ["o", "mlp_down", "residual"], ["rms", "delta"], steps=10, shown=(2, 4, 6, 8, 10))


if __name__ == "__main__":
    torch.set_num_threads(1)
    parts = sys.argv[1:] or ["depth", "width", "steps"]
    if "depth" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            depth(Path(tmp))
    if "width" in parts:
        width()
    if "steps" in parts:
        steps()
