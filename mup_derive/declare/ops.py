"""The records of a declaration: :class:`Op` (one shaped matrix op) and :class:`Architecture`."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp

from .grammar import L, n, r

ROLES = ("input", "hidden", "output", "vector", "contraction")


@lru_cache(maxsize=4096)
def quotient(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """a / b, with a quotient of sums cancelled (cached: declarations repeat their shapes)."""
    q = a / b
    return sp.cancel(q) if q.has(sp.Add) else q
INITS = ("normal", "ones", "zeros", "keep")
LAYOUT = ("out", "in", "batch")
GAUGES = ("init", "multiplier")
LOWRANK = ("repeat", "factorised")


@dataclass(frozen=True)
class Op:
    """One shaped matrix op.  ``fan_out`` is the effective (post-repeat) output dim.

    ``repeat`` > 1 marks a row-repeated map: a stored (rank x fan_in) matrix whose rows are
    repeated ``fan_out / rank`` times.  ``factor`` is ``'A'`` or ``'B'`` for the two halves
    of a factorised op (``parent`` names it).  ``role='vector'`` (bias or gain) has fan_in 1;
    ``role='contraction'`` is a parameter-free product summing over ``fan_in`` (q.k over d_head);
    ``operands`` names the ops that feed it.

    ``gate`` is a factor the model multiplies the op's output by (an MoE gate, ~1/E), ``tokens`` the
    fraction of tokens the op sees (an expert: k/E); both enter its conditions.  ``layout`` names each
    tensor dim ``out``, ``in`` (kernel dims fold into fan_in) or ``batch`` (``batch`` stacked copies,
    e.g. E experts); ``gate_inside``: the op's module applies the gate itself (Gemma's scaled embedding),
    so a hook on it sees the gated output; ``absorbs`` names the table's multiplier (a contraction, a tied readout or
    ``residual``) that a gate stands for where a model has no place for it; ``fused`` ops sharing a
    parameter are its row blocks, in declaration order, and ``interleave`` > 1 says that the tensor's rows
    come in that many groups, each holding its share of every block in order (torchtitan's wqkv: per K/V
    head, that head's queries, then its key, then its value).
    ``init='keep'`` keeps the module's own (structured) init, scaled by the rule's ratio; a kept gain that
    the model applies as ``offset + w`` (Gemma's RMSNorm, 1 + w) declares its ``offset``, and the ratio then
    scales the gain the model applies, offset + w, not the stored w.  ``stream_degree`` is the degree in the raw
    residual stream of what the op reads where no norm stands between them (OLMo2, which has no pre-norm: 1 for
    the ops that read the stream or a map linear in it, 2 for SwiGLU's down projection); it changes no rule, only
    what the coordinate check allows along depth.
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
    gate: sp.Expr = sp.Integer(1)
    tokens: sp.Expr = sp.Integer(1)
    operands: tuple[str, ...] = ()
    layout: tuple[str, ...] = ()
    batch: sp.Expr = sp.Integer(1)
    fused: bool = False
    interleave: sp.Expr = sp.Integer(1)   # a fused tensor's rows in this many groups, each a share of every block
    gate_inside: bool = False             # the op's own module applies its gate (its output already carries it)
    absorbs: str | None = None            # the multiplier its gate stands for (contraction, tied readout, 'residual')
    offset: float = 0.0                   # a kept gain the model applies as offset + w (Gemma's 1 + w)
    stream_degree: int = 0                # the degree in the raw residual stream of what it reads (0: via a norm)
    grad_scale: sp.Expr = sp.Integer(1)   # set by the solver: an operand of q.k/d gets its init-time gradient factor

    @property
    def stored_rows(self) -> sp.Expr:
        """Rows of the stored matrix: fan_out / repeat."""
        return quotient(self.fan_out, self.repeat)


def fused_groups(ops: tuple[Op, ...] | list[Op]) -> dict[tuple[str, ...], list[Op]]:
    """The row blocks of each fused tensor, in declaration order, keyed by the params globs they share."""
    groups: dict[tuple[str, ...], list[Op]] = {}
    for op in ops:
        if op.fused:
            groups.setdefault(op.params, []).append(op)
    return groups


@dataclass(frozen=True)
class Architecture:
    """A validated declaration: its ops, fixed dims and extra scaled symbols (name -> description)."""

    name: str
    ops: tuple[Op, ...]
    dims: dict[str, int] = field(default_factory=dict)
    model: str | None = None
    scaled: dict[str, str] = field(default_factory=dict)

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
