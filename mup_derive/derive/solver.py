"""Solve the feature-learning conditions of every op into a :class:`Table` (:func:`solve`).

Each op's rules come from :mod:`.conditions` as exact products of powers (:mod:`.terms`); the
table keeps the exact solution, its leading term in the regime's fastest symbol (the others exact)
and each growing symbol's exponent.  Ops with the same signature (shape, role, flags) share one solve.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from ..declare.build import architecture
from ..declare.grammar import n
from ..declare.ops import Architecture, Op
from . import conditions, norms
from .asymptotics import Regime, exponents, lead, leading
from .conditions import Rule, Tie
from .settings import OPTIMIZERS, Settings
from .terms import Term


@dataclass(frozen=True)
class Entry:
    """One row of a table: a quantity's exact rule, its leading-order scale, exponents and the condition it solves."""

    op: str
    quantity: str
    optimizer: str | None
    expr: sp.Expr                 # leading term in the regime's fastest symbol (the others exact)
    exponents: dict[str, sp.Expr]  # leading exponent of every growing symbol (the fixed ones are absent)
    reason: str                   # the condition, without the solution (renderers add it)
    exact: sp.Expr                # the exact solution in every symbol: what generated code evaluates


@dataclass(frozen=True)
class Table:
    arch: Architecture
    settings: Settings
    entries: tuple[Entry, ...]
    regime: tuple[str, ...] = ("n", "L", "r")

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {(e.op, e.quantity, e.optimizer): e for e in self.entries})

    def get(self, op: str, quantity: str, optimizer: str | None = None) -> Entry:
        entry: Entry | None = self._index.get((op, quantity, optimizer))   # type: ignore[attr-defined]
        if entry is None:
            raise KeyError((op, quantity, optimizer))
        return entry

    def exponents(self, op: str, quantity: str, optimizer: str | None = None) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
        """Leading exponents of n, L, r (0 for one held fixed; ``.get(...).exponents`` has every growing symbol)."""
        e = self.get(op, quantity, optimizer).exponents
        return e.get("n", sp.Integer(0)), e.get("L", sp.Integer(0)), e.get("r", sp.Integer(0))


def regime_of(arch: Architecture, settings: Settings) -> Regime:
    """The growing symbols, fastest first: ``settings.regime`` or every scaled symbol (n, L, r, declared)."""
    scaled = {s.name: s for s in arch.scaling}
    if settings.regime is None:
        return arch.scaling
    unknown = [k for k in settings.regime if k not in scaled]
    if unknown:
        raise ValueError(f"regime: {unknown[0]!r} is not a scaled symbol of {arch.name!r}; scaled: {list(scaled)}")
    return tuple(scaled[k] for k in settings.regime)


def _op_rules(op: Op, s: Settings, exact: dict[tuple[str, str, str | None], Term], regime: Regime) -> tuple[Rule, ...]:
    """The rules of one op; ``exact`` holds the solutions so far (a tied op reads its partner's)."""
    if op.role == "contraction":
        return (conditions.contraction_rule(op, s),)
    tie = None
    if op.tied:
        t = op.tied
        tie = Tie(t, exact[(t, "init_std", None)], tuple((o, exact[(t, "lr", o)]) for o in OPTIMIZERS), regime)
    if s.parametrization == "sp":
        return conditions.sp_rules(op, tie)
    if tie is not None:
        return conditions.mup_rules(op, s, tie)
    return conditions.cached_mup_rules(replace(op, name="", params=(), parent=None), s)


def operand_scales(arch: Architecture, s: Settings) -> dict[str, sp.Expr]:
    """{op: the factor on its gradient at init} for the operands of every contraction (:func:`norms.operand_scale`)."""
    out: dict[str, sp.Expr] = {}
    for c in arch.ops:
        if c.role == "contraction" and c.operands:
            scale = norms.operand_scale(c, conditions.contraction_rule(c, s).term).expr
            for name in c.operands:
                out[name] = out.get(name, sp.Integer(1)) * scale
    return out


def solve(arch: Architecture, settings: Settings | None = None) -> Table:
    """The parameterization table of ``arch``: every op's exact rules, leading terms and exponents, in
    declaration order."""
    s = replace(settings or Settings(), scaled_symbols=frozenset(arch.scaling[3:]))
    regime = regime_of(arch, s)
    scales = operand_scales(arch, s)
    first = regime[0] if regime else None
    exact: dict[tuple[str, str, str | None], Term] = {}
    entries: list[Entry] = []

    def add(name: str, rule: Rule) -> None:
        exact[(name, rule.quantity, rule.optimizer)] = rule.term
        entries.append(Entry(name, rule.quantity, rule.optimizer, lead(rule.term, first),
                             dict(exponents(rule.term, regime)), rule.reason, rule.exact))

    add("residual", conditions.residual_rule(s))
    for op in sorted(arch.ops, key=lambda o: o.tied is not None):      # ties after the ops they name
        if op.name in scales:
            op = replace(op, grad_scale=scales[op.name])
        for rule in _op_rules(op, s, exact, regime):
            add(op.name, rule)
    order = {o.name: i for i, o in enumerate(arch.ops)}
    entries.sort(key=lambda e: order.get(e.op, -1))
    return Table(arch, s, tuple(entries), tuple(x.name for x in regime))


def gqa_factor(update_space: str, update_target: str) -> sp.Expr:
    """f(r) of GQA-μP's KV learning rate, solved for a bare n x n KV map of rank n/r."""
    arch = architecture("kv", [{"name": "kv", "role": "hidden", "fan_in": "n", "fan_out": "n", "rank": "n/r"}])
    t = solve(arch, Settings(update_space=update_space, update_target=update_target))
    return sp.simplify(t.get("kv", "lr", "adam").expr * n)


def growing_repeats(table: Table) -> list[str]:
    """Warnings for repeated ops whose repeat c = fan_out / rank grows with width (MQA's n / d_head): such an op
    passes the stream change its own backward put there with gain sqrt(1 + c) against sqrt(2) for a full-rank map,
    so its activation change (and what it feeds) may grow like sqrt(c) in width, which no init or LR of the op
    removes (``reports/ratio_axis.md``)."""
    out = []
    for op in table.arch.ops:
        if op.repeat != 1 and leading(op.repeat, n)[1] > 0:
            out.append(f"warning: op '{op.name}' repeats its rows {sp.sstr(op.repeat)} times, a number that grows "
                       "with width: the stream change its own backward puts there passes it with gain "
                       "sqrt((1 + repeat) / 2) over a full-rank map's, so activation changes may grow like "
                       "sqrt(repeat) in n (the MQA limit; reports/ratio_axis.md)")
    return out
