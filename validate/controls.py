"""Negative controls: generated muP rules with one rule deliberately broken.

Each must FAIL the coordinate check at its default settings; a check that passes them
cannot tell muP from these mistakes.  Ops are picked by their declared role and rank,
so the controls apply to any generated module.
"""
from __future__ import annotations

CONTROLS = {
    "hidden-lr-unscaled": "hidden weights keep the base LR at every shape (SP LR with muP init)",
    "attn-sqrt-d": "attention logits (correlated contractions) scaled 1/sqrt(d_head) instead of 1/d_head",
    "no-output-mult": "output layer at SP fan-in init, without muP's extra 1/sqrt(n)",
    "kv-lr-r": "rank-deficient (K/V) LRs grow with f(r) = r",
    "no-residual-mult": "residual branches without the L^-alpha multiplier",
}


def broken(rules, name: str):
    """A fresh copy of the generated ``rules`` module with the ``name`` control applied."""
    from .loader import load_module
    if name not in CONTROLS:
        raise ValueError(f"unknown control {name!r}; one of {sorted(CONTROLS)}")
    mod = load_module(rules.__file__, fresh=True)
    mup, sp = mod.RULES["mup"], mod.RULES["sp"]      # a rule missing from RULES is constant
    lr_keys = [f"lr_{o}" for o in mod.OPTIMIZERS]
    hit = []
    for op, decl in mod.DECLARED.items():
        role, (fan_in, fan_out, rank) = decl["role"], decl["shape"](**{**mod.BASE_SHAPE, "n": 2 ** 10, "r": 4})
        own = mup.setdefault(op, {})
        if name == "hidden-lr-unscaled" and role == "hidden":
            for k in lr_keys:                            # SP: one global LR at every shape
                own.pop(k, None)
        elif name == "attn-sqrt-d" and role == "contraction" and decl["correlated"]:
            own["multiplier"] = sp[op]["multiplier"]
        elif name == "no-output-mult" and role == "output":
            own["init_std"] = sp[op]["init_std"]
        elif name == "kv-lr-r" and rank < min(fan_in, fan_out):
            for k in lr_keys:                            # the rule at r = 1, times r
                f = own.get(k, lambda **shape: 1.0)
                own[k] = lambda f=f, **shape: f(**{**shape, "r": 1}) * shape["r"]
        else:
            continue
        hit.append(op)
    if name == "no-residual-mult":
        mup.setdefault("residual", {})["multiplier"] = lambda **shape: 1.0
        hit.append("residual")
    if not hit:
        raise ValueError(f"control {name!r} changes nothing in {rules.__file__}: no op it applies to")
    mod.BROKEN = (name, tuple(hit))
    return mod
