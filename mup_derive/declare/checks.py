"""Field checks of one declared op, each raising a :class:`DeclarationError` that names the op and field."""
from __future__ import annotations

import builtins
import keyword
import math
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, TypeVar

import sympy as sp

from .grammar import BUILTIN, MAX_DIM, RESERVED, DeclarationError, Point, Shape, parse
from .ops import LOWRANK, ROLES

OP_FIELDS = {"name", "role", "fan_in", "fan_out", "rank", "repeat", "lowrank", "branch", "tied",
             "gauge", "init", "params", "correlated", "gate", "tokens", "operands", "layout", "batch", "fused",
             "interleave", "gate_inside", "absorbs", "offset", "stream_degree"}
MAX_STREAM_DEGREE = 4
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
PY_BUILTINS = frozenset(dir(builtins))
T = TypeVar("T")


def samples(scaled: Iterable[str], dims: dict[str, int], large: bool = False) -> list[Point]:
    """Shape points for the positivity checks (``large``: wide models only, for rank bounds)."""
    grid: dict[str, tuple[int, ...]] = {"n": (2 ** 20, 2 ** 30) if large else (64, 1024, 2 ** 20),
                                        "L": (1, 4, 64), "r": (1, 2, 8)}
    grid.update({k: (1, 8, 2 ** 10) for k in scaled})
    points: list[Point] = [{k: float(v) for k, v in dims.items()}]
    for k, vals in grid.items():
        points = [{**p, k: float(v)} for p in points for v in vals]
    return points


def op_name(fields: dict[str, Any]) -> str:
    """The op's name: an identifier that is not reserved."""
    name = fields.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise DeclarationError(str(name), "name", "every op needs a name of letters, digits and _")
    if name in RESERVED:
        raise DeclarationError(name, "name", f"{sorted(RESERVED)} are reserved")
    return name


def known_fields(name: str, fields: dict[str, Any]) -> None:
    extra = set(fields) - OP_FIELDS
    if extra:
        raise DeclarationError(name, sorted(extra)[0], f"unknown field; allowed: {sorted(OP_FIELDS)}")


