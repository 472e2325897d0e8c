"""OLMo2 under parametrize's derived gates (CPU, default check settings).

OLMo2 normalises q and k over the whole projection (QK-norm) and each branch output (post-norm), and has no
pre-norm.  The gates that absorb μP's multipliers therefore go on the gains after the normalisations
(``ABSORB["olmo2"]``: sqrt(d_head) on q_norm, L^alpha on the two post-norm gains); a gate on q_proj or o_proj
would be normalised away; the embedding is drawn at std 1 (``INPUT_STD``).  This runs μP, SP and both controls on
the default axes, then depth at L = 2-8 and 8-32 with HF's input init (std 0.02) and with parametrize's std 1, and
along depth two variants: the declaration without its ``stream_degree`` (the check's allowance for ops that read
the raw stream) and μP with every branch LR divided by L (a broken rule the allowance must not hide).
Run: PYTHONPATH=reports python reports/olmo2_depth.py > reports/olmo2_depth.txt

``PYTHONPATH=reports python reports/olmo2_depth.py sweep >> reports/olmo2_depth.txt`` decides with training: the LR
optimum across L = 2, 4, 8 (width 128, 200 AdamW steps, 2 seeds) under μP with HF's input init and with an input std
of 1.
"""
import sys
from dataclasses import replace

import torch
from hf_families import line, quiet

from mup_derive.validate import CheckSettings, resolve, run_coord_check
from mup_derive.validate.rules import load_rules
from mup_derive.validate.settings import SweepGrid
from mup_derive.validate.sweep import run_sweep
from mup_derive.validate.target import Target


def input_std_times(target: Target, factor: float) -> Target:
    """The target with its embedding's init multiplied by ``factor`` after parametrize's init (std 1 under μP)."""
    def make(shape: dict[str, int], rules: object) -> torch.nn.Module:
        model = target.make(shape, rules)
        with torch.no_grad():
            model.model.embed_tokens.weight.mul_(factor)
        return model
    return replace(target, make=make)


def sweeps() -> None:
    """The LR optimum across depth: its shift, per-seed spread and best losses."""
    grid = SweepGrid(axis="depth", values=(2, 4, 8), lrs=(5e-4, 1e-3, 2e-3, 4e-3, 8e-3),
                     shape={"n": 128, "L": 2, "r": 1}, steps=200, seeds=2)
    cases = (("olmo2 mup input std 0.02", input_std_times(resolve("hf:olmo2", "mup", batch=8, seq=64), 0.02)),
             ("olmo2 mup input std 1", resolve("hf:olmo2", "mup", batch=8, seq=64)))
    print("\n# LR optimum across L = 2, 4, 8: width 128, 200 AdamW steps, batch 8 x 64 (synthetic task), 2 seeds")
    for name, target in cases:
        rep = run_sweep(target, grid, echo=quiet)
        optima = ", ".join(f"{r.best_lr:.2e}" if r.best_lr else "edge" for r in rep.runs)
        seeds = rep.shift_log2_seeds.get("0.0") or next(iter(rep.shift_log2_seeds.values()))
        print(f"{name:<26} optima {optima}  shift {rep.shift_log2 or float('nan'):.2f} octave "
              f"(per seed {seeds.mean:.2f} +- {seeds.sd:.2f})  best loss "
              + ", ".join(f"{r.best_loss:.3f}" for r in rep.runs), flush=True)


def edited(target: Target, edit: object) -> Target:
    """``target`` with a fresh copy of its rules, edited in place by ``edit(rules)``."""
    rules = load_rules(target.rules.__file__, fresh=True)
    edit(rules)
    return replace(target, rules=rules)


def undeclared(rules: object) -> None:
    """Drop the declared stream degrees (the check then judges every op as read through a norm)."""
    for decl in rules.DECLARED.values():
        decl.pop("stream_degree", None)


def checks() -> None:
    s = CheckSettings()
    for p in ("mup", "sp"):
        print("olmo2", p, line(run_coord_check(resolve("hf:olmo2", p), ["width", "ratio", "depth"], s, echo=quiet)),
              flush=True)
    for control, axes in (("attn-sqrt-d", ["width"]), ("no-residual-mult", ["depth"])):
        print("olmo2", control, line(run_coord_check(resolve("hf:olmo2"), axes, s, control=control, echo=quiet)),
              flush=True)
    for depths in ((2, 4, 8), (8, 16, 32)):
        for factor in (0.02, 1.0):
            rep = run_coord_check(input_std_times(resolve("hf:olmo2"), factor), ["depth"], replace(s, depths=depths),
                                  echo=quiet)
            slopes = {lab: f"{v.metrics['rms'].slope[0]:+.2f}" for lab, v in rep.axes["depth"].labels.items()
                      if lab in ("q_proj", "down_proj", "residual")}
            print(f"olmo2 mup depths {depths} input std {factor:g}:", line(rep), "rms slopes at init", slopes,
                  flush=True)
    rep = run_coord_check(edited(resolve("hf:olmo2"), undeclared), ["depth"], s, echo=quiet)
    print("olmo2 mup without stream_degree:", line(rep), flush=True)
    rep = run_coord_check(resolve("hf:olmo2"), ["depth"], s, control="branch-lr-depth", echo=quiet)
    print("olmo2 mup branch LR / L:", line(rep), flush=True)          # the branch-lr-depth control


if __name__ == "__main__":
    sweeps() if sys.argv[1:] == ["sweep"] else checks()
