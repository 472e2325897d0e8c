"""Render solved tables into standalone PyTorch code with the Jinja2 templates in ``templates/`` beside this file."""
from __future__ import annotations

import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2
import sympy as sp
from sympy.printing.pycode import pycode

from ..declare.ops import Architecture, fused_groups
from ..derive import conditions
from ..derive.settings import OPTIMIZERS, Settings
from ..derive.solver import Table, solve

TEMPLATES = Path(__file__).resolve().parent / "templates"
MODELS = {"gqa_transformer": "gqa_transformer.py.j2", "hf_granite": "hf_granite.py.j2"}
_GQA_OPS = ("embedding", "attn_norm", "q", "k", "v", "attn_logits", "o", "mlp_norm", "mlp_up", "mlp_down",
            "final_norm", "unembedding")
REQUIRED: dict[str, tuple[str, ...]] = {"gqa_transformer": _GQA_OPS, "hf_granite": _GQA_OPS}


def _py(expr: sp.Expr, dims: dict[sp.Symbol, int]) -> str:
    code = pycode(sp.nsimplify(expr.subs(dims)), fully_qualified_modules=True)
    return code.replace("math.sqrt", "sqrt")


def shape_rules(table: Table) -> dict[str, dict[str, tuple[str, str]]]:
    """{op: {key: (python expression, reason)}} for the rules that change with the shape, and every
    contraction's multiplier (its absolute value is the forward scale); keys are init_std, multiplier,
    lr_<opt>, wd_<opt>, eps_<opt>.  Each is the exact solution, not its leading term."""
    dims, scaled = table.arch.dim_symbols, set(table.arch.scaling)
    contractions = {o.name for o in table.arch.ops if o.role == "contraction"}
    rules: dict[str, dict[str, tuple[str, str]]] = {}
    for e in table.entries:
        if e.exact.free_symbols & scaled or (e.op in contractions and e.quantity == "multiplier"):
            key = e.quantity if e.optimizer is None else f"{e.quantity}_{e.optimizer}"
            rules.setdefault(e.op, {})[key] = (_py(e.exact, dims), e.reason)
    return rules


def wide_dims(table: Table, base: dict[str, int]) -> list[str]:
    """Warnings for fixed dims above the base width in a rule whose exact form differs from its leading term in n:
    there the table's exponents do not describe the code, which follows the exact rule."""
    out = []
    for k, v in table.arch.dims.items():
        d = sp.Symbol(k, positive=True)
        ops = sorted({e.op for e in table.entries if e.exact.has(d) and e.exact != e.expr})
        if v > base["n"] and ops:
            out.append(f"warning: fixed dim {k} = {v} exceeds the base width n = {base['n']}: the exact rules of "
                       f"{', '.join(ops)} that the code evaluates differ from the table's exponents in n "
                       f"until n >> {k}")
    return out


def _fused(arch: Architecture) -> dict[str, list[str]]:
    """{first block op: the block ops of its fused tensor, in order}."""
    return {blocks[0].name: [b.name for b in blocks] for blocks in fused_groups(arch.ops).values()}


def check_base(arch: Architecture, base: dict[str, int]) -> None:
    """Every op's shape at the base shape must be a whole positive dimension, and a fused block's rows must split
    into its interleave groups."""
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
        share = (op.stored_rows / op.interleave).subs(point)
        if op.fused and not (share.is_integer and share >= 1):
            raise ValueError(f"op '{op.name}': its {op.stored_rows} rows do not split into interleave = "
                             f"{op.interleave} groups at the base shape {base}")


def default_base(arch: Architecture) -> dict[str, int]:
    """The default base shape: n = 128, L = 2, r = 1 and every declared scaled symbol at 1."""
    return {"n": 128, "L": 2, "r": 1, **{k: 1 for k in arch.scaled}}


def generate_module(arch: Architecture, settings: Settings | None = None, base: dict[str, int] | None = None,
                    source: str = "<python>") -> str:
    """Standalone module text: rules for muP and SP, init, param groups, multipliers (and the model
    a declaration names), with hyperparameters given at ``base`` (default :func:`default_base`)."""
    settings = settings or Settings()
    base = base or default_base(arch)
    template = MODELS.get(arch.model or "")
    if arch.model and template is None:
        raise ValueError(f"unknown model template {arch.model!r}; known: {sorted(MODELS)}")
    missing = [o for o in REQUIRED.get(arch.model or "", ()) if o not in {op.name for op in arch.ops}]
    if missing:
        raise ValueError(f"model {arch.model!r} needs ops {missing}")
    check_base(arch, base)
    mup = solve(arch, settings)
    standard = solve(arch, replace(settings, parametrization="sp"))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    names = [s.name for s in arch.scaling]
    ctx = dict(arch=arch, settings=settings, base={k: base[k] for k in names}, source=source, optimizers=OPTIMIZERS,
               args=", ".join(names),
               base_text=", ".join(f"{k}0 = {base[k]}" for k in names),
               rules={"mup": shape_rules(mup), "sp": shape_rules(standard)},
               ops=arch.ops, model_template=template,
               shapes={op.name: [_py(getattr(op, f), arch.dim_symbols) for f in ("fan_in", "fan_out", "rank")]
                       for op in arch.ops},
               batches={op.name: _py(op.batch, arch.dim_symbols) for op in arch.ops},
               gates={op.name: _py(op.gate, arch.dim_symbols) for op in arch.ops},
               ungates={op.name: {k: _py(t.expr, arch.dim_symbols)
                                 for k, t in conditions.ungate(op, mup.settings).items()}
                        for op in arch.ops if op.gate != 1},
               interleaves={op.name: _py(op.interleave, arch.dim_symbols) for op in arch.ops},
               fused=_fused(arch))
    return env.get_template("module.py.j2").render(**ctx)


def check_module(code: str, base: dict[str, int]) -> None:
    """The generated ``code`` compiles, runs, evaluates every rule at ``base`` and, where it defines the
    GQA model, builds it there (on the meta device); a ValueError says what failed."""
    try:
        compiled = compile(code, "<generated module>", "exec")
    except SyntaxError as exc:
        raise ValueError(f"the generated module is not valid Python: {exc.msg} at line {exc.lineno}") from None
    module = types.ModuleType("mup_generated_check")     # registered: dataclasses look their module up
    sys.modules[module.__name__] = module
    namespace: dict[str, Any] = module.__dict__
    try:
        exec(compiled, namespace)        # our own rendered text, checked before it is written
        for op in [*namespace["DECLARED"], "residual"]:
            for p in ("mup", "sp"):
                for key in namespace["RULES"][p].get(op, {}):
                    namespace["ratio"](op, key, base, p)
        if "GQATransformer" in namespace:
            import torch
            with torch.device("meta"):
                namespace["GQATransformer"](width=base["n"], depth=base["L"], ratio=base["r"])
    except Exception as exc:             # report any failure of the module itself, not a traceback
        raise ValueError(f"the generated module fails at the base shape {base}: {type(exc).__name__}: {exc}") from None
    finally:
        sys.modules.pop(module.__name__, None)
