"""Positive products of powers, ``c * prod(b ** p)``: the form every norm model and every rule takes.

The bases are symbols and primitive sums (non-negative powers, no common monomial factor, e.g.
``sqrt(E) + sqrt(n)`` or ``1 + sqrt(r)``), so a product's leading exponent in a scaled symbol is
the sum of its bases' exponents times their powers: linear algebra on exponent vectors.  Solving a
condition linear in its unknown is a division of two terms; SymPy builds the exact expression and
takes the leading term only of the few distinct sums.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import sympy as sp

Powers = tuple[tuple[sp.Expr, sp.Rational], ...]


def _merge(a: Powers, b: Powers, k: int = 1) -> Powers:
    out = dict(a)
    for base, p in b:
        q = out.get(base, 0) + k * p
        if q == 0:
            out.pop(base, None)
        else:
            out[base] = q
    return tuple(sorted(out.items(), key=lambda item: sp.default_sort_key(item[0])))


@dataclass(frozen=True)
class Term:
    """``coeff * prod(base ** power)``: a positive constant times powers of symbols and primitive sums."""

    coeff: sp.Expr
    powers: Powers = ()

    @staticmethod
    def of(expr: sp.Expr | int) -> Term:
        """``expr`` (a positive product of rational powers of symbols, numbers and sums) as a term."""
        return _factor(sp.sympify(expr))

    def __mul__(self, other: Term) -> Term:
        return Term(self.coeff * other.coeff, _merge(self.powers, other.powers))

    def __truediv__(self, other: Term) -> Term:
        return Term(self.coeff / other.coeff, _merge(self.powers, other.powers, -1))

    def __pow__(self, k: sp.Rational | int) -> Term:
        k = sp.Rational(k)
        return Term(self.coeff ** k, tuple((b, p * k) for b, p in self.powers))

    def power(self, base: sp.Expr) -> sp.Rational:
        return dict(self.powers).get(base, sp.Integer(0))

    def without(self, base: sp.Expr) -> Term:
        return Term(self.coeff, tuple((b, p) for b, p in self.powers if b != base))

    @cached_property
    def expr(self) -> sp.Expr:
        """The exact expression."""
        return self.coeff * sp.Mul(*(b ** p for b, p in self.powers))

    def solve(self, unknown: sp.Symbol, rhs: Term) -> Term:
        """The solution of ``self = rhs`` for ``unknown``, which ``self`` holds to the first power."""
        if self.power(unknown) != 1 or rhs.power(unknown) != 0:
            raise ArithmeticError(f"{self.expr} = {rhs.expr} is not linear in {unknown}")
        return rhs / self.without(unknown)


ONE = Term(sp.Integer(1))


@lru_cache(maxsize=8192)
def _factor(expr: sp.Expr) -> Term:
    if not expr.free_symbols:
        if expr.is_positive is False:
            raise ArithmeticError(f"{expr} is not a positive constant")
        return Term(expr)
    if expr.is_Symbol:
        return Term(sp.Integer(1), ((expr, sp.Integer(1)),))
    if expr.is_Mul:
        out = ONE
        for f in expr.args:
            out = out * _factor(f)
        return out
    if expr.is_Pow and expr.exp.is_Rational:
        return _factor(expr.base) ** expr.exp
    if expr.is_Add:
        return _primitive_sum(expr)
    return Term(sp.Integer(1), ((expr, sp.Integer(1)),))     # an opaque positive function (Min, ...)


def _monomial(t: sp.Expr) -> tuple[sp.Expr, dict[sp.Symbol, sp.Expr]] | None:
    """(constant, {symbol: exponent}) of a product of a constant and powers of symbols, else None."""
    coeff, rest = t.as_coeff_Mul()
    powers: dict[sp.Symbol, sp.Expr] = {}
    for f in sp.Mul.make_args(rest):
        base, e = f.as_base_exp()
        if not base.free_symbols:
            coeff *= f
        elif base.is_Symbol and e.is_Rational:
            powers[base] = powers.get(base, sp.Integer(0)) + e
        else:
            return None
    return coeff, powers


def _primitive_sum(expr: sp.Expr) -> Term:
    """A sum as (its common monomial) x (a primitive sum: non-negative powers, first coefficient 1)."""
    parts = [_monomial(t) for t in sp.Add.make_args(expr)]
    if any(p is None for p in parts):                   # a sum of non-monomials: expand it first
        expanded = sp.expand(expr)
        if expanded == expr:
            return Term(sp.Integer(1), ((expr, sp.Integer(1)),))
        return _factor(expanded)
    monos = [p for p in parts if p is not None]
    syms = set().union(*(m for _, m in monos))
    low = {s: min(m.get(s, sp.Integer(0)) for _, m in monos) for s in syms}
    rest = sp.Add(*(c * sp.Mul(*(s ** (m.get(s, 0) - low[s]) for s in syms)) for c, m in monos))
    common = Term(sp.Integer(1), tuple((s, e) for s, e in low.items() if e != 0))
    if not rest.free_symbols:
        return Term(rest) * common
    head = sp.Add.make_args(rest)[0].as_coeff_Mul()[0]
    return Term(head, ((sp.expand(rest / head), sp.Integer(1)),)) * common
