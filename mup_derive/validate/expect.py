"""The log-log slopes μP theory allows, from the declaration's roles and shapes, never from the rules under test.

* a layer's own update ``dwx`` is Θ(1) -- feature learning at every width, ratio and depth --
  except a branch op's along depth, Θ(L^(alpha-1)), and, along depth, an op after the branches that
  reads the final stream (the readout, the final norm): its sign-like step is aligned with its
  inputs across the batch's tokens, and the part of the stream those tokens share is carried by the
  L branches of L^-alpha adding incoherently at init, L^(1/2-alpha) in norm and L^(1-2 alpha) in the
  alignment, so its own update may fall as far as L^(1-2 alpha) (flat at alpha = 1/2);
* activations at init are Θ(1), except sums of independent terms that μP normalises as if
  correlated: an output layer's and a correlated contraction's (q.k/d) outputs are
  Θ(fan_in^(-1/2)), save a readout tied to the input embedding: the stream it reads carries the
  embedded tokens, its own rows, so its output at init has a coherent part up to Θ(1) (the token's
  own logit, multiplier x |e_t|^2); the residual stream at init is the embedding plus L branches of
  L^-alpha, between Θ(L^(1/2-alpha)) and Θ(1);
* an activation's change (``delta``) is its own Θ(1) update plus the init weights acting on
  changed inputs, which scale like the init output: between the two exponents.  The
  stream's change sums L branch changes of L^-alpha, each between its own update L^(alpha-1)
  and Θ(1), incoherent to coherent: L^(-1/2) to L^(1-alpha).  After a step an activation lies
  between its init and its change;
* along depth an op that reads the raw stream (no pre-norm: OLMo2), at degree k in it (``stream_degree``:
  1 for a map linear in the stream, 2 behind SwiGLU's product), carries its size: at init and in its
  change down to L^(k (1/2-alpha)); its own update, aligned like the readout's with the part of its
  input the batch's tokens share, which the branches carry, down to L^(k (1-2 alpha)) (flat at 1/2);
* along depth a pre-norm layer reads the stream normalised; with the stream at init between
  L^(1/2-alpha) and 1, its quantities may carry up to L^(alpha-1/2) more.  Its change is its own
  update (L^(alpha-1) in a branch) plus the init weights acting on the stream's change, which lies
  between L^(1/2-alpha) (branch changes adding incoherently) and L^(1-alpha) (coherently): the
  change's exponent lies in the hull of those;
* along r, a repeated op A = R W (c = fan_out / rank copies of each stored row: GQA's K and V) passes
  a stream change that its own backward pass put there, W^T R^T g, with gain sqrt(1 + c) against
  sqrt(2) for a full-rank square map (A A^T has mean eigenvalue 1 and mean square 1 + c), while a
  generic input keeps gain 1; no init or LR of the op changes that ratio.  So every activation's
  change, the repeated op's and all it feeds (o, the stream, later layers, the logits), may grow along
  r by up to sqrt((1 + c) / 2): the largest such slope over the declared repeats is added to the
  changes' upper edge (``reports/ratio_axis.md``).  Own updates get no allowance.  Along width the
  repeat is fixed unless the rank is (MQA's n / d_head), and a growth there is a width instability,
  so width gets none either.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .rules import OpDecl
from .settings import AXES

Range = tuple[float, float]


def slope(xs: list[int] | list[float], ys: list[float] | np.ndarray) -> float:
    """Least-squares slope of log ys against log xs."""
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.maximum(np.asarray(ys, float), 1e-30))
    return float(np.polyfit(lx, ly, 1)[0])


def repeat_gain(declared: Mapping[str, OpDecl], axis: str, values: list[int], base: dict[str, int]) -> float:
    """Along r, the largest slope of sqrt((1 + c) / 2) over the declared repeats (c = fan_out / rank where
    the rank is below both fans); 0 along width and depth."""
    if axis != "ratio":
        return 0.0
    gains = [0.0]
    for d in declared.values():
        if d["role"] in ("vector", "contraction"):
            continue
        shapes = [d["shape"](**{**base, AXES[axis]: v}) for v in values]
        c = [fo / rank if rank < min(fi, fo) else 1.0 for fi, fo, rank in shapes]
        gains.append(slope(values, [math.sqrt((1 + x) / 2) for x in c]))
    return max(gains)


def _stream(depth: bool, alpha: float) -> tuple[Range, Range]:
    """Embedding + L branches x L^-alpha, incoherent .. coherent: (init, change) ranges.  A branch's
    change lies between its own update, L^(alpha-1), and Θ(1), so L of them times L^-alpha add up to
    between L^(1/2-alpha+alpha-1) = L^(-1/2) (incoherent, own updates) and L^(1-alpha) (coherent, Θ(1))."""
    if not depth:
        return (0.0, 0.0), (0.0, 0.0)
    return (min(0.0, 0.5 - alpha), 0.0), (-0.5, 1.0 - alpha)


def _layer(decl: OpDecl, axis: str, values: list[int], base: dict[str, int], alpha: float) -> tuple[Range, Range]:
    """A hooked layer's (init, change) ranges: fan_in^-1/2 for sums of independent terms, else Θ(1)."""
    e = 0.0
    if decl["role"] == "output" or (decl["role"] == "contraction" and decl["correlated"]):
        fan_in = [decl["shape"](**{**base, AXES[axis]: v})[0] for v in values]
        e = -0.5 * slope(values, fan_in)          # independent terms summed with a 1/fan_in scale
    init, change = (e, e), (min(e, 0.0), max(e, 0.0))   # update Θ(1) plus init weights on changed inputs
    if decl["role"] == "output" and decl.get("tied"):
        init = (e, max(e, 0.0))               # its input carries its own rows (the embedded tokens): up to Θ(1)
    if axis == "depth":
        # read through a norm of a stream between L^(1/2-alpha) and 1: up to L^(alpha-1/2) more; the op's
        # own update in a branch is L^(alpha-1); and the init weights act on the stream's change, which sums
        # L branch changes of L^-alpha incoherently (L^(1/2-alpha)) to coherently (L^(1-alpha))
        extra, own = max(0.0, alpha - 0.5), (alpha - 1.0 if decl["branch"] else 0.0)
        stream = _stream(True, alpha)[1]
        raw = _raw(decl, alpha)
        init = (init[0] + raw, init[1] + extra)
        change = (min(change[0], own, stream[0]) + raw, max(change[1], own, stream[1]) + extra)
    return init, change


