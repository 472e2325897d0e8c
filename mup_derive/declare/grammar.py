"""Shape expressions: a restricted grammar over declared names, parsed without ``eval``.

Numbers, declared names, ``+ - * / **`` (small rational exponents) and ``sqrt(...)``; every
other construct is refused with a one-line :class:`DeclarationError` naming the op and field.
Work is bounded: at most :data:`MAX_TEXT` characters, :data:`MAX_NODES` syntax nodes nested at most
:data:`MAX_DEPTH` deep, numbers within 2**80, and a degree in any symbol of at most :data:`MAX_DEGREE`.
Evaluation is one pass over the expression and gives NaN where it is undefined (division by zero,
a negative square root, overflow), which the dimension checks then name.
"""
from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

n, L, r = sp.symbols("n L r", positive=True)
BUILTIN = {"n": "width", "L": "depth", "r": "group ratio n_heads / n_kv_heads"}
RESERVED = {"residual", "sqrt"}
MAX_DIM = 2 ** 40
GRAMMAR = "numbers, declared names, + - * / ** and sqrt(...)"
MAX_EXPONENT = 64          # numerator and denominator of an exponent
MAX_TEXT, MAX_NODES, MAX_DEPTH, MAX_DEGREE = 200, 64, 16, 64
MAX_NUMBER_BITS = 80       # |a number| below 2**80 and above 2**-80 (or zero)

Point = dict[str, float]
Evaluator = Callable[[Point], float]


class DeclarationError(ValueError):
    """A malformed declaration; the message names the op and the field."""

    def __init__(self, op: str, fld: str, msg: str):
        super().__init__(f"op '{op}', field '{fld}': {msg}")
        self.op, self.field = op, fld


class GrammarError(ValueError):
    """An expression outside the grammar or its bounds (the caller adds the op and field)."""


@dataclass(frozen=True)
class Shape:
    """A parsed shape expression: the SymPy form and a float evaluator over a point {name: value}."""

    expr: sp.Expr
    value: Evaluator


_BINARY: dict[type, tuple[Callable[[float, float], float], Callable[[sp.Expr, sp.Expr], sp.Expr]]] = {
    ast.Add: (operator.add, operator.add), ast.Sub: (operator.sub, operator.sub),
    ast.Mult: (operator.mul, operator.mul), ast.Div: (operator.truediv, operator.truediv),
    ast.Pow: (operator.pow, operator.pow)}
Node = tuple[sp.Expr, Evaluator, float]     # SymPy form, evaluator, bound on the degree in any symbol


def _sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0 else math.nan


def _degree(op: ast.operator, da: float, db: float, b: sp.Expr) -> float:
    if isinstance(op, (ast.Add, ast.Sub)):
        return max(da, db)
    if isinstance(op, (ast.Mult, ast.Div)):
        return da + db
    return da * abs(float(b))


class _Parser:
    """Build (SymPy expression, evaluator, degree bound) from the Python AST of one shape expression."""

    def __init__(self, text: str, names: frozenset[str]):
        self.text, self.names = text, names

    def fail(self, msg: str) -> GrammarError:
        return GrammarError(msg)

    def build(self, node: ast.AST, depth: int = 0) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail(f"{self.text!r} nests deeper than {MAX_DEPTH}")
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return self.number(node.value)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            x, f, d = self.build(node.operand, depth + 1)
            return (-x, lambda e: -f(e), d) if isinstance(node.op, ast.USub) else (x, f, d)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self.binary(node, depth)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sqrt"
                and len(node.args) == 1 and not node.keywords):
            x, f, d = self.build(node.args[0], depth + 1)
            return self.bounded(sp.sqrt(x)), lambda e: _sqrt(f(e)), d / 2
        raise self.fail(f"{ast.unparse(node)!r} is not allowed in {self.text!r}; allowed: {GRAMMAR}")

    def bounded(self, x: sp.Expr) -> sp.Expr:
        """``x``, unless it is a number outside the bounds."""
        if x.is_Number and x != 0 and not 2.0 ** -MAX_NUMBER_BITS < abs(float(x)) < 2.0 ** MAX_NUMBER_BITS:
            raise self.fail(f"number {x} out of range in {self.text!r}")
        return x

    def number(self, v: float) -> Node:
        if not math.isfinite(v) or abs(v) > MAX_DIM:
            raise self.fail(f"number {v!r} out of range in {self.text!r}")
        return sp.nsimplify(v, rational=True), lambda _e, v=float(v): v, 0.0

    def name(self, key: str) -> Node:
        if key not in self.names:
            raise self.fail(f"unknown symbol {key!r} in {self.text!r}; allowed: {sorted(self.names)}")
        return sp.Symbol(key, positive=True), lambda e: e[key], 1.0

    def binary(self, node: ast.BinOp, depth: int) -> Node:
        (a, fa, da), (b, fb, db) = self.build(node.left, depth + 1), self.build(node.right, depth + 1)
        num, sym = _BINARY[type(node.op)]
        if isinstance(node.op, ast.Pow):
            if b.free_symbols or not b.is_Rational or abs(b.p) > MAX_EXPONENT or b.q > MAX_EXPONENT:
                raise self.fail(f"exponents must be small rational numbers, got {b} in {self.text!r}")
            if a.is_Number and a != 0 and abs(math.log2(abs(float(a))) * float(b)) > MAX_NUMBER_BITS:
                raise self.fail(f"number {a}**{b} out of range in {self.text!r}")
        if isinstance(node.op, ast.Div) and b == 0:
            raise self.fail(f"division by zero in {self.text!r}")
        degree = _degree(node.op, da, db, b)
        if degree > MAX_DEGREE:
            raise self.fail(f"{self.text!r} has a degree above {MAX_DEGREE} in its symbols")
        return self.bounded(sym(a, b)), lambda e: num(fa(e), fb(e)), degree


def _safe(f: Evaluator) -> Evaluator:
    """``f`` with undefined values (division by zero, overflow, complex results) as NaN."""
    def value(e: Point) -> float:
        try:
            v = f(e)
        except (ZeroDivisionError, OverflowError, ValueError):
            return math.nan
        return v if isinstance(v, float | int) and not isinstance(v, bool) else math.nan
    return value


@lru_cache(maxsize=4096)
def _shape(text: str, names: frozenset[str]) -> Shape:
    """The parsed shape of ``text`` over ``names`` (cached: a declaration repeats its expressions)."""
    parser = _Parser(text, names)
    if len(text) > MAX_TEXT:
        raise parser.fail(f"expression of {len(text)} characters; at most {MAX_TEXT}")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise parser.fail(f"cannot parse {text!r}; allowed: {GRAMMAR}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise parser.fail(f"{text!r} has more than {MAX_NODES} terms and operators")
    expr, value, _ = parser.build(tree)
    if expr.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        raise parser.fail(f"{text!r} is not a finite expression")
    return Shape(expr, _safe(value))


def parse(text: object, names: set[str] | frozenset[str], op: str, fld: str) -> Shape:
    """Parse ``text`` (a string or an int) over ``names`` in the restricted grammar."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise DeclarationError(op, fld, f"expected an expression string or integer, got {text!r}")
    try:
        return _shape(str(text), frozenset(names))
    except GrammarError as exc:
        raise DeclarationError(op, fld, str(exc)) from None