def choice(value: object, name: str, fld: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise DeclarationError(name, fld, f"{value!r} is not one of {choices}")
    return value


def role(name: str, fields: dict[str, Any]) -> str:
    if fields.get("role") is None:
        raise DeclarationError(name, "role", f"missing; one of {ROLES}")
    return choice(fields["role"], name, "role", ROLES)


def flag(fields: dict[str, Any], name: str, fld: str, default: bool) -> bool:
    v = fields.get(fld, default)
    if not isinstance(v, bool):
        raise DeclarationError(name, fld, f"expected true or false, got {v!r}")
    return v


def shapes(name: str, fields: dict[str, Any], op_role: str, names: set[str]) -> dict[str, Shape]:
    """fan_in and fan_out (1 where a vector's fan_in or a contraction's fan_out is left out), and
    rank and repeat where given."""
    implicit = {("vector", "fan_in"), ("contraction", "fan_out")}
    out: dict[str, Shape] = {}
    for fld in ("fan_in", "fan_out"):
        if fld not in fields and (op_role, fld) not in implicit:
            raise DeclarationError(name, fld, "missing")
        out[fld] = parse(fields.get(fld, 1), names, name, fld)
    for fld in ("rank", "repeat"):
        if fld in fields:
            out[fld] = parse(fields[fld], names, name, fld)
    if op_role == "vector" and out["fan_in"].expr != 1:
        raise DeclarationError(name, "fan_in", "a vector-like op (bias or gain) has fan_in 1")
    return out


@lru_cache(maxsize=4096)
def _grows(shape: Shape, key: tuple[tuple[tuple[str, int], ...], tuple[str, ...]]) -> bool:
    """Whether ``shape`` grows with a scaled symbol (n, L, r or a declared one), the others at a middle value."""
    point: Point = {**{k: float(v) for k, v in key[0]}, "n": 2.0 ** 12, "L": 8.0, "r": 4.0,
                    **{k: 64.0 for k in key[1]}}
    base = shape.value(point)
    return any(shape.value({**point, s: point[s] * 2.0 ** 20}) > base * 1.05 for s in ("n", "L", "r", *key[1]))


ROLE_SHAPES = {  # role -> (fan_in grows, fan_out grows, how to spell the op otherwise)
    "input": (False, True, "an input op maps data of a fixed size (vocab, channels) to the width"),
    "hidden": (True, True, "a hidden op maps between growing dims; a projection to a fixed dim that later ops "
                           "read (MQA's K/V heads, a latent) is fan_out = n with rank = that dim and lowrank = "
                           "\"repeat\" or \"factorised\"; a readout is role = \"output\"; an op reading fixed-size "
                           "data is role = \"input\""),
    "output": (True, False, "an output op (readout) maps the width to a fixed size (vocab, classes); a map between "
                            "growing dims is role = \"hidden\""),
}


def role_shape(name: str, op_role: str, shp: dict[str, Shape], dims: dict[str, int], scaled: list[str]) -> None:
    """input, hidden and output ops have the shapes their roles mean: which fans grow with the scaled symbols."""
    if op_role not in ROLE_SHAPES:
        return
    *want, how = ROLE_SHAPES[op_role]
    for fld, grows in zip(("fan_in", "fan_out"), want, strict=True):
        if _grows(shp[fld], _key(dims, scaled)) != grows:
            state = "grows with a scaled symbol" if not grows else "is fixed"
            raise DeclarationError(name, fld, f"{shp[fld].expr} {state}, which contradicts role = {op_role!r}: {how}")


def factors(name: str, fields: dict[str, Any], names: set[str], dims: dict[str, int],
            scaled: list[str]) -> dict[str, sp.Expr]:
    """gate (a factor on the op's output) and tokens (the fraction of tokens it sees) are positive; batch (stacked
    copies) and interleave (the row groups of a fused tensor) are dimensions."""
    out: dict[str, sp.Expr] = {}
    bounds: dict[str, tuple[Callable[[float], bool], str]] = {
        "gate": (lambda v: v > 0, "positive"), "tokens": (lambda v: v > 0, "positive"),
        "batch": (lambda v: 1 <= v <= MAX_DIM, "a dimension in [1, 2**40]"),
        "interleave": (lambda v: 1 <= v <= MAX_DIM, "a dimension in [1, 2**40]")}
    for fld, (ok, what) in bounds.items():
        if fld not in fields:
            continue
        shape = parse(fields[fld], names, name, fld)
        for point in samples(scaled, dims):
            v = shape.value(point)
            if not ok(v):
                where = {k: int(x) for k, x in point.items() if k not in dims}
                raise DeclarationError(name, fld, f"{shape.expr} = {v:g} at {where} is not {what}")
        out[fld] = shape.expr
    return out


def absorbs(name: str, fields: dict[str, Any], gated: bool) -> str | None:
    """The multiplier an op's gate stands for (a contraction's or a tied readout's name, or 'residual'): it needs a
    gate."""
    v = fields.get("absorbs")
    if v is None:
        return None
    if not isinstance(v, str) or not gated:
        raise DeclarationError(name, "absorbs", "names the multiplier (a contraction, a tied readout or 'residual') "
                                                "that the op's gate stands for, and needs a gate")
    return v


def names_list(name: str, fields: dict[str, Any], fld: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """A list of strings (op names for ``operands``; out / in / batch for ``layout``)."""
    v = fields.get(fld, [])
    if isinstance(v, str) or not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise DeclarationError(name, fld, "expected a list of strings")
    bad = [x for x in v if allowed is not None and x not in allowed]
    if bad:
        raise DeclarationError(name, fld, f"{bad[0]!r} is not one of {allowed}")
    return tuple(v)


def layout_for_role(name: str, op_role: str, layout: tuple[str, ...], has_batch: bool) -> None:
    """A layout names one or more out dims and in dims (a vector: out only), and batch dims iff a batch is declared."""
    if not layout:
        if has_batch:
            raise DeclarationError(name, "batch", "a batch of stacked copies needs a layout naming its dims")
        return
    want = {"out"} if op_role == "vector" else {"out", "in"}
    if not want <= set(layout) or (op_role == "vector" and "in" in layout):
        raise DeclarationError(name, "layout", f"a {op_role} op's layout names {sorted(want)} dims, got {list(layout)}")
    if ("batch" in layout) != has_batch:
        raise DeclarationError(name, "layout", "batch dims and a `batch` size go together")


def init_for_role(name: str, op_role: str, init: dict[str, str]) -> None:
    """``init = "ones"`` is for gains (role vector); a matrix initialised to ones is rank one, not a feature map."""
    if "ones" in init.values() and op_role != "vector":
        raise DeclarationError(name, "init", f"\"ones\" is for gains (role = \"vector\"), not role = {op_role!r}; "
                                             "use \"normal\" or \"zeros\"")


def lowrank(name: str, fields: dict[str, Any], shp: dict[str, Shape]) -> str | None:
    """The declared low-rank kind, which needs a rank (or repeat); a factorised op takes no repeat."""
    kind = fields.get("lowrank")
    if kind is None:
        return None
    choice(kind, name, "lowrank", LOWRANK)
    if "rank" not in shp and "repeat" not in shp:
        raise DeclarationError(name, "lowrank", "needs a rank")
    if kind == "factorised" and "repeat" in shp:
        raise DeclarationError(name, "repeat", "a factorised op has a rank, not a repeat")
    return str(kind)


@lru_cache(maxsize=4096)
def _quotient(fo: Shape, rep: Shape) -> Shape:
    return Shape(fo.expr / rep.expr, lambda e: fo.value(e) / rep.value(e))


def rank_from_repeat(name: str, shp: dict[str, Shape]) -> None:
    """A declared repeat sets rank = fan_out / repeat; a rank given as well must agree."""
    if "repeat" not in shp:
        return
    from_repeat = _quotient(shp["fan_out"], shp["repeat"])
    if "rank" in shp and sp.simplify(shp["rank"].expr - from_repeat.expr) != 0:
        raise DeclarationError(name, "repeat", f"fan_out/repeat = {from_repeat.expr} disagrees with "
                                               f"rank = {shp['rank'].expr}")
    shp["rank"] = from_repeat


def _key(dims: dict[str, int], scaled: list[str]) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...]]:
    return tuple(sorted(dims.items())), tuple(scaled)


