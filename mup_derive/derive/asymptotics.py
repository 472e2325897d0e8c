"""Leading terms and exponents of exact rules as a scaled symbol grows."""
from __future__ import annotations

from functools import cache

import sympy as sp

from ..declare.grammar import n

_x = sp.Dummy("x", positive=True)


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
        coeff = sp.Add(*(c for c, e in pairs if e == top))
        return None if sp.simplify(coeff) == 0 else (coeff, top)   # cancellation: ask SymPy
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


@cache
def tidy(expr: sp.Expr) -> sp.Expr:
    """The shortest of a few equivalent forms (deterministic).  Writing every symbol as a
    square first turns the square roots into a rational function that ``cancel`` reduces."""
    roots = {s: sp.Dummy(s.name, positive=True) for s in expr.free_symbols}
    squared = sp.cancel(expr.subs({s: t ** 2 for s, t in roots.items()}))
    back = {t: sp.sqrt(s) for s, t in roots.items()}
    forms = [expr, sp.factor(squared).subs(back), squared.subs(back)]
    forms += [sp.factor_terms(f) for f in forms]
    return min(forms, key=lambda f: (sp.count_ops(f), len(sp.sstr(f)), sp.sstr(f)))


@cache
def scale(exact: sp.Expr, scaling: tuple[sp.Symbol, ...]) -> tuple[sp.Expr, dict[str, sp.Expr]]:
    """Leading order in n (other symbols exact), tidied, and the leading exponent of each symbol."""
    term = tidy(leading(exact, n)[0])
    return term, {s.name: leading(term, s)[1] for s in scaling}
