"""Table formats carry the solved exponents."""
import csv
import io
import json

import pytest
import sympy as sp

from tests.helpers import GQA, ZOO, cli


@pytest.fixture(scope="module")
def run():
    def go(*args):
        res = cli("derive", GQA, *args)
        assert res.exit_code == 0, res.output
        return res.output
    return go


def test_json(run):
    data = json.loads(run("--format", "json"))
    k = data["ops"]["k"]
    assert k["lr"]["adam"]["expr"] == "1/n"                     # default f(r) = 1
    assert k["lr"]["adam"]["exponents"] == {"n": "-1", "L": "0", "r": "0"}
    assert k["init_std"]["exponents"]["n"] == "-1/2"
    assert data["ops"]["residual"]["multiplier"]["exponents"]["L"] == "-1"
    assert all(k[q]["reason"] for q in ("init_std", "multiplier"))


@pytest.mark.parametrize("space,target,expr,exp_r", [("effective", "spectral", "(sqrt(r) + 1)/(2*n)", "1/2"),
                                                     ("stored", "spectral", "(sqrt(r) + r)/(2*n)", "1"),
                                                     ("stored", "rank-adjusted", "sqrt(r)/n", "1/2")])
def test_json_kv_choices(run, space, target, expr, exp_r):
    data = json.loads(run("--format", "json", "--update-space", space, "--update-target", target))
    assert sp.simplify(sp.sympify(data["ops"]["v"]["lr"]["adam"]["expr"]) - sp.sympify(expr)) == 0
    assert data["ops"]["v"]["lr"]["adam"]["exponents"]["r"] == exp_r


def test_csv(run):
    rows = list(csv.DictReader(io.StringIO(run("--format", "csv"))))
    row = next(x for x in rows if x["op"] == "q" and x["quantity"] == "lr" and x["optimizer"] == "adam")
    assert (row["exp_n"], row["exp_L"], row["exp_r"]) == ("-1", "0", "0") and row["reason"]


def test_markdown_and_latex(run):
    md = run("--format", "md")
    assert "| k | hidden |" in md and "rank-adjusted target" in md
    tex = run("--format", "latex", "--alpha", "1/2")
    assert "\\begin{tabular}" in tex and "\\frac{1}{\\sqrt{L}}" in tex


def test_csv_has_a_column_per_scaled_symbol():
    res = cli("derive", ZOO, "--format", "csv")
    assert res.exit_code == 0 and res.stdout.splitlines()[0].endswith("exp_n,exp_L,exp_r,exp_E,exact,reason")


def test_render_refuses_an_unknown_format():
    from mup_derive.declare import load
    from mup_derive.derive import solve
    from mup_derive.derive.render import render
    with pytest.raises(ValueError, match="format must be one of"):
        render(solve(load(GQA)), "html")
