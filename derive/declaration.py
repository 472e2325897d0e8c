"""Architecture declarations: shaped matrix ops with roles, branch membership and rank.

An architecture is a list of :class:`Op` plus fixed dimensions (vocab, heads, ...) and the
scaled symbols: width ``n``, depth ``L``, group ratio ``r`` and any declared under
``[scaled]`` (experts ``E``, LoRA rank ``k``, ...).  Shapes are expressions over those
names in a small grammar: numbers, names, ``+ - * / **`` and ``sqrt(...)``.  The TOML
format mirrors the Python API one to one::

    name = "gqa"
    [dims]
    vocab = 256
    [scaled]
    E = "experts"
    [[op]]
    name = "k"
    role = "hidden"
    fan_in = "n"
    fan_out = "n"
    rank = "n / r"          # n/r stored rows, each repeated r times (lowrank = "repeat")
    branch = true

A rank-deficient op is either a row repeat (``lowrank = "repeat"``: GQA/MQA's shared K/V
heads) or a factorised product ``B @ A`` (``lowrank = "factorised"``: MLA's latent KV, a
LoRA adapter), which is expanded into its two factors ``NAME.A`` (fan_in -> rank) and
``NAME.B`` (rank -> fan_out); ``params`` and ``init`` may then be tables ``{A = ..., B = ...}``.
"""
from __future__ import annotations

import ast
import math
import operator
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import sympy as sp

n, L, r = sp.symbols("n L r", positive=True)
BUILTIN = {"n": "width", "L": "depth", "r": "group ratio n_heads / n_kv_heads"}
ROLES = ("input", "hidden", "output", "vector", "contraction")
INITS = ("normal", "ones", "zeros")
GAUGES = ("init", "multiplier")
LOWRANK = ("repeat", "factorised")
OP_FIELDS = {"name", "role", "fan_in", "fan_out", "rank", "repeat", "lowrank", "branch", "tied",
             "gauge", "init", "params", "correlated"}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_DIM = 2 ** 40
RESERVED = {"residual", "sqrt"}


class DeclarationError(ValueError):
    """A malformed declaration; the message names the op and the field."""

    def __init__(self, op: str, fld: str, msg: str):
        super().__init__(f"op '{op}', field '{fld}': {msg}")
        self.op, self.field = op, fld


@dataclass(frozen=True)
class Op:
    """One shaped matrix op.  ``fan_out`` is the effective (post-repeat) output dim.

    ``repeat`` > 1 marks a row-repeated map: a stored (rank x fan_in) matrix whose rows are
    repeated ``fan_out / rank`` times.  ``factor`` is ``'A'`` or ``'B'`` for the two halves
    of a factorised op (``parent`` names it).  ``role='vector'`` (bias or gain) has fan_in 1;
    ``role='contraction'`` is a parameter-free product summing over ``fan_in`` (q.k over d_head).
    """

    name: str
    role: str
    fan_in: sp.Expr
    fan_out: sp.Expr
    rank: sp.Expr
    repeat: sp.Expr = sp.Integer(1)
    branch: bool = False
    tied: str | None = None
    gauge: str = "init"
    init: str = "normal"
    params: tuple[str, ...] = ()
    correlated: bool = True
    factor: str | None = None
    parent: str | None = None

    @property
    def stored_rows(self) -> sp.Expr:
        return sp.simplify(self.fan_out / self.repeat)


@dataclass(frozen=True)
class Architecture:
    name: str
    ops: tuple[Op, ...]
    dims: dict[str, int] = field(default_factory=dict)
    model: str | None = None
    scaled: dict[str, str] = field(default_factory=dict)   # extra scaled symbols -> description

    def op(self, name: str) -> Op:
        for o in self.ops:
            if o.name == name:
                return o
        raise KeyError(name)

    @property
    def dim_symbols(self) -> dict[sp.Symbol, int]:
        return {sp.Symbol(k, positive=True): v for k, v in self.dims.items()}

    @property
    def scaling(self) -> tuple[sp.Symbol, ...]:
        """The scaled symbols: n, L, r, then the declared ones."""
        return (n, L, r) + tuple(sp.Symbol(k, positive=True) for k in self.scaled)


# --- expressions: a restricted grammar, parsed without eval ---------------------------------
_BINARY = {ast.Add: (operator.add, sp.Add), ast.Sub: (operator.sub, lambda a, b: a - b),
           ast.Mult: (operator.mul, sp.Mul), ast.Div: (operator.truediv, lambda a, b: a / b),
           ast.Pow: (operator.pow, sp.Pow)}
