"""Negative controls: generated muP rules with one rule deliberately broken.

Each must FAIL the check named beside it at that check's default settings (the coordinate
check, or a WD sweep for decay, which acts only over many steps); a check that passes them
cannot tell muP from these mistakes.  Ops are picked by their declared role and rank, so the
controls apply to any generated module.
"""
from __future__ import annotations

from dataclasses import replace

CONTROLS = {   # name -> (the check that exposes it, what is broken)
    "hidden-lr-unscaled": ("coord-check", "hidden weights keep the base LR at every shape (SP LR with muP init)"),
    "attn-sqrt-d": ("coord-check",
                    "attention logits (correlated contractions) scaled 1/sqrt(d_head) instead of 1/d_head"),
    "no-output-mult": ("coord-check", "output layer at SP fan-in init, without muP's extra 1/sqrt(n)"),
    "kv-lr-r": ("coord-check", "rank-deficient (K/V) LRs grow with f(r) = r"),
    "no-residual-mult": ("coord-check", "residual branches without the L^-alpha multiplier"),
    "wd-unscaled": ("sweep", "weight decay kept at its base value at every shape, so eta*lambda of weights "
                             "whose LR scales shrinks with it (e.g. like 1/n for hidden weights under Adam)"),
}


def exposed_by(check: str) -> list[str]:
    """The controls that ``check`` ('coord-check' or 'sweep') must fail."""
    return sorted(name for name, (by, _) in CONTROLS.items() if by == check)


def apply(target, name: str | None):
    """``target`` with the ``name`` control applied to its rules (unchanged for None)."""
    if name is None:
        return target
    if target.parametrization != "mup":
        raise ValueError("a control is a broken muP variant: use it with parametrization mup")
    return replace(target, rules=broken(target.rules, name))


def broken(rules, name: str):
    """A fresh copy of the generated ``rules`` module with the ``name`` control applied."""
    from .loader import load_module
    if name not in CONTROLS:
        raise ValueError(f"unknown control {name!r}; one of {sorted(CONTROLS)}")
    mod = load_module(rules.__file__, fresh=True)
    mup, sp = mod.RULES["mup"], mod.RULES["sp"]      # a rule missing from RULES is constant
    lr_keys, wd_keys = ([f"{q}_{o}" for o in mod.OPTIMIZERS] for q in ("lr", "wd"))
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
        elif name == "wd-unscaled" and any(k in own for k in wd_keys):
            for k in wd_keys:                            # one WD at every shape
                own.pop(k, None)
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
