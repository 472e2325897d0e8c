"""Typed records of what the coordinate check and the sweeps measured; their JSON is ``asdict`` of them."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


def _frame(rows: list[dict[str, Any]]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("report.frame() needs pandas: pip install 'mup-derive[data]' (report.rows() needs "
                          "nothing)") from None
    return pd.DataFrame(rows)


@dataclass
class MetricFit:
    """One metric of one label along one axis: seed means, per-step slopes with their 95% CI, the allowed range."""

    mean: list[list[float]]            # value, step (seed mean)
    slope: list[float]                 # step
    ci: list[list[float]]              # step, (lo, hi)
    seed_slopes: list[list[float]]     # seed, step
    expected: list[list[float]]        # step, (lo, hi) before the band
    verdict: list[str]                 # step: pass, fail, inconclusive or unjudged (a change at init, a zero)
    detectable: float                  # the smallest deviation beyond the allowed range this run could detect
    seed_values: list[list[list[float]]] = field(default_factory=list)   # value, seed, step


@dataclass
class LabelResult:
    metrics: dict[str, MetricFit]
    verdict: str

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


@dataclass
class AxisResult:
    values: list[int]
    base: dict[str, int]
    diverged: list[str]
    labels: dict[str, LabelResult] = field(default_factory=dict)
    verdict: str = "fail"
    seeds: int = 0
    detectable: float = 0.0

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


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
    max_seeds: int = 0
    seed_offset: int = 0
    eps: float = 1e-8
    confidence: float = 0.95
    axes: dict[str, AxisResult] = field(default_factory=dict)
    verdict: str = "fail"
    passed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def frame(self) -> Any:
        """The tidy measurements as a pandas DataFrame (as microsoft/mup's get_coord_data gives)."""
        return _frame(self.rows())

    def rows(self) -> list[dict[str, Any]]:
        """One row per axis, value, seed, step, layer and metric: the measurement (tidy data)."""
        out = []
        for axis, res in self.axes.items():
            for label, lab in res.labels.items():
                for metric, fit in lab.metrics.items():
                    for v, per_seed in zip(res.values, fit.seed_values, strict=True):
                        out += [{"axis": axis, "value": v, "seed": self.seed_offset + seed, "step": step,
                                 "layer": label, "metric": metric, "measured": x}
                                for seed, series in enumerate(per_seed) for step, x in enumerate(series)]
        return out


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

    values: list[float | None]
    mean: float | None              # None where no value exists
    sd: float | None                # None for fewer than two values


@dataclass
class WDScales:
    """Each value's WD scale (seed-mean curve and per seed) and their shifts across the axis."""

    wd_penalty: float
    wd_scale: dict[str, Any]                   # {"mean_curve": [...], "seeds": [[...]]}
    wd_shift_log2: float | None
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
    shift_log2: float | None         # None where a point has no optimum (every run there diverged)
    shift_log2_half: float | None
    shift_log2_seeds: dict[str, Spread]
    transfer_regret: float | None = None     # nats lost at the largest value with the LR tuned at the smallest
    wd: WDScales | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the WD scales (when several WDs were swept) at the top level."""
        out = asdict(self)
        wd = out.pop("wd")
        return {**out, **(wd or {})}

    def frame(self) -> Any:
        """One row per axis value, WD, LR and seed as a pandas DataFrame."""
        return _frame(self.rows())

    def rows(self) -> list[dict[str, Any]]:
        """One row per axis value, WD, LR and seed: the final held-out loss (empty where it diverged)."""
        return [{"axis": self.axis, "value": run.value, "wd": run.wd, "lr": lr, "seed": seed,
                 "steps": self.steps, "loss": math.nan if loss is None else loss}
                for run in self.runs for seed, losses in enumerate(run.seed_losses)
                for lr, loss in zip(run.lrs, losses, strict=True)]
