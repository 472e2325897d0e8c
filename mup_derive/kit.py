"""The starter kit that ships in the wheel: the example declarations and targets (``mup_derive/examples``,
``examples/`` in a checkout), written out beside the modules generated from them.

``write_kit(folder)`` lays them out as a checkout does: ``folder/examples/*`` and ``folder/generated/NAME.py``
for every ``examples/NAME.toml`` (default settings and base shape, the bytes ``mup-derive generate`` writes),
so the targets find their rules and every command in the README runs from ``folder``.
"""
from __future__ import annotations

from pathlib import Path

from .atomic import write_text

EXAMPLES = Path(__file__).parent / "examples"


def kit_files() -> dict[str, str]:
    """Relative path -> text of every file of the kit."""
    from .declare.build import load
    from .generate.codegen import generate_module
    files = {f"examples/{p.name}": p.read_text() for p in sorted(EXAMPLES.iterdir())
             if p.suffix in (".toml", ".py")}
    for p in sorted(EXAMPLES.glob("*.toml")):
        files[f"generated/{p.stem}.py"] = generate_module(load(p), source=f"examples/{p.name}")
    return files


def write_kit(folder: str | Path) -> list[Path]:
    """Write the kit into ``folder``; refused (before anything is written) where a file of it exists."""
    root = Path(folder)
    files = kit_files()
    there = [rel for rel in files if (root / rel).exists()]
    if there:
        raise FileExistsError(f"{root / there[0]} exists: write the examples into a new folder")
    for rel, text in files.items():
        write_text(root / rel, text)
    return [root / rel for rel in files]
