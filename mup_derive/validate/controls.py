"""Negative controls: generated muP rules with one rule deliberately broken.

Each must FAIL the check named beside it at that check's default settings (the coordinate
check, or a WD sweep for decay, which acts only over many steps); a check that passes them
cannot tell muP from these mistakes.  Ops are picked by their declared role and rank, so the
controls apply to any generated module.  A control is a row of :data:`CONTROLS`: the check
that exposes it, what it breaks, and an edit of one op's μP rules that returns whether it applied.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .rules import OpDecl, Rule, RulesModule, load_rules

if TYPE_CHECKING:
    from .target import Target

OpRules = dict[str, Rule]        # one op's shape-dependent rules, key -> rule


@dataclass(frozen=True)
class Edit:
    """What a control sees of one op: its declaration, its μP and SP rules, the rules module."""

    decl: OpDecl
    mup: OpRules
    sp: OpRules
    rules: RulesModule

    def keys(self, quantity: str) -> list[str]:
        return [f"{quantity}_{o}" for o in self.rules.OPTIMIZERS]

    def deficient(self) -> bool:
        fan_in, fan_out, rank = self.decl["shape"](**{**self.rules.BASE_SHAPE, "n": 2 ** 10, "r": 4})
        return rank < min(fan_in, fan_out)


def _drop(e: Edit, quantity: str) -> bool:
    for k in e.keys(quantity):          # a rule missing from RULES is the same at every shape
        e.mup.pop(k, None)
    return True


def hidden_lr_unscaled(e: Edit) -> bool:
    return e.decl["role"] == "hidden" and _drop(e, "lr")


def _ungate(e: Edit) -> bool:
    """Undo the gate of an op that absorbs a multiplier: its rules as if the model applied the table's multiplier
    (each rule times the factor the engine derived for it, ``DECLARED[op]["ungate"]``)."""
    for key, factor in e.decl["ungate"].items():                        # type: ignore[typeddict-item]
        rule = e.mup.get(key, lambda **shape: 1.0)
        e.mup[key] = lambda rule=rule, factor=factor, **shape: rule(**shape) * factor(**shape)
    return True


def _absorbs(e: Edit, role: str) -> bool:
    """Whether the op's gate carries the multiplier of an op of ``role`` (the query's the attention logits', the
    final gain's a tied readout's)."""
    absorbed = e.rules.DECLARED.get(str(e.decl.get("absorbs")))
    return absorbed is not None and absorbed["role"] == role


def attn_sqrt_d(e: Edit) -> bool:
    if _absorbs(e, "contraction"):
        return _ungate(e)
    if e.decl["role"] != "contraction" or not e.decl["correlated"]:
        return False
    e.mup["multiplier"] = e.sp["multiplier"]
    return True


def no_output_mult(e: Edit) -> bool:
    if _absorbs(e, "output"):
        return _ungate(e)
    if e.decl["role"] != "output":
        return False
    key = "multiplier" if e.decl.get("tied") else "init_std"    # a tied readout's init is its partner's
    e.mup[key] = e.sp.get(key, lambda **shape: 1.0)      # a rule missing from RULES is 1
    return True


def _times_r(f: Rule) -> Rule:
    return lambda **shape: f(**{**shape, "r": 1}) * shape["r"]


def kv_lr_r(e: Edit) -> bool:
    if not e.deficient():
        return False
    for k in e.keys("lr"):              # the rule at r = 1, times r
        e.mup[k] = _times_r(e.mup.get(k, lambda **shape: 1.0))
    return True


def _over_depth(f: Rule) -> Rule:
    return lambda **shape: f(**shape) / shape["L"]


def branch_lr_depth(e: Edit) -> bool:
    if not e.decl["branch"] or e.decl["role"] == "contraction":
        return False
    for k in e.keys("lr"):              # the rule, divided by L
        e.mup[k] = _over_depth(e.mup.get(k, lambda **shape: 1.0))
    return True


def wd_unscaled(e: Edit) -> bool:
    return any(k in e.mup for k in e.keys("wd")) and _drop(e, "wd")


def residual_absorbed(e: Edit) -> bool:
    return e.decl.get("absorbs") == "residual" and _ungate(e)


def no_residual_mult(rules: RulesModule) -> bool:
    rules.RULES["mup"].setdefault("residual", {})["multiplier"] = lambda **shape: 1.0
    return True


@dataclass(frozen=True)
class Control:
    check: str                                               # 'coord-check' or 'sweep'
    effect: str
    edit: Callable[[Edit], bool] | None = None               # per op
    edit_module: Callable[[RulesModule], bool] | None = None  # once, for rules outside the ops
    axis: str = "width"                                      # the axis along which it shows


CONTROLS = {
    "hidden-lr-unscaled": Control("coord-check", "hidden weights keep the base LR at every shape (SP LR with muP init)",
                                  hidden_lr_unscaled),
    "attn-sqrt-d": Control("coord-check", "attention logits (correlated contractions) scaled 1/sqrt(d_head) "
                                          "instead of 1/d_head", attn_sqrt_d),
    "no-output-mult": Control("coord-check", "output layer at SP fan-in init, without muP's extra 1/sqrt(n)",
                              no_output_mult),
    "kv-lr-r": Control("coord-check", "rank-deficient (K/V) LRs grow with f(r) = r", kv_lr_r, axis="ratio"),
    "no-residual-mult": Control("coord-check", "residual branches without the L^-alpha multiplier",
                                residual_absorbed, edit_module=no_residual_mult, axis="depth"),
    "branch-lr-depth": Control("coord-check", "residual-branch weights' LRs with an extra 1/L (their depth exponent "
                                              "alpha - 2 instead of alpha - 1)", branch_lr_depth, axis="depth"),
    "wd-unscaled": Control("sweep", "weight decay kept at its base value at every shape, so eta*lambda of weights "
                                    "whose LR scales shrinks with it (e.g. like 1/n for hidden weights under Adam)",
                           wd_unscaled),
}


def exposed_by(check: str) -> list[str]:
    """The controls that ``check`` ('coord-check' or 'sweep') must fail."""
    return sorted(name for name, c in CONTROLS.items() if c.check == check)


def _apply(mod: RulesModule, name: str) -> list[str]:
    """Apply the ``name`` control to ``mod`` in place; the ops (and 'residual') it edited."""
    if name not in CONTROLS:
        raise ValueError(f"unknown control {name!r}; one of {sorted(CONTROLS)}")
    control = CONTROLS[name]
    mup, sp = mod.RULES["mup"], mod.RULES["sp"]
    hit = [op for op, decl in mod.DECLARED.items()
           if control.edit is not None and control.edit(Edit(decl, mup.setdefault(op, {}), sp.get(op, {}), mod))]
    if control.edit_module is not None and control.edit_module(mod):
        hit.append("residual")
    if not hit:
        raise ValueError(f"control {name!r} changes nothing in {mod.__file__}: no op it applies to")
    return hit


def broken(rules: RulesModule, name: str) -> RulesModule:
    """A fresh copy of the generated ``rules`` module with the ``name`` control applied."""
    mod = load_rules(rules.__file__, fresh=True)
    _apply(mod, name)
    return mod


def edited_ops(rules: RulesModule, name: str) -> list[str]:
    """The ops (and 'residual') that the ``name`` control edits in ``rules``."""
    return _apply(load_rules(rules.__file__, fresh=True), name)


def with_control(target: Target, name: str | None) -> Target:
    """``target`` with the ``name`` control applied to its rules (unchanged for None)."""
    if name is None:
        return target
    if target.parametrization != "mup":
        raise ValueError("a control is a broken muP variant: use it with parametrization mup")
    return replace(target, rules=broken(target.rules, name), control=name)
