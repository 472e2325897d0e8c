"""The seam between a generated module and the harness: :class:`RulesModule`, what validate reads of it.

``mup-derive generate`` writes modules that satisfy this protocol; :func:`load_rules` imports one
from its path and checks that it does (a TypeGuard, so the rest of the harness is typed).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeGuard

from .loader import load_module

if TYPE_CHECKING:
    from torch import nn

Rule = Callable[..., float]                          # the scaled symbols -> a rule's value
RuleTable = dict[str, dict[str, dict[str, Rule]]]     # parametrization -> op -> key -> rule


class OpDecl(TypedDict):
    """One op as the generated module declares it (``DECLARED[op]``)."""

    role: str
    branch: bool
    correlated: bool
    init: str
    params: list[str]
    shape: Callable[..., tuple[float, float, float]]   # the scaled symbols -> (fan_in, fan_out, rank)


class RulesModule(Protocol):
    """A generated rules module: its declaration, its shape-dependent rules and the calls built on them."""

    __file__: str
    DIMS: dict[str, int]
    BASE_SHAPE: dict[str, int]
    OPTIMIZERS: tuple[str, ...]
    DECLARED: dict[str, OpDecl]
    RULES: RuleTable

    def ratio(self, op: str, key: str, shape: dict[str, int], parametrization: str = ...) -> float: ...

    def multiplier(self, op: str, shape: dict[str, int], parametrization: str = ...) -> float: ...

    def op_of(self, param_name: str) -> str | None: ...

    def init_weights(self, model: nn.Module, std: float = ..., shape: dict[str, int] | None = ...,
                     parametrization: str | None = ..., generator: Any = ...) -> None: ...

    def param_groups(self, model: nn.Module, lr: float, weight_decay: float = ..., eps: float = ...,
                     optimizer: str = ..., shape: dict[str, int] | None = ..., parametrization: str | None = ...,
                     decay_vectors: bool = ...) -> list[dict[str, Any]]: ...


MEMBERS = ("DIMS", "BASE_SHAPE", "OPTIMIZERS", "DECLARED", "RULES", "ratio", "multiplier", "op_of",
           "init_weights", "param_groups")


def is_rules_module(obj: object) -> TypeGuard[RulesModule]:
    """Whether ``obj`` has every member of :class:`RulesModule`."""
    return all(hasattr(obj, m) for m in MEMBERS)


class NotRules(ValueError):
    """A module that is not a generated rules module."""


def load_rules(path: str | Path, fresh: bool = False) -> RulesModule:
    """Import the generated module at ``path`` (a fresh, independent copy with ``fresh``)."""
    module = load_module(path, fresh=fresh)
    if not is_rules_module(module):
        missing = [m for m in MEMBERS if not hasattr(module, m)]
        raise NotRules(f"{path}: not a module written by `mup-derive generate` (no {', '.join(missing)})")
    return module


def module_alpha(rules: object) -> float | None:
    """The alpha of a rules module's residual multiplier L^-alpha (None where it has no such rule)."""
    if not is_rules_module(rules):
        return None
    rule = rules.RULES.get("mup", {}).get("residual", {}).get("multiplier")
    if rule is None:
        return None
    shape = dict(rules.BASE_SHAPE)
    lo, hi = rule(**{**shape, "L": 4}), rule(**{**shape, "L": 16})
    return -math.log(hi / lo) / math.log(4)
