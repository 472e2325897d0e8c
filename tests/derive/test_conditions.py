"""The conditions on low-rank kinds and extra scaled symbols: MQA, MLA (c fixed and c ~ n), LoRA, MoE with scaled E;
the gate a model puts on an op's output."""
from dataclasses import replace

import pytest
import sympy as sp

from mup_derive.declare import load
from mup_derive.declare.grammar import L, n
from mup_derive.derive import Settings, solve
from mup_derive.derive.conditions import ungate
from tests.helpers import GQA, ZOO

HALF = sp.Rational(1, 2)


@pytest.fixture(scope="module")
def zoo():
    return solve(load(ZOO))


def exps(table, op, q, opt=None):
    return table.get(op, q, opt).exponents


def test_mqa_fixed_head_dim(zoo):
    """K of rank d_head (fixed), repeated n/d_head times: hidden init, Adam LR 1/n -- per coordinate
    the update is Θ(1) whatever the repeat.  The spectral target gives kappa ~ sqrt(n) and LR n^-1/2."""
    assert exps(zoo, "mqa_k", "init_std")["n"] == -HALF
    assert exps(zoo, "mqa_k", "lr", "adam")["n"] == -1
    spectral = solve(load(ZOO), Settings(update_target="spectral"))
    assert exps(spectral, "mqa_k", "lr", "adam")["n"] == -HALF


def test_mla_latent_fixed_and_growing(zoo):
    # c fixed: the down factor keeps its output's RMS (init n^-1/2, LR 1/n); the up factor is input-like
    assert exps(zoo, "mla_kv_fixed.A", "init_std")["n"] == -HALF
    assert exps(zoo, "mla_kv_fixed.A", "lr", "adam")["n"] == -1
    assert exps(zoo, "mla_kv_fixed.B", "init_std")["n"] == 0
    assert exps(zoo, "mla_kv_fixed.B", "lr", "adam")["n"] == 0
    # c ~ n: both factors are hidden weights
    for f in ("A", "B"):
        assert exps(zoo, f"mla_kv_wide.{f}", "init_std")["n"] == -HALF
        assert exps(zoo, f"mla_kv_wide.{f}", "lr", "adam")["n"] == -1


def test_lora_plus_ratio_and_zero_b(zoo):
    """LoRA+ (Hayou et al. 2024): with Adam, eta_B / eta_A = Θ(n); B starts at zero."""
    assert zoo.get("lora.B", "init_std").expr == 0 and "zero init" in zoo.get("lora.B", "init_std").reason
    assert exps(zoo, "lora.A", "init_std")["n"] == -HALF                      # A's output feeds B: RMS kept
    ratio = zoo.get("lora.B", "lr", "adam").expr / zoo.get("lora.A", "lr", "adam").expr
    assert sp.simplify(ratio - sp.Symbol("n", positive=True) / sp.Symbol("k", positive=True)) == 0


def test_moe_scaled_experts(zoo):
    E = "E"
    assert set(exps(zoo, "router", "lr", "adam")) == {"n", "L", "r", E}
    assert exps(zoo, "router", "lr", "adam")[E] == 0 and exps(zoo, "router", "lr", "adam")["n"] == -1
    assert exps(zoo, "router", "init_std") == {"n": -1, "L": 0, "r": 0, E: HALF}   # readout to E logits
    assert exps(zoo, "expert_up", "lr", "adam") == {"n": -1, "L": 0, "r": 0, E: 0}


# The abc-symmetry (Tensor Programs V, sec. 5): W -> W/g under an output gate g.  Adam, Lion and Muon steps are
# scale-free in the gradient (LR / g, eps x g); SGD's step is LR x gradient, and the gradient grows with g (LR / g^2);
# eta * lambda held constant makes each WD the inverse of its LR.  Undoing the gate multiplies by g ** -power.
ABC = {"init_std": -1, "lr_sgd": -2, "wd_sgd": 2, "lr_adam": -1, "lr_adamw": -1, "wd_adamw": 1, "lr_lion": -1,
       "wd_lion": 1, "lr_muon": -1, "wd_muon": 1, "eps_adam": 1, "eps_adamw": 1}


@pytest.mark.parametrize("name,init", [("q", None), ("o", None), ("unembedding", None), ("attn_norm", "keep"),
                                       ("attn_norm", "ones")])
def test_ungating_is_the_abc_symmetry(name, init):
    op = next(o for o in load(GQA).ops if o.name == name)
    op = replace(op, init=init or op.init, gate=L)
    factors = ungate(op, Settings())
    expected = {k: p for k, p in ABC.items() if not (k == "init_std" and init == "ones")}   # a declared 1 stays 1
    assert set(factors) == set(expected)
    for key, power in expected.items():
        assert sp.simplify(factors[key].expr - L ** -power) == 0, key


def test_ungating_follows_the_wd_convention():
    """CompleteP's width-only WD drops the depth symbols of 1/eta, so a residual gate L leaves WD unchanged, while a
    gate in the width (the query's sqrt(d_head)) is undone on it too."""
    ops = {o.name: o for o in load(GQA).ops}
    s = Settings(wd="width-only")
    assert not any(k.startswith("wd_") for k in ungate(replace(ops["o"], gate=L), s))
    factors = ungate(replace(ops["q"], gate=sp.sqrt(n)), s)
    assert sp.simplify(factors["wd_adamw"].expr - 1 / sp.sqrt(n)) == 0
