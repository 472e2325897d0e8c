"""Norm models: the size of an op's weights, updates and gradients as :class:`~.terms.Term` products.

An op is the map ``A = m * R @ W``: a stored Gaussian matrix ``W`` (p x q, entry std
``sigma``), a forward multiplier ``m`` and a row-repeat ``R`` (c copies, so ``R^T R = c I``;
c = 1 for full-rank ops).  Its effective shape is fan_out x fan_in with fan_out = c p.
Every model is exact in all symbols; the solver reads exponents off the products.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import sympy as sp

from ..declare.grammar import L
from ..declare.ops import Op
from .terms import ONE, Term

InitNorm = Callable[[Op, Term, Term], Term]   # (op, sigma, m) -> a norm of the init
HALF = sp.Rational(1, 2)


def t(expr: sp.Expr) -> Term:
    return Term.of(expr)


@lru_cache(maxsize=8192)
def _sqrt_sum(a: sp.Expr, b: sp.Expr) -> Term:
    return Term.of(sp.sqrt(a) + sp.sqrt(b))


def gated(op: Op, m: Term) -> Term:
    """The op's multiplier times the gate the model puts on its output: what scales its effective map."""
    return m * t(op.gate) if op.gate != 1 else m


def target(op: Op) -> Term:
    """Spectral feature-learning scale sqrt(fan_out / fan_in) (Yang, Simon & Bernstein 2023)."""
    return (t(op.fan_out) / t(op.fan_in)) ** HALF


def spectral_init(op: Op, sigma: Term, m: Term) -> Term:
    """||A||_2 of a repeated Gaussian: m sigma sqrt(c) (sqrt(p) + sqrt(q))."""
    return gated(op, m) * sigma * t(op.repeat) ** HALF * _sqrt_sum(op.stored_rows, op.fan_in)


def expected_init(op: Op, sigma: Term, m: Term) -> Term:
    """||A||_E = E_x ||Ax|| / ||x|| = m sigma sqrt(fan_out): the norm seen by a generic input."""
    return gated(op, m) * sigma * t(op.fan_out) ** HALF


def rank_adjusted_init(op: Op, sigma: Term, m: Term) -> Term:
    """Expected operator norm calibrated to the spectral norm of a full-rank Gaussian.

    ||A||_rho = m sigma (sqrt(fan_out) + sqrt(fan_in)): equal to ||A||_2 for full-rank ops, and
    for a rank-deficient op it keeps the scaling law of a full-rank matrix of the same effective
    shape instead of the (1 + sqrt(c)) inflation of ||A||_2.
    """
    return gated(op, m) * sigma * _sqrt_sum(op.fan_out, op.fan_in)


def coherent_init(op: Op, sigma: Term, m: Term) -> Term:
    """||A||_row = m sigma sqrt(fan_in), the largest row norm (the l2 -> l-infinity operator norm): what a readout's
    output coordinate gets from an input that aligns with its row, as inputs trained through it come to do
    (the coherent sum of Tensor Programs IV).  ||A||_2 = m sigma (sqrt(fan_out) + sqrt(fan_in)) equals it up to a
    constant when fan_in >> fan_out, but for fan_out >> fan_in (a vocabulary wider than the model) it only
    bounds the RMS over all outputs and hides the coherent sum on the few outputs the loss moves."""
    return gated(op, m) * sigma * t(op.fan_in) ** HALF


def kappa(op: Op) -> Term:
    """kappa = ||A||_2 / ||A||_rho at init; (1 + sqrt(r)) / 2 for a KV map repeated r times."""
    return spectral_init(op, ONE, ONE) / rank_adjusted_init(op, ONE, ONE)


def out_grad(op: Op, alpha: sp.Expr) -> Term:
    """G = ||dloss/dy||: the loss moves by Theta(1/L) per block (L^-alpha inside a branch) when y
    moves by its feature-learning size, so G = L^(-alpha branch) / sqrt(fan_out)."""
    depth = t(L) ** -alpha if op.branch else ONE
    return depth / t(op.fan_out) ** HALF


def grad_norm(op: Op, alpha: sp.Expr, m: Term) -> Term:
    """||dloss/dW|| of the stored matrix: rank one, m gate tokens sqrt(c) G sqrt(fan_in); the c repeated copies
    of a shared row receive coherent gradients (summed: factor sqrt(c) on the stored row); an op that sees a
    fraction ``tokens`` of the batch sums that fraction of its per-token gradients."""
    seen = t(op.tokens) if op.tokens != 1 else ONE
    return gated(op, m) * seen * t(op.repeat) ** HALF * out_grad(op, alpha) * t(op.fan_in) ** HALF


def grad_entry(op: Op, alpha: sp.Expr, m: Term) -> Term:
    """Typical |dloss/dW_ij|: the rank-one gradient's norm spread over p q entries, times ``grad_scale`` for an
    operand of a correlated contraction (its gradient at init, see :func:`operand_scale`)."""
    return grad_norm(op, alpha, m) / (t(op.stored_rows) * t(op.fan_in)) ** HALF * t(op.grad_scale)


def operand_scale(contraction: Op, multiplier: Term) -> Term:
    """The factor on an operand's gradient through q.k/d at init: the logits' gradient sums d incoherent terms
    (q and k independent), sqrt(d), times the contraction's multiplier; 1/d under μP gives d^(-1/2)."""
    return multiplier * t(contraction.fan_in) ** HALF


def update_norm(op: Op, optimizer: str, lr: Term, m: Term, alpha: sp.Expr, space: str) -> Term:
    """Spectral norm of one step's change of the op (worst case: aligned, low rank).

    ``space='effective'`` measures the change of the repeated map m R dW (where the model
    uses it); ``space='stored'`` measures m dW of the stored parameter.
    """
    lift = t(op.repeat) ** HALF if space == "effective" else ONE
    if optimizer in ("adam", "adamw", "lion"):   # sign-like entries of size lr
        step = lr * (t(op.stored_rows) * t(op.fan_in)) ** HALF
    elif optimizer == "sgd":                     # lr times the rank-one gradient
        step = lr * grad_norm(op, alpha, m)
    elif optimizer == "muon":                    # orthogonalised: all singular values lr
        step = lr
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    return gated(op, m) * lift * step
