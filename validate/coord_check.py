"""Coordinate check: activation RMS and its change from init across width, ratio and depth.

For each shape we train a few AdamW steps on fixed batches and, before every step, run a
fixed probe batch through the model with forward hooks.  Per layer we fit the log-log
slope of (a) the activation RMS and (b) the RMS of its change from init, at the last
step, against each axis.  A layer passes when neither grows faster than the table
predicts (slope <= tol + allowance): SP's logits and attention blow up with width and
fail.  The allowance is 0 along width and depth; along the group ratio it is the
log-slope of the largest derived LR factor (f(r) for K and V), whose growth the table
predicts.  Shrinking coordinates (μP attention logits head to the uniform-attention
limit at init) are stable and pass; their slopes are reported.
"""
from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import numpy as np
import torch

from .data import MarkovTask, batches
from .loader import load_module
from .train import AXES, Diverged, build, optimizer, train

LAYERS = {"embedding": "tok_emb", "q": "blocks.*.attn.q", "k": "blocks.*.attn.k", "v": "blocks.*.attn.v",
          "attn_logits": "blocks.*.attn.scores", "attn_out": "blocks.*.attn", "mlp_out": "blocks.*.mlp",
          "residual": "blocks.[0-9]*", "logits": "lm_head"}
TOL = 0.5


def _label(name: str) -> str | None:
    for label, pattern in LAYERS.items():
        if fnmatch.fnmatchcase(name, pattern) and name.count(".") == pattern.count("."):
            return label
    return None


def _rms(t: torch.Tensor) -> float:
    return t.float().pow(2).mean().sqrt().item()


def probe_run(module, shape: dict, parametrization: str, steps: int, lr: float, seed: int,
              device: str = "cpu", batch: int = 16, seq: int = 32) -> dict:
    """Per layer: lists over steps 0..steps of activation RMS and RMS change from init."""
    module, model = build(module, shape, parametrization, seed, device)
    captured: dict[str, list[torch.Tensor]] = {}
    for name, mod in model.named_modules():
        label = _label(name)
        if label == "attn_logits":
            model.get_submodule(name.rsplit(".", 1)[0]).probe = True
        if label is not None:
            mod.register_forward_hook(lambda _m, _i, out, label=label: captured[label].append(out.detach()))
    task = MarkovTask(vocab=module.DIMS["vocab"], seed=1234)
    data = batches(task, steps, batch, seq, seed=seed)
    probe = task.batch(batch, seq, np.random.default_rng(999)).to(device)
    first, rms, delta = {}, {k: [] for k in LAYERS}, {k: [] for k in LAYERS}

    def record():
        captured.clear()
        captured.update({k: [] for k in LAYERS})
        with torch.no_grad():
            model(probe[:, :-1])
        for label, outs in captured.items():
            first.setdefault(label, outs)
            rms[label].append(float(np.mean([_rms(o) for o in outs])))
            delta[label].append(float(np.mean([_rms(o - f) for o, f in zip(outs, first[label])])))

    record()
    opt, diverged = optimizer(module, model, lr), None
    for step, tokens in enumerate(data):
        try:
            train(model, opt, [tokens], device)
        except Diverged as exc:
            diverged = f"step {step}: {exc}"
            break
        record()
    return {"rms": rms, "delta": delta, "diverged": diverged}


def slope(xs, ys) -> float:
    xs, ys = np.log(np.asarray(xs, float)), np.log(np.maximum(np.asarray(ys, float), 1e-30))
    return float(np.polyfit(xs, ys, 1)[0]) if len(xs) > 1 else 0.0


def allowance(module, axis: str, values: list[int], base: dict, parametrization: str) -> float:
    """Largest growth slope of any derived AdamW LR factor along the ratio axis (else 0)."""
    if axis != "ratio":
        return 0.0
    rules = (load_module(module) if isinstance(module, str) else module).RULES[parametrization]
    return max(0.0, *(slope(values, [q["lr_adamw"](base["n"], base["L"], r) for r in values])
                      for q in rules.values() if "lr_adamw" in q))


def run_axis(module, axis: str, values: list[int], base: dict, parametrization: str, steps: int,
             lr: float, seeds: int, device: str) -> dict:
    key = AXES[axis]
    bound = TOL + allowance(module, axis, values, base, parametrization)
    runs = []
    for v in values:
        per_seed = [probe_run(module, {**base, key: v}, parametrization, steps, lr, s, device)
                    for s in range(seeds)]
        runs.append(per_seed)
    layers, diverged = {}, [r["diverged"] for per in runs for r in per if r["diverged"]]
    for label in [] if diverged else LAYERS:
        curve = {m: [np.mean([r[m][label] for r in per], axis=0).tolist() for per in runs]
                 for m in ("rms", "delta")}
        s_rms = slope(values, [c[-1] for c in curve["rms"]])
        s_delta = slope(values, [c[-1] for c in curve["delta"]])
        layers[label] = {**curve, "slope_rms": s_rms, "slope_delta": s_delta,
                         "passed": bool(s_rms <= bound and s_delta <= bound)}
    return {"values": values, "base": base, "bound": bound, "layers": layers, "diverged": diverged,
            "passed": not diverged and all(v["passed"] for v in layers.values())}


def run_coord_check(module: str, widths, ratios, depths, steps: int = 5, lr: float = 1e-2, seeds: int = 2,
                    parametrization: str = "mup", device: str = "cpu", out_dir: str | None = None,
                    echo=print) -> dict:
    """Coordinate check along each axis; writes JSON + PNG to ``out_dir`` when given."""
    n0, L0 = min(widths), min(depths)
    axes = {"width": (widths, {"n": n0, "L": L0, "r": 1}),
            "ratio": (ratios, {"n": max(widths), "L": L0, "r": 1}),
            "depth": (depths, {"n": n0, "L": L0, "r": 1})}
    report = {"module": str(module), "parametrization": parametrization, "steps": steps, "lr": lr,
              "seeds": seeds, "tolerance": TOL, "axes": {}}
    for axis, (values, base) in axes.items():
        if len(values) < 2:
            continue
        res = run_axis(module, axis, values, base, parametrization, steps, lr, seeds, device)
        report["axes"][axis] = res
        echo(f"[{parametrization}] {axis} {values} (others {base}, slope bound {res['bound']:.2f})" +
             (f" DIVERGED: {res['diverged'][0]}" if res["diverged"] else ""))
        for label, v in res["layers"].items():
            echo(f"  {label:12s} slope rms {v['slope_rms']:+.2f}  change {v['slope_delta']:+.2f}  "
                 f"{'pass' if v['passed'] else 'FAIL'}")
    report["passed"] = all(a["passed"] for a in report["axes"].values())
    echo(f"[{parametrization}] coordinate check {'PASSED' if report['passed'] else 'FAILED'}")
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"coord_check_{Path(module).stem}_{parametrization}"
        (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
        from .plots import plot_coord_check
        plot_coord_check(report, out / f"{stem}.png")
        echo(f"wrote {out / stem}.json and .png")
    return report