GRAMMAR = "numbers, declared names, + - * / ** and sqrt(...)"


@dataclass(frozen=True)
class Shape:
    """A parsed shape expression: the SymPy form and a float evaluator."""

    expr: sp.Expr
    value: object                  # callable(dict name -> float) -> float


def parse(text, names: set[str], op: str, fld: str) -> Shape:
    """Parse ``text`` (a string or an int) over ``names`` in the restricted grammar."""
    def fail(msg):
        raise DeclarationError(op, fld, msg)

    if isinstance(text, bool) or not isinstance(text, (str, int)):
        fail(f"expected an expression string or integer, got {text!r}")
    if isinstance(text, int):
        text = str(text)
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        fail(f"cannot parse {text!r}; allowed: {GRAMMAR}")

    def build(node):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            v = node.value
            if not math.isfinite(v) or abs(v) > MAX_DIM:
                fail(f"number {v!r} out of range in {text!r}")
            return sp.nsimplify(v, rational=True), (lambda _e, v=float(v): v)
        if isinstance(node, ast.Name):
            if node.id not in names:
                fail(f"unknown symbol {node.id!r} in {text!r}; allowed: {sorted(names)}")
            s = sp.Symbol(node.id, positive=True)
            return s, (lambda e, k=node.id: e[k])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            x, f = build(node.operand)
            return (-x, lambda e: -f(e)) if isinstance(node.op, ast.USub) else (x, f)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            (a, fa), (b, fb) = build(node.left), build(node.right)
            num, sym = _BINARY[type(node.op)]
            if isinstance(node.op, ast.Pow):
                if b.free_symbols or not b.is_Rational or abs(b.p) > 64 or b.q > 64:
                    fail(f"exponents must be small rational numbers, got {b} in {text!r}")
            if isinstance(node.op, ast.Div) and b == 0:
                fail(f"division by zero in {text!r}")
            return sym(a, b), (lambda e: num(fa(e), fb(e)))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sqrt"
                and len(node.args) == 1 and not node.keywords):
            x, f = build(node.args[0])
            return sp.sqrt(x), (lambda e: math.sqrt(f(e)) if f(e) >= 0 else math.nan)
        fail(f"{ast.unparse(node)!r} is not allowed in {text!r}; allowed: {GRAMMAR}")

    expr, value = build(tree)
    if expr.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        fail(f"{text!r} is not a finite expression")
    return Shape(expr, value)


def _samples(scaled: list[str], dims: dict[str, int], large: bool = False):
    """Shape points for the positivity checks (``large``: wide models only, for rank bounds)."""
    grid = {"n": (2 ** 20, 2 ** 30) if large else (64, 1024, 2 ** 20), "L": (1, 4, 64), "r": (1, 2, 8)}
    grid.update({k: (1, 8, 2 ** 10) for k in scaled})
    points = [dict(dims)]
    for k, vals in grid.items():
        points = [{**p, k: float(v)} for p in points for v in vals]
    return points


def _flag(spec: dict, name: str, fld: str, default: bool) -> bool:
    v = spec.get(fld, default)
    if not isinstance(v, bool):
        raise DeclarationError(name, fld, f"expected true or false, got {v!r}")
    return v


def _choice(value, name: str, fld: str, choices) -> str:
    if value not in choices:
        raise DeclarationError(name, fld, f"{value!r} is not one of {choices}")
    return value


def _per_factor(spec: dict, name: str, fld: str, default, check, factorised: bool) -> dict:
    """A field that may be given per factor of a factorised op: {"A": ..., "B": ...}."""
    v = spec.get(fld, default)
    if isinstance(v, dict):
        if not factorised:
            raise DeclarationError(name, fld, "a table {A = ..., B = ...} needs lowrank = \"factorised\"")
        extra = set(v) - {"A", "B"}
        if extra:
            raise DeclarationError(name, fld, f"factors are A and B, got {sorted(extra)}")
        return {k: check(v.get(k, default)) for k in ("A", "B")}
    return {k: check(v) for k in ("A", "B")}


