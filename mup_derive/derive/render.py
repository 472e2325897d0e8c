"""Render a solved :class:`~mup_derive.derive.solver.Table` as Markdown, LaTeX, JSON or CSV.

Every row's reason is the condition followed by its solution: ``condition => expression``."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import sympy as sp

from ..declare.grammar import BUILTIN
from .solver import Entry, Table

SUMMARY = (("init_std", None, "init std"), ("multiplier", None, "multiplier"),
           ("lr", "adam", "LR Adam"), ("lr", "sgd", "LR SGD"),
           ("wd", "adamw", "WD AdamW"), ("eps", "adam", "Adam eps"))


@lru_cache(maxsize=8192)
def _str(v: sp.Expr) -> str:
    return str(sp.sstr(v))


@lru_cache(maxsize=8192)
def _latex(v: sp.Expr) -> str:
    return str(sp.latex(v))


_exp = _str


def _exponent(e: Entry, symbol: str) -> str:
    """The entry's exponent of ``symbol``, or ``fixed`` where the regime holds it fixed."""
    return _exp(e.exponents[symbol]) if symbol in e.exponents else "fixed"


def explained(e: Entry) -> str:
    """The entry's reason joined with its solution."""
    return f"{e.reason} => {_str(e.expr)}"


def _cell(table: Table, op: str, quantity: str, optimizer: str | None, fmt: Callable[[sp.Expr], str]) -> str:
    try:
        return fmt(table.get(op, quantity, optimizer).expr)
    except KeyError:
        return "-"


def _header(table: Table) -> dict[str, Any]:
    s = table.settings
    return {"architecture": table.arch.name, "parametrization": s.parametrization,
            "alpha": _exp(s.alpha), "update_space": s.update_space, "update_target": s.update_target,
            "eps": s.eps, "wd": s.wd, "dims": dict(table.arch.dims), "scaled": _scaled(table),
            "regime": list(table.regime)}


def _scaled(table: Table) -> dict[str, str]:
    return {**BUILTIN, **table.arch.scaled}


def _syms(table: Table) -> list[str]:
    return [s.name for s in table.arch.scaling]


def to_json(table: Table) -> str:
    ops: dict[str, dict[str, Any]] = {}
    for op in [o.name for o in table.arch.ops] + ["residual"]:
        ops.setdefault(op, {})
    for o in table.arch.ops:
        ops[o.name].update(role=o.role, fan_in=_str(o.fan_in), fan_out=_str(o.fan_out), rank=_str(o.rank),
                           branch=o.branch, tied=o.tied)
    ops["residual"].update(role="residual")
    for e in table.entries:
        item = {"expr": _str(e.expr), "exact": _str(e.exact), "latex": _latex(e.expr),
                "exponents": {k: _exp(v) for k, v in e.exponents.items()}, "reason": explained(e)}
        q = ops[e.op].setdefault(e.quantity, {})
        if e.optimizer is None:
            q.update(item)
        else:
            q[e.optimizer] = item
    head = json.dumps(_header(table), indent=2)[:-2]           # the header, open for one more key
    body = ",\n".join(f"    {json.dumps(name)}: {json.dumps(op)}" for name, op in ops.items())
    return f'{head},\n  "ops": {{\n{body}\n  }}\n}}\n'      # one line per op: the C encoder, linear time


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    syms = _syms(table)
    w.writerow(["op", "quantity", "optimizer", "expr", *(f"exp_{k}" for k in syms), "exact", "reason"])
    for e in table.entries:
        w.writerow([e.op, e.quantity, e.optimizer or "", _str(e.expr), *(_exponent(e, k) for k in syms),
                    _str(e.exact), explained(e)])
    return buf.getvalue()


def to_markdown(table: Table) -> str:
    h = _header(table)
    syms = _syms(table)
    lines = [f"# {h['architecture']}: {h['parametrization']} (alpha = {h['alpha']}, "
             f"KV step: {h['update_space']} space, {h['update_target']} target; eps: {h['eps']}; WD: {h['wd']}; "
             f"dims = {h['dims']}; scaled: {', '.join(f'{k} ({v})' for k, v in h['scaled'].items())}; "
             f"growing, fastest first: {', '.join(h['regime']) or 'none'}; rules exact, exponents in this regime)",
             "",
             "Init stds, LRs, WDs and eps are scale laws: generated code applies rule(shape) / rule(base) to the "
             "base values you give (init_weights' std, default 0.02), never the expressions as absolute values.",
             "",
             "| op | role | " + " | ".join(t for *_, t in SUMMARY) + " |",
             "|" + "---|" * (len(SUMMARY) + 2)]
    for o in table.arch.ops:
        cells = [_cell(table, o.name, q, opt, lambda x: f"`{_str(x)}`") for q, opt, _ in SUMMARY]
        lines.append(f"| {o.name} | {o.role} | " + " | ".join(cells) + " |")
    lines.append(f"| residual | branch | - | `{_str(table.get('residual', 'multiplier').expr)}` |"
                 + " - |" * (len(SUMMARY) - 2))
    lines += ["", "| op | quantity | optimizer | scale | " + " | ".join(syms) + " | reason |",
              "|---|---|---|---|" + "---|" * len(syms) + "---|"]
    for e in table.entries:
        lines.append(f"| {e.op} | {e.quantity} | {e.optimizer or ''} | `{_str(e.expr)}` | "
                     + " | ".join(_exponent(e, k) for k in syms)
                     + f" | {explained(e).replace('|', '∣')} |")
    return "\n".join(lines) + "\n"


def to_latex(table: Table) -> str:
    h = _header(table)
    cols = "ll" + "c" * len(SUMMARY)
    lines = [f"% {h['architecture']}: {h['parametrization']}, alpha = {h['alpha']}, "
             f"KV step: {h['update_space']} space, {h['update_target']} target, eps: {h['eps']}",
             f"\\begin{{tabular}}{{{cols}}}", "\\hline",
             "op & role & " + " & ".join(t for *_, t in SUMMARY) + r" \\", "\\hline"]
    for o in table.arch.ops:
        cells = [_cell(table, o.name, q, opt, lambda x: f"${_latex(x)}$") for q, opt, _ in SUMMARY]
        lines.append(f"\\texttt{{{o.name.replace('_', chr(92) + '_')}}} & {o.role} & "
                     + " & ".join(cells) + r" \\")
    lines.append(f"residual & branch & - & ${_latex(table.get('residual', 'multiplier').expr)}$"
                 + " & -" * (len(SUMMARY) - 2) + r" \\")
    lines += ["\\hline", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


FORMATS = {"md": to_markdown, "latex": to_latex, "json": to_json, "csv": to_csv}


def render(table: Table, fmt: str = "md") -> str:
    """``table`` as text in ``fmt``: one of md, latex, json, csv."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    return FORMATS[fmt](table)
