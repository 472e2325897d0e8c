"""Infer a declaration from a model factory: build it at a few shapes on the meta device, fit every
parameter dim to ``c n^a r^b`` and read roles, the K/V repeat, residual branches and ties from it.

* a dim is measured at the base shape, at twice the width and at twice the ratio; depth only changes
  how many copies of a layer there are (a dim that changes with depth is an error);
* orientation: ``nn.Embedding`` stores fan_in x fan_out, everything else fan_out x fan_in; 1-d
  tensors are vectors (gains and biases, their own init kept);
* role: fan_in fixed -> input, fan_out fixed -> output, both growing -> hidden; a hidden fan_out that
  falls like 1/r (K and V with fewer heads) is a repeat: fan_out r times that, rank the measured rows;
* residual branch: the parameters under the spec's layer path (``model.layers.*``);
* ties: one parameter reached under two names; fused tensors: the spec's row blocks (interleaved in the spec's
  groups where it says so).
"""
from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import product
from typing import Any

Shape = dict[str, int]
BASE: Shape = {"n": 64, "L": 2, "r": 1}
POINTS = {"base": BASE, "wide": {**BASE, "n": 128}, "ratio": {**BASE, "r": 2}, "deep": {**BASE, "L": 4}}


@dataclass(frozen=True)
class ModelSpec:
    """What inference needs besides the factory: named fixed dims, the layer path, the query and key, fused
    tensors' row blocks (``{param suffix: fn(shape) -> [(block name, rows)]}``) and the groups they are interleaved
    in (``{param suffix: fn(shape) -> groups}``), gates the forward applies, gains applied as offset + w and the
    degree of the raw residual stream that ops read with no norm between."""

    name: str
    build: Callable[[Shape], Any]                     # shape -> nn.Module (built on the meta device)
    dims: dict[str, int] = field(default_factory=dict)
    layers: str = "model.layers"
    query_key: tuple[str, str] = ("q_proj", "k_proj")
    head_dim: str | None = "n / heads"                # the attention logits' sum, None: no attention declared
    fused: dict[str, Callable[[Shape], list[tuple[str, int]]]] = field(default_factory=dict)
    gates: dict[str, str] = field(default_factory=dict)   # op -> gate its module applies (Gemma's sqrt(n))
    offsets: dict[str, float] = field(default_factory=dict)   # op glob -> offset its gain is applied with (1 + w)
    interleave: dict[str, Callable[[Shape], int]] = field(default_factory=dict)   # fused suffix -> its row groups
    stream_degree: dict[str, int] = field(default_factory=dict)   # op -> degree of the raw stream it reads (no norm)


class InferenceError(ValueError):
    """A model whose parameters do not fit the declaration grammar; the message names the parameter."""


def _shapes(spec: ModelSpec) -> dict[str, dict[str, tuple[tuple[int, ...], str, str]]]:
    """{point: {glob: (tensor shape, module type, tied-to glob or '')}}, layer indices replaced by '*'."""
    import torch
    out: dict[str, dict[str, Any]] = {}
    layer = re.compile(rf"^{re.escape(spec.layers)}\.\d+\.")
    for point, shape in POINTS.items():
        with torch.device("meta"):
            model = spec.build(shape)
        seen: dict[int, str] = {}
        found: dict[str, Any] = {}
        for name, param in model.named_parameters(remove_duplicate=False):
            glob = layer.sub(f"{spec.layers}.*.", name)
            module = type(model.get_submodule(name.rpartition(".")[0])).__name__
            found[glob] = (tuple(param.shape), module, seen.get(id(param), ""))
            seen.setdefault(id(param), glob)
        out[point] = found
    return out


def _exponent(a: int, b: int, where: str) -> Fraction:
    e = Fraction(math.log2(b / a)).limit_denominator(4)
    if abs(2 ** float(e) * a - b) > 1e-6 * b:
        raise InferenceError(f"{where}: {a} -> {b} is no power of 2 ** (1/4); declare this model by hand")
    return e


def _name_coeff(c: Fraction, dims: dict[str, int]) -> tuple[list[str], list[str]]:
    """``c`` as (numerator, denominator) names of fixed dims, each to the power -1, 0 or 1, else the number."""
    names = sorted(dims)
    for powers in sorted(product((0, 1, -1), repeat=len(names)), key=lambda p: sum(map(abs, p))):
        if math.prod(Fraction(dims[k]) ** p for k, p in zip(names, powers, strict=True)) == c:
            return ([k for k, p in zip(names, powers, strict=True) if p == 1],
                    [k for k, p in zip(names, powers, strict=True) if p == -1])
    return ([str(c.numerator)] if c.numerator != 1 else []), ([str(c.denominator)] if c.denominator != 1 else [])


def expression(sizes: dict[str, int], dims: dict[str, int], where: str) -> str:
    """The dim measured at the points as ``c * n^a * r^b``, c named by the fixed dims (``n / heads``)."""
    if sizes["deep"] != sizes["base"]:
        raise InferenceError(f"{where}: its size changes with depth ({sizes['base']} -> {sizes['deep']})")
    a = _exponent(sizes["base"], sizes["wide"], where)
    b = _exponent(sizes["base"], sizes["ratio"], where)
    if a.denominator != 1 or b.denominator != 1:
        raise InferenceError(f"{where}: fractional exponents of n or r are not inferred; declare this model by hand")
    up, down = _name_coeff(Fraction(sizes["base"]) / Fraction(BASE["n"]) ** int(a), dims)
    up += ["n" if a == 1 else f"n ** {a}"] if a > 0 else []
    down += ["n" if a == -1 else f"n ** {-a}"] if a < 0 else []
    up += ["r" if b == 1 else f"r ** {b}"] if b > 0 else []
    down += ["r" if b == -1 else f"r ** {-b}"] if b < 0 else []
    return " * ".join(up or ["1"]) + "".join(f" / {d}" for d in down)


