"""The package's front door: the Python API in mup_derive/__init__, --version, python -m mup_derive."""
import subprocess
import sys

import pytest
import sympy as sp

import mup_derive as md
from tests.helpers import GQA, ROOT, cli


def test_every_exported_name_imports():
    for name in md.__all__:
        assert getattr(md, name) is not None, name


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'derive_table'"):
        md.derive_table  # noqa: B018


def test_declare_solve_render_from_python():
    arch = md.architecture("mlp", [{"name": "w", "role": "hidden", "fan_in": "n", "fan_out": "n"}])
    table = md.solve(arch, md.Settings())
    assert table.exponents("w", "lr", "adam")[0] == -1
    assert "| w | hidden |" in md.render(table, "md")


def test_load_and_generate_from_python():
    code = md.generate_module(md.load(GQA))
    assert "class GQATransformer" in code and "RULES = {" in code
    assert md.solve(md.load(GQA)).get("k", "lr", "adam").expr == 1 / sp.Symbol("n", positive=True)


def test_version():
    res = cli("--version")
    assert res.exit_code == 0 and md.__version__ in res.output


def test_python_m_runs_the_cli():
    res = subprocess.run([sys.executable, "-m", "mup_derive", "derive", str(GQA), "--format", "csv"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert res.returncode == 0 and res.stdout.startswith("op,quantity,optimizer"), res.stderr


def test_importing_the_package_does_not_load_torch():
    code = "import sys, mup_derive, mup_derive.cli; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