def make_ops(spec: dict, dims: dict[str, int], scaled: list[str]) -> list[Op]:
    """Build and validate one declared op (two for a factorised one) from a plain dict."""
    name = spec.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise DeclarationError(str(name), "name", "every op needs a name of letters, digits and _")
    if name in RESERVED:
        raise DeclarationError(name, "name", f"{sorted(RESERVED)} are reserved")
    extra = set(spec) - OP_FIELDS
    if extra:
        raise DeclarationError(name, sorted(extra)[0], f"unknown field; allowed: {sorted(OP_FIELDS)}")
    role = spec.get("role")
    if role is None:
        raise DeclarationError(name, "role", f"missing; one of {ROLES}")
    _choice(role, name, "role", ROLES)
    names = set(BUILTIN) | set(scaled) | set(dims)
    shapes: dict[str, Shape] = {}
    for fld in ("fan_in", "fan_out"):
        if fld not in spec:
            if (role, fld) in (("vector", "fan_in"), ("contraction", "fan_out")):
                shapes[fld] = parse(1, names, name, fld)
                continue
            raise DeclarationError(name, fld, "missing")
        shapes[fld] = parse(spec[fld], names, name, fld)
    for fld in ("rank", "repeat"):
        if fld in spec:
            shapes[fld] = parse(spec[fld], names, name, fld)
    if role == "vector" and shapes["fan_in"].expr != 1:
        raise DeclarationError(name, "fan_in", "a vector-like op (bias or gain) has fan_in 1")
    lowrank = spec.get("lowrank")
    if lowrank is not None:
        _choice(lowrank, name, "lowrank", LOWRANK)
        if "rank" not in shapes and "repeat" not in shapes:
            raise DeclarationError(name, "lowrank", "needs a rank")
    if "repeat" in shapes:
        if lowrank == "factorised":
            raise DeclarationError(name, "repeat", "a factorised op has a rank, not a repeat")
        fo, rep = shapes["fan_out"], shapes["repeat"]
        from_repeat = Shape(fo.expr / rep.expr, lambda e: fo.value(e) / rep.value(e))
        if "rank" in shapes and sp.simplify(shapes["rank"].expr - from_repeat.expr) != 0:
            raise DeclarationError(name, "repeat", f"fan_out/repeat = {from_repeat.expr} disagrees with "
                                                   f"rank = {shapes['rank'].expr}")
        shapes["rank"] = from_repeat
    checked = ("fan_in", "fan_out") + (("rank",) if "rank" in shapes else ())
    for point in _samples(scaled, dims):
        for fld in checked:
            val = shapes[fld].value(point)
            if not (val >= 1) or val > MAX_DIM ** 2:
                where = {k: int(v) for k, v in point.items() if k not in dims}
                raise DeclarationError(name, fld, f"must be a positive dimension (at least 1), got "
                                                  f"{shapes[fld].expr} = {val:g} at {where}")
    deficient = False
    if "rank" in shapes:
        for point in _samples(scaled, dims, large=True):
            full = min(shapes["fan_in"].value(point), shapes["fan_out"].value(point))
            rank = shapes["rank"].value(point)
            if rank > full * (1 + 1e-12):
                raise DeclarationError(name, "rank", f"rank {shapes['rank'].expr} exceeds min(fan_in, fan_out) "
                                                     f"= min({shapes['fan_in'].expr}, {shapes['fan_out'].expr}) "
                                                     f"for wide models")
            deficient |= rank < full * (1 - 1e-12)
    if lowrank is not None and not deficient:
        raise DeclarationError(name, "rank", f"lowrank = {lowrank!r} but rank {shapes['rank'].expr} is "
                                             "min(fan_in, fan_out)")
    lowrank = (lowrank or "repeat") if deficient else None
    factorised = lowrank == "factorised"
    gauge = _choice(spec.get("gauge", "init"), name, "gauge", GAUGES)
    branch, correlated = _flag(spec, name, "branch", False), _flag(spec, name, "correlated", True)
    init = _per_factor(spec, name, "init", "normal", lambda v: _choice(v, name, "init", INITS), factorised)

    def globs(v):
        if isinstance(v, str) or not isinstance(v, (list, tuple)) or not all(isinstance(p, str) for p in v):
            raise DeclarationError(name, "params", "expected a list of parameter-name globs")
        return tuple(v)

    if gauge == "multiplier" and "zeros" in init.values():
        raise DeclarationError(name, "gauge", "a zero-init weight has no scale to move into a multiplier")
    params = _per_factor(spec, name, "params", (), globs, factorised)
    fan_in, fan_out = shapes["fan_in"].expr, shapes["fan_out"].expr
    common = dict(role=role, branch=branch, gauge=gauge, correlated=correlated)
    if factorised:
        k = shapes["rank"].expr
        return [Op(name=f"{name}.A", fan_in=fan_in, fan_out=k, rank=k, init=init["A"], params=params["A"],
                   factor="A", parent=name, **common),
                Op(name=f"{name}.B", fan_in=k, fan_out=fan_out, rank=k, init=init["B"], params=params["B"],
                   factor="B", parent=name, **common)]
    rank = shapes["rank"].expr if deficient else sp.Min(fan_in, fan_out)
    repeat = sp.simplify(fan_out / rank) if deficient else sp.Integer(1)
    tied = spec.get("tied")
    if tied is not None and not isinstance(tied, str):
        raise DeclarationError(name, "tied", f"expected an op name, got {tied!r}")
    return [Op(name=name, fan_in=fan_in, fan_out=fan_out, rank=rank, repeat=repeat, tied=tied, init=init["A"],
               params=params["A"], **common)]


