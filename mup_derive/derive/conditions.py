"""The conditions each op's rules solve, one small function per quantity, as :class:`Rule` records.

μP (spectral feature learning as the definition, Yang, Simon & Bernstein 2023; rank adjustment
from GQA-μP; depth from CompleteP):

* init:   ||A_0||_rho = sqrt(fan_out / fan_in)
* update: ||dA|| = sqrt(fan_out / fan_in) * L^((alpha-1) branch) * kappa, summed coherently over
          L branches that each carry the residual multiplier L^-alpha; kappa = ||A_0||_2 / ||A_0||_rho
          (1 for full-rank ops) for ``update_target='spectral'``, kappa = 1 for ``'rank-adjusted'``
* decay:  eta * lambda * ||A_0|| = ||A_0||  (eta lambda held constant)
* eps:    eps = typical |dloss/dW_ij|
* contraction over d: m d^gamma = 1 with gamma = 1 for correlated operands (LLN), 1/2 (CLT)

The standard parameterization (SP) uses the expected norm for init, global optimizer
hyperparameters, CLT attention scaling and no residual multiplier.  A reason states the
condition only; renderers add the solved expression.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from ..declare.grammar import L, n
from ..declare.ops import Op
from . import norms
from .asymptotics import leading
from .settings import EPS_OPTIMIZERS, OPTIMIZERS, WD_OPTIMIZERS, Settings

sigma, mult, eta, lam, eps = sp.symbols("sigma m eta lambda epsilon", positive=True)
ONE = sp.Integer(1)


@dataclass(frozen=True)
class Rule:
    """One solved quantity of one op: its exact solution and the condition it solves."""

    quantity: str
    optimizer: str | None
    exact: sp.Expr
    reason: str


@dataclass(frozen=True)
class Tie:
    """What a tied op inherits from the op it shares storage with: its init std and LRs."""

    name: str
    init_std: sp.Expr
    lr: tuple[tuple[str, sp.Expr], ...]


def solve_for(lhs: sp.Expr, rhs: sp.Expr, unknown: sp.Symbol) -> sp.Expr:
    """The positive solution of ``lhs = rhs`` for ``unknown``: by hand where the condition is
    linear in it (every μP condition is), else by ``sympy.solve``."""
    f = lhs - rhs
    slope = sp.diff(f, unknown)
    if slope != 0 and not slope.has(unknown):
        sols = [sp.cancel(-f.subs(unknown, 0) / slope)]
    else:
        sols = sp.solve(sp.Eq(lhs, rhs), unknown, dict=False)
    if len(sols) != 1 or sols[0].is_positive is False:
        raise ArithmeticError(f"condition {lhs} = {rhs} has no single positive solution for {unknown}")
    return sols[0]


# --- μP: init and multiplier (the gauge) ----------------------------------------------------
def _norm_model(op: Op) -> tuple[norms.InitNorm, str]:
    """The init norm the op's condition uses: a factor A keeps its output's RMS; others the rank-adjusted norm."""
    if op.factor == "A":
        return norms.expected_init, f"||A||_E = m sigma sqrt({op.fan_out})"
    return norms.rank_adjusted_init, f"||A||_rho = m sigma (sqrt({op.fan_out}) + sqrt({op.fan_in}))"


def _notes(op: Op) -> str:
    rank = (f" (rank {op.rank}: expected-operator norm, ||A||_2 = ({sp.sstr(norms.kappa(op))}) ||A||_rho)"
            if op.repeat != 1 else "")
    factor = (" (factor A: its rank-dim output feeds factor B, a feature that keeps its RMS, not a readout)"
              if op.factor == "A" else "")
    return rank + factor


def tied_init(op: Op, tie: Tie) -> tuple[Rule, ...]:
    m = solve_for(norms.rank_adjusted_init(op, tie.init_std, mult), norms.target(op), mult)
    return (Rule("init_std", None, tie.init_std, f"tied to '{tie.name}': shares the stored weight"),
            Rule("multiplier", None, m, "||A||_rho = sqrt(fan_out/fan_in) with the tied weight's sigma solved for m"))


def zero_init() -> tuple[Rule, ...]:
    return (Rule("multiplier", None, ONE, "gauge: multiplier fixed to 1"),
            Rule("init_std", None, sp.Integer(0),
                 "declared zero init: ||A_0|| = 0, the update condition alone sets the scale"))


def init_in_std(op: Op) -> tuple[Rule, ...]:
    """Gauge 'init': m = 1, solve the init condition for sigma."""
    norm, text = _norm_model(op)
    s_val = solve_for(norm(op, sigma, ONE), norms.target(op), sigma)
    return (Rule("multiplier", None, ONE, "gauge: multiplier fixed to 1"),
            Rule("init_std", None, s_val, f"init {text} = sqrt(fan_out/fan_in){_notes(op)}"))


def init_in_multiplier(op: Op) -> tuple[Rule, ...]:
    """Gauge 'multiplier': sigma = 1, solve the init condition for m."""
    norm, text = _norm_model(op)
    m_val = solve_for(norm(op, ONE, mult), norms.target(op), mult)
    factor = _notes(op) if op.factor == "A" else ""
    return (Rule("init_std", None, ONE, "gauge: stored weight at unit scale"),
            Rule("multiplier", None, m_val, f"init {text.replace(' sigma', '')} = sqrt(fan_out/fan_in){factor}"))


def init_rules(op: Op, s: Settings, tie: Tie | None) -> tuple[Rule, ...]:
    """init std and multiplier: inherited from a tie, zero, or solved in the op's gauge."""
    if tie is not None:
        return tied_init(op, tie)
    if op.init == "zeros":
        return zero_init()
    gauge = s.output_gauge if (op.role == "output" and s.output_gauge) else op.gauge
    return init_in_std(op) if gauge == "init" else init_in_multiplier(op)


