"""OLMo2 under parametrize's derived gates, with its refusal lifted for this study (CPU, default check settings).

OLMo2 normalises q and k over the whole projection (QK-norm) and each branch output (post-norm), and has no
pre-norm.  The gates that absorb μP's multipliers therefore go on the gains after the normalisations
(``ABSORB["olmo2"]``: sqrt(d_head) on q_norm, L^alpha on the two post-norm gains); a gate on q_proj or o_proj
would be normalised away.  This runs μP, SP and both controls on the default axes, then depth at L = 2-8 and
8-32 with HF's input init (std 0.02) and with an input std of 1 (TP5's Θ(1) input init, x50).
Run: PYTHONPATH=reports python reports/olmo2_depth.py > reports/olmo2_depth.txt
"""
import importlib
from dataclasses import replace

import torch
from hf_families import line, quiet

from mup_derive.validate import CheckSettings, resolve, run_coord_check
from mup_derive.validate.target import Target

importlib.import_module("mup_derive.apply.parametrize").POST_NORM = ()   # this study only: parametrize refuses OLMo2


def input_std_times(target: Target, factor: float) -> Target:
    """The target with its embedding's init multiplied by ``factor`` after parametrize's init."""
    def make(shape: dict[str, int], rules: object) -> torch.nn.Module:
        model = target.make(shape, rules)
        with torch.no_grad():
            model.model.embed_tokens.weight.mul_(factor)
        return model
    return replace(target, make=make)


if __name__ == "__main__":
    s = CheckSettings()
    for p in ("mup", "sp"):
        print("olmo2", p, line(run_coord_check(resolve("hf:olmo2", p), ["width", "ratio", "depth"], s, echo=quiet)),
              flush=True)
    for control, axes in (("attn-sqrt-d", ["width"]), ("no-residual-mult", ["depth"])):
        print("olmo2", control, line(run_coord_check(resolve("hf:olmo2"), axes, s, control=control, echo=quiet)),
              flush=True)
    for depths in ((2, 4, 8), (8, 16, 32)):
        for factor in (1.0, 50.0):
            rep = run_coord_check(input_std_times(resolve("hf:olmo2"), factor), ["depth"], replace(s, depths=depths),
                                  echo=quiet)
            slopes = {lab: f"{v.metrics['rms'].slope[0]:+.2f}" for lab, v in rep.axes["depth"].labels.items()
                      if lab in ("q_proj", "down_proj", "residual")}
            print(f"olmo2 mup depths {depths} input std {0.02 * factor:g}:", line(rep), "rms slopes at init", slopes,
                  flush=True)
