"""Leading terms and exponents as the scaled symbols grow, in the order a regime states.

A regime is a tuple of growing symbols, fastest first (``(n, L, r)``: n dominates); the others
are held fixed.  A term's exponent vector is the sum over its bases (see :mod:`.terms`); only a
sum needs an asymptotic expansion, once per distinct sum.
"""
from __future__ import annotations

from functools import cache, lru_cache

import sympy as sp

from .terms import Term

_x = sp.Dummy("x", positive=True)
Regime = tuple[sp.Symbol, ...]


def _lead(expr: sp.Expr, s: sp.Symbol) -> tuple[sp.Expr, sp.Expr] | None:
    """(coefficient, exponent) of ``expr``'s leading power of ``s`` as ``s -> oo`` by dominant
    balance over sums, products and rational powers; None where that cannot decide."""
    if not expr.has(s):
        return expr, sp.Integer(0)
    if expr == s:
        return sp.Integer(1), sp.Integer(1)
    if expr.is_Mul or expr.is_Add:
        parts = [_lead(a, s) for a in expr.args]
        if any(p is None for p in parts):
            return None
        pairs = [p for p in parts if p is not None]
        if expr.is_Mul:
            return sp.Mul(*(c for c, _ in pairs)), sp.Add(*(e for _, e in pairs))
        top = max(e for _, e in pairs)
        tops = [c for c, e in pairs if e == top]
        coeff = sp.Add(*tops)
        if len(tops) > 1 and sp.simplify(coeff) == 0:             # cancellation: ask SymPy
            return None
        return coeff, top
    if expr.is_Pow and expr.exp.is_Rational:
        base = _lead(expr.base, s)
        return None if base is None else (base[0] ** expr.exp, base[1] * expr.exp)
    return None


@cache
def leading(expr: sp.Expr, s: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """Leading term of ``expr`` as ``s -> oo`` and its exponent d log / d log s."""
    fast = _lead(expr, s)
    if fast is not None:
        return fast[0] * s ** fast[1], fast[1]
    term = sp.powsimp(expr.subs(s, 1 / _x).as_leading_term(_x).subs(_x, 1 / s))
    return term, sp.nsimplify(sp.simplify(s * sp.diff(sp.log(term), s)))


@lru_cache(maxsize=8192)
def base_exponents(base: sp.Expr, regime: Regime) -> tuple[sp.Expr, ...]:
    """Exponent of each growing symbol in ``base``, each taken in the leading term of the ones before it."""
    if base.is_Symbol:
        return tuple(sp.Integer(1 if s == base else 0) for s in regime)
    out, t = [], base
    for s in regime:
        t, e = leading(t, s)
        out.append(e)
    return tuple(out)


@lru_cache(maxsize=65536)
def exponents(term: Term, regime: Regime) -> dict[str, sp.Expr]:
    """{symbol name: leading exponent} of ``term`` for every growing symbol of the regime."""
    vec = [sp.Integer(0)] * len(regime)
    for base, p in term.powers:
        for i, e in enumerate(base_exponents(base, regime)):
            vec[i] += p * e
    return {s.name: v for s, v in zip(regime, vec, strict=True)}


@lru_cache(maxsize=8192)
def _base_lead(base: sp.Expr, s: sp.Symbol) -> sp.Expr:
    return base if base.is_Symbol else leading(base, s)[0]


@lru_cache(maxsize=65536)
def lead(term: Term, s: sp.Symbol | None) -> sp.Expr:
    """The leading term of ``term`` as ``s`` grows, the other symbols exact (``None``: the exact term)."""
    if s is None:
        return term.expr
    return term.coeff * sp.Mul(*(_base_lead(b, s) ** p for b, p in term.powers))
