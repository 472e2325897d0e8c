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

from dataclasses import dataclass, replace
from functools import lru_cache

import sympy as sp

from ..declare.grammar import L, n, r
from ..declare.ops import Op
from . import norms
from .asymptotics import exponents
from .settings import EPS_OPTIMIZERS, OPTIMIZERS, WD_OPTIMIZERS, Settings
from .terms import ONE, Term

sigma, mult, eta = sp.symbols("sigma m eta", positive=True)
SIGMA, MULT, ETA = (Term.of(x) for x in (sigma, mult, eta))
ZERO = Term(sp.Integer(0))


@dataclass(frozen=True)
class Rule:
    """One solved quantity of one op: its exact solution (a product of powers) and the condition it solves."""

    quantity: str
    optimizer: str | None
    term: Term
    reason: str

    @property
    def exact(self) -> sp.Expr:
        return self.term.expr

    @property
    def key(self) -> str:
        """The rule's key in generated code: the quantity, with ``_<optimizer>`` where it has one."""
        return self.quantity if self.optimizer is None else f"{self.quantity}_{self.optimizer}"


@dataclass(frozen=True)
class Tie:
    """What a tied op inherits from the op it shares storage with: its init std and LRs."""

    name: str
    init_std: Term
    lr: tuple[tuple[str, Term], ...]
    regime: tuple[sp.Symbol, ...] = ()      # the growing symbols the tie's consistency is judged in


def _s(expr: sp.Expr) -> str:
    return str(sp.sstr(expr))


# --- μP: init and multiplier (the gauge) ----------------------------------------------------
def _norm_model(op: Op) -> tuple[norms.InitNorm, str]:
    """The init norm the op's condition uses: the expected norm where the input never aligns with the weight (an
    input op reads data, one-hot or dense; a factor A's rank-dim output is a feature that keeps its RMS), the
    coherent norm for a readout (its inputs come to align with its rows), else the rank-adjusted norm."""
    if op.factor == "A" or op.role == "input":
        return norms.expected_init, f"||A||_E = multiplier x std x sqrt({_s(op.fan_out)})"
    if op.role == "output":
        return norms.coherent_init, f"||A||_row = multiplier x std x sqrt({_s(op.fan_in)})"
    return norms.rank_adjusted_init, (f"||A||_rho = multiplier x std x (sqrt({_s(op.fan_out)}) + "
                                      f"sqrt({_s(op.fan_in)}))")


def _seen(op: Op) -> str:
    """What the model does around the op that its conditions include: a gate on its output, a token fraction."""
    gate = f" (x gate {_s(op.gate)} on its output)" if op.gate != 1 else ""
    return gate + (f" (sees {_s(op.tokens)} of the tokens)" if op.tokens != 1 else "")


def _notes(op: Op) -> str:
    rank = (f" (rank {_s(op.rank)}: expected-operator norm, ||A||_2 = ({_s(norms.kappa(op).expr)}) ||A||_rho)"
            if op.repeat != 1 else "")
    factor = {"A": " (factor A: its rank-dim output feeds factor B, a feature that keeps its RMS, not a readout)",
              "input": " (input op: it reads data, which never aligns with its weights)",
              "output": " (readout: each output sums fan_in inputs that align with its row after training, so its "
                        "largest row norm, not the RMS over outputs that ||A||_2 bounds, must meet the target)"}
    return rank + factor.get(op.factor or "", factor.get(op.role, "")) + _seen(op)


def tied_init(op: Op, tie: Tie) -> tuple[Rule, ...]:
    norm, text = _norm_model(op)
    m = norm(op, tie.init_std, MULT).solve(mult, norms.target(op))
    return (Rule("init_std", None, tie.init_std, f"tied to '{tie.name}': shares the stored weight"),
            Rule("multiplier", None, m, f"{text} = sqrt(fan_out/fan_in) with the tied weight's std solved for the "
                                        "multiplier"))


def zero_init() -> tuple[Rule, ...]:
    return (Rule("multiplier", None, ONE, "gauge: multiplier fixed to 1"),
            Rule("init_std", None, ZERO, "declared zero init: ||A_0|| = 0, the update condition alone sets the scale"))


def ones_init() -> tuple[Rule, ...]:
    return (Rule("multiplier", None, ONE, "gauge: multiplier fixed to 1"),
            Rule("init_std", None, ONE, "declared ones init: a gain of 1 passes each coordinate at its scale "
                                        "(||A||_RMS->RMS = 1 = sqrt(fan_out/fan_in) per coordinate)"))


