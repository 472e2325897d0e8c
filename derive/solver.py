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

from dataclasses import dataclass, replace
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
    eps: str = "derived"

    def __post_init__(self):
        object.__setattr__(self, "alpha", sp.nsimplify(self.alpha))
        if self.parametrization not in ("mup", "sp"):
            raise ValueError("parametrization must be 'mup' or 'sp'")
        if self.update_space not in ("effective", "stored"):
            raise ValueError("update_space must be 'effective' or 'stored'")
        if self.eps not in ("derived", "constant"):
            raise ValueError("eps must be 'derived' (the typical gradient entry) or 'constant'")
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
        """Leading exponents of n, L, r (``.get(...).exponents`` has every scaled symbol)."""
        e = self.get(op, quantity, optimizer).exponents
        return e["n"], e["L"], e["r"]


def _lead(expr: sp.Expr, s: sp.Symbol) -> tuple[sp.Expr, sp.Expr] | None:
    """(coefficient, exponent) of ``expr``'s leading power of ``s`` as ``s -> oo`` by dominant
    balance over sums, products and rational powers; None where that cannot decide."""
    if not expr.has(s):
        return expr, sp.Integer(0)
    if expr == s:
        return sp.Integer(1), sp.Integer(1)
    if expr.is_Mul:
        parts = [_lead(a, s) for a in expr.args]
        if None in parts:
            return None
        return sp.Mul(*(c for c, _ in parts)), sp.Add(*(e for _, e in parts))
    if expr.is_Pow and expr.exp.is_Rational:
        base = _lead(expr.base, s)
        return None if base is None else (base[0] ** expr.exp, base[1] * expr.exp)
    if expr.is_Add:
        parts = [_lead(a, s) for a in expr.args]
        if None in parts:
            return None
        top = max(e for _, e in parts)
        coeff = sp.Add(*(c for c, e in parts if e == top))
        return None if sp.simplify(coeff) == 0 else (coeff, top)   # cancellation: ask SymPy
    return None


