"""mup-derive: derive μP parameterization tables, generate PyTorch code from them, validate it.

The stages are the subpackages: :mod:`~mup_derive.declare` (declarations and their expression
grammar), :mod:`~mup_derive.derive` (norms, conditions, solver, renderers),
:mod:`~mup_derive.generate` (codegen and its templates) and :mod:`~mup_derive.validate`
(targets, training, checks, sweeps, plots); :mod:`~mup_derive.infer` infers declarations from
models and :mod:`~mup_derive.apply` puts the rules into them; :mod:`~mup_derive.cli` is the command line.
The calls a researcher uses are here::

    import mup_derive as md
    arch = md.load("examples/gqa_transformer.toml")          # or md.architecture(name, ops, dims)
    table = md.solve(arch, md.Settings(alpha=1))
    print(md.render(table, "md"))
    code = md.generate_module(arch)                          # standalone PyTorch module text
    report = md.run_coord_check(md.resolve("generated/gqa_transformer.py"), ["width"])
    sweep = md.run_sweep(md.resolve("generated/gqa_transformer.py"),
                         md.SweepGrid(axis="width", values=(64, 128), lrs=(1e-3, 4e-3)))
    groups = md.parametrize(hf_llama, base={"n": 256, "L": 2, "r": 1}, lr=3e-3)   # a stock HF model
    dcp.save({"model": hf_llama.state_dict(), "mup": md.CheckpointRecord(hf_llama)}, checkpoint_id=path)

Names are imported on first use, so that ``import mup_derive`` does not load torch.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS = {
    "architecture": "declare.build", "load": "declare.build", "DeclarationError": "declare.grammar",
    "Settings": "derive.settings", "solve": "derive.solver", "Table": "derive.solver", "render": "derive.render",
    "generate_module": "generate.codegen",
    "CheckSettings": "validate.settings", "SweepGrid": "validate.settings", "Target": "validate.target",
    "resolve": "validate.target", "run_coord_check": "validate.coord_check", "run_sweep": "validate.sweep",
    "parametrize": "apply.parametrize", "CheckpointRecord": "apply.parametrize",
}
__all__ = ["CheckSettings", "CheckpointRecord", "DeclarationError", "Settings", "SweepGrid", "Table", "Target",
           "__version__", "architecture", "generate_module", "load", "parametrize", "render", "resolve",
           "run_coord_check", "run_sweep", "solve"]

if TYPE_CHECKING:
    from .apply.parametrize import CheckpointRecord, parametrize
    from .declare.build import architecture, load
    from .declare.grammar import DeclarationError
    from .derive.render import render
    from .derive.settings import Settings
    from .derive.solver import Table, solve
    from .generate.codegen import generate_module
    from .validate.coord_check import run_coord_check
    from .validate.settings import CheckSettings, SweepGrid
    from .validate.sweep import run_sweep
    from .validate.target import Target, resolve


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