def kept_vector(op: Op) -> tuple[Rule, ...]:
    """A gain or bias keeps the module's own init; a gate on its output is compensated (the init divided by it)."""
    return (Rule("multiplier", None, ONE, "gauge: multiplier fixed to 1"),
            Rule("init_std", None, ONE / Term.of(op.gate),
                 "init = keep: a gain or bias keeps the module's own init (ones, zeros or an offset), which acts "
                 f"per coordinate and has no width to scale with{_seen(op)}"))


def init_in_std(op: Op) -> tuple[Rule, ...]:
    """Gauge 'init': m = 1, solve the init condition for sigma."""
    norm, text = _norm_model(op)
    s_val = norm(op, SIGMA, ONE).solve(sigma, norms.target(op))
    return (Rule("multiplier", None, ONE, "gauge: multiplier fixed to 1"),
            Rule("init_std", None, s_val, f"init {text.replace('multiplier x ', '')} = sqrt(fan_out/fan_in)"
                                          f"{_notes(op)}"))


def init_in_multiplier(op: Op) -> tuple[Rule, ...]:
    """Gauge 'multiplier': sigma = 1, solve the init condition for m."""
    norm, text = _norm_model(op)
    m_val = norm(op, ONE, MULT).solve(mult, norms.target(op))
    factor = _notes(op) if op.factor == "A" or op.role in ("input", "output") else ""
    return (Rule("init_std", None, ONE, "gauge: stored weight at unit scale"),
            Rule("multiplier", None, m_val, f"init {text.replace(' x std', '')} = sqrt(fan_out/fan_in){factor}"))


def init_rules(op: Op, s: Settings, tie: Tie | None) -> tuple[Rule, ...]:
    """init std and multiplier: inherited from a tie, zero, ones, or solved in the op's gauge."""
    if tie is not None:
        return tied_init(op, tie)
    if op.init == "zeros":
        return zero_init()
    if op.init == "ones":
        return ones_init()
    if op.init == "keep" and op.role == "vector":
        return kept_vector(op)
    gauge = s.output_gauge if (op.role == "output" and s.output_gauge) else op.gauge
    rules = init_in_std(op) if gauge == "init" else init_in_multiplier(op)
    if op.init == "keep":
        rules = tuple(replace(x, reason=x.reason + "; init = keep: the module's own init, scaled by this rule's ratio")
                      if x.quantity == "init_std" else x for x in rules)
    return rules


# --- μP: learning rate, weight decay, eps ---------------------------------------------------
def update_size(op: Op, s: Settings) -> tuple[Term, str]:
    """The size a step must have, sqrt(fan_out/fan_in) x depth x kappa, and the notes that say why."""
    kappa = norms.kappa(op) if s.update_target == "spectral" else ONE
    depth = Term.of(L) ** (s.alpha - 1) if op.branch else ONE
    note = ""
    if op.branch:
        note = (f" x L^({_s(s.alpha - 1)})" if s.alpha != 1 else "") + \
            f" (inside a residual branch x L^-{_s(s.alpha)}; the L branches' updates add coherently)"
    if op.repeat != 1:
        note += f" x kappa = {_s(kappa.expr)} ({s.update_space} step, {s.update_target} target)"
    return norms.target(op) * depth * kappa, note + _seen(op)


def lr_rule(op: Op, s: Settings, opt: str, m: Term) -> Rule:
    size, note = update_size(op, s)
    lr = norms.update_norm(op, opt, ETA, m, s.alpha, s.update_space).solve(eta, size)
    return Rule("lr", opt, lr, f"{opt}: ||dA|| = sqrt(fan_out/fan_in){note}")


def tied_lr_rule(op: Op, s: Settings, opt: str, m: Term, tie: Tie) -> Rule:
    """The tied op's LR is its partner's; the reason says whether its own update condition holds in every growing
    symbol (the exponents of the step's size over the size it should have)."""
    lr = dict(tie.lr)[opt]
    size, _ = update_size(op, s)
    off = norms.update_norm(op, opt, lr, m, s.alpha, s.update_space) / size
    wrong = {k: e for k, e in exponents(off, tie.regime).items() if e != 0}
    note = ("consistent" if not wrong else
            "update off by " + " ".join(f"{k}^{_s(e)}" for k, e in wrong.items()) + ": tie over-determines")
    return Rule("lr", opt, lr, f"tied to '{tie.name}'; its step here: {note}")


