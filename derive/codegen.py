"""Render derived tables into standalone PyTorch code with the Jinja2 templates in ``templates/``."""
from __future__ import annotations

from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import jinja2
import sympy as sp
from sympy.printing.pycode import pycode

from .declaration import Architecture
from .solver import EPS_OPTIMIZERS, OPTIMIZERS, WD_OPTIMIZERS, Settings, Table, derive

TEMPLATES = Path(str(files("mup_derive.templates")))
MODELS = {"gqa_transformer": "gqa_transformer.py.j2", "hf_granite": "hf_granite.py.j2"}
_GQA_OPS = ("embedding", "attn_norm", "q", "k", "v", "attn_logits", "o", "mlp_norm", "mlp_up", "mlp_down",
            "final_norm", "unembedding")
REQUIRED = {"gqa_transformer": _GQA_OPS, "hf_granite": _GQA_OPS}


def _py(expr: sp.Expr, dims: dict) -> str:
    code = pycode(sp.nsimplify(expr.subs(dims)), fully_qualified_modules=True)
    return code.replace("math.sqrt", "sqrt")


def _rules(table: Table) -> dict:
    """{op: {key: (python expression, reason)}} for the rules that change with the shape; keys
    are init_std, multiplier, lr_<opt>, wd_<opt>, eps_<opt>."""
    dims, scaled = table.arch.dim_symbols, set(table.arch.scaling)
    rules: dict[str, dict[str, tuple[str, str]]] = {}
    for e in table.entries:
        if e.expr.free_symbols & scaled:
            key = e.quantity if e.optimizer is None else f"{e.quantity}_{e.optimizer}"
            rules.setdefault(e.op, {})[key] = (_py(e.expr, dims), e.reason.rsplit(" => ", 1)[0])
    return rules


def check_base(arch: Architecture, base: dict) -> None:
    """Every op's shape at the base shape must be a whole positive dimension."""
    syms = {s.name for s in arch.scaling}
    if set(base) != syms:
        raise ValueError(f"the base shape needs exactly {sorted(syms)}, got {sorted(base)}")
    point = {**arch.dim_symbols, **{s: base[s.name] for s in arch.scaling}}
    for op in arch.ops:
        for fld in ("fan_in", "fan_out", "rank"):
            v = getattr(op, fld).subs(point)
            if not (v.is_integer and v >= 1):
                raise ValueError(f"op '{op.name}': {fld} = {getattr(op, fld)} is {v} at the base shape {base}, "
                                 "not a whole positive dimension")


def render_module(arch: Architecture, settings: Settings, base: dict, source: str) -> str:
    """Standalone module text: rules for muP and SP, init, param groups, multipliers (and model)."""
    if arch.model and arch.model not in MODELS:
        raise ValueError(f"unknown model template {arch.model!r}; known: {sorted(MODELS)}")
    missing = [o for o in REQUIRED.get(arch.model, ()) if o not in {op.name for op in arch.ops}]
    if missing:
        raise ValueError(f"model {arch.model!r} needs ops {missing}")
    check_base(arch, base)
    mup = derive(arch, settings)
    spt = derive(arch, replace(settings, parametrization="sp"))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    names = [s.name for s in arch.scaling]
    ctx = dict(arch=arch, settings=settings, base={k: base[k] for k in names}, source=source, optimizers=OPTIMIZERS,
               wd_optimizers=WD_OPTIMIZERS, eps_optimizers=EPS_OPTIMIZERS, args=", ".join(names),
               base_text=", ".join(f"{k}0 = {base[k]}" for k in names),
               rules={"mup": _rules(mup), "sp": _rules(spt)},
               ops=arch.ops, model_template=MODELS.get(arch.model),
               shapes={op.name: [_py(getattr(op, f), arch.dim_symbols) for f in ("fan_in", "fan_out", "rank")]
                       for op in arch.ops})
    return env.get_template("module.py.j2").render(**ctx)