def architecture(name: str, ops: list[dict], dims: dict[str, int] | None = None, model: str | None = None,
                 scaled: dict[str, str] | None = None) -> Architecture:
    """Python API: build a validated :class:`Architecture` from op dicts."""
    dims, scaled = dict(dims or {}), dict(scaled or {})
    for k, v in scaled.items():
        if not isinstance(k, str) or not NAME.match(k) or k in BUILTIN or k in RESERVED:
            raise DeclarationError("<scaled>", str(k), f"scaled symbols are identifiers other than "
                                                       f"{sorted(BUILTIN) + sorted(RESERVED)}")
        if not isinstance(v, str):
            raise DeclarationError("<scaled>", k, f"give a description string, got {v!r}")
    for k, v in dims.items():
        if not isinstance(k, str) or not NAME.match(k) or k in BUILTIN or k in RESERVED or k in scaled:
            raise DeclarationError("<dims>", str(k), "dim names are identifiers other than n, L, r, sqrt "
                                                     "and the scaled symbols")
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_DIM:
            raise DeclarationError("<dims>", k, f"a fixed dim must be a positive integer at most 2**40, got {v!r}")
    if not isinstance(ops, list) or not all(isinstance(o, dict) for o in ops):
        raise DeclarationError("<architecture>", "op", "ops are a list of tables ([[op]] in TOML)")
    built: list[Op] = []
    for spec in ops:
        for op in make_ops(spec, dims, list(scaled)):
            if any(o.name == op.name for o in built):
                raise DeclarationError(op.name, "name", "duplicate op name")
            built.append(op)
    by_name = {o.name: o for o in built}
    for op in built:
        if op.tied is not None:
            other = by_name.get(op.tied)
            if other is None or other is op:
                raise DeclarationError(op.name, "tied", f"names no other op: {op.tied!r}")
            if other.tied is not None:
                raise DeclarationError(op.name, "tied", "ties must point at an untied op")
            same = {sp.simplify(other.fan_in - op.fan_in), sp.simplify(other.fan_out - op.fan_out)} == {0}
            transposed = {sp.simplify(other.fan_in - op.fan_out), sp.simplify(other.fan_out - op.fan_in)} == {0}
            if not (same or transposed):
                raise DeclarationError(op.name, "tied", f"shape {op.fan_in} -> {op.fan_out} is neither that of "
                                                        f"'{other.name}' ({other.fan_in} -> {other.fan_out}) "
                                                        "nor its transpose")
    if not built:
        raise DeclarationError("<architecture>", "op", "no ops declared")
    if model is not None and not isinstance(model, str):
        raise DeclarationError("<architecture>", "model", f"expected a template name, got {model!r}")
    return Architecture(name=name, ops=tuple(built), dims=dims, model=model, scaled=scaled)


def load(path: str | Path) -> Architecture:
    """Load a TOML declaration file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DeclarationError("<file>", str(path), f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeclarationError("<file>", str(path), f"invalid TOML: {exc}") from None
    except OSError as exc:
        raise DeclarationError("<file>", str(path), exc.strerror or str(exc)) from None
    extra = set(data) - {"name", "model", "dims", "scaled", "op"}
    if extra:
        raise DeclarationError("<file>", sorted(extra)[0], "unknown top-level key; allowed: name, model, dims, "
                                                           "scaled, [[op]]")
    for key in ("dims", "scaled"):
        if not isinstance(data.get(key, {}), dict):
            raise DeclarationError("<file>", key, f"use a [{key}] table")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not NAME.match(name):
        raise DeclarationError("<file>", "name", f"an architecture name is an identifier, got {name!r}")
    return architecture(name, data.get("op", []), data.get("dims"), data.get("model"), data.get("scaled"))