def wd_rule(opt: str, lr: Term, s: Settings) -> Rule:
    """eta lambda ||A_0|| = ||A_0|| for any nonzero scale: lambda = 1 / eta; CompleteP's width-only convention
    keeps only the bases of 1/eta that hold n (lambda does not follow eta in depth, ratio or other symbols)."""
    if s.wd == "width-only":
        inv = ONE / lr
        return Rule("wd", opt, Term(inv.coeff, tuple((b, p) for b, p in inv.powers if b.has(n) or not b.free_symbols
                                                    & {L, r, *s.scaled_symbols})),
                    f"{opt}: eta*lambda held constant in width only (CompleteP's convention)")
    return Rule("wd", opt, ONE / lr, f"{opt}: eta*lambda*||A_0|| = ||A_0|| (eta*lambda constant)")


EPS_REASON = ("eps = typical |dloss/dW_ij|: the rank-one gradient (|dloss/dy| = L^-alpha inside a branch, / "
              "sqrt(fan_out); x sqrt(fan_in); x sqrt(repeat), the repeated rows' gradients adding) spread over "
              "the stored entries")


def eps_rules(op: Op, s: Settings, m: Term) -> tuple[Rule, ...]:
    if s.eps == "constant":
        e, why = ONE, "constant eps (microsoft/mup's convention; --eps derived scales it)"
    else:
        e, why = norms.grad_entry(op, s.alpha, m), EPS_REASON + _seen(op)
        if op.grad_scale != 1:
            why += (f"; x {_s(op.grad_scale)}: the op is an operand of a correlated contraction, whose gradient at "
                    "init, the operands still independent, is its multiplier 1/fan_in times sqrt(fan_in)")
    return tuple(Rule("eps", opt, e, why) for opt in EPS_OPTIMIZERS)


def mup_rules(op: Op, s: Settings, tie: Tie | None = None) -> tuple[Rule, ...]:
    """Every μP rule of one op: init and multiplier, then LR (and WD) per optimizer, then eps."""
    out = list(init_rules(op, s, tie))
    m = next(rule.term for rule in out if rule.quantity == "multiplier")
    for opt in OPTIMIZERS:
        lr = lr_rule(op, s, opt, m) if tie is None else tied_lr_rule(op, s, opt, m, tie)
        out.append(lr)
        if opt in WD_OPTIMIZERS:
            out.append(wd_rule(opt, lr.term, s))
    return tuple(out) + eps_rules(op, s, m)


cached_mup_rules = lru_cache(maxsize=None)(mup_rules)

def ungate(op: Op, s: Settings) -> dict[str, Term]:
    """{key: the op's μP rule with no gate over the rule with its gate} for every rule the gate changes (keys as the
    generated code has them: init_std, lr_<opt>, ...): the exact factor that undoes the gate, the abc-symmetry under
    the settings' conventions (gate^-1 on an Adam LR, gate^-2 on SGD's; none on a WD whose convention drops the
    gate's symbols)."""
    gated, plain = mup_rules(op, s), mup_rules(replace(op, gate=sp.Integer(1)), s)
    return {g.key: p.term / g.term for g, p in zip(gated, plain, strict=True) if g.term != p.term}


# --- SP, contractions and the residual ------------------------------------------------------
def sp_rules(op: Op, tie: Tie | None = None) -> tuple[Rule, ...]:
    """Standard parameterization: fan-in init (a tied op shares its partner's), one global LR, WD and eps,
    no multiplier."""
    if tie is not None:
        init = Rule("init_std", None, tie.init_std, f"tied to '{tie.name}': shares the stored weight")
    elif op.init == "zeros":
        init = Rule("init_std", None, ZERO, "declared zero init")
    elif op.init == "ones":
        init = Rule("init_std", None, ONE, "declared ones init")
    else:
        init = Rule("init_std", None, norms.expected_init(op, SIGMA, ONE).solve(sigma, norms.target(op)),
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
    gamma = sp.Integer(1) if correlated else sp.Rational(1, 2)
    law = "LLN: trained operands correlate" if correlated else "CLT: independent operands"
    return Rule("multiplier", None, ONE / Term.of(op.fan_in) ** gamma,
                f"sum over {_s(op.fan_in)} grows as ^{gamma} ({law})")


DEPTH_NAMES = {sp.Integer(1): " (CompleteP)", sp.Rational(1, 2): " (depth-muP)"}


def residual_rule(s: Settings) -> Rule:
    """Residual branches x L^-alpha (alpha = 0 under SP)."""
    mup = s.parametrization == "mup"
    a = s.alpha if mup else sp.Integer(0)
    name = DEPTH_NAMES.get(a, "") if mup else " (SP)"
    return Rule("multiplier", None, Term.of(L) ** -a, f"residual branches x L^-alpha, alpha = {a}{name}")
