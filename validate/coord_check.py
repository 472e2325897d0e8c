"""Coordinate check: do activations, their changes and every layer's own update stay Θ(1)?

For each shape along an axis (width n, group ratio r, depth L) and each seed, the target's
model trains ``steps`` AdamW steps with the derived param groups on one batch (drawn per
seed, the same at every shape).  Before training and after every step that batch runs
through the model again with forward hooks on every module
whose parameters a declared op governs (plus the target's watched modules, e.g. the residual
stream, and its probes, e.g. attention logits computed from the hooked q and k).  Per label
and step we record

* ``rms``: activation RMS;
* ``delta``: RMS of the activation's change since init;
* ``dwx``: RMS of the layer's own update applied to its input at init, (W_t - W_0) x_0.

Each is fitted against the axis on log-log scales, one slope per seed; the check passes a
label when, at every recorded step, the 95% confidence interval of the mean slope meets the
band of slopes that μP theory predicts (± ``band``).  The predictions come from the
declaration's roles and shapes, never from the derived rules under test:

* a layer's own update ``dwx`` is Θ(1) -- feature learning at every width, ratio and depth --
  except a branch op's along depth, Θ(L^(alpha-1));
* activations at init are Θ(1), except sums of independent terms that μP normalises as if
  correlated: an output layer's and a correlated contraction's (q.k/d) outputs are
  Θ(fan_in^(-1/2)); the residual stream at init is the embedding plus L branches of
  L^-alpha, between Θ(L^(1/2-alpha)) and Θ(1);
* an activation's change (``delta``) is its own Θ(1) update plus the init weights acting on
  changed inputs, which scale like the init output: between the two exponents.  The
  stream's change sums L branch changes of L^-alpha, incoherent to coherent:
  L^(1/2-alpha) to L^(1-alpha).  After a step an activation lies between its init and its
  change;
* along depth a pre-norm layer reads the stream normalised; with the stream at init between
  L^(1/2-alpha) and 1, its quantities may carry up to L^(alpha-1/2) more.
"""
from __future__ import annotations

import fnmatch
import math

import numpy as np
import torch
from tqdm import tqdm

from .controls import CONTROLS, apply
from .defaults import AXES, DEFAULTS
from .report import write_report
from .target import Target, to_device
from .train import Diverged, build, optimizer, train

# two-sided 95% Student-t quantiles by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
       10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


class CheckError(ValueError):
    """A coordinate check that cannot run as asked; the message says why."""


def t95(df: int) -> float:
    return T95[max(k for k in T95 if k <= df)] if df <= 30 else 1.96


def _rms(t: torch.Tensor) -> float:
    return t.detach().float().pow(2).mean().sqrt().item()


class _Hooks:
    """Forward hooks on a model's governed and watched modules, grouped by label."""

    def __init__(self, target: Target, model: torch.nn.Module):
        self.label, self.governed, self.out, self.inp, self.on = {}, {}, {}, {}, True
        for name, mod in model.named_modules():
            own = [pn for pn, _ in mod.named_parameters(recurse=False)]
            if own:
                ops = [target.rules.op_of(f"{name}.{pn}" if name else pn) for pn in own]
                if None in ops:
                    pn = own[ops.index(None)]
                    raise CheckError(f"parameter {name + '.' if name else ''}{pn} is governed by no declared op")
                self.label[name], self.governed[name] = ops[0], mod
            else:
                hit = [lab for lab, glob in target.watch.items()
                       if fnmatch.fnmatchcase(name, glob) and name.count(".") == glob.count(".")]
                if not hit:
                    continue
                self.label[name] = hit[0]
            mod.register_forward_hook(self._hook(name))
        if not self.governed:
            raise CheckError(f"{type(model).__name__} has no parameter that a declared op governs: not a "
                             "model of this declaration")

    def _hook(self, name):
        def hook(_mod, inputs, output):
            if self.on:
                self.out[name] = output.detach() if isinstance(output, torch.Tensor) else output[0].detach()
                self.inp[name] = tuple(i.detach() if isinstance(i, torch.Tensor) else i for i in inputs)
        return hook