@lru_cache(maxsize=4096)
def _not_a_dimension(shape: Shape, key: tuple[tuple[tuple[str, int], ...], tuple[str, ...]]) -> str | None:
    """Why ``shape`` is not a dimension at some sample point, or None (cached per expression)."""
    dims = dict(key[0])
    for point in samples(key[1], dims):
        val = shape.value(point)
        if not (val >= 1) or val > MAX_DIM ** 2:
            where = {k: int(v) for k, v in point.items() if k not in dims}
            return f"must be a positive dimension (at least 1), got {shape.expr} = {val:g} at {where}"
    return None


def positive(name: str, shp: dict[str, Shape], dims: dict[str, int], scaled: list[str]) -> None:
    """fan_in, fan_out and rank are dimensions (at least 1, finite) at every sample shape."""
    for fld in ("fan_in", "fan_out", "rank"):
        why = _not_a_dimension(shp[fld], _key(dims, scaled)) if fld in shp else None
        if why:
            raise DeclarationError(name, fld, why)


@lru_cache(maxsize=4096)
def _rank_below_full(fan_in: Shape, fan_out: Shape, rank: Shape,
                     key: tuple[tuple[tuple[str, int], ...], tuple[str, ...]]) -> bool | None:
    """Whether ``rank`` is below min(fan_in, fan_out) somewhere for wide models; None if it exceeds it."""
    low = False
    for point in samples(key[1], dict(key[0]), large=True):
        full, k = min(fan_in.value(point), fan_out.value(point)), rank.value(point)
        if k > full * (1 + 1e-12):
            return None
        low |= k < full * (1 - 1e-12)
    return low


def deficient(name: str, shp: dict[str, Shape], dims: dict[str, int], scaled: list[str], kind: str | None) -> bool:
    """Whether the declared rank is below min(fan_in, fan_out) for wide models; above it is an error,
    and a declared low-rank kind needs a rank that is below it."""
    low: bool | None = False
    if "rank" in shp:
        low = _rank_below_full(shp["fan_in"], shp["fan_out"], shp["rank"], _key(dims, scaled))
        if low is None:
            raise DeclarationError(name, "rank", f"rank {shp['rank'].expr} exceeds min(fan_in, fan_out) "
                                                 f"= min({shp['fan_in'].expr}, {shp['fan_out'].expr}) "
                                                 "for wide models")
    if kind is not None and not low:
        raise DeclarationError(name, "rank", f"lowrank = {kind!r} but rank {shp['rank'].expr} is "
                                             "min(fan_in, fan_out)")
    return bool(low)


