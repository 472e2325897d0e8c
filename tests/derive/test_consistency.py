"""One tensor, one rule: roles checked against shapes, ties checked in every growing symbol, SP ties, every
contraction's multiplier in the generated code, reasons that stand alone."""
import re

import pytest
import sympy as sp

from mup_derive.declare import DeclarationError, architecture, load
from mup_derive.derive import Settings, solve
from mup_derive.generate.codegen import generate_module
from tests.helpers import EXAMPLES

HALF = sp.Rational(1, 2)


@pytest.mark.parametrize("op,field,says", [
    # MQA's K spelt as its own n -> d_head op reads as a readout; the error names the spelling to use
    ({"role": "hidden", "fan_in": "n", "fan_out": "d_head"}, "fan_out", "fan_out = n with rank = that dim"),
    ({"role": "output", "fan_in": "n", "fan_out": "4*n"}, "fan_out", "role = \"hidden\""),
    ({"role": "input", "fan_in": "n", "fan_out": "n"}, "fan_in", "data of a fixed size"),
    ({"role": "hidden", "fan_in": "d_head", "fan_out": "n"}, "fan_in", "role = \"input\""),
    ({"role": "hidden", "fan_in": "n", "fan_out": "n", "init": "ones"}, "init", "role = \"vector\""),
])
def test_a_role_that_contradicts_the_shape_is_refused(op, field, says):
    with pytest.raises(DeclarationError, match=re.escape(says)) as err:
        architecture("a", [{"name": "k", **op}], dims={"d_head": 64})
    assert err.value.field == field and err.value.op == "k" and "\n" not in str(err.value)


def test_mqa_key_spelt_as_a_repeat_gets_the_hidden_init():
    """The accepted spelling: an n x n map of rank d_head keeps the hidden init n^-1/2 (GQA-μP)."""
    t = solve(architecture("mqa", [{"name": "k", "role": "hidden", "fan_in": "n", "fan_out": "n",
                                    "rank": "d_head", "lowrank": "repeat"}], dims={"d_head": 64}))
    assert t.exponents("k", "init_std")[0] == -HALF


def _tied(alpha, inside):
    return solve(architecture("t", [
        {"name": "w", "role": "hidden", "fan_in": "n", "fan_out": "n"},
        {"name": "w2", "role": "hidden", "fan_in": "n", "fan_out": "n", "branch": inside, "tied": "w"},
    ]), Settings(alpha=alpha))


def test_a_tie_across_a_residual_branch_is_checked_in_depth():
    """At alpha = 1/2 a weight used in and out of a branch steps sqrt(L) too far in it (the n-only check said
    'consistent'); at alpha = 1 the branch's LR carries no L, so the tie holds."""
    assert "update off by L^1/2: tie over-determines" in _tied(HALF, True).get("w2", "lr", "adam").reason
    assert "consistent" in _tied(1, True).get("w2", "lr", "adam").reason
    assert "consistent" in _tied(HALF, False).get("w2", "lr", "adam").reason


def test_sp_ties_share_the_partners_init():
    t = solve(architecture("tied", [
        {"name": "emb", "role": "input", "fan_in": "V", "fan_out": "n"},
        {"name": "head", "role": "output", "fan_in": "n", "fan_out": "V", "tied": "emb"},
    ], dims={"V": 100}), Settings(parametrization="sp"))
    V = sp.Symbol("V", positive=True)
    assert t.get("head", "init_std").exact == t.get("emb", "init_std").exact == 1 / sp.sqrt(V)
    assert "tied to 'emb'" in t.get("head", "init_std").reason


def test_multiplier_of_a_contraction_over_a_fixed_head_dim():
    """nanoGPT / CompleteP keep d_head fixed: the logits' multiplier is 1/sqrt(d) at the base and constant."""
    arch = architecture("fixed_head", [{"name": "logits", "role": "contraction", "fan_in": "d_head"}],
                        dims={"d_head": 64})
    ns: dict = {}
    exec(compile(generate_module(arch), "m", "exec"), ns)
    for width in (128, 4096):
        assert ns["multiplier"]("logits", {"n": width, "L": 2, "r": 1}) == pytest.approx(1 / 8)


UNDEFINED = re.compile(r"\b(c|G|p|q|m|sigma)\b")


@pytest.mark.parametrize("decl", sorted(p.name for p in EXAMPLES.glob("*.toml")))
@pytest.mark.parametrize("alpha", [1, HALF])
def test_reasons_stand_alone(decl, alpha):
    """No reason uses a letter no table defines, prints L^(0), or gives a Gaussian reason to a ones gain."""
    t = solve(load(EXAMPLES / decl), Settings(alpha=alpha))
    for e in t.entries:
        assert not UNDEFINED.search(e.reason), (e.op, e.quantity, e.reason)
        assert "L^(0)" not in e.reason
    for op in t.arch.ops:
        if op.init == "ones":
            assert "ones" in t.get(op.name, "init_std").reason
