"""Solve the feature-learning conditions of every op into a :class:`Table` (:func:`solve`).

Each op's rules come from :mod:`.conditions`; every solution is reduced to the n -> oo leading
term of its exact form (other symbols exact), with the leading exponent of each scaled symbol.
Ops with the same signature (shape, role, flags) share one solve.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from ..declare.build import architecture
from ..declare.grammar import n
from ..declare.ops import Architecture, Op
from . import conditions
from .asymptotics import scale
from .conditions import Rule, Tie
from .settings import OPTIMIZERS, Settings


@dataclass(frozen=True)
class Entry:
    """One row of a table: the leading-order scale of a quantity, its exponents and the condition it solves."""

    op: str
    quantity: str
    optimizer: str | None
    expr: sp.Expr                 # leading-order scale in n (the other symbols exact)
    exponents: dict[str, sp.Expr]  # leading exponent of every scaled symbol
    reason: str                   # the condition, without the solution (renderers add it)


@dataclass(frozen=True)
class Table:
    arch: Architecture
    settings: Settings
    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {(e.op, e.quantity, e.optimizer): e for e in self.entries})

    def get(self, op: str, quantity: str, optimizer: str | None = None) -> Entry:
        entry: Entry | None = self._index.get((op, quantity, optimizer))   # type: ignore[attr-defined]
        if entry is None:
            raise KeyError((op, quantity, optimizer))
        return entry

    def exponents(self, op: str, quantity: str, optimizer: str | None = None) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
        """Leading exponents of n, L, r (``.get(...).exponents`` has every scaled symbol)."""
        e = self.get(op, quantity, optimizer).exponents
        return e["n"], e["L"], e["r"]


def _op_rules(op: Op, s: Settings, exact: dict[tuple[str, str, str | None], sp.Expr]) -> tuple[Rule, ...]:
    """The rules of one op; ``exact`` holds the solutions so far (a tied op reads its partner's)."""
    if op.role == "contraction":
        return (conditions.contraction_rule(op, s),)
    if s.parametrization == "sp":
        return conditions.sp_rules(op)
    if op.tied:
        t = op.tied
        tie = Tie(t, exact[(t, "init_std", None)], tuple((o, exact[(t, "lr", o)]) for o in OPTIMIZERS))
        return conditions.mup_rules(op, s, tie)
    return conditions.cached_mup_rules(replace(op, name="", params=(), parent=None), s)


def solve(arch: Architecture, settings: Settings | None = None) -> Table:
    """The parameterization table of ``arch``: every op's rules at leading order, in declaration order."""
    s = settings or Settings()
    exact: dict[tuple[str, str, str | None], sp.Expr] = {}
    entries: list[Entry] = []
    scaling = arch.scaling

    def add(name: str, rule: Rule) -> None:
        exact[(name, rule.quantity, rule.optimizer)] = rule.exact
        expr, exps = scale(rule.exact, scaling)
        entries.append(Entry(name, rule.quantity, rule.optimizer, expr, dict(exps), rule.reason))

    add("residual", conditions.residual_rule(s))
    for op in sorted(arch.ops, key=lambda o: o.tied is not None):      # ties after the ops they name
        for rule in _op_rules(op, s, exact):
            add(op.name, rule)
    order = {o.name: i for i, o in enumerate(arch.ops)}
    entries.sort(key=lambda e: order.get(e.op, -1))
    return Table(arch, s, tuple(entries))


def gqa_factor(update_space: str, update_target: str) -> sp.Expr:
    """f(r) of GQA-μP's KV learning rate, solved for a bare n x n KV map of rank n/r."""
    arch = architecture("kv", [{"name": "kv", "role": "hidden", "fan_in": "n", "fan_out": "n", "rank": "n/r"}])
    t = solve(arch, Settings(update_space=update_space, update_target=update_target))
    return sp.simplify(t.get("kv", "lr", "adam").expr * n)
