"""Declare: an architecture as shaped matrix ops (TOML or Python), in a restricted expression grammar."""
from .build import architecture, load, make_ops
from .grammar import BUILTIN, DeclarationError, L, n, parse, r
from .ops import Architecture, Op

__all__ = ["BUILTIN", "Architecture", "DeclarationError", "L", "Op", "architecture", "load", "make_ops", "n",
           "parse", "r"]
