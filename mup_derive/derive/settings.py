"""The choices a derivation is made under: :class:`Settings`, and the optimizers it covers."""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

OPTIMIZERS = ("sgd", "adam", "adamw", "lion", "muon")
WD_OPTIMIZERS = ("sgd", "adamw", "lion", "muon")     # plain Adam's L2 is not a shrink by eta*lambda
EPS_OPTIMIZERS = ("adam", "adamw")
PARAMETRIZATIONS = ("mup", "sp")
UPDATE_SPACES = ("effective", "stored")
UPDATE_TARGETS = ("spectral", "rank-adjusted")
EPS_RULES = ("derived", "constant")
WD_RULES = ("eta-lambda", "width-only")


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
    across r support (``reports/README.md``).

    ``wd``: ``'eta-lambda'`` holds eta * lambda constant in every symbol; ``'width-only'`` is CompleteP's
    convention, lambda following 1/eta in width only.

    ``regime`` names the scaled symbols that grow, fastest first (default: every scaled symbol,
    n first); the others are held fixed.  It decides only the exponents and leading terms the
    table reports: every rule, and the code generated from it, is exact in all symbols.
    """

    alpha: sp.Rational = sp.Integer(1)
    update_space: str = "effective"
    update_target: str = "rank-adjusted"
    parametrization: str = "mup"
    output_gauge: str | None = None
    eps: str = "derived"
    regime: tuple[str, ...] | None = None
    wd: str = "eta-lambda"
    scaled_symbols: frozenset[sp.Symbol] = frozenset()   # the declaration's own scaled symbols (set by the solver)

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", sp.nsimplify(self.alpha))
        for value, choices, what in ((self.parametrization, PARAMETRIZATIONS, "parametrization"),
                                     (self.update_space, UPDATE_SPACES, "update_space"),
                                     (self.update_target, UPDATE_TARGETS, "update_target"),
                                     (self.eps, EPS_RULES, "eps"), (self.wd, WD_RULES, "wd")):
            if value not in choices:
                raise ValueError(f"{what} must be one of {choices}, got {value!r}")
        if self.regime is not None:
            object.__setattr__(self, "regime", tuple(self.regime))
            if len(set(self.regime)) != len(self.regime) or not all(isinstance(k, str) for k in self.regime):
                raise ValueError(f"regime must name distinct scaled symbols, got {self.regime!r}")
        if self.parametrization == "mup" and not sp.Rational(1, 2) <= self.alpha <= 1:
            raise ValueError("alpha must lie in [1/2, 1]: below 1/2 the residual stream blows up "
                             "at init, above 1 blocks stop learning features")
