"""Architecture declarations: shaped matrix ops with roles, branch membership and rank.

An architecture is a list of :class:`Op` plus fixed dimensions (vocab, heads, ...).
Shapes are SymPy expressions in width ``n``, depth ``L``, group ratio ``r`` and the
fixed dims.  The TOML format mirrors the Python API one to one::

    name = "gqa"
    [dims]
    vocab = 256
    [[op]]
    name = "k"
    role = "hidden"
    fan_in = "n"
    fan_out = "n"
    rank = "n / r"      # the KV projection repeated r times
    branch = true
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import sympy as sp

n, L, r = sp.symbols("n L r", positive=True)
SCALING = (n, L, r)
ROLES = ("input", "hidden", "output", "vector", "contraction")
INITS = ("normal", "ones", "zeros")
GAUGES = ("init", "multiplier")
OP_FIELDS = {"name", "role", "fan_in", "fan_out", "rank", "repeat", "branch", "tied",
             "gauge", "init", "params", "correlated"}


class DeclarationError(ValueError):
    """A malformed declaration; the message names the op and the field."""

    def __init__(self, op: str, fld: str, msg: str):
        super().__init__(f"op '{op}', field '{fld}': {msg}")
        self.op, self.field = op, fld


@dataclass(frozen=True)
class Op:
    """One shaped matrix op.  ``fan_out`` is the effective (post-repeat) output dim.

    ``rank`` < min(fan_in, fan_out) marks a rank-deficient map, realised as a stored
    (rank x fan_in) matrix whose rows are repeated ``fan_out / rank`` times.
    ``role='vector'`` (bias or gain) has fan_in 1; ``role='contraction'`` is a
    parameter-free product summing over ``fan_in`` (e.g. q.k over d_head).
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

    @property
    def stored_rows(self) -> sp.Expr:
        return sp.simplify(self.fan_out / self.repeat)


@dataclass(frozen=True)
class Architecture:
    name: str
    ops: tuple[Op, ...]
    dims: dict[str, int] = field(default_factory=dict)
    model: str | None = None

    def op(self, name: str) -> Op:
        for o in self.ops:
            if o.name == name:
                return o
        raise KeyError(name)

    @property
    def dim_symbols(self) -> dict[sp.Symbol, int]:
        return {sp.Symbol(k, positive=True): v for k, v in self.dims.items()}


def _parse_expr(text, op: str, fld: str, allowed: set[sp.Symbol]) -> sp.Expr:
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise DeclarationError(op, fld, f"expected an expression string or integer, got {text!r}")
    local = {s.name: s for s in allowed}
    try:
        expr = sp.sympify(text, locals=local, rational=True)
    except (sp.SympifyError, SyntaxError, TypeError) as exc:
        raise DeclarationError(op, fld, f"cannot parse {text!r}: {exc}") from None
    if expr.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        raise DeclarationError(op, fld, f"{text!r} is not a finite expression")
    unknown = {s.name for s in expr.free_symbols} - {s.name for s in allowed}
    if unknown:
        raise DeclarationError(op, fld, f"unknown symbol(s) {sorted(unknown)}; "
                               f"allowed: {sorted(s.name for s in allowed)}")
    return expr


def _samples(dims: dict[sp.Symbol, int]):
    """Shape points used to check positivity and rank bounds (including asymptotics)."""
    for nv in (64, 1024, 2**20):
        for rv in (1, 2, 8):
            for Lv in (1, 4, 64):
                yield {n: nv, L: Lv, r: rv, **dims}