# --- μP: learning rate, weight decay, eps ---------------------------------------------------
def update_size(op: Op, s: Settings) -> tuple[sp.Expr, str]:
    """The size a step must have, sqrt(fan_out/fan_in) x depth x kappa, and the notes that say why."""
    kappa = norms.kappa(op) if s.update_target == "spectral" else ONE
    depth = L ** (s.alpha - 1) if op.branch else ONE
    note = f" x L^({sp.sstr(s.alpha - 1)}) (branch of {sp.sstr(L ** -s.alpha)}, L branches add)" if op.branch else ""
    if op.repeat != 1:
        note += f" x kappa = {sp.sstr(kappa)} ({s.update_space} step, {s.update_target} target)"
    return norms.target(op) * depth * kappa, note


def lr_rule(op: Op, s: Settings, opt: str, m: sp.Expr) -> Rule:
    size, note = update_size(op, s)
    lr = solve_for(norms.update_norm(op, opt, eta, m, s.alpha, s.update_space), size, eta)
    return Rule("lr", opt, lr, f"{opt}: ||dA|| = sqrt(fan_out/fan_in){note}")


def tied_lr_rule(op: Op, s: Settings, opt: str, m: sp.Expr, tie: Tie) -> Rule:
    """The tied op's LR is its partner's; the reason says whether its own update condition holds."""
    lr = dict(tie.lr)[opt]
    size, _ = update_size(op, s)
    _, off = leading(sp.simplify(norms.update_norm(op, opt, lr, m, s.alpha, s.update_space) / size), n)
    note = "consistent" if off == 0 else f"update off by n^{sp.sstr(off)}: tie over-determines"
    return Rule("lr", opt, lr, f"tied to '{tie.name}'; its step here: {note}")


def wd_rule(op: Op, opt: str, lr: sp.Expr, m: sp.Expr) -> Rule:
    size = sp.Symbol("A0", positive=True)       # eta lambda ||A_0|| = ||A_0||: any nonzero scale
    return Rule("wd", opt, solve_for(lr * lam * size, size, lam),
                f"{opt}: eta*lambda*||A_0|| = ||A_0|| (eta*lambda constant)")


def eps_rules(op: Op, s: Settings, m: sp.Expr) -> tuple[Rule, ...]:
    if s.eps == "constant":
        e, why = ONE, "constant eps (microsoft/mup's convention; --eps derived scales it)"
    else:
        e = solve_for(eps, norms.grad_entry(op, s.alpha, m), eps)
        why = "eps = typical |dloss/dW_ij| = m sqrt(c) G sqrt(fan_in)/sqrt(p q)"
    return tuple(Rule("eps", opt, e, why) for opt in EPS_OPTIMIZERS)


def mup_rules(op: Op, s: Settings, tie: Tie | None = None) -> tuple[Rule, ...]:
    """Every μP rule of one op: init and multiplier, then LR (and WD) per optimizer, then eps."""
    out = list(init_rules(op, s, tie))
    m = next(rule.exact for rule in out if rule.quantity == "multiplier")
    for opt in OPTIMIZERS:
        lr = lr_rule(op, s, opt, m) if tie is None else tied_lr_rule(op, s, opt, m, tie)
        out.append(lr)
        if opt in WD_OPTIMIZERS:
            out.append(wd_rule(op, opt, lr.exact, m))
    return tuple(out) + eps_rules(op, s, m)


cached_mup_rules = lru_cache(maxsize=None)(mup_rules)


# --- SP, contractions and the residual ------------------------------------------------------
def sp_rules(op: Op) -> tuple[Rule, ...]:
    """Standard parameterization: fan-in init, one global LR, WD and eps, no multiplier."""
    if op.init == "zeros":
        init = Rule("init_std", None, sp.Integer(0), "declared zero init")
    else:
        init = Rule("init_std", None, solve_for(norms.expected_init(op, sigma, ONE), norms.target(op), sigma),
                    "SP: fan-in init, ||A||_E = sqrt(fan_out/fan_in)")
    out = [Rule("multiplier", None, ONE, "SP: no multiplier"), init]
    for opt in OPTIMIZERS:
        out.append(Rule("lr", opt, ONE, f"SP: one global {opt} LR"))
        if opt in WD_OPTIMIZERS:
            out.append(Rule("wd", opt, ONE, "SP: one global weight decay"))
    return tuple(out) + tuple(Rule("eps", opt, ONE, "SP: one global eps") for opt in EPS_OPTIMIZERS)


def contraction_rule(op: Op, s: Settings) -> Rule:
    """A parameter-free sum over fan_in: 1/d for correlated operands (LLN) under μP, 1/sqrt(d) otherwise."""
    correlated = op.correlated and s.parametrization == "mup"
    gamma = ONE if correlated else sp.Rational(1, 2)
    law = "LLN: trained operands correlate" if correlated else "CLT: independent operands"
    return Rule("multiplier", None, solve_for(mult * op.fan_in ** gamma, ONE, mult),
                f"sum over {op.fan_in} grows as ^{gamma} ({law})")


DEPTH_NAMES = {ONE: " (CompleteP)", sp.Rational(1, 2): " (depth-muP)"}


def residual_rule(s: Settings) -> Rule:
    """Residual branches x L^-alpha (alpha = 0 under SP)."""
    mup = s.parametrization == "mup"
    a = s.alpha if mup else sp.Integer(0)
    name = DEPTH_NAMES.get(a, "") if mup else " (SP)"
    return Rule("multiplier", None, solve_for(mult * L ** a, ONE, mult),
                f"residual branches x L^-alpha, alpha = {a}{name}")
