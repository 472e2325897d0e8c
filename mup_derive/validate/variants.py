"""The shipped GQA example declaration generated under other settings or head counts, for the
calibration and the evidence suite."""
from __future__ import annotations

import tomllib
from pathlib import Path

from ..atomic import write_text
from ..declare.build import architecture
from ..derive.settings import Settings
from ..generate.codegen import generate_module
from ..kit import EXAMPLES

EXAMPLE = EXAMPLES / "gqa_transformer.toml"


def gqa_variant(folder: Path, settings: Settings, heads: int | None = None) -> Path:
    """``examples/gqa_transformer.toml`` (with ``heads`` heads if given) generated under ``settings``
    into ``folder``; returns the module's path."""
    data = tomllib.loads(EXAMPLE.read_text())
    dims = {**data.get("dims", {}), **({"heads": heads} if heads else {})}
    arch = architecture(data["name"], data["op"], dims, data.get("model"), data.get("scaled"))
    alpha = str(settings.alpha).replace("/", "_")
    path = folder / f"gqa_h{dims['heads']}_alpha{alpha}_{settings.update_space}_{settings.update_target}.py"
    write_text(path, generate_module(arch, settings, source=f"examples/gqa_transformer.toml (heads = {dims['heads']})"))
    return path
