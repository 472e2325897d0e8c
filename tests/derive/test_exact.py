"""Rules are exact in every scaled symbol and fixed dim; the generated code evaluates them exactly; the table
reports exponents in a stated regime; a fixed dim above the base width is warned about."""
import math

import pytest
import sympy as sp

from mup_derive.declare import architecture
from mup_derive.derive import solve
from mup_derive.generate.codegen import generate_module
from tests.helpers import ROOT, cli, fails_cleanly, generated

ROUTER = """name = "moe"
[scaled]
E = "experts"
[[op]]
name = "router"
role = "hidden"
fan_in = "n"
fan_out = "E"
params = ["router.weight"]
"""
MLA = """name = "mla"
[dims]
c = 512
[[op]]
name = "kv"
role = "hidden"
fan_in = "n"
fan_out = "n"
rank = "c"
lowrank = "factorised"
params = {A = ["down.weight"], B = ["up.weight"]}
"""


def test_router_init_ratio_is_the_exact_condition(tmp_path):
    """E = 8 -> 256 at n = 128: sqrt(E/n) / (sqrt(E) + sqrt(n)) gives 2.93, not the leading order's sqrt(32) = 5.66."""
    ns, _ = generated(tmp_path, ROUTER)
    def exact(e, w):
        return math.sqrt(e / w) / (math.sqrt(e) + math.sqrt(w))
    got = ns["ratio"]("router", "init_std", {"n": 128, "L": 2, "r": 1, "E": 256}) / \
        ns["ratio"]("router", "init_std", {"n": 128, "L": 2, "r": 1, "E": 8})
    assert got == pytest.approx(exact(256, 128) / exact(8, 128)) and got == pytest.approx(2.93, abs=0.01)


def test_mla_up_projection_with_a_fixed_latent_wider_than_the_base_is_exact_and_warned(tmp_path):
    """B: latent c = 512 -> n, n = 128 -> 1024: the exact ratio is 1.76, the leading order's n^0 gives 1."""
    ns, res = generated(tmp_path, MLA)
    ratio = ns["ratio"]("kv.B", "init_std", {"n": 1024, "L": 2, "r": 1})
    assert ratio == pytest.approx(1.76, abs=0.01)
    assert "warning: fixed dim c = 512 exceeds the base width n = 128" in res.output
    _, quiet = generated(tmp_path, MLA, "--base-width", "1024")
    assert "warning" not in quiet.output


def test_the_table_keeps_the_exact_rule_beside_its_leading_term():
    t = solve(architecture("moe", [{"name": "router", "role": "hidden", "fan_in": "n", "fan_out": "E"}],
                           scaled={"E": "experts"}))
    e = t.get("router", "init_std")
    E, n = sp.symbols("E n", positive=True)
    assert sp.simplify(e.exact - sp.sqrt(E / n) / (sp.sqrt(E) + sp.sqrt(n))) == 0
    assert sp.simplify(e.expr - sp.sqrt(E) / n) == 0
    assert e.exponents == {"n": -1, "L": 0, "r": 0, "E": sp.Rational(1, 2)}


def test_cli_regime_changes_the_exponents_not_the_rules(tmp_path):
    decl = tmp_path / "moe.toml"
    decl.write_text(ROUTER)
    default = cli("derive", decl, "--format", "csv").output.splitlines()
    e_first = cli("derive", decl, "--format", "csv", "--regime", "E,n").output.splitlines()
    n_only = cli("derive", decl, "--format", "csv", "--regime", "n").output.splitlines()
    row = next(x for x in default[1:] if x.startswith("router,init_std"))
    assert row.startswith("router,init_std,,sqrt(E)/n,-1,0,0,1/2,")
    assert next(x for x in e_first[1:] if x.startswith("router,init_std")).startswith(
        "router,init_std,,1/sqrt(n),-1/2,fixed,fixed,0,")
    assert next(x for x in n_only[1:] if x.startswith("router,init_std")).startswith(
        "router,init_std,,sqrt(E)/n,-1,fixed,fixed,fixed,")
    assert "growing, fastest first: E, n" in cli("derive", decl, "--regime", "E,n").output


@pytest.mark.parametrize("regime", ["n,q", "n,n", ""])
def test_a_bad_regime_is_named(tmp_path, regime):
    decl = tmp_path / "moe.toml"
    decl.write_text(ROUTER)
    res = cli("derive", decl, "--regime", regime)
    assert fails_cleanly(res, "--regime") if regime else res.exit_code == 0


def test_exact_rules_in_code_at_the_base_shape_of_the_shipped_example():
    """Where n-only shapes make leading and exact rules agree, the generated code keeps TP5's ratios."""
    from mup_derive.declare import load
    from tests.helpers import GQA
    code = generate_module(load(GQA))
    ns: dict = {}
    exec(compile(code, "gqa", "exec"), ns)
    shape = {"n": 1024, "L": 2, "r": 1}
    assert ns["ratio"]("q", "init_std", shape) == pytest.approx(math.sqrt(128 / 1024))
    assert ns["ratio"]("unembedding", "init_std", shape) == pytest.approx(128 / 1024)   # readout: row norm
    assert ns["ratio"]("embedding", "init_std", shape) == 1.0                          # input: expected norm


def test_a_repeat_that_grows_with_width_is_warned_about_and_a_gqa_repeat_is_not(tmp_path):
    """MQA's K/V (rank d_head, repeat n/d_head) pass the stream change their own backward put there with gain
    sqrt((1 + n/d_head) / 2): a width growth no rule of the op removes (reports/ratio_axis.md); GQA's n/r repeat
    is fixed in width."""
    mqa = tmp_path / "mqa.toml"
    mqa.write_text('name = "mqa"\n[dims]\nd_head = 16\n[[op]]\nname = "k"\nrole = "hidden"\nfan_in = "n"\n'
                   'fan_out = "n"\nrank = "d_head"\n')
    res = cli("derive", mqa)
    assert res.exit_code == 0 and "warning: op 'k' repeats its rows n/d_head times" in res.output
    assert "warning" not in cli("derive", ROOT / "examples" / "gqa_transformer.toml").output
