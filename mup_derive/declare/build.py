"""Build a validated :class:`Architecture` from plain data: the Python API and the TOML loader.

An architecture is a list of ops plus fixed dimensions (vocab, heads, ...) and the scaled
symbols: width ``n``, depth ``L``, group ratio ``r`` and any declared under ``[scaled]``
(experts ``E``, LoRA rank ``k``, ...).  The TOML format mirrors the Python API one to one::

    name = "gqa"
    [dims]
    vocab = 256
    [[op]]
    name = "k"
    role = "hidden"
    fan_in = "n"
    fan_out = "n"
    rank = "n / r"          # n/r stored rows, each repeated r times (lowrank = "repeat")
    branch = true

A rank-deficient op is either a row repeat (``lowrank = "repeat"``: GQA/MQA's shared K/V
heads) or a factorised product ``B @ A`` (``lowrank = "factorised"``: MLA's latent KV, a
LoRA adapter), expanded into its two factors ``NAME.A`` (fan_in -> rank) and ``NAME.B``
(rank -> fan_out); ``params`` and ``init`` may then be tables ``{A = ..., B = ...}``.
"""
from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

import sympy as sp

from . import checks
from .grammar import BUILTIN, DeclarationError, Shape
from .ops import GAUGES, INITS, LAYOUT, Architecture, Op, fused_groups, quotient


def make_ops(fields: dict[str, Any], dims: dict[str, int], scaled: list[str]) -> list[Op]:
    """Build and validate one declared op (two for a factorised one) from a plain dict."""
    name = checks.op_name(fields)
    checks.known_fields(name, fields)
    role = checks.role(name, fields)
    shp = checks.shapes(name, fields, role, set(BUILTIN) | set(scaled) | set(dims))
    kind = checks.lowrank(name, fields, shp)
    checks.rank_from_repeat(name, shp)
    checks.positive(name, shp, dims, scaled)
    checks.role_shape(name, role, shp, dims, scaled)
    low = checks.deficient(name, shp, dims, scaled, kind)
    factorised = low and kind == "factorised"
    gauge = checks.choice(fields.get("gauge", "init"), name, "gauge", GAUGES)
    init = checks.per_factor(fields, name, "init", "normal", lambda v: checks.choice(v, name, "init", INITS),
                             factorised)
    checks.init_for_role(name, role, init)
    if gauge == "multiplier" and "zeros" in init.values():
        raise DeclarationError(name, "gauge", "a zero-init weight has no scale to move into a multiplier")
    params = checks.per_factor(fields, name, "params", (), checks.globs(name), factorised)
    names = set(BUILTIN) | set(scaled) | set(dims)
    extra = checks.factors(name, fields, names, dims, scaled)
    layout = checks.names_list(name, fields, "layout", LAYOUT)
    checks.layout_for_role(name, role, layout, "batch" in extra)
    operands = checks.names_list(name, fields, "operands")
    if operands and role != "contraction":
        raise DeclarationError(name, "operands", "only a contraction names its operands")
    common: dict[str, Any] = dict(role=role, branch=checks.flag(fields, name, "branch", False), gauge=gauge,
                                  correlated=checks.flag(fields, name, "correlated", True), operands=operands,
                                  layout=layout, fused=checks.flag(fields, name, "fused", False),
                                  gate_inside=checks.flag(fields, name, "gate_inside", False),
                                  stream_degree=checks.stream_degree(name, fields),
                                  absorbs=checks.absorbs(name, fields, "gate" in extra), **extra)
    if factorised:
        return _factors(name, shp, init, params, common)
    fan_in, fan_out = shp["fan_in"].expr, shp["fan_out"].expr
    rank, repeat = _rank_and_repeat(fan_in, fan_out, shp["rank"].expr if low else None)
    return [Op(name=name, fan_in=fan_in, fan_out=fan_out, rank=rank, repeat=repeat, tied=checks.tied(name, fields),
               init=init["A"], params=params["A"], offset=checks.offset(name, fields, role, init["A"]), **common)]


@lru_cache(maxsize=4096)
def _rank_and_repeat(fan_in: sp.Expr, fan_out: sp.Expr, low: sp.Expr | None) -> tuple[sp.Expr, sp.Expr]:
    """(rank, repeat): a declared low rank and fan_out / rank, or min(fan_in, fan_out) and 1."""
    if low is None:
        return sp.Min(fan_in, fan_out), sp.Integer(1)
    return low, quotient(fan_out, low)


