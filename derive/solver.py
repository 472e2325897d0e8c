"""Solve the feature-learning conditions of every op for init, multiplier, LR, WD and eps.

μP conditions (spectral feature learning as the definition, Yang, Simon & Bernstein 2023;
rank adjustment from GQA-μP; depth from CompleteP):

* init:   ||A_0||_rho = sqrt(fan_out / fan_in)
* update: ||dA|| = sqrt(fan_out / fan_in) * L^((alpha-1) branch) * kappa, summed
          coherently over L branches that each carry the residual multiplier L^-alpha;
          kappa = ||A_0||_2 / ||A_0||_rho (1 for full-rank ops) when the step must match the
          weight's actual spectral norm (``update_target='spectral'``), kappa = 1 when it
          matches the rank-adjusted norm (``update_target='rank-adjusted'``)
* decay:  eta * lambda * ||A_0|| = ||A_0||  (eta lambda held constant)
* eps:    eps = typical |dloss/dW_ij|
* contraction over d: m d^gamma = 1 with gamma = 1 for correlated operands (LLN), 1/2 (CLT)

Standard parameterization (SP) uses the expected norm for init, global optimizer
hyperparameters, CLT attention scaling and no residual multiplier.
Every solution is the n -> oo leading term of SymPy's exact solution; exponents of
n, L and r are the leading exponents as each grows.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from . import norms
from .declaration import L, Architecture, Op, n, r

OPTIMIZERS = ("sgd", "adam", "adamw", "lion", "muon")
WD_OPTIMIZERS = ("sgd", "adamw", "lion", "muon")     # plain Adam's L2 is not a shrink by eta*lambda
EPS_OPTIMIZERS = ("adam", "adamw")
QUANTITIES = ("init_std", "multiplier", "lr", "wd", "eps")

_x = sp.Dummy("x", positive=True)
sigma, mult, eta, lam, eps = sp.symbols("sigma m eta lambda epsilon", positive=True)


@dataclass(frozen=True)
class Settings:
    """Choices that are not forced by the conditions.

    For a rank-deficient op (GQA's K and V, Adam LR f(r)/n), ``update_space`` decides
    where the step is measured -- ``'effective'``, the repeated map, or ``'stored'``, the
    n/r x n parameter -- and ``update_target`` what it must match -- ``'spectral'``, the
    init's spectral norm, or ``'rank-adjusted'``, its rank-adjusted norm:

    ============  ===========  ==============
    space         spectral     rank-adjusted
    ============  ===========  ==============
    effective     (1+√r)/2     1
    stored        (r+√r)/2     √r
    ============  ===========  ==============

    The default, effective space with the rank-adjusted target (f = 1), keeps every coordinate
    of K and V's update Θ(1) in r; it is the one the coordinate check and the LR sweeps
    across r support (``validate/reports/README.md``).
    """

    alpha: sp.Rational = sp.Integer(1)
    update_space: str = "effective"
    update_target: str = "rank-adjusted"
    parametrization: str = "mup"
    output_gauge: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "alpha", sp.nsimplify(self.alpha))
        if self.parametrization not in ("mup", "sp"):
            raise ValueError("parametrization must be 'mup' or 'sp'")
        if self.update_space not in ("effective", "stored"):
            raise ValueError("update_space must be 'effective' or 'stored'")
        if self.update_target not in ("spectral", "rank-adjusted"):
            raise ValueError("update_target must be 'spectral' or 'rank-adjusted'")
        if self.parametrization == "mup" and not sp.Rational(1, 2) <= self.alpha <= 1:
            raise ValueError("alpha must lie in [1/2, 1]: below 1/2 the residual stream blows up "
                             "at init, above 1 blocks stop learning features")


@dataclass(frozen=True)
class Entry:
    op: str
    quantity: str
    optimizer: str | None
    expr: sp.Expr                 # leading-order scale in n (r and L kept exact)
    exponents: dict               # leading exponents {'n':..., 'L':..., 'r':...}
    reason: str


@dataclass(frozen=True)
class Table:
    arch: Architecture
    settings: Settings
    entries: tuple[Entry, ...]

    def get(self, op: str, quantity: str, optimizer: str | None = None) -> Entry:
        for e in self.entries:
            if e.op == op and e.quantity == quantity and e.optimizer == optimizer:
                return e
        raise KeyError((op, quantity, optimizer))

    def exponents(self, op: str, quantity: str, optimizer: str | None = None) -> tuple:
        e = self.get(op, quantity, optimizer).exponents
        return e["n"], e["L"], e["r"]


@lru_cache(maxsize=None)
def leading(expr: sp.Expr, s: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """Leading term of ``expr`` as ``s -> oo`` and its exponent d log / d log s."""
    term = sp.powsimp(expr.subs(s, 1 / _x).as_leading_term(_x).subs(_x, 1 / s))
    return term, sp.nsimplify(sp.simplify(s * sp.diff(sp.log(term), s)))


def _tidy(expr: sp.Expr) -> sp.Expr:
    """The shortest of a few equivalent forms (deterministic).  Writing every symbol as a
    square first turns the square roots into a rational function that ``cancel`` reduces."""
    roots = {s: sp.Dummy(s.name, positive=True) for s in expr.free_symbols}
    squared = sp.cancel(expr.subs({s: t ** 2 for s, t in roots.items()}))
    back = {t: sp.sqrt(s) for s, t in roots.items()}
    forms = [sp.factor(squared).subs(back), squared.subs(back), sp.simplify(expr), sp.factor(expr)]
    forms += [sp.factor_terms(f) for f in forms]
    return min(forms, key=lambda f: (sp.count_ops(f), len(sp.sstr(f)), sp.sstr(f)))


@lru_cache(maxsize=None)
def _scale(exact: sp.Expr) -> tuple[sp.Expr, dict]:
    term, en = leading(sp.simplify(exact), n)
    term = _tidy(term)
    return term, {"n": en, "L": leading(term, L)[1], "r": leading(term, r)[1]}


def _solve(eq: sp.Eq, unknown: sp.Symbol) -> sp.Expr:
    sols = sp.solve(eq, unknown, dict=False)
    if len(sols) != 1:
        raise ArithmeticError(f"condition {eq} has {len(sols)} positive solutions for {unknown}")
    return sols[0]


class _Deriver:
    def __init__(self, arch: Architecture, settings: Settings):
        self.arch, self.s = arch, settings
        self.entries: list[Entry] = []
        self.exact: dict[tuple, sp.Expr] = {}

    def add(self, op: Op | str, quantity: str, optimizer: str | None, exact: sp.Expr, why: str):
        name = op if isinstance(op, str) else op.name
        self.exact[(name, quantity, optimizer)] = exact
        expr, exps = _scale(exact)
        self.entries.append(Entry(name, quantity, optimizer, expr, dict(exps), f"{why} => {sp.sstr(expr)}"))

    # --- μP ---------------------------------------------------------------------------
    def mup(self, op: Op):
        a, space = self.s.alpha, self.s.update_space
        T, kappa = norms.target(op), norms.rank_ratio(op)
        step_kappa = kappa if self.s.update_target == "spectral" else sp.Integer(1)
        depth = L ** (a - 1) if op.branch else sp.Integer(1)
        deficient = op.repeat != 1
        rank_note = f" (rank {op.rank}: expected-operator norm, ||A||_2 = ({sp.sstr(kappa)}) ||A||_rho)" \
            if deficient else ""
        gauge = self.s.output_gauge if (op.role == "output" and self.s.output_gauge) else op.gauge
        tie = self.arch.op(op.tied) if op.tied else None
        if tie is not None:
            s_val = self.exact[(tie.name, "init_std", None)]
            m_val = _solve(sp.Eq(norms.rank_adjusted_init(op, s_val, mult), T), mult)
            self.add(op, "init_std", None, s_val, f"tied to '{tie.name}': shares its stored weight")
            self.add(op, "multiplier", None, m_val,
                     f"||A||_rho = sqrt(fan_out/fan_in) with the tied weight's sigma solved for m")
        elif gauge == "init":
            m_val = sp.Integer(1)
            s_val = _solve(sp.Eq(norms.rank_adjusted_init(op, sigma, m_val), T), sigma)
            self.add(op, "multiplier", None, m_val, "gauge: multiplier fixed to 1")
            self.add(op, "init_std", None, s_val,
                     f"init ||A||_rho = m sigma (sqrt({op.fan_out}) + sqrt({op.fan_in})) = "
                     f"sqrt(fan_out/fan_in){rank_note}")
        else:
            s_val = sp.Integer(1)
            m_val = _solve(sp.Eq(norms.rank_adjusted_init(op, s_val, mult), T), mult)
            self.add(op, "init_std", None, s_val, "gauge: stored weight at unit scale")
            self.add(op, "multiplier", None, m_val,
                     f"init ||A||_rho = m (sqrt({op.fan_out}) + sqrt({op.fan_in})) = sqrt(fan_out/fan_in)")
        U = T * depth * step_kappa
        depth_note = f" x L^({sp.sstr(a - 1)}) (branch of {sp.sstr(L ** -a)}, L branches add)" \
            if op.branch else ""
        kappa_note = f" x kappa = {sp.sstr(step_kappa)} ({space} step, {self.s.update_target} target)" \
            if deficient else ""
        for opt in OPTIMIZERS:
            if tie is not None:
                lr = self.exact[(tie.name, "lr", opt)]
                residual = sp.simplify(norms.update_norm(op, opt, lr, m_val, a, space) / U)
                _, off = leading(residual, n)
                note = "consistent" if off == 0 else f"update off by n^{sp.sstr(off)}: tie over-determines"
                self.add(op, "lr", opt, lr, f"tied to '{tie.name}'; its step here: {note}")
            else:
                lr = _solve(sp.Eq(norms.update_norm(op, opt, eta, m_val, a, space), U), eta)
                self.add(op, "lr", opt, lr, f"{opt}: ||dA|| = sqrt(fan_out/fan_in){depth_note}{kappa_note}")
            if opt in WD_OPTIMIZERS:
                S0 = norms.spectral_init(op, s_val, m_val)
                wd = _solve(sp.Eq(lr * lam * S0, S0), lam)
                self.add(op, "wd", opt, wd, f"{opt}: eta*lambda*||A_0|| = ||A_0|| (eta*lambda constant)")
        g = norms.grad_entry(op, a, m_val)
        e = _solve(sp.Eq(eps, g), eps)
        for opt in EPS_OPTIMIZERS:
            self.add(op, "eps", opt, e, "eps = typical |dloss/dW_ij| = m sqrt(c) G sqrt(fan_in)/sqrt(p q)")

    # --- standard parameterization -----------------------------------------------------
    def sp(self, op: Op):
        one = sp.Integer(1)
        self.add(op, "multiplier", None, one, "SP: no multiplier")
        s_val = _solve(sp.Eq(norms.expected_init(op, sigma, one), norms.target(op)), sigma)
        self.add(op, "init_std", None, s_val, "SP: fan-in init, ||A||_E = sqrt(fan_out/fan_in)")
        for opt in OPTIMIZERS:
            self.add(op, "lr", opt, _solve(sp.Eq(eta, 1), eta), f"SP: one global {opt} LR")
            if opt in WD_OPTIMIZERS:
                self.add(op, "wd", opt, _solve(sp.Eq(lam, 1), lam), "SP: one global weight decay")
        for opt in EPS_OPTIMIZERS:
            self.add(op, "eps", opt, _solve(sp.Eq(eps, 1), eps), "SP: one global eps")

    def contraction(self, op: Op):
        correlated = op.correlated and self.s.parametrization == "mup"
        gamma = sp.Integer(1) if correlated else sp.Rational(1, 2)
        law = "LLN: trained operands correlate" if correlated else "CLT: independent operands"
        m_val = _solve(sp.Eq(mult * op.fan_in ** gamma, 1), mult)
        self.add(op, "multiplier", None, m_val, f"sum over {op.fan_in} grows as ^{gamma} ({law})")

    def run(self) -> Table:
        mup = self.s.parametrization == "mup"
        a = self.s.alpha if mup else sp.Integer(0)
        m_res = _solve(sp.Eq(mult * L ** a, 1), mult)
        self.add("residual", "multiplier", None, m_res,
                 f"residual branches x L^-alpha, alpha = {a}" + (" (CompleteP)" if a == 1 else
                                                               " (depth-muP)" if a == sp.Rational(1, 2) else
                                                               " (SP)" if not mup else ""))
        for op in sorted(self.arch.ops, key=lambda o: o.tied is not None):
            if op.role == "contraction":
                self.contraction(op)
            elif mup:
                self.mup(op)
            else:
                self.sp(op)
        order = {o.name: i for i, o in enumerate(self.arch.ops)}
        self.entries.sort(key=lambda e: order.get(e.op, -1))
        return Table(self.arch, self.s, tuple(self.entries))


def derive(arch: Architecture, settings: Settings | None = None) -> Table:
    """Derive the parameterization table of ``arch``."""
    return _Deriver(arch, settings or Settings()).run()


def gqa_factor(update_space: str, update_target: str) -> sp.Expr:
    """f(r) of GQA-μP's KV learning rate, solved for a bare n x n KV map of rank n/r."""
    from .declaration import architecture
    arch = architecture("kv", [{"name": "kv", "role": "hidden", "fan_in": "n", "fan_out": "n", "rank": "n/r"}])
    t = derive(arch, Settings(update_space=update_space, update_target=update_target))
    return sp.simplify(t.get("kv", "lr", "adam").expr * n)