@torch.no_grad()
def trace(target: Target, shape: dict, steps: int, lr: float, seed: int, device: str = "cpu") -> dict:
    """{label: {metric: [value at step 0..steps]}} for one model, or {"diverged": message}."""
    model = build(target, shape, seed, device)
    hooks = _Hooks(target, model)
    batch = to_device(target.sample(np.random.default_rng(seed)), device)   # trained on and probed
    series: dict = {}
    init = {}

    def record():
        hooks.out.clear()
        target.loss(model, batch)
        outs = dict(hooks.out)
        groups: dict = {}
        if not init:
            init.update(out=outs, inp=dict(hooks.inp))
        hooks.on = False
        for name, o in outs.items():
            d = {"rms": _rms(o), "delta": _rms(o - init["out"][name])}
            if name in hooks.governed:
                d["dwx"] = _rms(hooks.governed[name](*init["inp"][name]) - init["out"][name])
            groups.setdefault(hooks.label[name], []).append(d)
        if target.probes is not None:
            for label, ts in target.probes(model, outs).items():
                base = init.setdefault(("probe", label), ts)
                groups[label] = [{"rms": _rms(t), "delta": _rms(t - t0)} for t, t0 in zip(ts, base)]
        hooks.on = True
        for label, ds in groups.items():
            for m in ds[0]:
                series.setdefault(label, {}).setdefault(m, []).append(float(np.mean([d[m] for d in ds])))

    opt = optimizer(target, model, shape, lr)
    record()
    for step in range(steps):
        try:
            with torch.enable_grad():
                train(target, model, opt, [batch], device)
        except Diverged as exc:
            return {"diverged": f"{shape} seed {seed} step {step}: {exc}"}
        record()
    return series


def _slope(xs, ys) -> float:
    xs, ys = np.log(np.asarray(xs, float)), np.log(np.maximum(np.asarray(ys, float), 1e-30))
    return float(np.polyfit(xs, ys, 1)[0])


def expected(target: Target, label: str, metric: str, step: int, axis: str, values: list, base: dict,
             alpha: float) -> tuple[float, float]:
    """Range of log-log slopes μP theory allows for ``label``'s ``metric`` at ``step`` along ``axis``
    (before the band is added): from the declared role and shape, not from the rules."""
    decl = target.rules.DECLARED.get(label, {"role": "stream", "branch": False})
    role, depth = decl["role"], axis == "depth"
    if metric == "dwx":                       # the layer's own update: Θ(1), or L^(alpha-1) in a branch
        e = alpha - 1 if (depth and decl["branch"]) else 0.0
        return e, e
    if role == "stream":                      # embedding + L branches x L^-alpha, incoherent .. coherent
        init = (min(0.0, 0.5 - alpha), 0.0) if depth else (0.0, 0.0)
        change = (0.5 - alpha, 1.0 - alpha) if depth else (0.0, 0.0)
    else:
        if role == "output" or (role == "contraction" and decl["correlated"]):
            fan_in = [decl["shape"](**{**base, AXES[axis]: v})[0] for v in values]
            e = -0.5 * _slope(values, fan_in)  # independent terms summed with a 1/fan_in scale
        else:
            e = 0.0
        init = (e, e)
        change = (min(e, 0.0), max(e, 0.0))   # update Θ(1) plus init weights on changed inputs
        if depth:                             # read through a norm of a stream between L^(1/2-alpha) and 1
            init, change = (init[0], init[1] + max(0.0, alpha - 0.5)), (change[0], change[1] + max(0.0, alpha - 0.5))
    if step == 0:
        return init
    if metric == "delta":
        return change
    return min(init[0], change[0]), max(init[1], change[1])


def run_axis(target: Target, axis: str, values: list[int], base: dict, steps: int, lr: float, seeds: int,
             alpha: float, band: float, device: str, echo=print) -> dict:
    key = AXES[axis]
    jobs = tqdm([(v, s) for v in values for s in range(seeds)], desc=f"coord-check {axis}", disable=None)
    traced = [trace(target, {**base, key: v}, steps, lr, s, device) for v, s in jobs]
    runs = [traced[i * seeds:(i + 1) * seeds] for i in range(len(values))]
    diverged = [r["diverged"] for per in runs for r in per if "diverged" in r]
    res = {"values": values, "base": base, "diverged": diverged, "labels": {}}
    if diverged:
        res["passed"] = False
        return res
    half = t95(seeds - 1)
    for label in runs[0][0]:
        entry = {}
        for metric in runs[0][0][label]:
            first = 1 if metric != "rms" else 0
            y = np.array([[r[label][metric] for r in per] for per in runs])        # value, seed, step
            slopes = np.array([[_slope(values, y[:, s, t]) if t >= first else 0.0 for t in range(steps + 1)]
                               for s in range(seeds)])                            # seed, step
            mean, sd = slopes.mean(0), slopes.std(0, ddof=1)
            ci = np.stack([mean - half * sd / math.sqrt(seeds), mean + half * sd / math.sqrt(seeds)], 1)
            exp = [expected(target, label, metric, t, axis, values, base, alpha) for t in range(steps + 1)]
            ok = [bool(t < first or (ci[t, 0] <= exp[t][1] + band and ci[t, 1] >= exp[t][0] - band))
                  for t in range(steps + 1)]
            entry[metric] = {"mean": y.mean(1).tolist(), "slope": mean.tolist(), "ci": ci.tolist(),
                             "seed_slopes": slopes.tolist(), "expected": [list(e) for e in exp],
                             "judged_from_step": first, "passed": ok}
        res["labels"][label] = {"metrics": entry, "passed": all(all(m["passed"]) for m in entry.values())}
    res["passed"] = all(lab["passed"] for lab in res["labels"].values())
    return res


