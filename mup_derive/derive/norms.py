"""Norm models: the size of an op's weights, updates and gradients as SymPy expressions.

An op is the map ``A = m * R @ W``: a stored Gaussian matrix ``W`` (p x q, entry std
``sigma``), a forward multiplier ``m`` and a row-repeat ``R`` (c copies, so ``R^T R = c I``;
c = 1 for full-rank ops).  Its effective shape is fan_out x fan_in with fan_out = c p.
All constants that depend on r are kept exactly; constants that depend on n only up to
their leading order matter (the solver takes the n -> oo leading term).
"""
from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from ..declare.grammar import L
from ..declare.ops import Op

sqrt = sp.sqrt
InitNorm = Callable[[Op, sp.Expr, sp.Expr], sp.Expr]   # (op, sigma, m) -> a norm of the init


def target(op: Op) -> sp.Expr:
    """Spectral feature-learning scale sqrt(fan_out / fan_in) (Yang, Simon & Bernstein 2023)."""
    return sqrt(op.fan_out / op.fan_in)


def spectral_init(op: Op, sigma: sp.Expr, m: sp.Expr) -> sp.Expr:
    """||A||_2 of a repeated Gaussian: m sigma sqrt(c) (sqrt(p) + sqrt(q))."""
    return m * sigma * sqrt(op.repeat) * (sqrt(op.stored_rows) + sqrt(op.fan_in))


def expected_init(op: Op, sigma: sp.Expr, m: sp.Expr) -> sp.Expr:
    """||A||_E = E_x ||Ax|| / ||x|| = m sigma sqrt(fan_out): the norm seen by a generic input."""
    return m * sigma * sqrt(op.fan_out)


def rank_adjusted_init(op: Op, sigma: sp.Expr, m: sp.Expr) -> sp.Expr:
    """Expected operator norm calibrated to the spectral norm of a full-rank Gaussian.

    ||A||_rho = ||A||_E (sqrt(fan_out) + sqrt(fan_in)) / sqrt(fan_out): equal to ||A||_2 for
    full-rank ops, and for a rank-deficient op it keeps the scaling law of a full-rank
    matrix of the same effective shape instead of the (1 + sqrt(c)) inflation of ||A||_2.
    """
    return expected_init(op, sigma, m) * (sqrt(op.fan_out) + sqrt(op.fan_in)) / sqrt(op.fan_out)


def kappa(op: Op) -> sp.Expr:
    """kappa = ||A||_2 / ||A||_rho at init; (1 + sqrt(r)) / 2 for a KV map repeated r times."""
    one = sp.Integer(1)
    return sp.simplify(spectral_init(op, one, one) / rank_adjusted_init(op, one, one))


def grad_norm(op: Op, alpha: sp.Expr, m: sp.Expr) -> sp.Expr:
    """||dloss/dW|| of the stored matrix: rank one, m sqrt(c) G sqrt(fan_in).

    G = ||dloss/dy|| = L^(-alpha * branch) / sqrt(fan_out) follows from the loss moving by
    Theta(1/L) per block when y moves by its feature-learning size; the c repeated copies
    of a shared row receive coherent gradients (summed: factor sqrt(c) on the stored row).
    """
    G = (L ** (-alpha) if op.branch else sp.Integer(1)) / sqrt(op.fan_out)
    return m * sqrt(op.repeat) * G * sqrt(op.fan_in)


def grad_entry(op: Op, alpha: sp.Expr, m: sp.Expr) -> sp.Expr:
    """Typical |dloss/dW_ij|: the rank-one gradient's norm spread over p q entries."""
    return grad_norm(op, alpha, m) / sqrt(op.stored_rows * op.fan_in)


def update_norm(op: Op, optimizer: str, lr: sp.Expr, m: sp.Expr, alpha: sp.Expr, space: str) -> sp.Expr:
    """Spectral norm of one step's change of the op (worst case: aligned, low rank).

    ``space='effective'`` measures the change of the repeated map m R dW (where the model
    uses it); ``space='stored'`` measures m dW of the stored parameter.
    """
    lift = sqrt(op.repeat) if space == "effective" else sp.Integer(1)
    if optimizer in ("adam", "adamw", "lion"):   # sign-like entries of size lr
        step = lr * sqrt(op.stored_rows * op.fan_in)
    elif optimizer == "sgd":                     # lr times the rank-one gradient
        step = lr * grad_norm(op, alpha, m)
    elif optimizer == "muon":                    # orthogonalised: all singular values lr
        step = lr
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    return m * lift * step
