"""Settings of the coordinate check and the sweeps, shared by the CLI, the API and the tests (no heavy imports)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

AXES = {"width": "n", "ratio": "r", "depth": "L"}   # axis -> shape key
RUNNERS = ("local", "processes", "ray")              # how independent runs are spread (:mod:`.pool`)
SUITE_PARTS = ("checks", "controls", "transfer", "fr", "speedup")   # the evidence campaign's parts (:mod:`.suite`)
Shape = dict[str, int]


def check_parts(parts: tuple[str, ...]) -> tuple[str, ...]:
    """Some of the suite's parts, each once; a ValueError names the unknown ones."""
    unknown = [x for x in parts if x not in SUITE_PARTS]
    if unknown or not parts:
        raise ValueError(f"expected some of {','.join(SUITE_PARTS)}, got {','.join(unknown) or 'none'}")
    return tuple(dict.fromkeys(parts))


def _whole(name: str, values: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Positive integers, sorted, without repeats."""
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name} must be positive integers, got {values!r}")
    return tuple(sorted(set(values)))


def _finite(name: str, values: tuple[float, ...] | list[float], positive: bool = True) -> tuple[float, ...]:
    """Finite numbers (positive, or non-negative), sorted, without repeats."""
    ok = [isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
          and (v > 0 or not positive) for v in values]
    if not values or not all(ok):
        raise ValueError(f"{name} must be {'positive' if positive else 'non-negative'} finite numbers, "
                         f"got {values!r}")
    return tuple(sorted(set(float(v) for v in values)))


@dataclass(frozen=True)
class CheckSettings:
    """A coordinate check: the values of each axis, and AdamW steps on one batch of ``batch`` x ``seq``
    tokens that is trained on and probed; ``band`` is the half-width of the allowed slope band and
    ``alpha`` the depth exponent the check expects."""

    widths: tuple[int, ...] = (128, 256, 512)
    ratios: tuple[int, ...] = (1, 2, 4, 8)
    depths: tuple[int, ...] = (2, 4, 8)
    steps: int = 4
    lr: float = 3e-3
    seeds: int = 3
    alpha: float | None = None          # None: the rules module's own alpha (its residual multiplier L^-alpha)
    band: float = 0.25
    batch: int = 2
    seq: int = 16
    max_seeds: int = 24                 # an inconclusive axis gets more seeds, up to this many
    seed_offset: int = 0                # seeds are seed_offset, seed_offset + 1, ...
    eps: float = 1e-8                   # AdamW's base eps

    def __post_init__(self) -> None:
        for name in ("widths", "ratios", "depths"):
            object.__setattr__(self, name, _whole(name, getattr(self, name)))
        _whole("steps", [self.steps])
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 2:
            raise ValueError(f"seeds must be an integer of at least 2 (for a confidence interval), got {self.seeds!r}")
        for name in ("lr", "band", "eps"):
            _finite(name, [getattr(self, name)])
        if self.alpha is not None:
            _finite("alpha", [self.alpha])
        if self.max_seeds < self.seeds:
            raise ValueError(f"max_seeds ({self.max_seeds}) must be at least seeds ({self.seeds})")
        if isinstance(self.seed_offset, bool) or not isinstance(self.seed_offset, int) or self.seed_offset < 0:
            raise ValueError(f"seed_offset must be a non-negative integer, got {self.seed_offset!r}")
        _whole("batch", [self.batch])
        _whole("seq", [self.seq])

    def alpha_or(self, target: object) -> float:
        """The depth exponent to expect: the one given, else the target's rules' own (1 if they have none)."""
        from .rules import module_alpha
        own = module_alpha(getattr(target, "rules", None))
        if self.alpha is None:
            return 1.0 if own is None else own
        if own is not None and abs(own - self.alpha) > 1e-6:
            raise ValueError(f"the rules module was generated with alpha = {own:g} but the check was asked to "
                             f"expect {self.alpha:g}; drop --alpha or pass {own:g}")
        return self.alpha

    def values(self, axis: str) -> list[int]:
        """The values checked along ``axis`` (width, ratio or depth)."""
        return list({"width": self.widths, "ratio": self.ratios, "depth": self.depths}[axis])

    def base(self, axis: str) -> Shape:
        """The fixed shape entries for ``axis``: the smallest width and depth and r = 1 (the ratio axis
        at the largest width, so that every ratio divides the heads of a wide model)."""
        n = max(self.widths) if axis == "ratio" else min(self.widths)
        return {"n": n, "L": min(self.depths), "r": 1}


@dataclass(frozen=True)
class SweepGrid:
    """An LR (and WD) sweep: every (value of ``axis``, wd, lr, seed) trains ``steps`` AdamW steps from
    ``shape``; ``wd_penalty`` (nats) defines each value's WD scale when several ``wds`` are swept."""

    axis: str
    values: tuple[int, ...]
    lrs: tuple[float, ...]
    wds: tuple[float, ...] = (0.0,)
    shape: Shape = field(default_factory=lambda: {"n": 128, "L": 2, "r": 1})
    steps: int = 100
    seeds: int = 1
    wd_penalty: float = 0.05

    def __post_init__(self) -> None:
        """The grid sorted and without repeats: the optimum must not depend on the order given."""
        if self.axis not in AXES:
            raise ValueError(f"axis must be one of {sorted(AXES)}, got {self.axis!r}")
        object.__setattr__(self, "values", _whole("values", self.values))
        object.__setattr__(self, "lrs", _finite("lrs", self.lrs))
        object.__setattr__(self, "wds", _finite("wds", self.wds, positive=False))
        _whole("steps", [self.steps])
        _whole("seeds", [self.seeds])
        _finite("wd_penalty", [self.wd_penalty])
        if set(self.shape) != {"n", "L", "r"}:
            raise ValueError(f"shape needs exactly n, L and r, got {sorted(self.shape)}")
        _whole("shape", list(self.shape.values()))

    @property
    def checkpoints(self) -> list[int]:
        """Evaluated after half the steps and after all of them."""
        return sorted({max(1, self.steps // 2), self.steps})
