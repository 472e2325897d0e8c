"""Shape expressions: a restricted grammar over declared names, parsed without ``eval``.

Numbers, declared names, ``+ - * / **`` (small rational exponents) and ``sqrt(...)``; every
other construct is refused with a one-line :class:`DeclarationError` naming the op and field.
"""
from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import sympy as sp

n, L, r = sp.symbols("n L r", positive=True)
BUILTIN = {"n": "width", "L": "depth", "r": "group ratio n_heads / n_kv_heads"}
RESERVED = {"residual", "sqrt"}
MAX_DIM = 2 ** 40
GRAMMAR = "numbers, declared names, + - * / ** and sqrt(...)"
MAX_EXPONENT = 64

Point = dict[str, float]
Evaluator = Callable[[Point], float]


class DeclarationError(ValueError):
    """A malformed declaration; the message names the op and the field."""

    def __init__(self, op: str, fld: str, msg: str):
        super().__init__(f"op '{op}', field '{fld}': {msg}")
        self.op, self.field = op, fld


@dataclass(frozen=True)
class Shape:
    """A parsed shape expression: the SymPy form and a float evaluator over a point {name: value}."""

    expr: sp.Expr
    value: Evaluator


_BINARY: dict[type, tuple[Callable[[float, float], float], Callable[[sp.Expr, sp.Expr], sp.Expr]]] = {
    ast.Add: (operator.add, operator.add), ast.Sub: (operator.sub, operator.sub),
    ast.Mult: (operator.mul, operator.mul), ast.Div: (operator.truediv, operator.truediv),
    ast.Pow: (operator.pow, operator.pow)}


class _Parser:
    """Build (SymPy expression, evaluator) pairs from the Python AST of one shape expression."""

    def __init__(self, text: str, names: set[str], op: str, fld: str):
        self.text, self.names, self.op, self.fld = text, names, op, fld

    def fail(self, msg: str) -> NoReturn:
        raise DeclarationError(self.op, self.fld, msg)

    def build(self, node: ast.AST) -> tuple[sp.Expr, Evaluator]:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return self.number(node.value)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            x, f = self.build(node.operand)
            return (-x, lambda e: -f(e)) if isinstance(node.op, ast.USub) else (x, f)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self.binary(node)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sqrt"
                and len(node.args) == 1 and not node.keywords):
            x, f = self.build(node.args[0])
            return sp.sqrt(x), lambda e: math.sqrt(f(e)) if f(e) >= 0 else math.nan
        self.fail(f"{ast.unparse(node)!r} is not allowed in {self.text!r}; allowed: {GRAMMAR}")

    def number(self, v: float) -> tuple[sp.Expr, Evaluator]:
        if not math.isfinite(v) or abs(v) > MAX_DIM:
            self.fail(f"number {v!r} out of range in {self.text!r}")
        return sp.nsimplify(v, rational=True), lambda _e, v=float(v): v

    def name(self, key: str) -> tuple[sp.Expr, Evaluator]:
        if key not in self.names:
            self.fail(f"unknown symbol {key!r} in {self.text!r}; allowed: {sorted(self.names)}")
        return sp.Symbol(key, positive=True), lambda e: e[key]

    def binary(self, node: ast.BinOp) -> tuple[sp.Expr, Evaluator]:
        (a, fa), (b, fb) = self.build(node.left), self.build(node.right)
        num, sym = _BINARY[type(node.op)]
        if isinstance(node.op, ast.Pow) and (b.free_symbols or not b.is_Rational
                                             or abs(b.p) > MAX_EXPONENT or b.q > MAX_EXPONENT):
            self.fail(f"exponents must be small rational numbers, got {b} in {self.text!r}")
        if isinstance(node.op, ast.Div) and b == 0:
            self.fail(f"division by zero in {self.text!r}")
        return sym(a, b), lambda e: num(fa(e), fb(e))


def parse(text: object, names: set[str], op: str, fld: str) -> Shape:
    """Parse ``text`` (a string or an int) over ``names`` in the restricted grammar."""
    parser = _Parser(str(text), names, op, fld)
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        parser.fail(f"expected an expression string or integer, got {text!r}")
    try:
        tree = ast.parse(str(text).strip(), mode="eval").body
    except (SyntaxError, ValueError):
        parser.fail(f"cannot parse {text!r}; allowed: {GRAMMAR}")
    expr, value = parser.build(tree)
    if expr.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        parser.fail(f"{text!r} is not a finite expression")
    return Shape(expr, value)