def _describe(metric: dict, band: float) -> str:
    t = next((i for i, ok in enumerate(metric["passed"]) if not ok), len(metric["passed"]) - 1)
    lo, hi = metric["ci"][t]
    elo, ehi = metric["expected"][t]
    return (f"{metric['slope'][t]:+.2f} [{lo:+.2f},{hi:+.2f}] vs [{elo - band:+.2f},{ehi + band:+.2f}]"
            + ("" if metric["passed"][t] else f" FAIL@{t}"))


def run_coord_check(target: Target, axes: dict[str, list[int]], steps: int = DEFAULTS["steps"],
                    lr: float = DEFAULTS["lr"], seeds: int = DEFAULTS["seeds"], alpha: float = DEFAULTS["alpha"],
                    band: float = DEFAULTS["band"], device: str = "cpu", control: str | None = None,
                    out_dir: str | None = None, command: str = "", echo=print) -> dict:
    """Coordinate check along each axis in ``axes`` ({"width": [...], "ratio": [...], "depth": [...]});
    the other shape entries sit at the smallest width/depth and r = 1 (the ratio axis at the largest
    width).  ``control`` breaks one rule first (see :mod:`validate.controls`).  Writes JSON + PNG."""
    if steps < 1 or seeds < 2:
        raise CheckError("a coordinate check needs steps >= 1 and seeds >= 2 (for a confidence interval)")
    for axis, values in axes.items():
        if axis not in AXES:
            raise CheckError(f"unknown axis {axis!r}; one of {sorted(AXES)}")
        if len(set(values)) < 2 or min(values) < 1:
            raise CheckError(f"the {axis} axis needs at least two distinct positive values, got {values}")
    try:
        target = apply(target, control)
    except ValueError as exc:
        raise CheckError(str(exc)) from None
    widths, depths = axes.get("width", DEFAULTS["widths"]), axes.get("depth", DEFAULTS["depths"])
    bases = {"width": {"n": min(widths), "L": min(depths), "r": 1},
             "ratio": {"n": max(widths), "L": min(depths), "r": 1},
             "depth": {"n": min(widths), "L": min(depths), "r": 1}}
    name = target.parametrization + (f"_{control}" if control else "")
    report = {"command": command, "target": target.name, "source": target.source,
              "parametrization": target.parametrization, "control": control,
              "control_effect": control and CONTROLS[control][1], "steps": steps, "lr": lr, "seeds": seeds,
              "alpha": alpha, "band": band, "confidence": 0.95, "axes": {}}
    for axis, values in axes.items():
        res = run_axis(target, axis, values, bases[axis], steps, lr, seeds, alpha, band, device, echo)
        report["axes"][axis] = res
        echo(f"[{name}] {axis} {values} (others {bases[axis]}): slope, 95% CI vs allowed, at the last or first "
             f"failing step" + (f"  DIVERGED: {res['diverged'][0]}" if res["diverged"] else ""))
        for label, lab in res["labels"].items():
            cols = "  ".join(f"{m} {_describe(v, band)}" for m, v in lab["metrics"].items())
            echo(f"  {label:12s} {'pass' if lab['passed'] else 'FAIL'}  {cols}")
    report["passed"] = all(a["passed"] for a in report["axes"].values())
    echo(f"[{name}] coordinate check {'PASSED' if report['passed'] else 'FAILED'}")
    if out_dir:
        from .plots import plot_coord_check
        stem = f"coord_check_{target.name}_{name}"
        echo(f"wrote {write_report(out_dir, stem, report, plot_coord_check)} and .png")
    return report
