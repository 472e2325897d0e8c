"""Import a Python file (a generated module or a target) from its path."""
from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

_fresh = itertools.count()


def load_module(path: str | Path, fresh: bool = False) -> ModuleType:
    """Import ``path`` as a module, registered in ``sys.modules`` under its resolved path (one module
    per file, whatever the path to it); ``__file__`` keeps the path as given, made absolute, so that a
    file reached through a linked folder finds its neighbours there.  ``fresh`` gives a new,
    independent copy (to patch without touching the shared one)."""
    path = Path(path).absolute()
    real = path.resolve()
    name = f"mup_generated_{real.stem}_{abs(hash(str(real)))}" + (f"_{next(_fresh)}" if fresh else "")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
