"""Settings of the coordinate check and the sweeps, shared by the CLI, the API and the tests (no heavy imports)."""
from __future__ import annotations

from dataclasses import dataclass, field

AXES = {"width": "n", "ratio": "r", "depth": "L"}   # axis -> shape key
Shape = dict[str, int]


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
    alpha: float = 1.0
    band: float = 0.25
    batch: int = 2
    seq: int = 16

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

    @property
    def checkpoints(self) -> list[int]:
        """Evaluated after half the steps and after all of them."""
        return sorted({max(1, self.steps // 2), self.steps})