def _raw(decl: OpDecl, alpha: float) -> float:
    """Along depth, what an op that reads the raw stream at degree k (``stream_degree``, no norm between) may lose:
    the stream lies between L^(1/2-alpha) (the branches carry it) and Θ(1) (the embedding does), so k (1/2 - alpha)
    at most; 0 for an op that reads it through a norm."""
    return decl.get("stream_degree", 0) * min(0.0, 0.5 - alpha)      # type: ignore[operator]


def expected(decl: OpDecl | None, metric: str, step: int, axis: str, values: list[int], base: dict[str, int],
             alpha: float, gain: float = 0.0) -> Range:
    """Range of log-log slopes μP allows for a label's ``metric`` at ``step`` along ``axis`` (before the
    band is added); ``decl`` is the label's declared op, None for the residual stream; ``gain`` is the
    model's :func:`repeat_gain` along the axis, allowed on top of every change."""
    if metric == "dwx":                           # the layer's own update: Θ(1), or L^(alpha-1) in a branch
        e = alpha - 1 if (axis == "depth" and decl is not None and decl["branch"]) else 0.0
        if axis == "depth" and decl is not None and not decl["branch"] and decl["role"] not in ("input", "contraction"):
            return min(e, 1.0 - 2.0 * alpha), e   # reads the final stream: its cross-token coherence, L^(1-2 alpha)
        if axis == "depth" and decl is not None:
            return e + 2.0 * _raw(decl, alpha), e   # reads the raw stream: its coherence, twice what its size may lose
        return e, e
    init, change = _stream(axis == "depth", alpha) if decl is None else _layer(decl, axis, values, base, alpha)
    change = (change[0], change[1] + gain)
    if step == 0:
        return init
    if metric == "delta":
        return change
    return min(init[0], change[0]), max(init[1], change[1])