def per_factor(fields: dict[str, Any], name: str, fld: str, default: object, check: Callable[[object], T],
               factorised: bool) -> dict[str, T]:
    """A field that may be given per factor of a factorised op: {"A": ..., "B": ...}."""
    v = fields.get(fld, default)
    if not isinstance(v, dict):
        return {k: check(v) for k in ("A", "B")}
    if not factorised:
        raise DeclarationError(name, fld, "a table {A = ..., B = ...} needs lowrank = \"factorised\"")
    extra = set(v) - {"A", "B"}
    if extra:
        raise DeclarationError(name, fld, f"factors are A and B, got {sorted(extra)}")
    return {k: check(v.get(k, default)) for k in ("A", "B")}


def globs(name: str) -> Callable[[object], tuple[str, ...]]:
    """A checker for ``params``: a list of parameter-name globs."""
    def check(v: object) -> tuple[str, ...]:
        if isinstance(v, str) or not isinstance(v, (list, tuple)) or not all(isinstance(p, str) for p in v):
            raise DeclarationError(name, "params", "expected a list of parameter-name globs")
        return tuple(v)
    return check


def tied(name: str, fields: dict[str, Any]) -> str | None:
    v = fields.get("tied")
    if v is not None and not isinstance(v, str):
        raise DeclarationError(name, "tied", f"expected an op name, got {v!r}")
    return v


def python_name(k: str) -> bool:
    """A name the generated code can take as a parameter: no keyword, no builtin it would shadow."""
    return not keyword.iskeyword(k) and k not in PY_BUILTINS


def scaled_symbols(scaled: dict[str, Any]) -> None:
    """Declared scaled symbols are identifiers other than the built-in and reserved names, each with a
    description; they become parameters of the generated rules, so Python keywords and builtins are refused."""
    for k, v in scaled.items():
        if not isinstance(k, str) or not NAME.match(k) or k in BUILTIN or k in RESERVED or not python_name(k):
            raise DeclarationError("<scaled>", str(k), f"scaled symbols are identifiers other than "
                                                       f"{sorted(BUILTIN) + sorted(RESERVED)}, Python keywords "
                                                       "and builtins")
        if not isinstance(v, str):
            raise DeclarationError("<scaled>", k, f"give a description string, got {v!r}")


def fixed_dims(dims: dict[str, Any], scaled: dict[str, str]) -> None:
    """Fixed dims are identifiers (not n, L, r, sqrt or a scaled symbol) with values in 1..2**40."""
    for k, v in dims.items():
        if not isinstance(k, str) or not NAME.match(k) or k in BUILTIN or k in RESERVED or k in scaled:
            raise DeclarationError("<dims>", str(k), "dim names are identifiers other than n, L, r, sqrt "
                                                     "and the scaled symbols")
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_DIM:
            raise DeclarationError("<dims>", k, f"a fixed dim must be a positive integer at most 2**40, got {v!r}")


def offset(name: str, fields: dict[str, Any], role: str, init: str) -> float:
    """The offset a kept gain is applied with (the model computes offset + w): a finite number, on a kept vector."""
    v = fields.get("offset", 0.0)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise DeclarationError(name, "offset", f"must be a finite number, got {v!r}")
    if v and (role != "vector" or init != "keep"):
        raise DeclarationError(name, "offset", "belongs to a gain the model applies as offset + w: role = "
                                               "'vector' with init = 'keep'")
    return float(v)


def stream_degree(name: str, fields: dict[str, Any]) -> int:
    """The degree in the raw residual stream of what the op reads (0: through a norm): an integer in [0, 4]."""
    v = fields.get("stream_degree", 0)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_STREAM_DEGREE:
        raise DeclarationError(name, "stream_degree", f"must be an integer in [0, {MAX_STREAM_DEGREE}], got {v!r}")
    return v