@lru_cache(maxsize=None)
def leading(expr: sp.Expr, s: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """Leading term of ``expr`` as ``s -> oo`` and its exponent d log / d log s."""
    fast = _lead(expr, s)
    if fast is not None:
        return fast[0] * s ** fast[1], fast[1]
    term = sp.powsimp(expr.subs(s, 1 / _x).as_leading_term(_x).subs(_x, 1 / s))
    return term, sp.nsimplify(sp.simplify(s * sp.diff(sp.log(term), s)))


@lru_cache(maxsize=None)
def _tidy(expr: sp.Expr) -> sp.Expr:
    """The shortest of a few equivalent forms (deterministic).  Writing every symbol as a
    square first turns the square roots into a rational function that ``cancel`` reduces."""
    roots = {s: sp.Dummy(s.name, positive=True) for s in expr.free_symbols}
    squared = sp.cancel(expr.subs({s: t ** 2 for s, t in roots.items()}))
    back = {t: sp.sqrt(s) for s, t in roots.items()}
    forms = [expr, sp.factor(squared).subs(back), squared.subs(back)]
    forms += [sp.factor_terms(f) for f in forms]
    return min(forms, key=lambda f: (sp.count_ops(f), len(sp.sstr(f)), sp.sstr(f)))


@lru_cache(maxsize=None)
def _scale(exact: sp.Expr, scaling: tuple[sp.Symbol, ...]) -> tuple[sp.Expr, dict]:
    """Leading order in n (other symbols exact), tidied, and the leading exponent of each symbol."""
    term = _tidy(leading(exact, n)[0])
    return term, {s.name: leading(term, s)[1] for s in scaling}


def _solve(lhs: sp.Expr, rhs: sp.Expr, unknown: sp.Symbol) -> sp.Expr:
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


def _rules(op: Op, s: Settings, tie: tuple | None) -> tuple[tuple, ...]:
    """(quantity, optimizer, exact, reason) of one μP op; ``tie`` holds the tied op's exact
    init and LRs.  Ops with the same signature (shape, role, flags) share one call."""
    out = []
    add = lambda q, opt, exact, why: out.append((q, opt, exact, why))
    a, space = s.alpha, s.update_space
    T, kappa = norms.target(op), norms.rank_ratio(op)
    step_kappa = kappa if s.update_target == "spectral" else sp.Integer(1)
    depth = L ** (a - 1) if op.branch else sp.Integer(1)
    deficient = op.repeat != 1
    rank_note = f" (rank {op.rank}: expected-operator norm, ||A||_2 = ({sp.sstr(kappa)}) ||A||_rho)" \
        if deficient else ""
    if op.factor == "A":
        init_norm, norm_text = norms.expected_init, f"||A||_E = m sigma sqrt({op.fan_out})"
    else:
        init_norm, norm_text = norms.rank_adjusted_init, f"||A||_rho = m sigma (sqrt({op.fan_out}) + sqrt({op.fan_in}))"
    factor_note = (" (factor A: its rank-dim output feeds factor B, a feature that keeps its RMS, "
                   "not a readout)") if op.factor == "A" else ""
    gauge = s.output_gauge if (op.role == "output" and s.output_gauge) else op.gauge
    if tie is not None:
        s_val, tie_lr = tie[0], dict(tie[1])
        m_val = _solve(norms.rank_adjusted_init(op, s_val, mult), T, mult)
        add("init_std", None, s_val, "tied: shares the stored weight")
        add("multiplier", None, m_val, "||A||_rho = sqrt(fan_out/fan_in) with the tied weight's sigma solved for m")
    elif op.init == "zeros":
        s_val, m_val = sp.Integer(0), sp.Integer(1)
        add("multiplier", None, m_val, "gauge: multiplier fixed to 1")
        add("init_std", None, s_val, "declared zero init: ||A_0|| = 0, the update condition alone sets the scale")
    elif gauge == "init":
        m_val = sp.Integer(1)
        s_val = _solve(init_norm(op, sigma, m_val), T, sigma)
        add("multiplier", None, m_val, "gauge: multiplier fixed to 1")
        add("init_std", None, s_val, f"init {norm_text} = sqrt(fan_out/fan_in){rank_note}{factor_note}")
    else:
        s_val = sp.Integer(1)
        m_val = _solve(init_norm(op, s_val, mult), T, mult)
        add("init_std", None, s_val, "gauge: stored weight at unit scale")
        add("multiplier", None, m_val, f"init {norm_text.replace(' sigma', '')} = sqrt(fan_out/fan_in){factor_note}")
    U = T * depth * step_kappa
    depth_note = f" x L^({sp.sstr(a - 1)}) (branch of {sp.sstr(L ** -a)}, L branches add)" if op.branch else ""
    kappa_note = f" x kappa = {sp.sstr(step_kappa)} ({space} step, {s.update_target} target)" if deficient else ""
    S0 = norms.spectral_init(op, sp.Integer(1), m_val)     # eta lambda ||A_0|| = ||A_0||: any nonzero scale
    for opt in OPTIMIZERS:
        if tie is not None:
            lr = tie_lr[opt]
            residual = sp.simplify(norms.update_norm(op, opt, lr, m_val, a, space) / U)
            _, off = leading(residual, n)
            note = "consistent" if off == 0 else f"update off by n^{sp.sstr(off)}: tie over-determines"
            add("lr", opt, lr, f"tied; its step here: {note}")
        else:
            lr = _solve(norms.update_norm(op, opt, eta, m_val, a, space), U, eta)
            add("lr", opt, lr, f"{opt}: ||dA|| = sqrt(fan_out/fan_in){depth_note}{kappa_note}")
        if opt in WD_OPTIMIZERS:
            add("wd", opt, _solve(lr * lam * S0, S0, lam),
                f"{opt}: eta*lambda*||A_0|| = ||A_0|| (eta*lambda constant)")
    if s.eps == "constant":
        e, why = sp.Integer(1), "constant eps (microsoft/mup's convention; --eps derived scales it)"
    else:
        e = _solve(eps, norms.grad_entry(op, a, m_val), eps)
        why = "eps = typical |dloss/dW_ij| = m sqrt(c) G sqrt(fan_in)/sqrt(p q)"
    for opt in EPS_OPTIMIZERS:
        add("eps", opt, e, why)
    return tuple(out)


_cached_rules = lru_cache(maxsize=None)(_rules)


class _Deriver:
    def __init__(self, arch: Architecture, settings: Settings):
        self.arch, self.s = arch, settings
        self.entries: list[Entry] = []
        self.exact: dict[tuple, sp.Expr] = {}

    def add(self, op: Op | str, quantity: str, optimizer: str | None, exact: sp.Expr, why: str):
        name = op if isinstance(op, str) else op.name
        self.exact[(name, quantity, optimizer)] = exact
        expr, exps = _scale(exact, self.arch.scaling)
        self.entries.append(Entry(name, quantity, optimizer, expr, dict(exps), f"{why} => {sp.sstr(expr)}"))

    # --- μP ---------------------------------------------------------------------------
    def mup(self, op: Op):
        if op.tied:
            t = op.tied
            tie = (self.exact[(t, "init_std", None)], tuple((o, self.exact[(t, "lr", o)]) for o in OPTIMIZERS))
            rules = _rules(op, self.s, tie)
        else:
            rules = _cached_rules(replace(op, name="", params=(), parent=None), self.s, None)
        for q, opt, exact, why in rules:
            self.add(op, q, opt, exact, why.replace("tied", f"tied to '{op.tied}'", 1) if op.tied else why)

    # --- standard parameterization -----------------------------------------------------
    def sp(self, op: Op):
        one = sp.Integer(1)
        self.add(op, "multiplier", None, one, "SP: no multiplier")
        if op.init == "zeros":
            self.add(op, "init_std", None, sp.Integer(0), "declared zero init")
        else:
            s_val = _solve(norms.expected_init(op, sigma, one), norms.target(op), sigma)
            self.add(op, "init_std", None, s_val, "SP: fan-in init, ||A||_E = sqrt(fan_out/fan_in)")
        for opt in OPTIMIZERS:
            self.add(op, "lr", opt, one, f"SP: one global {opt} LR")
            if opt in WD_OPTIMIZERS:
                self.add(op, "wd", opt, one, "SP: one global weight decay")
        for opt in EPS_OPTIMIZERS:
            self.add(op, "eps", opt, one, "SP: one global eps")

    def contraction(self, op: Op):
        correlated = op.correlated and self.s.parametrization == "mup"
        gamma = sp.Integer(1) if correlated else sp.Rational(1, 2)
        law = "LLN: trained operands correlate" if correlated else "CLT: independent operands"
        m_val = _solve(mult * op.fan_in ** gamma, sp.Integer(1), mult)
        self.add(op, "multiplier", None, m_val, f"sum over {op.fan_in} grows as ^{gamma} ({law})")

    def run(self) -> Table:
        mup = self.s.parametrization == "mup"
        a = self.s.alpha if mup else sp.Integer(0)
        m_res = _solve(mult * L ** a, sp.Integer(1), mult)
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