def make_op(spec: dict, dims: dict[str, int]) -> Op:
    """Build and validate one op from a plain dict (the TOML table or Python kwargs)."""
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise DeclarationError(str(name), "name", "every op needs a non-empty string name")
    if name == "residual":
        raise DeclarationError(name, "name", "'residual' is reserved for the residual-branch multiplier")
    extra = set(spec) - OP_FIELDS
    if extra:
        raise DeclarationError(name, sorted(extra)[0], f"unknown field; allowed: {sorted(OP_FIELDS)}")
    role = spec.get("role")
    if role is None:
        raise DeclarationError(name, "role", f"missing; one of {ROLES}")
    if role not in ROLES:
        raise DeclarationError(name, "role", f"{role!r} is not one of {ROLES}")
    dsyms = {sp.Symbol(k, positive=True): v for k, v in dims.items()}
    allowed = set(SCALING) | set(dsyms)
    fields = {}
    for fld in ("fan_in", "fan_out"):
        if fld not in spec:
            if (role, fld) in (("vector", "fan_in"), ("contraction", "fan_out")):
                fields[fld] = sp.Integer(1)
                continue
            raise DeclarationError(name, fld, "missing")
        fields[fld] = _parse_expr(spec[fld], name, fld, allowed)
    if role == "vector" and fields["fan_in"] != 1:
        raise DeclarationError(name, "fan_in", "a vector-like op (bias or gain) has fan_in 1")
    try:
        full = sp.Min(fields["fan_in"], fields["fan_out"])
    except (ValueError, TypeError) as exc:
        raise DeclarationError(name, "fan_in", f"cannot compare with fan_out: {exc}") from None
    rank = _parse_expr(spec["rank"], name, "rank", allowed) if "rank" in spec else None
    if "repeat" in spec:
        rep = _parse_expr(spec["repeat"], name, "repeat", allowed)
        from_repeat = sp.simplify(fields["fan_out"] / rep)
        if rank is not None and sp.simplify(rank - from_repeat) != 0:
            raise DeclarationError(name, "repeat", f"fan_out/repeat = {from_repeat} disagrees with rank = {rank}")
        rank = from_repeat
    deficient = False
    for point in _samples(dsyms):
        for fld, expr in (*fields.items(), ("rank", full if rank is None else rank)):
            val = expr.subs(point)
            if not val.is_number or not val.is_positive:
                raise DeclarationError(name, fld, f"must be a positive dimension, got {expr} = {val} at "
                                       f"{ {str(k): v for k, v in point.items()} }")
        if rank is not None:
            gap = (full - rank).subs(point)
            if gap < 0:
                raise DeclarationError(name, "rank", f"rank {rank} exceeds min(fan_in, fan_out) = {full}")
            deficient |= bool(gap > 0)
    repeat = sp.simplify(fields["fan_out"] / rank) if deficient else sp.Integer(1)
    rank = rank if deficient else full
    gauge = spec.get("gauge", "init")
    if gauge not in GAUGES:
        raise DeclarationError(name, "gauge", f"{gauge!r} is not one of {GAUGES}")
    init = spec.get("init", "normal")
    if init not in INITS:
        raise DeclarationError(name, "init", f"{init!r} is not one of {INITS}")
    branch, correlated = spec.get("branch", False), spec.get("correlated", True)
    for fld, flag in (("branch", branch), ("correlated", correlated)):
        if not isinstance(flag, bool):
            raise DeclarationError(name, fld, f"expected true or false, got {flag!r}")
    params = spec.get("params", ())
    if isinstance(params, str) or not all(isinstance(p, str) for p in params):
        raise DeclarationError(name, "params", "expected a list of parameter-name globs")
    return Op(name=name, role=role, fan_in=fields["fan_in"], fan_out=fields["fan_out"], rank=rank,
              repeat=repeat, branch=branch, tied=spec.get("tied"), gauge=gauge, init=init, params=tuple(params),
              correlated=correlated)


def architecture(name: str, ops: list[dict], dims: dict[str, int] | None = None,
                 model: str | None = None) -> Architecture:
    """Python API: build a validated :class:`Architecture` from op dicts."""
    dims = dict(dims or {})
    for k, v in dims.items():
        if not k.isidentifier() or k in {s.name for s in SCALING}:
            raise DeclarationError("<dims>", k, "dim names must be identifiers other than n, L, r")
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise DeclarationError("<dims>", k, f"a fixed dim must be a positive integer, got {v!r}")
    built, seen = [], set()
    for spec in ops:
        op = make_op(spec, dims)
        if op.name in seen:
            raise DeclarationError(op.name, "name", "duplicate op name")
        seen.add(op.name)
        built.append(op)
    for op in built:
        if op.tied is not None:
            if op.tied not in seen or op.tied == op.name:
                raise DeclarationError(op.name, "tied", f"names no other op: {op.tied!r}")
            other = next(o for o in built if o.name == op.tied)
            if other.tied is not None:
                raise DeclarationError(op.name, "tied", "ties must point at an untied op")
            if sp.simplify(other.fan_in * other.fan_out - op.fan_in * op.fan_out) != 0:
                raise DeclarationError(op.name, "tied", f"shape differs from '{other.name}'")
    if not built:
        raise DeclarationError("<architecture>", "op", "no ops declared")
    return Architecture(name=name, ops=tuple(built), dims=dims, model=model)


def load(path: str | Path) -> Architecture:
    """Load a TOML declaration file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DeclarationError("<file>", str(path), f"invalid TOML: {exc}") from None
    ops = data.get("op", [])
    if not isinstance(ops, list):
        raise DeclarationError("<file>", "op", "use [[op]] tables")
    return architecture(data.get("name", path.stem), ops, data.get("dims"), data.get("model"))
