"""Typed records of what the coordinate check and the sweeps measured; their JSON is ``asdict`` of them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class MetricFit:
    """One metric of one label along one axis: seed means, per-step slopes with their 95% CI, the allowed range."""

    mean: list[list[float]]            # value, step (seed mean)
    slope: list[float]                 # step
    ci: list[list[float]]              # step, (lo, hi)
    seed_slopes: list[list[float]]     # seed, step
    expected: list[list[float]]        # step, (lo, hi) before the band
    judged_from_step: int
    passed: list[bool]                 # step


@dataclass
class LabelResult:
    metrics: dict[str, MetricFit]
    passed: bool


@dataclass
class AxisResult:
    values: list[int]
    base: dict[str, int]
    diverged: list[str]
    labels: dict[str, LabelResult] = field(default_factory=dict)
    passed: bool = False


@dataclass
class Provenance:
    """What ran: the command line, the target and its rules file, the parametrization and any control."""

    command: str
    target: str
    source: str
    parametrization: str
    control: str | None
    control_effect: str | None


@dataclass
class CheckReport(Provenance):
    steps: int
    lr: float
    seeds: int
    alpha: float
    band: float
    confidence: float = 0.95
    axes: dict[str, AxisResult] = field(default_factory=dict)
    passed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepRun:
    """One (axis value, WD): seed-mean and per-seed final losses over the LRs and their optima."""

    value: int
    wd: float
    lrs: list[float]
    losses: list[float | None]                 # seed mean; None where a run diverged
    seed_losses: list[list[float | None]]
    best_lr: float | None
    best_loss: float
    best_lr_half: float | None
    seed_best_lr: list[float | None]


@dataclass
class Spread:
    """Per-seed values with their mean and standard deviation."""

    values: list[float]
    mean: float
    sd: float


@dataclass
class WDScales:
    """Each value's WD scale (seed-mean curve and per seed) and their shifts across the axis."""

    wd_penalty: float
    wd_scale: dict[str, Any]                   # {"mean_curve": [...], "seeds": [[...]]}
    wd_shift_log2: float
    wd_scale_beyond_grid: list[int]
    wd_shift_log2_seeds: Spread


@dataclass
class SweepReport(Provenance):
    axis: str
    values: list[int]
    shape: dict[str, int]
    steps: int
    checkpoints: list[int]
    seeds: int
    runs: list[SweepRun]
    shift_log2: float
    shift_log2_half: float
    shift_log2_seeds: dict[str, Spread]
    wd: WDScales | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the WD scales (when several WDs were swept) at the top level."""
        out = asdict(self)
        wd = out.pop("wd")
        return {**out, **(wd or {})}
