"""Every dotted ``mup_derive...`` name that the README, a docstring or an error message mentions imports."""
import importlib
import re

import pytest

from tests.helpers import ROOT

DOTTED = re.compile(r"\bmup_derive(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
SOURCES = [ROOT / "README.md", ROOT / "reports" / "README.md", *sorted((ROOT / "mup_derive").rglob("*.py")),
           *sorted((ROOT / "examples").glob("*.py")), *sorted((ROOT / "bench").glob("*.py"))]


def _resolves(name: str) -> bool:
    """A module, or an attribute of the longest importable module prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


NAMES = sorted({m for path in SOURCES for m in DOTTED.findall(path.read_text())})


def test_names_are_found():
    assert "mup_derive.validate.target.Target" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_mentioned_name_imports(name):
    assert _resolves(name.rstrip(".")), name
