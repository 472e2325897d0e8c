"""Validate: targets, training, coordinate checks, negative controls, sweeps, reports and plots.

Names are imported on first use, so that ``mup_derive.validate.settings`` and ``.controls`` stay
light for the CLI (torch loads only when a check or sweep runs).
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AXES": "settings", "CheckSettings": "settings", "SweepGrid": "settings",
    "CONTROLS": "controls", "broken": "controls", "with_control": "controls",
    "CheckReport": "records", "SweepReport": "records",
    "RulesModule": "rules", "load_rules": "rules",
    "Target": "target", "TargetError": "target", "gqa_target": "target", "resolve": "target",
    "CheckError": "trace", "run_coord_check": "coord_check", "run_sweep": "sweep",
}
__all__ = ["AXES", "CONTROLS", "CheckError", "CheckReport", "CheckSettings", "RulesModule", "SweepGrid", "SweepReport",
           "Target", "TargetError", "broken", "gqa_target", "load_rules", "resolve", "run_coord_check", "run_sweep",
           "with_control"]

if TYPE_CHECKING:
    from .controls import CONTROLS, broken, with_control
    from .coord_check import run_coord_check
    from .records import CheckReport, SweepReport
    from .rules import RulesModule, load_rules
    from .settings import AXES, CheckSettings, SweepGrid
    from .sweep import run_sweep
    from .target import Target, TargetError, gqa_target, resolve
    from .trace import CheckError


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