def _factors(name: str, shp: dict[str, Shape], init: dict[str, str], params: dict[str, tuple[str, ...]],
             common: dict[str, Any]) -> list[Op]:
    """The factors NAME.A (fan_in -> rank) and NAME.B (rank -> fan_out) of a factorised op."""
    k = shp["rank"].expr
    if common["layout"] or common["fused"]:
        raise DeclarationError(name, "layout" if common["layout"] else "fused",
                               "a factorised op's factors are separate tensors: declare them as two ops")
    return [Op(name=f"{name}.A", fan_in=shp["fan_in"].expr, fan_out=k, rank=k, init=init["A"], params=params["A"],
               factor="A", parent=name, **{**common, "gate": sp.Integer(1)}),
            Op(name=f"{name}.B", fan_in=k, fan_out=shp["fan_out"].expr, rank=k, init=init["B"], params=params["B"],
               factor="B", parent=name, **common)]


def _absorbable(op: Op | None) -> bool:
    """An op whose multiplier a gate elsewhere may carry: a contraction (no weights) or a tied readout (its weight
    is shared)."""
    return op is not None and (op.role == "contraction" or (op.role == "output" and op.tied is not None))


def _check_tie(op: Op, by_name: dict[str, Op]) -> None:
    """A tie names another, untied op of the same shape or its transpose."""
    other = by_name.get(op.tied or "")
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


def _check_fused(ops: list[Op]) -> None:
    """Fused ops are the row blocks of one tensor: they share their params globs, fan_in and interleave, two or more
    of them."""
    for op in ops:
        if op.fused and (not op.params or op.tied or op.role in ("vector", "contraction")):
            raise DeclarationError(op.name, "fused", "a row block names its fused tensor's params, is a matrix "
                                                     "op and is not tied")
        if op.interleave != 1 and not op.fused:
            raise DeclarationError(op.name, "interleave", "only the row blocks of a fused tensor are interleaved")
    for params, blocks in fused_groups(ops).items():
        if any(sp.simplify(b.interleave - blocks[0].interleave) != 0 for b in blocks):
            raise DeclarationError(blocks[1].name, "interleave", "the row blocks of a fused tensor share its "
                                                                 "interleave")
        if len(blocks) < 2:
            raise DeclarationError(blocks[0].name, "fused", f"no other block shares params {list(params)}")
        if any(sp.simplify(b.fan_in - blocks[0].fan_in) != 0 for b in blocks):
            raise DeclarationError(blocks[1].name, "fan_in", "the row blocks of a fused tensor share its fan_in")


def architecture(name: str, ops: list[dict[str, Any]], dims: dict[str, int] | None = None,
                 model: str | None = None, scaled: dict[str, str] | None = None) -> Architecture:
    """Python API: build a validated :class:`Architecture` from op dicts (the fields of TOML's ``[[op]]``)."""
    dims, scaled = dict(dims or {}), dict(scaled or {})
    checks.scaled_symbols(scaled)
    checks.fixed_dims(dims, scaled)
    if not isinstance(ops, list) or not all(isinstance(o, dict) for o in ops):
        raise DeclarationError("<architecture>", "op", "ops are a list of tables ([[op]] in TOML)")
    by_name: dict[str, Op] = {}
    for fields in ops:
        for op in make_ops(fields, dims, list(scaled)):
            if op.name in by_name:
                raise DeclarationError(op.name, "name", "duplicate op name")
            by_name[op.name] = op
    built = list(by_name.values())
    for op in built:
        if op.tied is not None:
            _check_tie(op, by_name)
        for other in op.operands:
            if other not in by_name or by_name[other].role == "contraction":
                raise DeclarationError(op.name, "operands", f"{other!r} is not a declared op with weights")
        if op.absorbs not in (None, "residual") and not _absorbable(by_name.get(op.absorbs or "")):
            raise DeclarationError(op.name, "absorbs", f"{op.absorbs!r} is neither 'residual', a declared contraction "
                                                       "nor a tied readout")
    _check_fused(built)
    if not built:
        raise DeclarationError("<architecture>", "op", "no ops declared")
    if model is not None and not isinstance(model, str):
        raise DeclarationError("<architecture>", "model", f"expected a template name, got {model!r}")
    return Architecture(name=name, ops=tuple(built), dims=dims, model=model, scaled=scaled)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DeclarationError("<file>", str(path), f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeclarationError("<file>", str(path), f"invalid TOML: {exc}") from None
    except OSError as exc:
        raise DeclarationError("<file>", str(path), exc.strerror or str(exc)) from None


def load(path: str | Path) -> Architecture:
    """Load a TOML declaration file."""
    path = Path(path)
    data = _read_toml(path)
    extra = set(data) - {"name", "model", "dims", "scaled", "op"}
    if extra:
        raise DeclarationError("<file>", sorted(extra)[0], "unknown top-level key; allowed: name, model, dims, "
                                                           "scaled, [[op]]")
    for key in ("dims", "scaled"):
        if not isinstance(data.get(key, {}), dict):
            raise DeclarationError("<file>", key, f"use a [{key}] table")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not checks.NAME.match(name):
        raise DeclarationError("<file>", "name", f"an architecture name is an identifier, got {name!r}")
    return architecture(name, data.get("op", []), data.get("dims"), data.get("model"), data.get("scaled"))