def _op_names(globs: list[str], spec: ModelSpec) -> dict[str, str]:
    """An identifier per parameter glob: its module's name (``q_proj``; ``q_proj_bias`` for a bias), with more of
    its path where two would collide (nanoGPT's ``attn_c_proj`` and ``mlp_c_proj``)."""
    paths = {g: g.removeprefix(f"{spec.layers}.*.").removeprefix("model.").split(".") for g in globs}
    paths = {g: p[:-1] if p[-1] == "weight" and len(p) > 1 else p for g, p in paths.items()}
    depth = dict.fromkeys(globs, 1)
    while True:
        names = {g: re.sub(r"\W", "_", "_".join(p[-depth[g]:])) for g, p in paths.items()}
        clash = {g for g in globs if list(names.values()).count(names[g]) > 1 and depth[g] < len(paths[g])}
        if not clash:
            return names
        for g in clash:
            depth[g] += 1


def _fans(sizes: dict[str, tuple[int, ...]], module: str) -> tuple[dict[str, int], dict[str, int]] | None:
    """(fan_in sizes, fan_out sizes) per point of a matrix, None for a vector."""
    if len(sizes["base"]) == 1:
        return None
    i, o = (0, 1) if module == "Embedding" or module.endswith("WordEmbedding") else (1, 0)
    return {p: s[i] for p, s in sizes.items()}, {p: s[o] for p, s in sizes.items()}


def _matrix_op(name: str, glob: str, fan_in: dict[str, int], fan_out: dict[str, int], spec: ModelSpec,
               branch: bool) -> dict[str, Any]:
    fi, fo = (expression(s, spec.dims, glob) for s in (fan_in, fan_out))
    grows_in, grows_out = fan_in["wide"] != fan_in["base"], fan_out["wide"] != fan_out["base"]
    op: dict[str, Any] = {"name": name, "fan_in": fi, "fan_out": fo, "params": [glob]}
    if not grows_in:
        op["role"] = "input"
    elif not grows_out:
        op["role"] = "output"
    else:
        op["role"] = "hidden"
        if fan_out["ratio"] < fan_out["base"]:           # fewer heads: rows repeated r times
            op["fan_out"], op["rank"] = expression({p: v * POINTS[p]["r"] for p, v in fan_out.items()},
                                                   spec.dims, glob), fo
    if branch:
        op["branch"] = True
    return op


def _blocks(glob: str, fan_in: dict[str, int], spec: ModelSpec, branch: bool) -> list[dict[str, Any]]:
    """The row blocks of a fused tensor, each its own op."""
    split = next(fn for suffix, fn in spec.fused.items() if glob.endswith(suffix))
    groups = next((fn for suffix, fn in spec.interleave.items() if glob.endswith(suffix)), None)
    per_point = {p: split(POINTS[p]) for p in POINTS}
    extra = {"interleave": expression({p: groups(POINTS[p]) for p in POINTS}, spec.dims, glob)} if groups else {}
    ops = []
    for i, (block, _) in enumerate(per_point["base"]):
        rows = {p: blocks[i][1] for p, blocks in per_point.items()}
        op = _matrix_op(block, glob, fan_in, rows, spec, branch)
        ops.append({**op, "fused": True, **extra})
    return ops


def infer(spec: ModelSpec) -> dict[str, Any]:
    """The declaration of ``spec``'s model as plain data (the TOML fields: name, dims, op)."""
    shapes = _shapes(spec)
    base = shapes["base"]
    ops: list[dict[str, Any]] = []
    names = _op_names(list(base), spec)
    for glob, (_, module, tied) in base.items():
        sizes = {p: shapes[p][glob][0] for p in POINTS}
        branch = glob.startswith(f"{spec.layers}.*.")
        name = names[glob]
        fans = _fans(sizes, module)
        if fans is None:
            made = [{"name": name, "role": "vector", "init": "keep", "params": [glob],
                     "fan_out": expression({p: s[0] for p, s in sizes.items()}, spec.dims, glob),
                     **({"branch": True} if branch else {})}]
        elif any(glob.endswith(suffix) for suffix in spec.fused) and not tied:
            made = _blocks(glob, fans[0], spec, branch)
        else:
            made = [_matrix_op(name, glob, *fans, spec, branch)]
        ops += [{**op, "tied": names[tied], "params": []} for op in made] if tied else made
    for op in ops:
        offset = next((v for glob, v in spec.offsets.items() if fnmatch.fnmatchcase(op["name"], glob)), 0.0)
        if offset and op.get("init") == "keep":
            op["offset"] = offset
        if spec.stream_degree.get(op["name"]):
            op["stream_degree"] = spec.stream_degree[op["name"]]
        if op["name"] in spec.gates:
            op["gate"] = spec.gates[op["name"]]
            op["gate_inside"] = True              # a family's own gate is applied by the op's module
    names_now = {op["name"] for op in ops}
    q, k = spec.query_key
    if spec.head_dim and {q, k} <= names_now:
        ops.append({"name": "attn_logits", "role": "contraction", "fan_in": spec.head_dim, "branch": True,
                    "correlated": True, "operands": [q, k]})
    return {"name": spec.name, "dims": dict(spec.dims), "op": ops}
