"""Derive: norm models, the conditions they solve, the solver and the table renderers."""
from .render import FORMATS, to_csv, to_json, to_latex, to_markdown
from .settings import EPS_OPTIMIZERS, OPTIMIZERS, WD_OPTIMIZERS, Settings
from .solver import Entry, Table, gqa_factor, solve

__all__ = ["EPS_OPTIMIZERS", "FORMATS", "OPTIMIZERS", "WD_OPTIMIZERS", "Entry", "Settings", "Table", "gqa_factor",
           "solve", "to_csv", "to_json", "to_latex", "to_markdown"]
